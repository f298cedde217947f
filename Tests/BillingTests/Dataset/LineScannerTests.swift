@testable import Billing
import XCTest

/// The scanner (`LineScanner`) is only a faster way to the same rows: for every line, an
/// importer that scans must stage exactly the bytes, or report exactly the error, of one
/// that reads every line the general way (`JSONParser`, `DatasetRecord`).
final class LineScannerTests: XCTestCase {
    /// The seeder's lines, which are the common lines the scanner is for.
    private func seededLines() -> [String] {
        var options = Seeder.Options()
        options.customers = 60
        var seeder = Seeder(options)
        var lines: [String] = []
        seeder.generate(emit: { lines.append($0.serialized) }, key: { _ in })
        return lines
    }

    /// Checks `lines` with both importers; fails where they differ. Returns the scanning one.
    @discardableResult
    private func compare(_ lines: [String], file: StaticString = #filePath, line: UInt = #line) -> Importer {
        compare(lines.map { Array($0.utf8) }, file: file, line: line)
    }

    @discardableResult
    private func compare(_ lines: [[UInt8]], file: StaticString = #filePath, line: UInt = #line) -> Importer {
        let scanning = Importer(scans: true), general = Importer(scans: false)
        for (n, bytes) in lines.enumerated() {
            let text = String(decoding: bytes, as: UTF8.self)
            let fast = Result { try scanning.check(line: bytes, number: n + 1) }
            let slow = Result { try general.check(line: bytes, number: n + 1) }
            switch (fast, slow) {
            case (.success, .success): break
            case (.failure(let a), .failure(let b)):
                XCTAssertEqual("\(a)", "\(b)", "line \(text)", file: file, line: line)
            default:
                XCTFail("one way accepts and the other refuses: \(text) (\(fast), \(slow))", file: file, line: line)
            }
            if scanning.copyData[0].bytes != general.copyData[0].bytes {
                XCTAssertEqual(rows(scanning), rows(general), "after \(text)", file: file, line: line)
                XCTAssertEqual(scanning.copyData[0].bytes, general.copyData[0].bytes, "after \(text)", file: file, line: line)
                break
            }
        }
        return scanning
    }

    /// The rows an importer staged, a line of text each, for a readable failure.
    private func rows(_ importer: Importer) -> [String] {
        importer.stagedRows.map { row in
            row.map { $0.map { String(decoding: $0, as: UTF8.self) } ?? "NULL" }.joined(separator: " | ")
        }
    }

    func testTheSeedersLinesStageTheSameRowsAndMostAreScanned() {
        let lines = seededLines()
        let importer = compare(lines)
        XCTAssertGreaterThan(lines.count, 1_000)
        // Organisations, API keys and names outside ASCII take the general way.
        XCTAssertGreaterThan(importer.scannedLines, lines.count * 9 / 10)
        XCTAssertGreaterThan(importer.copyData[0].bytes.count, 100_000)
    }

