/// What an API key may look like (DATASET.md: 16 to 128 printable ASCII characters).
/// The importer refuses any other key, and the server refuses one without a lookup: a
/// key that cannot be stored can never match.
public enum APIKeyFormat {
    public static func isWellFormed(_ key: String) -> Bool {
        let bytes = key.utf8
        return (16...128).contains(bytes.count) && bytes.allSatisfy { (0x20...0x7E).contains($0) }
    }
}
