@testable import Billing
import XCTest

/// `QueryResolver.swift`: the exponent `Arguments` reads from a JSON number, to refuse
/// what PostgreSQL's `numeric` cannot hold (RULES.md section 5), written by hand for
/// each form JSON allows.
final class QueryResolverTests: XCTestCase {
    func testTheExponentOfEveryFormOfJSONNumber() {
        let cases: [(String, Int)] = [
            ("25", 0), ("-0.5", 0), ("1e5", 5), ("1E5", 5), ("1e+5", 5), ("2.5e-7", -7), ("-3E-0", 0),
            ("1e400000", 400_000), ("1e-400000", -400_000), ("1e99999999999999999999", Int.max),
        ]
        for (number, exponent) in cases {
            XCTAssertEqual(Arguments.exponent(of: number), exponent, number)
        }
    }
}
