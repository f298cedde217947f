#if canImport(Glibc)
import Glibc
#endif
import CLibFuzzer

/// The fuzz harnesses, one per input the service parses. Each takes any bytes and traps
/// (`precondition`) when a property it checks fails; an input that merely fails to parse
/// is an ordinary outcome.
///
///     billgraph-fuzz TARGET [ARGUMENTS]
///
/// Built by `scripts/fuzz` with libFuzzer (`-sanitize=fuzzer -DFUZZING`), the arguments
/// are libFuzzer's (options, corpus folders, or files to replay). Built plainly (`swift
/// build`), it replays the files given, and the files in the folders given, once each:
/// the test suite replays `Tests/fuzz/regressions/` that way.
let harnesses: [(name: String, run: @Sendable ([UInt8]) -> Void)] = [
    ("json", fuzzJSON),
    ("graphql", fuzzGraphQL),
    ("prepare", fuzzPreparation),
    ("cursor", fuzzCursor),
    ("dataset", fuzzDataset),
    ("http", fuzzHTTP),
]

@main
enum Main {
    static func main() {
        let arguments = CommandLine.arguments
        if arguments.count < 2 || arguments[1] == "--help" || arguments[1] == "-h" {
            usage(arguments.count < 2 ? "no target named" : "Runs a fuzz harness.", status: arguments.count < 2 ? 2 : 0)
        }
        guard let run = harnesses.first(where: { $0.name == arguments[1] })?.run else {
            usage("unknown target \"\(arguments[1])\"", status: 2)
        }
        selected = run
        #if FUZZING
        // libFuzzer reads the arguments after the target's name.
        var argv: [UnsafeMutablePointer<CChar>?] = ([arguments[0]] + arguments.dropFirst(2)).map { strdup($0) } + [nil]
        var argc = CInt(argv.count - 1)
        let status = argv.withUnsafeMutableBufferPointer { buffer in
            var pointer = buffer.baseAddress
            return LLVMFuzzerRunDriver(&argc, &pointer, LLVMFuzzerTestOneInput)
        }
        exit(status)
        #else
        var count = 0
        for path in arguments.dropFirst(2) {
            for file in files(at: path) {
                guard let bytes = read(file) else { usage("cannot read \(file)", status: 2) }
                run(bytes)
                count += 1
            }
        }
        print("\(arguments[1]): \(count) inputs replayed")
        #endif
    }

    static func usage(_ message: String, status: Int32) -> Never {
        let names = harnesses.map(\.name).joined(separator: "|")
        let text = "\(message)\nusage: billgraph-fuzz \(names) [FILE|FOLDER ...]   (with libFuzzer: [OPTIONS] [CORPUS ...])\n"
        _ = text.withCString { write(status == 0 ? 1 : 2, $0, strlen($0)) }
        exit(status)
    }

    /// The path itself, or the files directly in it when it is a folder (sorted).
    static func files(at path: String) -> [String] {
        guard let dir = opendir(path) else { return [path] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if !name.hasPrefix(".") { names.append(path + "/" + name) }
        }
        return names.sorted()
    }

    static func read(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, file)
            if n <= 0 { break }
            bytes.append(contentsOf: buffer[0..<n])
        }
        return ferror(file) == 0 ? bytes : nil
    }
}

/// The harness `main` chose.
nonisolated(unsafe) private var selected: (@Sendable ([UInt8]) -> Void)?

/// libFuzzer's entry point: one input to the chosen harness.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selected!(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
