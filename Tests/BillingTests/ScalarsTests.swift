@testable import Billing
import Engine
import JSON
import Query
import Schema
import XCTest

/// The contract's scalars (schema/schema.graphql): `Date` is a real calendar day,
/// `DateTime` RFC 3339 in UTC to the second; both are refused otherwise, from a literal
/// (a validation error) or a variable (BAD_USER_INPUT).
final class ScalarsTests: XCTestCase {
    private func refusal(_ query: String, _ variables: [(String, JSONValue)] = []) -> [String] {
        guard case .failure(.documentRejected(let errors)) = Preparation(schema: Schema.contract)
            .prepare(GraphQLRequest(query: query, variables: variables)) else { return [] }
        return errors.map { "\($0.code): \($0.message)" }
    }

    func testDatesAreRealCalendarDays() {
        for valid in ["2024-02-29", "2000-02-29", "0001-01-01", "2023-12-31"] { XCTAssertTrue(Scalars.isValidDate(valid), valid) }
        for invalid in ["2023-02-29", "1900-02-29", "2024-04-31", "2024-13-01", "2024-00-10", "0000-01-01", "2024-1-01", "2024-01-01 "] {
            XCTAssertFalse(Scalars.isValidDate(invalid), invalid)
        }
        XCTAssertTrue(Scalars.isValidDateTime("2024-05-01T12:00:00Z"))
        for invalid in ["2024-05-01T24:00:00Z", "2024-05-01T12:00:00+00:00", "2024-05-01T12:00:00.5Z", "2024-02-30T00:00:00Z"] {
            XCTAssertFalse(Scalars.isValidDateTime(invalid), invalid)
        }
    }

    func testALiteralThatIsNoDateIsAValidationError() {
        XCTAssertEqual(refusal("{ arAging(asOf: \"2024-13-01\", currency: \"USD\") { total } }"),
                       ["GRAPHQL_VALIDATION_FAILED: Expected value of type \"Date\" (YYYY-MM-DD), found \"2024-13-01\"."])
        XCTAssertEqual(refusal("{ arAging(asOf: 20240101, currency: \"USD\") { total } }"),
                       ["GRAPHQL_VALIDATION_FAILED: Expected value of type \"Date\" (YYYY-MM-DD), found 20240101."])
        XCTAssertEqual(refusal("{ arAging(asOf: \"2024-02-29\", currency: \"USD\") { total } }"), [])
    }

    func testAVariableThatIsNoDateIsBadUserInput() {
        let query = "query($d: Date!) { arAging(asOf: $d, currency: \"USD\") { total } }"
        XCTAssertEqual(refusal(query, [("d", .string("2024-02-30"))]),
                       ["BAD_USER_INPUT: Variable \"$d\" got invalid value \"2024-02-30\"; Date must be a calendar date in the form YYYY-MM-DD: \"2024-02-30\""])
        XCTAssertEqual(refusal(query, [("d", .string("2024-02-29"))]), [])
    }

    func testUUIDsAreLowercaseText() {
        XCTAssertTrue(Scalars.isLowercaseUUID("0b7a3c9e-1111-4111-8111-222222222222"))
        XCTAssertFalse(Scalars.isLowercaseUUID("0B7A3C9E-1111-4111-8111-222222222222"))
        XCTAssertFalse(Scalars.isLowercaseUUID("0b7a3c9e111141118111222222222222"))
    }
}
