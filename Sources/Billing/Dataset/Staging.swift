/// The SQL of an import's staging table (schema/DATASET.md). Every line of the file that
/// passed its own checks is one row, COPYed as the file streams (a payment's applications
/// are rows of their own, carrying the payment's line); the rules that need other lines
/// (names defined on earlier lines or stored, one organisation, unique ids, numbers and
/// external ids, open invoices, running sums) are checked here in SQL, each violation with
/// its line; then the rows are moved into the store. The table is temporary and dropped
/// at the end of the import's transaction.
///
/// Columns, by `kind`:
///
/// | kind | row | id | org | ref | owner | t1 | t2 | t3 | t4 | d1 | d2 | at | n1 | n2 |
/// | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
/// | `o` | organisation | id | id | | | name | | | | | | | | |
/// | `k` | api_key | | organisation | | | key | scopes (array text) | | | | | | | |
/// | `c` | customer | id | organisation | | | external_id | name | email | currency | | | created_at | credit_balance | |
/// | `i` | invoice | id | organisation | customer | | number | status | | | issued_on | due_on | created_at | total | |
/// | `p` | payment | id | organisation | customer | | mode | status | reference | description | received_on | | created_at | amount | bank_charges |
/// | `a` | application | payment | organisation | invoice | payment's customer | | | | | payment's received_on | | | amount | |
/// | `r` | refund | id | organisation | payment | | mode (or null) | | reference | description | refunded_on | | created_at | amount | |
enum Staging {
    static let table = "import_line"
    /// The columns as `create` declares them, for the binary COPY (`CopyBuffer`).
    static let columns: [(name: String, type: CopyBuffer.ColumnType)] = [
        ("line", .bigint), ("kind", .char), ("id", .uuid), ("org", .uuid), ("ref", .uuid), ("owner", .uuid),
        ("t1", .text), ("t2", .text), ("t3", .text), ("t4", .text), ("d1", .date), ("d2", .date), ("at", .timestamptz),
        ("n1", .bigint), ("n2", .bigint),
    ]

    /// Local buffers for the staging table, which every check scans (the default, 8 MB,
    /// would read it again from the kernel's cache each time). Set before it is created.
    static let buffers = "SET temp_buffers = '256MB'"

    /// For the import's transaction only: memory for the sorts and hashes of the checks
    /// across lines, which join and sort the whole staging table (at the default 4 MB they
    /// spill to temporary files), and for building indexes (`BulkLoad`); and no JIT
    /// compilation, which the planner chooses for statements of this size and which cost
    /// 2.0 s of the rules statement's 5.2 s for 546,252 lines (compiling more than it saved).
    static let settings = "SET LOCAL work_mem = '64MB'; SET LOCAL maintenance_work_mem = '256MB'; SET LOCAL jit = off"

    static let create = """
        CREATE TEMPORARY TABLE import_line (
            line bigint NOT NULL, kind "char" NOT NULL, id uuid, org uuid NOT NULL, ref uuid, owner uuid,
            t1 text, t2 text, t3 text, t4 text, d1 date, d2 date, at timestamptz, n1 bigint, n2 bigint
        ) ON COMMIT DROP
        """

