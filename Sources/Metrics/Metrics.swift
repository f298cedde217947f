import Synchronization

/// Counters, gauges and histograms that any thread may update at little cost (one or two
/// relaxed atomic additions, no lock, no allocation), and a renderer for the Prometheus
/// text exposition format, version 0.0.4. Nothing here knows about HTTP or billing.
///
/// A metric family has a name, a help text and label names; its children (one per set of
/// label values) are made on first use, under a lock, and may be kept by the caller so
/// that counting never takes the lock again.

/// One 64-bit cell, in a class of its own so that arrays of them can be shared.
final class Cell: Sendable {
    let value = Atomic<UInt64>(0)
    init() {}
}

/// A value that only goes up.
public final class Counter: Sendable {
    let cell = Cell()
    public init() {}
    @inline(__always)
    public func increment(by amount: UInt64 = 1) { cell.value.add(amount, ordering: .relaxed) }
    public var value: UInt64 { cell.value.load(ordering: .relaxed) }
}

/// A value that goes up and down.
public final class Gauge: Sendable {
    private let bits = Atomic<Int64>(0)
    public init() {}
    @inline(__always)
    public func add(_ amount: Int64) { bits.add(amount, ordering: .relaxed) }
    public func set(_ value: Int64) { bits.store(value, ordering: .relaxed) }
    public var value: Int64 { bits.load(ordering: .relaxed) }
}

/// Observations sorted into buckets by upper bound. Durations are observed in
/// nanoseconds (integers, so the sum is exact) and shown in seconds.
public final class Histogram: Sendable {
    /// Upper bounds in nanoseconds, ascending; `+Inf` is implied.
    public let bounds: [UInt64]
    let buckets: [Cell]  // bounds.count + 1, not cumulative
    let sum = Cell()

    public init(bounds: [UInt64]) {
        self.bounds = bounds.sorted()
        buckets = (0...bounds.count).map { _ in Cell() }
    }

    @inline(__always)
    public func observe(nanoseconds: UInt64) {
        var i = 0
        while i < bounds.count && nanoseconds > bounds[i] { i += 1 }
        buckets[i].value.add(1, ordering: .relaxed)
        sum.value.add(nanoseconds, ordering: .relaxed)
    }

    /// Cumulative counts per bound (the last is `+Inf`, the count), and the sum in nanoseconds.
    public func snapshot() -> (cumulative: [UInt64], sumNanoseconds: UInt64) {
        var total: UInt64 = 0
        var cumulative: [UInt64] = []
        cumulative.reserveCapacity(buckets.count)
        for b in buckets {
            total &+= b.value.load(ordering: .relaxed)
            cumulative.append(total)
        }
        return (cumulative, sum.value.load(ordering: .relaxed))
    }

    /// Bounds from `low` to `high` seconds: 1, 2.5, 5 times each power of ten between.
    public static func bounds(fromSeconds low: Double, toSeconds high: Double) -> [UInt64] {
        var result: [UInt64] = []
        var decade = low
        while decade <= high * 1.000001 {
            for factor in [1.0, 2.5, 5.0] {
                let b = decade * factor
                if b <= high * 1.000001 { result.append(UInt64((b * 1e9).rounded())) }
            }
            decade *= 10
        }
        return result
    }
}

/// The kinds of the exposition format's `# TYPE` line.
public enum MetricType: String, Sendable {
    case counter, gauge, histogram
}

/// Something the registry renders at scrape time.
public protocol MetricFamily: AnyObject, Sendable {
    var name: String { get }
    func render(into text: inout String)
}

/// A family of children of one type, made per set of label values on first use.
public final class Family<Child: Sendable>: MetricFamily, Sendable {
    public let name: String
    public let help: String
    public let labelNames: [String]
    let type: MetricType
    private let make: @Sendable () -> Child
    private let children = Mutex<[[String]: Child]>([:])
    private let order = Mutex<[[String]]>([])

    init(name: String, help: String, labelNames: [String], type: MetricType, make: @escaping @Sendable () -> Child) {
        self.name = name
        self.help = help
        self.labelNames = labelNames
        self.type = type
        self.make = make
    }

    /// The child for these label values (in the order of `labelNames`), made if new.
    public func labels(_ values: [String]) -> Child {
        precondition(values.count == labelNames.count, "\(name) takes \(labelNames.count) label value(s)")
        return children.withLock { children in
            if let child = children[values] { return child }
            let child = make()
            children[values] = child
            order.withLock { $0.append(values) }
            return child
        }
    }

    public func labels(_ values: String...) -> Child { labels(values) }

    /// Every child made so far, in the order they were made.
    func snapshot() -> [([String], Child)] {
        children.withLock { children in
            order.withLock { order in order.map { ($0, children[$0]!) } }
        }
    }

