import Foundation
import Schema

/// schema/schema.graphql, read from the repository: a large, real schema to run the
/// generic code on. Its custom scalars take graphql-js's defaults here; Billing gives
/// them their hooks (`contract`), tested in BillingTests.
let contract = try! Schema(sdl: String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../schema/schema.graphql"), encoding: .utf8))
