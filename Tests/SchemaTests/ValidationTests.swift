import Query
import Schema
import XCTest

final class ValidationTests: XCTestCase {
    private func errors(_ query: String) -> [String] {
        Validator.validate(try! Parser.parse(query, limits: ParserLimits(maxTokens: 100_000)), schema: contract).map(\.message)
    }

    func testRepeatedFieldsAreMergedAndEndlessErrorsAreCut() {
        let repeated = "{ " + String(repeating: "a: customers { nodes { id } } ", count: 1500) + "}"
        XCTAssertEqual(errors(repeated), [])
        let conflicting = "{ " + (1...1000).map { "a: customers(first: \($0)) { totalCount }" }.joined(separator: " ") + " }"
        let found = errors(conflicting)
        XCTAssertEqual(found.count, Validator.maxErrors + 1)
        XCTAssertEqual(found.last, "Too many validation errors, error limit reached. Validation aborted.")
    }

    func testAFragmentCycleInsideMergedFieldsIsReportedNotFollowed() {
        // Field merging compares the two `x` through the cycle: it used to recurse until the stack overflowed.
        let cycle = "{ invoice(id: \"x\") { ...A } } fragment A on Invoice { customer { x: invoices { ...A } x: invoices { id ...A } } }"
        XCTAssertEqual(errors(cycle), ["Cannot spread fragment \"A\" within itself.", "Cannot spread fragment \"A\" within itself."])
    }

    func testNestingThroughFragmentsIsMeasuredWithoutFollowingTheChain() {
        func chain(_ n: Int, closed: Bool) -> String {
            "{ __schema { types { ...T0 } } }\n" + (0..<n).map { "fragment T\($0) on __Type { ofType { ...T\(closed ? ($0 + 1) % n : $0 + 1) } }" }
                .joined(separator: "\n") + (closed ? "" : "\nfragment T\(n) on __Type { name }")
        }
        let tooDeep = ["The document nests more than 256 selections deep through its fragments."]
        XCTAssertEqual(errors(chain(200, closed: false)), tooDeep)  // 3 + 2 levels a fragment
        XCTAssertEqual(errors(chain(1700, closed: false)), tooDeep)  // overflowed the stack before
        XCTAssertEqual(errors(chain(1700, closed: true)), tooDeep)
        XCTAssertEqual(errors(chain(100, closed: false)), [])
        XCTAssertEqual(errors(chain(2, closed: true)), ["Cannot spread fragment \"T0\" within itself via \"T1\"."])
    }

    func testRulesOfSectionFive() {
        XCTAssertEqual(errors("{ nope }"), ["Cannot query field \"nope\" on type \"Query\"."])
        XCTAssertEqual(errors("{ customer { id } }"),
                       ["Field \"customer\" argument \"id\" of type \"ID!\" is required, but it was not provided."])
        XCTAssertEqual(errors("{ customers }"),
                       ["Field \"customers\" of type \"CustomerConnection!\" must have a selection of subfields. Did you mean \"customers { ... }\"?"])
        XCTAssertEqual(errors("query($x: Int) { customers { totalCount } }"), ["Variable \"$x\" is never used."])
        XCTAssertEqual(errors("{ customers(first: $n) { totalCount } }"), ["Variable \"$n\" is not defined."])
        XCTAssertEqual(errors("{ customers(order: SIDEWAYS) { totalCount } }"), ["Value \"SIDEWAYS\" does not exist in \"Order\" enum."])
        XCTAssertEqual(errors("{ ...F } fragment F on Query { ...F }"), ["Cannot spread fragment \"F\" within itself."])
        XCTAssertEqual(errors("query A { __typename } query A { __typename }"), ["There can be only one operation named \"A\"."])
        XCTAssertEqual(errors("type T { a: Int }"), ["The \"T\" definition is not executable."])
        XCTAssertEqual(errors("{ a: customers { totalCount } a: invoices { totalCount } }").first,
                       "Fields \"a\" conflict because \"customers\" and \"invoices\" are different fields. Use different aliases on the fields to fetch both if this was intentional.")
        XCTAssertEqual(errors("query($x: String) { customer(id: $x) { id } }"),
                       ["Variable \"$x\" of type \"String\" used in position expecting type \"ID!\"."])
    }

    /// 5.6.1 (graphql-js ValuesOfCorrectTypeRule): `null` for a nullable list of non-null
    /// items is a null list, valid; a null inside the list, or a list where one is required, is not.
    func testANullListIsValidWhereItsItemsMayNotBeNull() {
        XCTAssertEqual(errors("{ invoices(filter: {status: null}) { totalCount } }"), [])
        XCTAssertEqual(errors("{ invoices(filter: {status: [OPEN, null]}) { totalCount } }"),
                       ["Expected value of type \"InvoiceStatus!\", found null."])
        XCTAssertEqual(errors("{ invoices(filter: {status: OPEN}) { totalCount } }"), [])  // one item, as a list of one
    }

