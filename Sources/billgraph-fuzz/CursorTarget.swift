import Billing
import Schema

/// `cursor`: the `after` argument of the root connections (Sources/Billing/Cursor.swift).
/// Proves that any text either decodes to a cursor or is refused (nil, which the
/// connection answers with BAD_USER_INPUT); that only canonical text decodes, to a
/// cursor that encodes back to the same text and names a lowercase UUID; and that the
/// base64url codec gives back any bytes it encoded.
func fuzzCursor(_ bytes: [UInt8]) {
    let text = String(decoding: bytes, as: UTF8.self)
    if let cursor = Cursor.decode(text) {
        precondition(cursor.encoded == text, "a cursor decoded from text that is not its own")
        precondition(Scalars.isLowercaseUUID(cursor.id), "a cursor without a UUID")
    }
    precondition(Base64URL.decode(Base64URL.encode(bytes)) == bytes, "base64url does not give back its bytes")
}
