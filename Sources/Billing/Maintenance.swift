import Store

/// Housekeeping the service does in the background, on its own pool connections.
public enum Maintenance {
    /// Idempotency keys are kept this long (the contract asks for at least 24 hours).
    public static let idempotencyRetentionHours = 48
    /// Keys deleted per statement: small, so no request waits behind the clean-up.
    public static let cleanupBatch = 1000

    /// Deletes a batch of expired idempotency keys. Small batches, and rows locked by a
    /// mutation in flight are skipped, so the clean-up never holds up a request.
    public static func expiredIdempotencyKeys(batch: Int = cleanupBatch) -> Statement {
        Statement("""
            DELETE FROM idempotency_key WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM idempotency_key
                WHERE created_at < now() - make_interval(hours => $1::int)
                LIMIT $2::int FOR UPDATE SKIP LOCKED))
            """, [String(idempotencyRetentionHours), String(batch)])
    }

    /// Runs `expiredIdempotencyKeys` until a batch comes back short.
    public static func cleanIdempotencyKeys(on pool: ConnectionPool, batch: Int = cleanupBatch, done: @escaping (Int) -> Void) {
        func step(_ total: Int) {
            pool.run(expiredIdempotencyKeys(batch: batch)) { result in
                guard case .success(let rows) = result else { return done(total) }
                let deleted = rows.affectedRows
                deleted == batch ? step(total + deleted) : done(total + deleted)
            }
        }
        step(0)
    }
}
