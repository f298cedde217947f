// swift-tools-version:6.0
import PackageDescription

// One module per job; the arrows point one way:
//   Digest (SHA-256) <- Billing (API keys), Service (persisted documents)
//   JSON, Query  <-  Schema  <-  Engine  <-  Billing  ->  Store  ->  CLibPQ, EventLoop -> CLibUV
//   Server -> EventLoop, CHTTPParser;   Service (GraphQL over HTTP) composes them;
//   billgraph is the command line.
//   Metrics (counters, gauges, histograms, the Prometheus text format) knows nothing of
//   HTTP or billing: Store and Service report into it.
// Query, Schema and Engine know nothing of billing: Billing hands the schema its SDL and
// its scalars' hooks, adds its error codes, and tells the engine which errors end a request.
// Query, Schema and Engine never import a C module, so their tests need no sockets; nor do
// ServerTests, which drive the HTTP connection's state machine with events, nor do Store's
// state machines (StoreTests).
let package = Package(
    name: "billgraph",
    platforms: [.macOS(.v15)],  // Synchronization.Atomic
    products: [
        .executable(name: "billgraph", targets: ["billgraph"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CLibUV", pkgConfig: "libuv", providers: [.apt(["libuv1-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CHTTPParser", providers: [.apt(["libhttp-parser-dev"])]),
        .systemLibrary(name: "CLibFuzzer"),  // a declaration only; the toolchain's -sanitize=fuzzer links it
        .systemLibrary(name: "CMalloc"),  // glibc's <malloc.h>, for `serve`'s mallopt

        .target(name: "JSON"),
        .target(name: "Digest"),
        .target(name: "Metrics"),
        .target(name: "Query"),
        .target(name: "Schema", dependencies: ["Query", "JSON"]),
        .target(name: "Engine", dependencies: ["Query", "Schema", "JSON"]),
        .target(name: "EventLoop", dependencies: ["CLibUV"]),
        .target(name: "Store", dependencies: ["CLibPQ", "EventLoop", "Metrics"]),
        .target(name: "Billing", dependencies: ["Engine", "Schema", "Query", "Store", "JSON", "Digest"]),
        .target(name: "Server", dependencies: ["EventLoop", "CLibUV", "CHTTPParser"]),
        .target(name: "Service", dependencies: ["Billing", "Digest", "Server", "Store", "EventLoop", "Engine", "Schema", "JSON", "Query", "Metrics"]),
        .executableTarget(
            name: "billgraph",
            dependencies: [
                "Service", "Billing", "Server", "Store", "JSON", "Digest", "CMalloc",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // The fuzz harnesses: built with libFuzzer by scripts/fuzz, and as a plain replay
        // tool by `swift build` (the tests replay Tests/fuzz/regressions/ through it).
        .executableTarget(name: "billgraph-fuzz", dependencies: ["JSON", "Query", "Schema", "Engine", "Billing", "Server", "CLibFuzzer"]),

        // One test target per module, named after it; each file tests the source file of
        // the same name (Tests/README.md).
        .testTarget(name: "JSONTests", dependencies: ["JSON"]),
        .testTarget(name: "QueryTests", dependencies: ["Query"]),
        .testTarget(name: "SchemaTests", dependencies: ["Schema", "Query", "JSON"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Schema", "Query", "JSON"]),
        .testTarget(name: "BillingTests", dependencies: ["Billing", "Store", "JSON", "Engine", "Schema", "Query"]),
        .testTarget(name: "DigestTests", dependencies: ["Digest"]),
        .testTarget(name: "EventLoopTests", dependencies: ["EventLoop"]),
        .testTarget(name: "ServerTests", dependencies: ["Server"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "EventLoop"]),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics"]),
        .testTarget(name: "ServiceTests", dependencies: ["Service", "JSON", "Metrics"]),
    ],
    swiftLanguageModes: [.v6]
)
