/// MurmurHash3's 64-bit finalizer: each input bit flips about half of the output bits.
/// The last step of the hashes the project makes itself of words it already has (SQL text
/// eight bytes at a time, `SQLHash`; a UUID's two words, `Billing.UUIDPlaces`), where
/// SipHash (`Hasher`) would cost more than the lookups they serve. `@inlinable`: a page's
/// loads place every one of their keys with it.
@inlinable public func murmurFinalized(_ word: UInt64) -> UInt64 {
    var x = word
    x = (x ^ (x >> 33)) &* 0xFF51_AFD7_ED55_8CCD
    x = (x ^ (x >> 33)) &* 0xC4CE_B9FE_1A85_EC53
    return x ^ (x >> 33)
}