    /// Beneath a field of no known type, the rules that need no type still hold, as in
    /// graphql-js: a variable used there is used (not "never used"), one undefined is
    /// undefined, an unknown directive is unknown.
    func testRulesThatNeedNoTypeHoldBeneathAnUnknownField() {
        XCTAssertEqual(errors("query($v: Int) { nope(a: $v) }"), ["Cannot query field \"nope\" on type \"Query\"."])
        XCTAssertEqual(Set(errors("{ nope(a: $u) { b(c: 1, c: 2) } }")),
                       ["Cannot query field \"nope\" on type \"Query\".", "Variable \"$u\" is not defined.",
                        "There can be only one argument named \"c\"."])
        XCTAssertEqual(Set(errors("{ __typename @nope(a: 1, a: 2) }")),
                       ["Unknown directive \"@nope\".", "There can be only one argument named \"a\"."])
        XCTAssertEqual(Set(errors("{ __typename { id @unknown } }")),
                       ["Field \"__typename\" must not have a selection since type \"String!\" has no subfields.",
                        "Unknown directive \"@unknown\"."])
        XCTAssertEqual(Set(errors("query($v: Boolean!) { ... on Nope { x @skip(if: $v) } }")), ["Unknown type \"Nope\"."])
        XCTAssertEqual(Set(errors("query($v: Boolean!) { ...F } fragment F on Nope { x @include(if: $v) @unknown }")),
                       ["Unknown type \"Nope\".", "Unknown directive \"@unknown\"."])
        XCTAssertEqual(Set(errors("query($v: Boolean!) { ...F } fragment F on Query @skip(if: $v) { __typename }")),
                       ["Directive \"@skip\" may not be used on FRAGMENT_DEFINITION."])
        XCTAssertEqual(errors("query($v: Foo) { customer(id: $v) { id } }"), ["Unknown type \"Foo\"."])
        XCTAssertEqual(Set(errors("query($v: Foo = {a: 1, a: 2} @unknown) { __typename }")),
                       ["Unknown type \"Foo\".", "There can be only one input field named \"a\".", "Unknown directive \"@unknown\".",
                        "Variable \"$v\" is never used."])
    }

    /// Field merging holds beneath a field of no known type and inside a fragment that no
    /// operation spreads, as graphql-js checks every selection set.
    func testFieldsMergeBeneathAnUnknownFieldAndInUnusedFragments() {
        let different = "Fields \"x\" conflict because \"id\" and \"name\" are different fields. Use different aliases on the fields to fetch both if this was intentional."
        XCTAssertEqual(Set(errors("{ nope { x: id x: name } }")), ["Cannot query field \"nope\" on type \"Query\".", different])
        XCTAssertEqual(Set(errors("{ __typename } fragment F on Customer { x: id x: name }")), ["Fragment \"F\" is never used.", different])
        XCTAssertEqual(errors("{ customers { nodes { ...F } } } fragment F on Customer { x: id x: name }"), [different])
        XCTAssertEqual(errors("{ nope { x: id x: id } }"), ["Cannot query field \"nope\" on type \"Query\"."])
    }

    /// As graphql-js: a list's items stand where a list that is not expected stands, so a
    /// variable among them is judged against that type; one in an object at a leaf
    /// position is used but not judged; no object literal names a field twice (5.6.2).
    func testVariablesAndFieldsInsideLiteralsThatAreNotOfTheirType() {
        let note = "createCreditNote(input: {invoiceId: \"x\", amount: 1, reason: \"r\", customData: %@}) { __typename }"
        func mutation(_ variables: String, _ customData: String) -> String {
            "mutation\(variables) { " + note.replacingOccurrences(of: "%@", with: customData) + " }"
        }
        XCTAssertEqual(errors(mutation("($v: String)", "[$v]")),
                       ["Variable \"$v\" of type \"String\" used in position expecting type \"JSON\"."])
        XCTAssertEqual(errors(mutation("($v: String)", "{a: [$v]}")), [])
        XCTAssertEqual(errors(mutation("($v: JSON)", "[[$v]]")), [])
        XCTAssertEqual(errors(mutation("", "{a: 1, a: 2}")), ["There can be only one input field named \"a\"."])
        XCTAssertEqual(errors(mutation("", "[{b: {c: 1, c: 2}}]")), ["There can be only one input field named \"c\"."])
        // A list where an input object is expected: its objects' fields are the input object's.
        XCTAssertEqual(Set(errors("query($d: [[Date]]) { payments(filter: [{receivedFrom: $d, nope: $d}]) { totalCount } }")),
                       ["Expected value of type \"PaymentFilter\", found [{receivedFrom: $d, nope: $d}].",
                        "Variable \"$d\" of type \"[[Date]]\" used in position expecting type \"Date\"."])
        XCTAssertEqual(Set(errors("query($v: ID) { customers(first: [$v]) { totalCount } }")),
                       ["Int cannot represent non-integer value: [$v]",
                        "Variable \"$v\" of type \"ID\" used in position expecting type \"Int\"."])
    }
}

import Foundation
