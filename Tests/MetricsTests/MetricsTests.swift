@testable import Metrics
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The metric types and the text exposition format (version 0.0.4), without a server;
/// the integration suite checks the real output with promtool and a real Prometheus.
final class MetricsTests: XCTestCase {
    func testCounterAndGaugeRender() {
        let registry = Registry()
        let requests = registry.counter("app_requests_total", help: "Requests.", labels: ["code", "kind"])
        requests.labels("200", "query").increment()
        requests.labels("200", "query").increment(by: 2)
        requests.labels("404", "none").increment()
        let open = registry.gauge("app_open", help: "Open things.").labels([])
        open.add(5)
        open.add(-2)
        XCTAssertEqual(registry.render(), """
            # HELP app_requests_total Requests.
            # TYPE app_requests_total counter
            app_requests_total{code="200",kind="query"} 3
            app_requests_total{code="404",kind="none"} 1
            # HELP app_open Open things.
            # TYPE app_open gauge
            app_open 3

            """)
    }

    func testHistogramBucketsAreCumulativeAndInSeconds() {
        let registry = Registry()
        let family = registry.histogram("app_seconds", help: "Durations.", bounds: [1_000_000, 10_000_000])
        let h = family.labels([])
        h.observe(nanoseconds: 500_000)      // 0.5 ms: first bucket
        h.observe(nanoseconds: 1_000_000)    // exactly 1 ms: still the first (le is inclusive)
        h.observe(nanoseconds: 5_000_000)    // second
        h.observe(nanoseconds: 20_000_000)   // +Inf
        XCTAssertEqual(registry.render(), """
            # HELP app_seconds Durations.
            # TYPE app_seconds histogram
            app_seconds_bucket{le="0.001"} 2
            app_seconds_bucket{le="0.01"} 3
            app_seconds_bucket{le="+Inf"} 4
            app_seconds_sum 0.0265
            app_seconds_count 4

            """)
    }

    func testBoundsSpanTheRangeAsked() {
        let http = Histogram.bounds(fromSeconds: 0.001, toSeconds: 10)
        XCTAssertEqual(http.first, 1_000_000)
        XCTAssertEqual(http.last, 10_000_000_000)
        XCTAssertEqual(http.count, 13)
        XCTAssertEqual(Histogram.bounds(fromSeconds: 0.0001, toSeconds: 5).first, 100_000)
        XCTAssertEqual(Histogram.bounds(fromSeconds: 0.0001, toSeconds: 5).last, 5_000_000_000)
        XCTAssertEqual(Histogram.bounds(fromSeconds: 0.0001, toSeconds: 1).last, 1_000_000_000)
        XCTAssertEqual(http, http.sorted())
    }

    func testLabelValuesAreEscaped() {
        let registry = Registry()
        registry.counter("x_total", help: "A \\ help\nline.", labels: ["v"]).labels(["a\"b\\c\nd"]).increment()
        XCTAssertEqual(registry.render(), """
            # HELP x_total A \\\\ help\\nline.
            # TYPE x_total counter
            x_total{v="a\\"b\\\\c\\nd"} 1

            """)
    }

    func testNumbers() {
        XCTAssertEqual(Exposition.format(3), "3")
        XCTAssertEqual(Exposition.format(0.25), "0.25")
        XCTAssertEqual(Exposition.format(.infinity), "+Inf")
        XCTAssertEqual(Exposition.format(.nan), "NaN")
    }

    func testCountingFromManyThreadsLosesNothing() {
        let counter = Counter()
        let histogram = Histogram(bounds: [10])
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for i in 0..<100_000 {
                counter.increment()
                histogram.observe(nanoseconds: UInt64(i % 20))
            }
        }
        XCTAssertEqual(counter.value, 400_000)
        let (cumulative, _) = histogram.snapshot()
        XCTAssertEqual(cumulative.last, 400_000)
        XCTAssertEqual(cumulative.first, 4 * 100_000 * 11 / 20)  // 0...10 of every 20
    }

}

import Dispatch