    /// Each rule across lines as a query of its violations: `line` and `reason`.
    private static let rules = [
        // A name must be defined on an earlier line of the file, or stored. Only the first
        // line naming each organisation can be the first broken one, so the rule reads the
        // lines grouped by organisation (`organisationTable`, a handful of rows whatever the
        // number of lines): joined line by line, the planner guessed one organisation and
        // took a nested loop, 0.7 s.
        """
        SELECT u.named, format('organisation %s is not defined on an earlier line nor stored', u.org) AS reason
        FROM import_org u LEFT JOIN organisation t ON t.id = u.org
        WHERE u.named IS NOT NULL AND (u.defined IS NULL OR u.defined > u.named) AND t.id IS NULL
        """,
        // An id used twice in the file: the second line is the broken one.
        """
        SELECT line, format('id %s was already used on line %s', id, first) FROM (
            SELECT s.id, s.line, min(s.line) OVER (PARTITION BY s.id) AS first
            FROM import_line s
            WHERE s.kind IN ('o', 'c', 'i', 'p', 'r') AND s.id IN (
                SELECT id FROM import_line WHERE kind IN ('o', 'c', 'i', 'p', 'r') GROUP BY id HAVING count(*) > 1)
        ) twice WHERE line > first
        """,
        // An id already stored.
        """
        SELECT s.line, format('id %s is already stored', s.id) FROM import_line s JOIN organisation t USING (id) WHERE s.kind = 'o'
        UNION ALL SELECT s.line, format('id %s is already stored', s.id) FROM import_line s JOIN customer t USING (id) WHERE s.kind = 'c'
        UNION ALL SELECT s.line, format('id %s is already stored', s.id) FROM import_line s JOIN invoice t USING (id) WHERE s.kind = 'i'
        UNION ALL SELECT s.line, format('id %s is already stored', s.id) FROM import_line s JOIN payment t USING (id) WHERE s.kind = 'p'
        UNION ALL SELECT s.line, format('id %s is already stored', s.id) FROM import_line s JOIN refund t USING (id) WHERE s.kind = 'r'
        """,
        // External ids and invoice numbers are unique in an organisation (file and store).
        // The lines of a value used twice are found by hashing (a handful, if any) before
        // they are ordered: ordering every line by its text took 0.7 s for 301,420 invoices.
        """
        SELECT line, format('external_id "%s" is already used in this organisation', t1) FROM (
            SELECT s.line, s.t1, min(s.line) OVER (PARTITION BY s.org, s.t1) AS first
            FROM import_line s
            WHERE s.kind = 'c' AND (s.org, s.t1) IN (
                SELECT org, t1 FROM import_line WHERE kind = 'c' AND t1 IS NOT NULL GROUP BY org, t1 HAVING count(*) > 1)
        ) twice WHERE line > first
        UNION ALL
        SELECT s.line, format('external_id "%s" is already used in this organisation', s.t1)
        FROM import_line s JOIN customer t ON t.organisation_id = s.org AND t.external_id = s.t1 WHERE s.kind = 'c'
        """,
        """
        SELECT line, format('invoice number "%s" is already used in this organisation', t1) FROM (
            SELECT s.line, s.t1, min(s.line) OVER (PARTITION BY s.org, s.t1) AS first
            FROM import_line s
            WHERE s.kind = 'i' AND (s.org, s.t1) IN (
                SELECT org, t1 FROM import_line WHERE kind = 'i' GROUP BY org, t1 HAVING count(*) > 1)
        ) twice WHERE line > first
        UNION ALL
        SELECT s.line, format('invoice number "%s" is already used in this organisation', s.t1)
        FROM import_line s JOIN invoice t ON t.organisation_id = s.org AND t.number = s.t1 WHERE s.kind = 'i'
        """,
        // The customer of an invoice or a payment: defined, and of the same organisation.
        """
        SELECT s.line, CASE WHEN coalesce(f.org, t.organisation_id) IS NULL
                            THEN format('customer %s is not defined on an earlier line nor stored', s.ref)
                            ELSE format('customer %s belongs to another organisation', s.ref) END
        FROM import_line s
        LEFT JOIN import_line f ON f.kind = 'c' AND f.id = s.ref AND f.line < s.line
        LEFT JOIN customer t ON t.id = s.ref
        WHERE s.kind IN ('i', 'p') AND coalesce(f.org, t.organisation_id) IS DISTINCT FROM s.org
        """,
        // An application's invoice: defined, of the organisation and the payment's customer,
        // open; and what is applied to it, in file order after what is stored, stays within
        // its total. One rule, so that the applications are joined to the invoices once.
        """
        SELECT line, CASE WHEN invoice_org IS NULL THEN format('invoice %s is not defined on an earlier line nor stored', invoice)
                          WHEN invoice_org <> org THEN format('invoice %s belongs to another organisation', invoice)
                          WHEN invoice_customer <> owner THEN format('invoice %s belongs to another customer', invoice)
                          WHEN invoice_status <> 'OPEN' THEN format('invoice %s is not open', invoice)
                          ELSE format('payments applied to invoice %s would exceed its total %s', invoice, total) END
        FROM (
            SELECT a.line, a.ref AS invoice, a.org, a.owner, coalesce(f.org, t.organisation_id) AS invoice_org,
                   coalesce(f.ref, t.customer_id) AS invoice_customer, coalesce(f.t2, t.base_status) AS invoice_status,
                   coalesce(f.n1, t.total) AS total,
                   coalesce(t.amount_paid, 0) + sum(a.n1::numeric) OVER (PARTITION BY a.ref ORDER BY a.line) AS paid
            FROM import_line a
            LEFT JOIN import_line f ON f.kind = 'i' AND f.id = a.ref AND f.line < a.line
            LEFT JOIN invoice t ON t.id = a.ref
            WHERE a.kind = 'a'
        ) a
        WHERE invoice_org IS NULL OR invoice_org <> org OR invoice_customer <> owner OR invoice_status <> 'OPEN' OR paid > total
        """,
        // A refund's payment: defined, of the organisation, succeeded, and refunded at most its amount.
        """
        SELECT line, CASE WHEN payment_org IS NULL THEN format('payment %s is not defined on an earlier line nor stored', payment)
                          WHEN payment_org <> org THEN format('payment %s belongs to another organisation', payment)
                          WHEN payment_status <> 'SUCCEEDED' THEN format('payment %s did not succeed', payment)
                          ELSE format('refunds of payment %s would exceed its amount %s', payment, amount) END
        FROM (
            SELECT r.line, r.ref AS payment, r.org, coalesce(f.org, t.organisation_id) AS payment_org,
                   coalesce(f.t2, t.status) AS payment_status, coalesce(f.n1, t.amount) AS amount,
                   coalesce(t.amount_refunded, 0) + sum(r.n1::numeric) OVER (PARTITION BY r.ref ORDER BY r.line) AS refunded
            FROM import_line r
            LEFT JOIN import_line f ON f.kind = 'p' AND f.id = r.ref AND f.line < r.line
            LEFT JOIN payment t ON t.id = r.ref
            WHERE r.kind = 'r'
        ) r
        WHERE payment_org IS NULL OR payment_org <> org OR payment_status <> 'SUCCEEDED' OR refunded > amount
        """,
        // An API key is stored once.
        """
        SELECT line, CASE WHEN line > first THEN format('this API key is already used on line %s', first)
                          ELSE 'this API key is already stored' END
        FROM (
            SELECT s.line, min(s.line) OVER (PARTITION BY s.t1) AS first,
                   EXISTS (SELECT FROM api_key t WHERE t.key_hash = sha256(convert_to(s.t1, 'UTF8'))) AS stored
            FROM import_line s WHERE s.kind = 'k'
        ) k WHERE stored OR line > first
        """,
    ]

