import Billing

/// `dataset`: the checks `billgraph import` makes on each line of a JSON Lines file on its
/// own as it reads it, before the line is staged (Sources/Billing/Dataset:
/// `Importer.check(line:number:)`, `DatasetRecord`), with no database. The input is the
/// file. Proves that line after line is either accepted or refused with its own line
/// number, never trapping (sums of money included), and that the text of what is accepted is
/// text PostgreSQL takes: valid UTF-8 with no NUL character (PostgreSQL text cannot hold one).
/// And that the scanner for common lines (`LineScanner`) changes nothing: an importer that
/// reads every line the general way stages the same bytes and refuses the same line.
func fuzzDataset(_ bytes: [UInt8]) {
    let importer = Importer(), general = Importer(scans: false)
    for (i, line) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
        let refusal = (try? general.check(line: Array(line), number: i + 1)) == nil
        do {
            try importer.check(line: Array(line), number: i + 1)
            precondition(!refusal, "line \(i + 1) accepted only by the scanner")
        } catch let error as ImportError {
            precondition(error.line == i + 1, "line \(i + 1) refused as line \(error.line)")
            precondition(refusal, "line \(i + 1) refused only with the scanner")
            break  // as `billgraph import` does: the first broken line stops it
        } catch {
            preconditionFailure("line \(i + 1) refused without an ImportError: \(error)")
        }
    }
    precondition(importer.copyData[0].bytes == general.copyData[0].bytes, "the scanner staged other rows")
    for text in importer.stagedTexts {  // the staged rows, never sent here
        precondition(String(validating: text, as: UTF8.self) != nil, "invalid UTF-8 in a staged text")
        precondition(!text.contains(0), "a NUL character in a staged text")
    }
}
