import JSON

/// `json`: the request body and dataset line parser (Sources/JSON).
/// Proves that any bytes either parse or are refused with an offset inside the input,
/// and that what parses survives the writer: serialised and parsed again it is the same
/// value, and serialising that gives the same text (the writer's output is stable JSON).
func fuzzJSON(_ bytes: [UInt8]) {
    let value: JSONValue
    do {
        value = try JSONParser.parse(bytes)
    } catch {
        precondition((0...bytes.count).contains(error.offset), "error offset \(error.offset) outside the input")
        return
    }
    let text = value.serialized
    guard let again = try? JSONParser.parse(text) else { preconditionFailure("the writer's output does not parse: \(text)") }
    precondition(again == value, "the value changed through the writer: \(text)")
    precondition(again.serialized == text, "the writer is not stable: \(text)")
}