    /// The first broken line of all the rules, if any: `line`, `reason`. A line broken in
    /// several ways reports the first rule of `rules` it breaks (an undefined organisation
    /// before what follows from it), and within a rule (two of a payment's applications)
    /// the first reason in text order, so the same file always gets the same answer.
    static let firstBrokenLine = "SELECT line, reason FROM (\n"
        + rules.enumerated().map { rule, sql in
            "(SELECT line, reason, \(rule) AS rule FROM (\(sql)) v(line, reason) ORDER BY line, reason LIMIT 1)"
        }.joined(separator: "\nUNION ALL\n")
        + "\n) broken ORDER BY line, rule LIMIT 1"

    /// The file's sums that figures are made of (RULES.md section 3): what is applied to
    /// each invoice (`paid`) and from each payment (`applied`), and refunded from each
    /// payment (`refunded`). (Only succeeded payments have applications: a rule of the line.)
    static let sums = """
        CREATE TEMPORARY TABLE import_sum ON COMMIT DROP AS
        SELECT 'paid' AS kind, ref AS id, sum(n1)::bigint AS total FROM import_line WHERE kind = 'a' GROUP BY ref
        UNION ALL SELECT 'applied', id, sum(n1)::bigint FROM import_line WHERE kind = 'a' GROUP BY id
        UNION ALL SELECT 'refunded', ref, sum(n1)::bigint FROM import_line WHERE kind = 'r' GROUP BY ref
        """

