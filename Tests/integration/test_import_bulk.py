"""An import into an empty store sets the tables' keys, indexes and foreign keys aside,
writes the rows, and builds them again (README "Loading an empty store",
Sources/Billing/Dataset/BulkLoad.swift). What it puts back must be exactly what the migrations made; an import
into a store with rows, or by a role that does not own the tables, never touches them.
That the rows and figures are right is test_import_stream.py's (its large file goes
this way) and every test of the shared world's (conftest imports it into an empty store)."""
import os
import tempfile
import uuid

from conftest import ADMIN_URL, create_database, psql, run_cli, seed
from figures import Facts, assert_raw_rows_are_the_file, assert_stored_match

BULK = "the store is empty"

# Every key, unique constraint, foreign key and index of the schema, with its definition
# and whether PostgreSQL holds it as checked.
CATALOG = """
SELECT string_agg(entry, E'\\n' ORDER BY entry) FROM (
    SELECT format('%s %s %s valid=%s', conrelid::regclass, conname, pg_get_constraintdef(oid), convalidated)
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace
    UNION ALL
    SELECT format('%s %s', indexrelid::regclass, pg_get_indexdef(indexrelid))
    FROM pg_index WHERE indrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
) e(entry)
"""
# The files that hold the tables an import writes (BulkLoad.tables): an import into an
# empty store gives them new ones, created in its transaction, so that a cluster with
# wal_level = minimal writes their rows and indexes without WAL (README "Loading an
# empty store").
BULK_TABLES = ["invoice", "payment", "customer", "payment_application", "refund", "credit_note"]
FILES = "SELECT array_agg(pg_relation_filenode(t::regclass) ORDER BY t) FROM unnest(ARRAY[%s]) t" % \
        ", ".join(f"'{t}'" for t in BULK_TABLES)


def table_files(url):
    return psql(url, FILES).strip("{}").split(",")


INDEX_OIDS = "SELECT string_agg(indexrelid::text, ',' ORDER BY indexrelid) FROM pg_index " \
             "WHERE indrelid IN (%s)" % ", ".join(f"'{t}'::regclass" for t in BULK_TABLES)


def dataset(customers, seed_value):
    path = os.path.join(tempfile.mkdtemp(), "data.jsonl")
    seed(path, customers=customers, orgs=1, seed_value=seed_value)
    return path


def test_an_import_into_an_empty_store_puts_back_every_key_index_and_foreign_key():
    url = create_database()
    migrated, files = psql(url, CATALOG), table_files(url)
    assert migrated.count("FOREIGN KEY") >= 15 and migrated.count("PRIMARY KEY") >= 8, migrated
    path = dataset(300, 3)
    result = run_cli("import", path, url=url)
    assert BULK in result.stderr, result.stderr
    assert psql(url, CATALOG) == migrated
    new_files = table_files(url)
    assert len(new_files) == len(BULK_TABLES) and all(a != b for a, b in zip(files, new_files)), (files, new_files)
    assert_raw_rows_are_the_file(url, path)
    assert_stored_match(url, Facts(url))


def test_an_import_into_a_store_with_rows_keeps_its_indexes():
    url = create_database()
    first, second = dataset(100, 4), dataset(100, 5)
    run_cli("import", first, url=url)
    migrated, indexes, files = psql(url, CATALOG), psql(url, INDEX_OIDS), table_files(url)
    result = run_cli("import", second, url=url)
    assert BULK not in result.stderr, result.stderr
    assert "imported" in result.stderr
    # The very same indexes and tables' files, never dropped, built or emptied again.
    assert psql(url, INDEX_OIDS) == indexes
    assert table_files(url) == files
    assert psql(url, CATALOG) == migrated
    assert psql(url, "SELECT count(*) FROM organisation") == "2"
    assert_raw_rows_are_the_file(url, first, second)
    assert_stored_match(url, Facts(url))


def test_a_role_that_does_not_own_the_tables_imports_row_by_row():
    url = create_database()
    migrated, indexes, files = psql(url, CATALOG), psql(url, INDEX_OIDS), table_files(url)
    role = "bgtest_writer_" + uuid.uuid4().hex[:8]
    psql(url, f"CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA public TO {role}; "
              f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
    try:
        path = dataset(100, 6)
        result = run_cli("import", path, url=f"{url} user={role}")  # the later keyword wins
        assert BULK not in result.stderr, result.stderr
        assert "imported" in result.stderr
        assert psql(url, CATALOG) == migrated
        assert (psql(url, INDEX_OIDS), table_files(url)) == (indexes, files)
        assert_raw_rows_are_the_file(url, path)
        assert_stored_match(url, Facts(url))
    finally:
        psql(url, f"DROP OWNED BY {role}")
        psql(ADMIN_URL, f"DROP ROLE {role}")