    /// Lines the scanner must read as the general way does, or leave to it: other spacing
    /// and order, nulls, fractions of seconds, escapes, numbers that are not plain integers,
    /// repeated keys, broken rules of every kind.
    func testVariantsOfCommonLinesStageOrFailTheSameWay() {
        let org = "\"organisation_id\":\"910a2dec-8902-4cc1-beeb-8da1658eec67\""
        let customer = "\"customer_id\":\"e099ec6c-d736-4ca5-85e7-bb0f12278575\""
        let invoice = "\"id\":\"14d7973c-5c2a-449c-bef1-fd0ed1548fcd\""
        let lines = [
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A","currency":"USD","created_at":"2023-05-21T09:55:22Z"}"#,
            #"  { "type" : "customer" , "name":"A",  "currency":"USD","created_at":"2023-05-21T09:55:22.123Z", "id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"email":null,"external_id":"x","credit_balance":0 }  "#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A\u00e9\\\t","currency":"USD","created_at":"2023-05-21T09:55:22Z"}"#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"Ané","currency":"USD","created_at":"2023-05-21T09:55:22Z"}"#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A","currency":"usd","created_at":"2023-05-21T09:55:22Z"}"#,
            #"{"type":"customer","id":"E099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A","currency":"USD","created_at":"2023-05-21T09:55:22Z"}"#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A","currency":"USD","created_at":"2023-05-21T09:55:22.Z"}"#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A","currency":"USD","created_at":"2023-02-29T09:55:22Z"}"#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A","currency":"USD","created_at":"2023-05-21T24:55:22Z"}"#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A","currency":"USD","created_at":"2023-05-21T09:55:22Z","credit_balance":-1}"#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A","currency":"USD","created_at":"2023-05-21T09:55:22Z","credit_balance":1.0}"#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A","currency":"USD","created_at":"2023-05-21T09:55:22Z","credit_balance":"5"}"#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A","currency":"USD","created_at":"2023-05-21T09:55:22Z","credit_balance":9223372036854775807}"#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A","currency":"USD","created_at":"2023-05-21T09:55:22Z","credit_balance":012}"#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A","currency":"USD","created_at":"2023-05-21T09:55:22Z","nickname":"B"}"#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A","name":"B","currency":"USD","created_at":"2023-05-21T09:55:22Z"}"#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":null,"currency":"USD","created_at":"2023-05-21T09:55:22Z"}"#,
            #"{"type":"customer","id":"e099ec6c-d736-4ca5-85e7-bb0f12278575",\#(org),"name":"A","currency":"USD","created_at":"2023-05-21T09:55:22Z"} x"#,
            #"{"type":"invoice",\#(invoice),\#(org),\#(customer),"number":"INV-1","status":"open","issued_on":"2024-02-29","total":73600,"created_at":"2024-02-29T07:47:56Z","due_on":"2024-04-29"}"#,
            #"{"type":"invoice",\#(invoice),\#(org),\#(customer),"number":"","status":"open","issued_on":"2024-02-29","total":73600,"created_at":"2024-02-29T07:47:56Z"}"#,
            #"{"type":"invoice",\#(invoice),\#(org),\#(customer),"number":"INV-1","status":"OPEN","issued_on":"2024-02-29","total":73600,"created_at":"2024-02-29T07:47:56Z"}"#,
            #"{"type":"invoice",\#(invoice),\#(org),\#(customer),"number":"INV-1","status":"void","issued_on":"2023-02-29","total":0,"created_at":"2024-02-29T07:47:56Z","due_on":null}"#,
            #"{"type":"invoice",\#(invoice),\#(org),\#(customer),"number":"INV-1","status":"draft","issued_on":"2024-02-29","total":1e3,"created_at":"2024-02-29T07:47:56Z"}"#,
            #"{"type":"invoice",\#(invoice),\#(org),\#(customer),"number":"INV-1","status":"draft","issued_on":"2024-02-29","total":true,"created_at":"2024-02-29T07:47:56Z"}"#,
            #"{"type":"payment","id":"0bf99fe6-cbdd-42d6-a974-50076ed129d2",\#(org),\#(customer),"mode":"cash","status":"succeeded","amount":51000,"received_on":"2024-12-06","created_at":"2024-12-06T02:35:24Z","applications":[ {"amount":1000 , "invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cc4"},{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cc5","amount":50000}],"bank_charges":20}"#,
            #"{"type":"payment","id":"0bf99fe6-cbdd-42d6-a974-50076ed129d2",\#(org),\#(customer),"mode":"cash","status":"succeeded","amount":51000,"received_on":"2024-12-06","created_at":"2024-12-06T02:35:24Z","applications":[{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cc4","amount":51001}]}"#,
            #"{"type":"payment","id":"0bf99fe6-cbdd-42d6-a974-50076ed129d2",\#(org),\#(customer),"mode":"cash","status":"succeeded","amount":51000,"received_on":"2024-12-06","created_at":"2024-12-06T02:35:24Z","applications":[{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cc4","amount":1},{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cc4","amount":1}]}"#,
            #"{"type":"payment","id":"0bf99fe6-cbdd-42d6-a974-50076ed129d2",\#(org),\#(customer),"mode":"cash","status":"succeeded","amount":51000,"received_on":"2024-12-06","created_at":"2024-12-06T02:35:24Z","applications":[{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cc4","amount":0}]}"#,
            #"{"type":"payment","id":"0bf99fe6-cbdd-42d6-a974-50076ed129d2",\#(org),\#(customer),"mode":"cash","status":"failed","amount":51000,"received_on":"2024-12-06","created_at":"2024-12-06T02:35:24Z","applications":[{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cc4","amount":5}]}"#,
            #"{"type":"payment","id":"0bf99fe6-cbdd-42d6-a974-50076ed129d2",\#(org),\#(customer),"mode":"cash","status":"failed","amount":51000,"received_on":"2024-12-06","created_at":"2024-12-06T02:35:24Z","applications":[],"description":"x","reference_number":null}"#,
            #"{"type":"payment","id":"0bf99fe6-cbdd-42d6-a974-50076ed129d2",\#(org),\#(customer),"mode":"cash","status":"succeeded","amount":51000,"received_on":"2024-12-06","created_at":"2024-12-06T02:35:24Z","applications":null}"#,
            #"{"type":"payment","id":"0bf99fe6-cbdd-42d6-a974-50076ed129d2",\#(org),\#(customer),"mode":"cash","status":"succeeded","amount":51000,"received_on":"2024-12-06","created_at":"2024-12-06T02:35:24Z","applications":[{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cc4","amount":5,"note":1}]}"#,
            #"{"type":"payment","id":"0bf99fe6-cbdd-42d6-a974-50076ed129d2",\#(org),\#(customer),"mode":"cash","status":"succeeded","amount":900000000000000000,"received_on":"2024-12-06","created_at":"2024-12-06T02:35:24Z","applications":[{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cc4","amount":900000000000000000},{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cc5","amount":900000000000000000},{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cc6","amount":900000000000000000},{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cc7","amount":900000000000000000},{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cc8","amount":900000000000000000},{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cc9","amount":900000000000000000},{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cca","amount":900000000000000000},{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4ccb","amount":900000000000000000},{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4ccc","amount":900000000000000000},{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4ccd","amount":900000000000000000},{"invoice_id":"fd0d1f90-df4a-492f-a7ca-e465669e4cce","amount":900000000000000000}]}"#,
            #"{"type":"refund","id":"1528673c-016b-41b5-a5aa-d0441c813761",\#(org),"payment_id":"a4d7dc6e-0c78-4e8d-9601-862897a16ed8","amount":60264,"refunded_on":"2023-10-28","created_at":"2023-10-28T20:03:05Z","reference_number":"RF-D95551"}"#,
            #"{"type":"refund","id":"1528673c-016b-41b5-a5aa-d0441c813761",\#(org),"payment_id":"a4d7dc6e-0c78-4e8d-9601-862897a16ed8","amount":1,"mode":"bank_transfer","refunded_on":"2023-10-28","created_at":"2023-10-28T20:03:05Z"}"#,
            #"{"type":"refund","id":"1528673c-016b-41b5-a5aa-d0441c813761",\#(org),"payment_id":"a4d7dc6e-0c78-4e8d-9601-862897a16ed8","amount":1,"mode":null,"refunded_on":"2023-10-28","created_at":"2023-10-28T20:03:05Z"}"#,
            #"{"type":"refund","id":"1528673c-016b-41b5-a5aa-d0441c813761",\#(org),"payment_id":"a4d7dc6e-0c78-4e8d-9601-862897a16ed8","amount":0,"refunded_on":"2023-10-28","created_at":"2023-10-28T20:03:05Z"}"#,
            #"{"type":"refund","id":"1528673c-016b-41b5-a5aa-d0441c813761",\#(org),"payment_id":"a4d7dc6e-0c78-4e8d-9601-862897a16ed8","amount":1,"mode":"wire","refunded_on":"2023-10-28","created_at":"2023-10-28T20:03:05Z"}"#,
            #"{"type":"organisation","id":"910a2dec-8902-4cc1-beeb-8da1658eec67","name":"Organisation 1"}"#,
            "   ", "", "{}", "[]", "{\"type\":\"customer\"", "{\"type\":7}",
        ]
        let importer = compare(lines)
        // The good plain ones: two customers, an invoice, three payments, three refunds.
        XCTAssertEqual(importer.scannedLines, 9)
    }

    /// Every seeded line with one byte replaced, removed or repeated, at random places: the
    /// scanner must never accept what the general way refuses, nor stage other bytes.
    func testDamagedLinesStageOrFailTheSameWay() {
        var rng = SplitMix64(seed: 7)
        let replacements = Array("\"\\{}[],: 0159-.eEnutlZTx\u{7f}\t".utf8) + [0xC3, 0x00]
        var damaged: [[UInt8]] = []
        for line in seededLines().prefix(400) {
            for _ in 0..<12 {
                var bytes = Array(line.utf8)
                let at = rng.below(bytes.count)
                switch rng.below(3) {
                case 0: bytes[at] = replacements[rng.below(replacements.count)]
                case 1: bytes.remove(at: at)
                default: bytes.insert(bytes[at], at: at)
                }
                damaged.append(bytes)
            }
        }
        let importer = compare(damaged)
        // Some damage leaves a line good (a digit for a digit, a space between members).
        XCTAssertGreaterThan(importer.scannedLines, 100)
    }
}
