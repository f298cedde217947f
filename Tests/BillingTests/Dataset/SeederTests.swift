@testable import Billing
import XCTest

final class SeederTests: XCTestCase {
    func testTheSeederIsDeterministic() {
        func lines(seed: UInt64) -> [String] {
            var options = Seeder.Options()
            options.customers = 20
            options.seed = seed
            var seeder = Seeder(options)
            var out: [String] = []
            seeder.generate(emit: { out.append($0.serialized) }, key: { _ in })
            return out
        }
        XCTAssertEqual(lines(seed: 3), lines(seed: 3))
        XCTAssertNotEqual(lines(seed: 3), lines(seed: 4))
        XCTAssertGreaterThan(lines(seed: 3).count, 100)
    }

    func testCalendarArithmetic() {
        XCTAssertEqual(Day(year: 2024, month: 2, day: 28).adding(1).text, "2024-02-29")
        XCTAssertEqual(Day(year: 2023, month: 2, day: 28).adding(1).text, "2023-03-01")
        XCTAssertEqual(Day(year: 2023, month: 12, day: 31).adding(1).text, "2024-01-01")
        XCTAssertEqual(Day(year: 1970, month: 1, day: 1).ordinal, 0)
    }
}
