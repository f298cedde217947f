@testable import Billing
import Foundation
import Schema
import XCTest

/// The start-up check: the registry against the contract, and against contracts edited
/// so that they disagree with it, one way each.
final class RegistryCheckTests: XCTestCase {
    private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..")

    /// The contract with one edit; the edit must change it, or the test would prove nothing.
    private func contract(replacing old: String, with new: String) throws -> Schema {
        XCTAssertEqual(contractSDL.components(separatedBy: old).count, 2, "the edit must find exactly one place: \(old)")
        return try Schema(sdl: contractSDL.replacingOccurrences(of: old, with: new), scalars: Scalars.coercions)
    }

    func testTheRegistryMatchesTheSchemaFileAndTheEmbeddedSchema() throws {
        let file = try String(contentsOf: repository.appendingPathComponent("schema/schema.graphql"), encoding: .utf8)
        XCTAssertEqual(Registry.contract.mismatches(with: try Schema(sdl: file, scalars: Scalars.coercions)), [])
        XCTAssertEqual(Registry.contract.mismatches(with: Schema.contract), [])
        // Every object type of the file, introspection's aside, is registered: 27 of them.
        let objectTypes = Schema.contract.typeOrder.filter { !$0.hasPrefix("__") && Schema.contract.types[$0]?.kind == .object }
        XCTAssertEqual(objectTypes.count, 27)
        XCTAssertEqual(Set(Registry.contract.entries.map(\.type.rawValue)), Set(objectTypes))
    }

    func testAFieldWithoutAResolverIsNamed() throws {
        let schema = try contract(replacing: "  creditBalance: Int!\n", with: "  creditBalance: Int!\n  nickname: String\n")
        XCTAssertEqual(Registry.contract.mismatches(with: schema), ["Customer.nickname has no resolver in the registry."])
    }

    func testAResolverWithoutAFieldIsNamed() throws {
        let schema = try contract(replacing: "  dueOn: Date\n", with: "")
        XCTAssertEqual(Registry.contract.mismatches(with: schema),
                       ["Invoice.dueOn is resolved as a column but the schema has no such field."])
    }

    func testAnObjectTypeWithoutAnEntryIsNamed() throws {
        let schema = try contract(replacing: "type Query {\n", with: "type Discount {\n  id: ID!\n}\n\ntype Query {\n  discount: Discount\n")
        XCTAssertEqual(Registry.contract.mismatches(with: schema),
                       ["Discount has no entry in the registry.", "Query.discount has no resolver in the registry."])
    }

    func testAResolverOfAnotherKindThanItsFieldIsNamed() throws {
        let totals = try contract(replacing: "  totals: CustomerTotals!\n", with: "  totals: Int!\n")
        XCTAssertEqual(Registry.contract.mismatches(with: totals),
                       ["Customer.totals cannot be resolved as the same row: it does not return one CustomerTotals."])
        let list = try contract(replacing: "  invoices: [Invoice!]!\n", with: "  invoices: Invoice\n")
        XCTAssertEqual(Registry.contract.mismatches(with: list),
                       ["Payment.invoices cannot be resolved as a list: it does not return a list of Invoice."])
        let column = try contract(replacing: "  amountUnapplied: Int!\n", with: "  amountUnapplied: [Int!]!\n")
        XCTAssertEqual(Registry.contract.mismatches(with: column),
                       ["Payment.amountUnapplied cannot be resolved as a column: it is no scalar or enum."])
    }

    func testAFilterNothingReadsAndAFilterWithoutItsArgumentAreNamed() throws {
        let input = try contract(replacing: "  dueBefore: Date\n", with: "  dueBefore: Date\n  numberContains: String\n")
        XCTAssertEqual(Registry.contract.mismatches(with: input),
                       ["Query.invoices cannot be resolved as a connection: nothing filters by numberContains."])
        let argument = try contract(
            replacing: "  creditNotes(first: Int = 100, order: Order = OLDEST_FIRST): [CreditNote!]!\n  totals:",
            with: "  creditNotes(first: Int = 100, order: Order = OLDEST_FIRST, status: CreditNoteStatus): [CreditNote!]!\n  totals:")
        XCTAssertEqual(Registry.contract.mismatches(with: argument),
                       ["Customer.creditNotes cannot be resolved as a list: nothing filters by status."])
        let gone = try contract(replacing: "  receivedTo: Date\n", with: "")
        XCTAssertEqual(Registry.contract.mismatches(with: gone),
                       ["Query.payments cannot be resolved as a connection: no argument receivedTo to filter by."])
    }

    func testARegistryWithATypeTwiceAFieldTwiceOrATypeTooManyIsRefused() throws {
        let contract = Registry.contract.entries
        // Invoice's number also as a relation, Mutation left out, Query twice.
        let invoice = contract.map { entry in
            entry.type != .invoice ? entry : Registry.Entry(type: .invoice, backing: entry.backing,
                                                             fields: entry.fields + [("number", .byID(Tables.customer, key: "customerId"))])
        }
        let registry = Registry(invoice.filter { $0.type != .mutation } + [contract[0]])
        XCTAssertEqual(registry.mismatches(with: Schema.contract), [
            "Mutation has no entry in the registry.",
            "Invoice.number is resolved twice.",
            "Query has two entries in the registry.",
        ])
        let noMutations = try Schema(sdl: contractSDL.replacingOccurrences(of: "  mutation: Mutation\n", with: "")
            .replacing(#/type Mutation \{[^}]*\}/#, with: ""), scalars: Scalars.coercions)
        XCTAssertEqual(Registry.contract.mismatches(with: noMutations), ["Mutation is in the registry but is no object type of the schema."])
    }
}
