import Engine
import Foundation
import Query
import Schema
import XCTest

/// RULES.md section 5: work before the database is bounded by the document's size. Each
/// document here expands to far more than it says; today's code judges each in
/// milliseconds, code that expands fragments needs hours. The bound of 5 s is loose
/// enough never to flake; benchmarks/hostile reports the real times.
final class PreparationTests: XCTestCase {
    private let preparation = Preparation(schema: contract)

    /// Judges the document and returns the error codes of its refusal (empty when it
    /// would run), failing the test if that took more than 5 s.
    private func codes(_ query: String, file: StaticString = #filePath, line: UInt = #line) -> [ErrorCode] {
        let started = Date()
        let result = preparation.prepare(GraphQLRequest(query: query))
        let seconds = Date().timeIntervalSince(started)
        XCTAssertLessThan(seconds, 5, "judged in \(seconds) s", file: file, line: line)
        switch result {
        case .success: return []
        case .failure(.tooComplex(let error)), .failure(.badRequest(let error)): return [error.code]
        case .failure(.documentRejected(let errors)): return errors.map(\.code)
        }
    }

    /// `F1` selects `F2` twice, `F2` selects `F3` twice, and so on: 2^n fields once expanded.
    private func doublingFragments(_ count: Int, spreadIn root: String = "{ customers(first: 1) { nodes { ...F1 } } }") -> String {
        var text = root + "\n"
        for i in 1..<count {
            text += "fragment F\(i) on Customer { a: invoices(first: 1) { customer { ...F\(i + 1) } } "
                + "b: invoices(first: 1) { customer { ...F\(i + 1) } } }\n"
        }
        return text + "fragment F\(count) on Customer { id }\n"
    }

    func testDoublingFragmentsAreRefusedForTheirDepthAtOnce() {
        for count in [20, 40, 200] {
            XCTAssertEqual(codes(doublingFragments(count)), [.queryTooComplex], "\(count) fragments")
        }
    }

    /// Doubling at the same level keeps the depth small: only the expanded field count,
    /// found from per-fragment sizes, can refuse it.
    func testWideDoublingIsRefusedForItsExpandedFieldCount() {
        var text = "{ ...W1 }\n"
        for i in 1..<40 { text += "fragment W\(i) on Query { ...W\(i + 1) a\(i): __typename ...W\(i + 1) }\n" }
        text += "fragment W40 on Query { __typename }\n"
        XCTAssertEqual(codes(text), [.queryTooComplex])
        // The same shape, 13 levels wide (2^13 fields once expanded), is under the 10,000 limit.
        var small = "{ ...W1 }\n"
        for i in 1..<13 { small += "fragment W\(i) on Query { ...W\(i + 1) a\(i): __typename ...W\(i + 1) }\n" }
        small += "fragment W13 on Query { __typename }\n"
        XCTAssertEqual(codes(small), [])
    }

    func testAliasFloodsAreRefused() {
        let lists = "{ " + (1...1_000).map { "a\($0): customers(first: 1) { totalCount }" }.joined(separator: " ") + " }"
        XCTAssertEqual(codes(lists), [.queryTooComplex])
        // 6 lists of 2,000 aliased fields each: 12,000 fields in a document of 12,000 tokens.
        let leaves = "{ " + (1...6).map { "l\($0): customers { nodes { ...L } }" }.joined(separator: " ") + " }\n"
            + "fragment L on Customer { " + (1...2_000).map { "a\($0): id" }.joined(separator: " ") + " }"
        XCTAssertEqual(codes(leaves), [.queryTooComplex])
    }

    /// Thousands of distinct fields under one response name would need millions of
    /// comparisons to merge; the comparison budget refuses them instead.
    func testFieldsThatCannotBeMergedCheaplyAreRefused() {
        let query = "{ " + (1...1_800).map { "a: customers { nodes { x\($0): id } }" }.joined(separator: " ") + " }"
        XCTAssertEqual(codes(query), [.queryTooComplex])
    }

    /// A fragment no operation spreads is checked for merging too (as graphql-js checks
    /// every selection set), within the same bound of comparisons, shared by all of them.
    func testUnusedFragmentsThatCannotBeMergedCheaplyAreRefused() {
        let fields = (1...1_800).map { "a: customers { nodes { x\($0): id } }" }.joined(separator: " ")
        XCTAssertEqual(codes("{ __typename } fragment F on Query { \(fields) }"), [.queryTooComplex])
        // 120 fields that merge but differ: 14,280 comparisons a fragment (theirs and their
        // subfields'), over the bound together.
        let halves = (1...2).map { f in
            "fragment F\(f) on Query { " + (1...120).map { "a: customers { nodes { x\(f)_\($0): id } }" }.joined(separator: " ") + " }"
        }
        XCTAssertEqual(codes("{ __typename } " + halves.joined(separator: " ")), [.queryTooComplex])
        XCTAssertEqual(codes("{ __typename } " + halves[0]), [.validationFailed])  // only "never used"
        // A chain of 1,700 fragments that no operation spreads is bounded like one spread:
        // walking it for merging overflowed the stack.
        let chain = "{ __typename }\n" + (0..<1_700).map { "fragment T\($0) on __Type { ofType { ...T\($0 + 1) } }" }.joined(separator: "\n")
            + "\nfragment T1700 on __Type { name }"
        XCTAssertEqual(codes(chain), [.queryTooComplex])
    }

    func testAMebibyteOfRepeatedFieldsIsRefusedBeforeItIsParsedWhole() {
        let query = "{ customers { nodes { " + String(repeating: "id ", count: (1 << 20) / 3) + "} } }"
        XCTAssertEqual(codes(query), [.parseFailed])
    }

    /// A conflict deep inside a fragment spread in many places is still found, once.
    func testConflictsInsideSharedFragmentsAreStillFound() {
        let query = """
            { customers { nodes { ...C ...C } } a: customers { nodes { ...C } } }
            fragment C on Customer { x: id x: name }
            """
        XCTAssertEqual(codes(query), [.validationFailed])
    }
}
