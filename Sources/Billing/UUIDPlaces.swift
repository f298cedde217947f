import Store

/// The places of UUIDs (a key's index among those a load sends, `ParentKeys`): a table
/// with open addressing and linear probing, made for one load and sized for all its keys
/// up front (at most half full), so it never grows.
///
/// Not a `Dictionary`: that hashes every key with SipHash (`Hasher`), about 200
/// instructions a key, 6% of a 1,000-row page's; a UUID is mostly random bits already,
/// so its words are mixed with a seed drawn once per process by a few multiplications
/// and shifts (MurmurHash3's finalizer), in which every bit of both words moves the slot.
/// API clients do not choose ids (they come from the database, new ones from
/// `gen_random_uuid()`); ids made to collide would slow only the loads that read them.
struct UUIDPlaces {
    private var keys: [UUIDKey]
    /// The place stored in each slot; -1 for an empty slot.
    private var places: [Int]
    private let mask: Int
    private var count = 0
    private let capacity: Int
    private static let seed = UInt64.random(in: .min ... .max)

    /// Room for `capacity` keys.
    init(capacity: Int) {
        self.capacity = capacity
        var size = capacity == 0 ? 0 : 16
        while size < 2 * capacity { size <<= 1 }
        keys = Array(repeating: UUIDKey(high: 0, low: 0), count: size)
        places = Array(repeating: -1, count: size)
        mask = size - 1
    }

    /// The place of `key`, or nil when it has none.
    subscript(key: UUIDKey) -> Int? {
        guard count > 0 else { return nil }
        let slot = find(key)
        return places[slot] < 0 ? nil : places[slot]
    }

    /// The place of `key`; when it has none, it is given `place`.
    mutating func place(of key: UUIDKey, else place: Int) -> Int {
        let slot = find(key)
        if places[slot] >= 0 { return places[slot] }
        precondition(count < capacity, "more keys than the table was made for")
        keys[slot] = key
        places[slot] = place
        count += 1
        return place
    }

    /// The slot that holds `key`, or the empty slot where it would go.
    private func find(_ key: UUIDKey) -> Int {
        var slot = home(key)
        while places[slot] >= 0 && keys[slot] != key { slot = (slot + 1) & mask }
        return slot
    }

    /// Where `key`'s probe starts.
    func home(_ key: UUIDKey) -> Int {
        Int(truncatingIfNeeded: murmurFinalized(murmurFinalized(key.high ^ Self.seed) ^ key.low)) & mask
    }
}
