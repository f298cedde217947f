/// The SQL of a bulk load: how an import into an empty store writes its rows without
/// maintaining indexes row by row nor checking foreign keys row by row.
///
/// Writing 301,420 invoices into the indexed `invoice` table with its foreign keys took
/// 6–8 s here (every row inserted into five B-trees at random places, and each of its
/// two references checked by a trigger, one query a row); into the bare table 0.4 s, then
/// 0.9 s more to build the same indexes from sorted data and check both foreign keys in
/// one anti-join each. So when every table the import writes is empty, the import
/// takes them (ACCESS EXCLUSIVE, until it commits), sets their keys, indexes and foreign
/// keys aside, writes the rows, and puts back exactly what it set aside, read from the
/// catalog (`pg_get_constraintdef`, `pg_get_indexdef`): PostgreSQL rebuilds each index
/// and checks each foreign key over all the rows, in the same transaction, so a broken
/// reference still rolls the whole import back. This needs the tables' owner (the role
/// that ran the migrations), not a superuser; a role that may not alter them, or a table
/// that is no longer empty once locked, takes the row-by-row way instead.
///
/// Only an empty store is taken this way: its tables hold nothing to read or mutate. The
/// locks include `organisation` and `api_key` (`lock`), so a server's requests on that
/// database wait for the import's commit from its writes on (6 s for 546,252 lines, a
/// minute for 5 million): a first load is for before the service opens. An import into
/// a store with rows keeps the indexes and triggers, and the mutations' lock order
/// (README, "Imports beside live mutations").
enum BulkLoad {
    /// The tables an import writes rows to, and `credit_note`, which refers to them.
    static let tables = ["invoice", "payment", "customer", "payment_application", "refund", "credit_note"]

    /// Taken at a savepoint, so that `ROLLBACK TO` releases the locks again when the
    /// tables turn out not to be empty (or may not be altered by this role).
    static let savepoint = "SAVEPOINT bulk_load"
    static let giveUp = "ROLLBACK TO SAVEPOINT bulk_load"

    /// `tables`, and those their foreign keys refer to (`organisation`, `api_key`): dropping
    /// or adding a foreign key takes the referenced table too, ACCESS EXCLUSIVE until the
    /// commit. All are taken here at once, in the mutations' order (invoices, payments,
    /// the organisation, customers; migration 004), rather than one by one as the
    /// constraints go, so that a deadlock with a request can only happen here, where the
    /// import still has the row-by-row way to fall back on.
    static let lock = "LOCK TABLE invoice, payment, organisation, customer, payment_application, refund, credit_note, api_key "
        + "IN ACCESS EXCLUSIVE MODE"

    /// One row, true when no table of `tables` holds a row (checked once they are locked).
    static let empty = "SELECT " + tables.map { "NOT EXISTS (SELECT FROM \($0))" }.joined(separator: " AND ")

    /// What is set aside, in the order it is put back (`step`): 1 keys and unique
    /// constraints, 2 the other indexes, 3 the foreign keys into or out of these tables.
    static let setAside = """
        CREATE TEMPORARY TABLE import_set_aside ON COMMIT DROP AS
        WITH bulk(relid) AS (SELECT unnest(ARRAY[\(tables.map { "'\($0)'::regclass" }.joined(separator: ", "))]))
        SELECT CASE c.contype WHEN 'f' THEN 3 ELSE 1 END AS step, c.conrelid::regclass::text AS table_name,
               quote_ident(c.conname) AS name, pg_get_constraintdef(c.oid) AS definition
        FROM pg_constraint c
        WHERE c.contype IN ('p', 'u', 'f')
          AND (c.conrelid IN (SELECT relid FROM bulk) OR c.confrelid IN (SELECT relid FROM bulk))
        UNION ALL
        SELECT 2, i.indrelid::regclass::text, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid IN (SELECT relid FROM bulk)
          AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                                                        AND c.contype IN ('p', 'u', 'x'))
        """

    /// Drops what was set aside: the foreign keys first (they depend on the keys).
    static let drop = """
        DO $$
        DECLARE d record;
        BEGIN
            FOR d IN SELECT * FROM import_set_aside ORDER BY step DESC, table_name, name LOOP
                IF d.step = 2 THEN
                    EXECUTE format('DROP INDEX %s', d.name);
                ELSE
                    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %s', d.table_name, d.name);
                END IF;
            END LOOP;
        END $$
        """

    /// Gives the empty tables new files, created in this transaction: where the cluster
    /// keeps only the WAL it needs for crash recovery (`wal_level = minimal`), PostgreSQL
    /// then writes their rows and builds their indexes without logging them, and syncs
    /// the files at the commit instead. Elsewhere it changes nothing.
    static let truncate = "TRUNCATE " + tables.joined(separator: ", ")

    /// Builds the keys and indexes again from the rows, then adds the foreign keys back,
    /// which PostgreSQL checks over every row (one anti-join each) before it adds them.
    static let restore = """
        DO $$
        DECLARE d record;
        BEGIN
            FOR d IN SELECT * FROM import_set_aside ORDER BY step, table_name, name LOOP
                IF d.step = 2 THEN
                    EXECUTE d.definition;
                ELSE
                    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %s %s', d.table_name, d.name, d.definition);
                END IF;
            END LOOP;
        END $$
        """
}