    /// The rows moved into the store, table by table in the order of their references,
    /// with their maintained figures as the file's own rows make them, so that an
    /// organisation the file defines (nothing else refers to it) needs no second pass over
    /// its rows: the same sums as `bg_recompute_figures` (migration 004), which still runs
    /// for the organisations that were stored before and overwrites these there.
    /// Currencies are the customer's (DATASET.md); a refund's mode defaults to its payment's.
    /// Timestamps keep the second they are shown with (README, "Imported timestamps"), as
    /// the mutations' own do: a fraction nobody sees would otherwise order rows.
    static let moves: [(table: String, sql: String)] = [
        ("organisation", "INSERT INTO organisation (id, name) SELECT id, t1 FROM import_line WHERE kind = 'o'"),
        ("customer", """
            WITH invoices AS (
                SELECT i.ref AS customer, sum(i.n1) AS invoiced, sum(greatest(0, i.n1 - coalesce(paid.total, 0))) AS outstanding
                FROM import_line i LEFT JOIN import_sum paid ON paid.kind = 'paid' AND paid.id = i.id
                WHERE i.kind = 'i' AND i.t2 = 'OPEN' GROUP BY 1
            ), payments AS (
                SELECT p.ref AS customer, sum(p.n1) AS paid, sum(coalesce(refunded.total, 0)) AS refunded
                FROM import_line p LEFT JOIN import_sum refunded ON refunded.kind = 'refunded' AND refunded.id = p.id
                WHERE p.kind = 'p' AND p.t2 = 'SUCCEEDED' GROUP BY 1
            )
            INSERT INTO customer (id, organisation_id, external_id, name, email, currency, created_at, opening_credit_balance,
                                  credit_balance, total_invoiced, total_outstanding, total_paid, total_refunded)
            SELECT s.id, s.org, s.t1, s.t2, s.t3, s.t4, date_trunc('second', s.at), s.n1, s.n1, coalesce(i.invoiced, 0), coalesce(i.outstanding, 0),
                   coalesce(p.paid, 0), coalesce(p.refunded, 0)
            FROM import_line s LEFT JOIN invoices i ON i.customer = s.id LEFT JOIN payments p ON p.customer = s.id
            WHERE s.kind = 'c'
            """),
        ("invoice", """
            INSERT INTO invoice (id, organisation_id, customer_id, number, base_status, status, currency, issued_on, due_on,
                                 created_at, total, amount_paid, balance)
            SELECT s.id, s.org, s.ref, s.t1, s.t2, bg_invoice_status(s.t2, s.n1, f.balance), c.currency, s.d1, s.d2, date_trunc('second', s.at), s.n1,
                   f.paid, f.balance
            FROM import_line s JOIN customer c ON c.id = s.ref
            LEFT JOIN import_sum paid ON paid.kind = 'paid' AND paid.id = s.id
            CROSS JOIN LATERAL (SELECT coalesce(paid.total, 0) AS paid, greatest(0, s.n1 - coalesce(paid.total, 0)) AS balance) f
            WHERE s.kind = 'i'
            """),
        ("payment", """
            INSERT INTO payment (id, organisation_id, customer_id, mode, status, currency, amount, bank_charges, received_on,
                                 reference_number, description, created_at, amount_refunded, amount_applied)
            SELECT s.id, s.org, s.ref, s.t1, s.t2, c.currency, s.n1, s.n2, s.d1, s.t3, s.t4, date_trunc('second', s.at),
                   coalesce(refunded.total, 0), coalesce(applied.total, 0)
            FROM import_line s JOIN customer c ON c.id = s.ref
            LEFT JOIN import_sum refunded ON refunded.kind = 'refunded' AND refunded.id = s.id
            LEFT JOIN import_sum applied ON applied.kind = 'applied' AND applied.id = s.id
            WHERE s.kind = 'p'
            """),
        ("payment_application", """
            INSERT INTO payment_application (organisation_id, payment_id, invoice_id, amount, payment_received_on, invoice_issued_on)
            SELECT s.org, s.id, s.ref, s.n1, s.d1, i.issued_on FROM import_line s JOIN invoice i ON i.id = s.ref WHERE s.kind = 'a'
            """),
        ("refund", """
            INSERT INTO refund (id, organisation_id, payment_id, amount, currency, mode, refunded_on, reference_number,
                                description, created_at)
            SELECT s.id, s.org, s.ref, s.n1, p.currency, coalesce(s.t1, p.mode), s.d1, s.t3, s.t4, date_trunc('second', s.at)
            FROM import_line s JOIN payment p ON p.id = s.ref WHERE s.kind = 'r'
            """),
        ("api_key", """
            INSERT INTO api_key (organisation_id, key_hash, scopes)
            SELECT org, sha256(convert_to(t1, 'UTF8')), t2::text[] FROM import_line WHERE kind = 'k' ORDER BY line
            """),
    ]

