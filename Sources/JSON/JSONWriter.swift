/// Writes JSON text straight into memory it owns, escaping strings as it goes.
/// The caller is responsible for structure (commas are written by the caller):
/// the response writer knows its shape and needs no tree of values first.
///
/// It owns one buffer, allocated in `init`, grown by doubling, freed in `deinit`; so it
/// cannot be copied (`~Copyable`), and what it wrote leaves it as a copy (`bytes`). Every
/// cell of every response is appended here, so an append is a capacity check and a
/// copy, and a cell is formatted straight into the buffer (`write(atMost:)`).
public struct JSONWriter: ~Copyable {
    // The hot methods below are `@inlinable`: they run for every cell, from other
    // modules, where a call each (and a closure that cannot be inlined) cost more than the work.
    @usableFromInline var base: UnsafeMutablePointer<UInt8>
    @usableFromInline var capacity: Int
    @usableFromInline var written = 0

    /// How many bytes have been written.
    @inlinable public var count: Int { written }

    public init(capacity: Int = 1024) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// What has been written, copied out.
    public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: written)) }

    public var string: String { String(decoding: UnsafeBufferPointer(start: base, count: written), as: UTF8.self) }

    /// Calls `body` with what has been written (valid only during the call).
    public func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: base, count: written))
    }

    /// Cuts what was written back to its first `count` bytes (a null that propagates
    /// takes back the object it interrupted).
    @inlinable public mutating func truncate(to count: Int) {
        precondition(count >= 0 && count <= written)
        written = count
    }

    /// Replaces the byte written at `index` (an object's first field is written with a comma
    /// before it, like the others, and the comma then becomes the object's `{`).
    @inlinable public mutating func overwrite(at index: Int, with byte: UInt8) {
        precondition(index >= 0 && index < written)
        base[index] = byte
    }

    /// Makes room for `extra` more bytes.
    @inlinable @inline(__always) mutating func reserve(_ extra: Int) {
        if written &+ extra > capacity { grow(to: written + extra) }
    }

    @usableFromInline mutating func grow(to needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: written)
        base.deallocate()
        (base, capacity) = (newBase, newCapacity)
    }

    @inlinable public mutating func append(_ byte: UInt8) {
        reserve(1)
        base[written] = byte
        written &+= 1
    }

    @inlinable public mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        reserve(bytes.count)
        Self.copy(bytes, to: base + written)
        written &+= bytes.count
    }

    /// Copies `bytes` to `destination` (which does not overlap them). What a response
    /// copies is mostly a field's key or a short text, a few words: those are copied a
    /// word at a time in place, where a call to `memcpy` cost more than the copy.
    @inlinable @inline(__always)
    public static func copy(_ bytes: UnsafeBufferPointer<UInt8>, to destination: UnsafeMutablePointer<UInt8>) {
        guard let start = bytes.baseAddress else { return }
        let count = bytes.count
        if count < 8 {
            for i in 0..<count { destination[i] = start[i] }
        } else if count <= 64 {
            let (from, to) = (UnsafeRawPointer(start), UnsafeMutableRawPointer(destination))
            var offset = 0
            while offset &+ 8 < count {
                to.storeBytes(of: from.loadUnaligned(fromByteOffset: offset, as: UInt64.self), toByteOffset: offset, as: UInt64.self)
                offset &+= 8
            }
            // The last word ends at the last byte, over what was copied: nothing past the end is read.
            to.storeBytes(of: from.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self), toByteOffset: count &- 8,
                          as: UInt64.self)
        } else {
            destination.update(from: start, count: count)
        }
    }

    @inlinable public mutating func append(_ bytes: [UInt8]) { bytes.withUnsafeBufferPointer { append($0) } }

    /// Lets `body` write at most `maxCount` bytes in place; it returns how many it wrote.
    /// Cells are formatted this way, with no copy in between.
    @inlinable public mutating func write(atMost maxCount: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) {
        reserve(maxCount)
        let count = body(base + written)
        precondition(count <= maxCount)
        written &+= count
    }

    @inlinable public mutating func raw(_ text: StaticString) {
        append(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    public mutating func raw(_ text: String) {
        var text = text
        text.withUTF8 { append($0) }
    }

    public mutating func null() { raw("null" as StaticString) }
    public mutating func bool(_ value: Bool) { value ? raw("true" as StaticString) : raw("false" as StaticString) }
    /// An integer's digits, formatted in place (`DecimalDigits`).
    @inlinable public mutating func int(_ value: Int) {
        write(atMost: DecimalDigits.longestInteger) { DecimalDigits.write(value, at: $0) }
    }

    /// Writes `"key":`.
    public mutating func key(_ name: String) {
        string(name)
        append(UInt8(ascii: ":"))
    }

    public mutating func string(_ text: String) {
        var text = text
        text.withUTF8 { string(utf8: $0) }
    }

    /// Writes a quoted, escaped JSON string from UTF-8 bytes. Room for the text as it is
    /// is made first; the strings of an answer seldom need an escape, so they are copied
    /// eight bytes at a time while no byte of a word needs one, the last few bytes as one
    /// more word (`plainTail`), and only a string that needs an escape is stored byte by
    /// byte, from its first word that does, as it is checked (an escape needs more room,
    /// made after it).
    public mutating func string(utf8: UnsafeBufferPointer<UInt8>) {
        string(utf8: utf8, after: UnsafeBufferPointer(start: nil, count: 0))
    }

    /// Writes `key` (a field's `"name":`), then the string as `string(utf8:)` does, with
    /// room made once for both: most text cells of a response are written so.
    public mutating func string(utf8: UnsafeBufferPointer<UInt8>, after key: UnsafeBufferPointer<UInt8>) {
        let count = utf8.count
        reserve(key.count &+ count &+ 10)  // the key, the text, its quotes, and the end of a word stored past it
        Self.copy(key, to: base + written)
        written &+= key.count
        base[written] = UInt8(ascii: "\"")
        written &+= 1
        var plain = 0
        if let source = utf8.baseAddress.map(UnsafeRawPointer.init) {
            while plain &+ 8 <= count {
                let word = source.loadUnaligned(fromByteOffset: plain, as: UInt64.self)
                if Self.needsEscape(word) { break }
                UnsafeMutableRawPointer(base + written).storeBytes(of: word, as: UInt64.self)
                written &+= 8
                plain &+= 8
            }
            if plain < count, let tail = Self.plainTail(source, from: plain, count: count) {
                UnsafeMutableRawPointer(base + written).storeBytes(of: tail, as: UInt64.self)
                written &+= count &- plain
                plain = count
            }
        }
        for i in plain..<count {
            let byte = utf8[i]
            if byte < 0x20 || byte == 0x22 || byte == 0x5C {
                escape(byte)
                reserve(count &- i)  // the bytes after this one, and the closing quote
            } else {
                base[written] = byte
                written &+= 1
            }
        }
        base[written] = UInt8(ascii: "\"")
        written &+= 1
    }

    /// The bytes `from..<count` of a text, when they are fewer than eight and none needs an
    /// escape, in the low bytes of a word (as they lie in memory, little-endian); nil
    /// otherwise. A text of eight bytes or more gives its last eight, shifted down past the
    /// ones already copied; a shorter one is gathered a byte at a time. The bytes above are
    /// made a letter for the check, which needs no escape.
    @inline(__always) static func plainTail(_ source: UnsafeRawPointer, from: Int, count: Int) -> UInt64? {
        let rest = count &- from
        guard rest < 8 else { return nil }
        var word: UInt64 = 0
        if count >= 8 {
            word = source.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self) &>> (8 &* (8 &- rest))
        } else {
            for i in 0..<rest { word |= UInt64(source.load(fromByteOffset: from &+ i, as: UInt8.self)) &<< (8 &* i) }
        }
        let letters: UInt64 = 0x4141_4141_4141_4141 &<< (8 &* rest)
        return needsEscape(word | letters) ? nil : word
    }

    /// Whether a byte of `word` is a control character, a quote or a backslash (the
    /// bytes of a word compared at once: a byte below 0x20 borrows into its high bit when
    /// 0x20 is taken from it, and a byte equal to another becomes 0 when xored with it).
    @inline(__always) static func needsEscape(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func hasZero(_ w: UInt64) -> Bool { (w &- ones) & ~w & highs != 0 }
        let control = (word &- ones &* 0x20) & ~word & highs != 0
        return control || hasZero(word ^ (ones &* 0x22)) || hasZero(word ^ (ones &* 0x5C))
    }

    private mutating func escape(_ byte: UInt8) {
        switch byte {
        case 0x22: raw("\\\"")
        case 0x5C: raw("\\\\")
        case 0x0A: raw("\\n")
        case 0x0D: raw("\\r")
        case 0x09: raw("\\t")
        case 0x08: raw("\\b")
        case 0x0C: raw("\\f")
        default:
            let hex: StaticString = "0123456789abcdef"
            raw("\\u00")
            append(hex.utf8Start[Int(byte >> 4)])
            append(hex.utf8Start[Int(byte & 0xF)])
        }
    }

    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let b): bool(b)
        case .number(let text): raw(text)
        case .string(let s): string(s)
        case .array(let items):
            append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { append(UInt8(ascii: ",")) }
                self.value(item)
            }
            append(UInt8(ascii: "]"))
        case .object(let members):
            append(UInt8(ascii: "{"))
            for (i, (k, v)) in members.enumerated() {
                if i > 0 { append(UInt8(ascii: ",")) }
                key(k)
                self.value(v)
            }
            append(UInt8(ascii: "}"))
        }
    }
}
