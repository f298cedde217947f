#if canImport(Glibc)
import Glibc
#endif

/// The process's own figures, read from /proc at scrape time: `process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
/// `process_max_fds` and `process_start_time_seconds`, as Prometheus's own clients name them.
public enum ProcessMetrics {
    public static func register(in registry: Registry) {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let page = Double(sysconf(Int32(_SC_PAGESIZE)))
        registry.register(CollectedFamily(name: "process_cpu_seconds_total", help: "User and system CPU time spent, in seconds.",
                                          type: .counter) {
            guard let stat = Stat.read() else { return [] }
            return [([], Double(stat.utime + stat.stime) / ticks)]
        })
        registry.register(CollectedFamily(name: "process_resident_memory_bytes", help: "Resident memory size, in bytes.",
                                          type: .gauge) {
            guard let stat = Stat.read() else { return [] }
            return [([], Double(stat.rss) * page)]
        })
        registry.register(CollectedFamily(name: "process_virtual_memory_bytes", help: "Virtual memory size, in bytes.",
                                          type: .gauge) {
            guard let stat = Stat.read() else { return [] }
            return [([], Double(stat.vsize))]
        })
        registry.register(CollectedFamily(name: "process_open_fds", help: "Open file descriptors.", type: .gauge) {
            guard let n = openFileDescriptors() else { return [] }
            return [([], Double(n))]
        })
        registry.register(CollectedFamily(name: "process_max_fds", help: "The most file descriptors the process may open.",
                                          type: .gauge) {
            var limit = rlimit()
            guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return [] }
            return [([], Double(limit.rlim_cur))]
        })
        registry.register(CollectedFamily(name: "process_start_time_seconds",
                                          help: "Start time of the process since the Unix epoch, in seconds.", type: .gauge) {
            guard let stat = Stat.read(), let boot = bootTime() else { return [] }
            return [([], boot + Double(stat.starttime) / ticks)]
        })
    }

    /// The fields of /proc/self/stat that are used here.
    struct Stat {
        var utime: UInt64 = 0, stime: UInt64 = 0, starttime: UInt64 = 0, vsize: UInt64 = 0, rss: UInt64 = 0

        static func read() -> Stat? {
            guard let text = readFile("/proc/self/stat") else { return nil }
            return parse(text)
        }

        /// The command name (field 2) is in parentheses and may hold spaces: fields are
        /// counted from the last `)`.
        static func parse(_ text: String) -> Stat? {
            guard let close = text.lastIndex(of: ")") else { return nil }
            let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
            // fields[0] is field 3 (state); field n is fields[n - 3].
            func field(_ n: Int) -> UInt64? { fields.count > n - 3 ? UInt64(fields[n - 3]) : nil }
            guard let utime = field(14), let stime = field(15), let start = field(22), let vsize = field(23), let rss = field(24)
            else { return nil }
            return Stat(utime: utime, stime: stime, starttime: start, vsize: vsize, rss: rss)
        }
    }

    static func openFileDescriptors() -> Int? {
        guard let dir = opendir("/proc/self/fd") else { return nil }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { $0.first }
            if name != UInt8(ascii: ".") { count += 1 }
        }
        return max(0, count - 1)  // the directory's own descriptor, open while it is read
    }

    static func bootTime() -> Double? {
        guard let text = readFile("/proc/stat") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return line.split(separator: " ").last.flatMap { Double($0) }
        }
        return nil
    }

    static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 4096) }
            if n <= 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

