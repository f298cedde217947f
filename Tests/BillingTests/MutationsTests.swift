@testable import Billing
import Engine
import JSON
import Store
import XCTest

final class MutationsTests: XCTestCase {
    func testFingerprintTreatsAbsentAndNullAlikeAndLeavesTheKeyOut() {
        let a = MutationService.fingerprint([("paymentId", .string("p")), ("amount", .number("5")), ("idempotencyKey", .string("k1"))])
        let b = MutationService.fingerprint([("amount", .number("5")), ("mode", .null), ("paymentId", .string("p"))])
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, MutationService.fingerprint([("paymentId", .string("p")), ("amount", .number("6"))]))
    }

    /// Alike in the split's entries too; but a null inside `customData` is data.
    func testFingerprintTreatsNullsInSplitEntriesAlikeButNotInCustomData() {
        let entry: [(String, JSONValue)] = [("paymentId", .string("p")), ("amount", .number("5"))]
        let without = MutationService.fingerprint([("refundSplit", .array([.object(entry)]))])
        let withNull = MutationService.fingerprint([("refundSplit", .array([.object(entry + [("refundId", .null)])]))])
        XCTAssertEqual(without, withNull)
        XCTAssertNotEqual(without, MutationService.fingerprint([("refundSplit", .array([.object(entry + [("refundId", .string("r"))])]))]))
        XCTAssertNotEqual(MutationService.fingerprint([("customData", .object([("a", .null)]))]),
                          MutationService.fingerprint([("customData", .object([]))]))
        XCTAssertNotEqual(MutationService.fingerprint([("customData", .array([.object([("a", .null)])]))]),
                          MutationService.fingerprint([("customData", .array([.object([])]))]))
    }

    func testRuleMessagesBecomeContractErrors() {
        let error = DatabaseError.server(sqlState: "P0001", message: "AMOUNT_EXCEEDS_REFUNDABLE|Too much.", detail: nil, constraint: nil)
        let mapped = MutationLoad.ruleBroken(error)
        XCTAssertEqual(mapped?.code, .amountExceedsRefundable)
        XCTAssertEqual(mapped?.message, "Too much.")
        XCTAssertNil(MutationLoad.ruleBroken(.server(sqlState: "23505", message: "duplicate", detail: nil, constraint: nil)))
        // Only the codes the mutation functions refuse with: other text before a bar is no rule.
        XCTAssertNil(MutationLoad.ruleBroken(.server(sqlState: "P0001", message: "SERVICE_UNAVAILABLE|x", detail: nil, constraint: nil)))
        XCTAssertNil(MutationLoad.ruleBroken(.server(sqlState: "P0001", message: "no code|x", detail: nil, constraint: nil)))
    }
}
