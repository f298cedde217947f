@testable import Metrics
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// The `process_*` figures, read from /proc.
final class ProcessMetricsTests: XCTestCase {
    func testProcessFiguresComeFromProc() {
        let registry = Registry()
        ProcessMetrics.register(in: registry)
        let text = registry.render()
        for name in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                     "process_max_fds", "process_virtual_memory_bytes", "process_start_time_seconds"] {
            let line = text.split(separator: "\n").first { $0.hasPrefix(name + " ") }
            XCTAssertNotNil(line, name)
            XCTAssertGreaterThan(Double(line?.split(separator: " ").last ?? "") ?? -1, 0, name)
        }
        // An extra descriptor is seen as one more.
        let before = ProcessMetrics.openFileDescriptors()!
        let fd = open("/dev/null", O_RDONLY)
        defer { close(fd) }
        XCTAssertEqual(ProcessMetrics.openFileDescriptors(), before + 1)
    }

    func testStatParsingSurvivesACommandNameWithSpacesAndParentheses() {
        let line = "1234 (a b) c) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 3 0 777 123456789 4321 " +
            "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
        let stat = ProcessMetrics.Stat.parse(line)
        XCTAssertEqual(stat?.utime, 250)
        XCTAssertEqual(stat?.stime, 50)
        XCTAssertEqual(stat?.starttime, 777)
        XCTAssertEqual(stat?.vsize, 123456789)
        XCTAssertEqual(stat?.rss, 4321)
    }

    /// The boot time from /proc/stat agrees with the clock minus /proc/uptime, an
    /// independent source, to within a few seconds.
    func testBootTimeIsTheClockMinusTheUptime() throws {
        let uptime = try XCTUnwrap(ProcessMetrics.readFile("/proc/uptime")?.split(separator: " ").first.flatMap { Double($0) })
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let bootTime = try XCTUnwrap(ProcessMetrics.bootTime())
        XCTAssertEqual(bootTime, Double(now.tv_sec) - uptime, accuracy: 5)
    }
}