    public func render(into text: inout String) {
        Exposition.header(name: name, help: help, type: type, into: &text)
        for (values, child) in snapshot() {
            switch child {
            case let c as Counter:
                Exposition.sample(name, labelNames, values, Double(c.value), into: &text)
            case let g as Gauge:
                Exposition.sample(name, labelNames, values, Double(g.value), into: &text)
            case let h as Histogram:
                Exposition.histogram(name, labelNames, values, h, into: &text)
            default:
                break
            }
        }
    }
}

/// A family whose samples are read at scrape time (figures that live elsewhere: open
/// connections, the process's own figures from /proc).
public final class CollectedFamily: MetricFamily, Sendable {
    public let name: String
    let help: String
    let type: MetricType
    let labelNames: [String]
    private let collect: @Sendable () -> [([String], Double)]

    public init(name: String, help: String, type: MetricType, labelNames: [String] = [],
                collect: @escaping @Sendable () -> [([String], Double)]) {
        self.name = name
        self.help = help
        self.type = type
        self.labelNames = labelNames
        self.collect = collect
    }

    public func render(into text: inout String) {
        let samples = collect()
        Exposition.header(name: name, help: help, type: type, into: &text)
        for (values, value) in samples { Exposition.sample(name, labelNames, values, value, into: &text) }
    }
}

/// The metrics of one process, rendered in the order they were registered.
public final class Registry: Sendable {
    private let families = Mutex<[any MetricFamily]>([])

    public init() {}

    public func counter(_ name: String, help: String, labels: [String] = []) -> Family<Counter> {
        register(Family(name: name, help: help, labelNames: labels, type: .counter) { Counter() })
    }

    public func gauge(_ name: String, help: String, labels: [String] = []) -> Family<Gauge> {
        register(Family(name: name, help: help, labelNames: labels, type: .gauge) { Gauge() })
    }

    public func histogram(_ name: String, help: String, labels: [String] = [], bounds: [UInt64]) -> Family<Histogram> {
        register(Family(name: name, help: help, labelNames: labels, type: .histogram) { Histogram(bounds: bounds) })
    }

    @discardableResult
    public func register<F: MetricFamily>(_ family: F) -> F {
        families.withLock { families in
            precondition(!families.contains { $0.name == family.name }, "\(family.name) is registered twice")
            families.append(family)
        }
        return family
    }

    /// The text exposition format, version 0.0.4.
    public func render() -> String {
        let all = families.withLock { $0 }
        var text = ""
        text.reserveCapacity(8192)
        for family in all { family.render(into: &text) }
        return text
    }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}

/// Lines of the text format.
public enum Exposition {
    static func header(name: String, help: String, type: MetricType, into text: inout String) {
        text += "# HELP \(name) \(escapeHelp(help))\n# TYPE \(name) \(type.rawValue)\n"
    }

    static func sample(_ name: String, _ labelNames: [String], _ values: [String], _ value: Double,
                       extra: (String, String)? = nil, into text: inout String) {
        text += name
        labels(labelNames, values, extra: extra, into: &text)
        text += " "
        text += format(value)
        text += "\n"
    }

    static func histogram(_ name: String, _ labelNames: [String], _ values: [String], _ h: Histogram, into text: inout String) {
        let (cumulative, sum) = h.snapshot()
        for (i, bound) in h.bounds.enumerated() {
            sample(name + "_bucket", labelNames, values, Double(cumulative[i]), extra: ("le", format(Double(bound) / 1e9)), into: &text)
        }
        sample(name + "_bucket", labelNames, values, Double(cumulative.last!), extra: ("le", "+Inf"), into: &text)
        sample(name + "_sum", labelNames, values, Double(sum) / 1e9, into: &text)
        sample(name + "_count", labelNames, values, Double(cumulative.last!), into: &text)
    }

    static func labels(_ names: [String], _ values: [String], extra: (String, String)?, into text: inout String) {
        if names.isEmpty && extra == nil { return }
        text += "{"
        var first = true
        for (name, value) in zip(names, values) {
            if !first { text += "," }
            first = false
            text += name
            text += "=\""
            text += escapeLabel(value)
            text += "\""
        }
        if let (name, value) = extra {
            if !first { text += "," }
            text += "\(name)=\"\(value)\""
        }
        text += "}"
    }

    /// A number as Prometheus reads it: integers without a fraction, `+Inf`, `-Inf`, `NaN`.
    public static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// Label values escape backslash, double quote and line feed.
    public static func escapeLabel(_ value: String) -> String {
        guard value.utf8.contains(where: { $0 == 0x5C || $0 == 0x22 || $0 == 0x0A }) else { return value }
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    /// Help texts escape backslash and line feed.
    static func escapeHelp(_ value: String) -> String {
        value.replacingAll("\\", with: "\\\\").replacingAll("\n", with: "\\n")
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        guard contains(target) else { return self }
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }
}