    /// The store's tables an import writes, in the order of `moves`.
    static var storeTables: [String] { moves.map(\.table) }

    /// Every organisation the file names, once, in a small table made when the lines are
    /// staged: the first line of another kind that names it (`named`, null if none) and
    /// the first `o` line, which defines it (`defined`; an `o` line's `org` is its own id).
    /// One pass over the staged lines serves the locks, the figures recomputed at the end
    /// and the first rule across lines (a pass of its own took 0.25 s for 546,252 lines).
    static let organisationTable = """
        CREATE TEMPORARY TABLE import_org ON COMMIT DROP AS
        SELECT org, min(line) FILTER (WHERE kind <> 'o') AS named, min(line) FILTER (WHERE kind = 'o') AS defined
        FROM import_line GROUP BY org
        """

    /// From `organisationTable`: each organisation's id, its key for `lockOrganisation`, and
    /// whether the file defines it.
    static let organisations = "SELECT org::text, hashtext(org::text), defined IS NOT NULL FROM import_org"

    /// An import's hold on an organisation's key, until its transaction ends, taken before
    /// the rules across lines are checked: the rules read what is stored, so two imports
    /// into one organisation checked side by side would each miss the other's rows: both
    /// could commit payments applied to one invoice beyond its total, or one would fail on
    /// a duplicate key instead of naming its line. The second waits, then checks against
    /// what the first committed. (A transaction-level advisory lock: released by the
    /// commit or the rollback, even when the importer dies.)
    static let lockOrganisation = "SELECT pg_advisory_xact_lock(hashtext('billgraph import'), $1::integer)"
    /// `lockOrganisation` if no one holds it: true, or false at once.
    static let tryLockOrganisation = "SELECT pg_try_advisory_xact_lock(hashtext('billgraph import'), $1::integer)"

    /// Read committed whatever the database's default: each rule sees what other imports
    /// committed before it took its locks (under repeatable read, the second of two imports
    /// would fail on a serialization error instead of naming its line).
    static let isolation = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED"
}
