"""The importer streams (schema/DATASET.md, README "Importing"): a file far larger than one
piece of COPY is checked line by line as it is read and across lines in SQL, and a broken
line deep inside it is still reported with its exact number, nothing being stored. Which
rule a line breaks decides where it is caught (its own checks while streaming, or the SQL
checks across lines); the first broken line is reported either way. That memory stays
flat is checked here with a loose bound; speed and peak memory are measured in
benchmarks/RESULTS.md."""
import json
import os
import subprocess
import sys
import tempfile

import pytest

from conftest import BIN, create_database, psql, run_cli, seed
from figures import Facts, assert_raw_rows_are_the_file, assert_stored_match
from test_import import COUNTS, write


@pytest.fixture(scope="module")
def big():
    """About 55,000 lines (some 18 MB: many pieces of COPY), as text lines."""
    path = os.path.join(tempfile.mkdtemp(), "big.jsonl")
    seed(path, customers=2000, orgs=2, seed_value=13)
    with open(path) as f:
        lines = f.read().splitlines()
    assert len(lines) > 50_000
    return lines


def last_index(lines, kind):
    return max(i for i, line in enumerate(lines) if json.loads(line)["type"] == kind)


def import_broken(lines):
    url = create_database()
    result = run_cli("import", write(lines), url=url, check=False)
    assert result.returncode == 1, result.stderr
    assert "nothing was stored" in result.stderr
    assert psql(url, COUNTS) == "0,0,0,0,0"
    return result.stderr


def test_a_line_broken_on_its_own_near_the_end_is_reported_with_its_number(big):
    lines = list(big)
    i = len(lines) - 3
    row = json.loads(lines[i])
    row["created_at"] = "yesterday"
    lines[i] = json.dumps(row)
    assert f"line {i + 1}: \"created_at\"" in import_broken(lines)


def test_a_rule_across_lines_broken_near_the_end_is_reported_with_its_number(big):
    """A refund of a payment that no line defines: only the SQL checks can see it."""
    lines = list(big)
    i = last_index(lines, "refund")
    refund = json.loads(lines[i])
    refund["payment_id"] = "00000000-0000-4000-8000-00000000abcd"
    lines[i] = json.dumps(refund)
    assert f"line {i + 1}: payment 00000000-0000-4000-8000-00000000abcd is not defined" in import_broken(lines)


def test_the_first_broken_line_wins_whichever_check_finds_it(big):
    """A rule across lines broken at one line, and a later line that is not JSON: the
    earlier line is reported, though the stream stopped at the later one."""
    lines = list(big)
    i = next(k for k in range(len(lines) // 2, len(lines)) if json.loads(lines[k])["type"] == "invoice")
    invoice = json.loads(lines[i])
    invoice["customer_id"] = "00000000-0000-4000-8000-00000000cafe"
    lines[i] = json.dumps(invoice)
    lines.insert(i + 1000, "{not json")
    assert i + 1000 < len(lines) - 1000
    stderr = import_broken(lines)
    assert f"line {i + 1}: customer 00000000-0000-4000-8000-00000000cafe is not defined" in stderr, stderr
    # And alone, the line that is not JSON is the one reported.
    lines[i] = big[i]
    assert f"line {i + 1001}: not valid JSON" in import_broken(lines)


def test_a_whole_large_file_is_stored_exactly(big):
    """Every row as the file has it, and every maintained figure equal to what those rows
    say (the figures of an organisation the file defines are summed from the file as it
    is written)."""
    url = create_database()
    path = write(big)
    result = run_cli("import", path, url=url)
    kinds = [json.loads(line)["type"] for line in big]
    expected = ",".join(str(kinds.count(k)) for k in ("organisation", "customer", "invoice", "payment", "refund"))
    assert psql(url, COUNTS) == expected
    applications = sum(len(json.loads(line).get("applications") or []) for line in big)
    assert psql(url, "SELECT count(*) FROM payment_application") == str(applications)
    assert f"imported {len(big)} lines" in result.stderr
    assert_raw_rows_are_the_file(url, path)
    assert_stored_match(url, Facts(url))


def peak_kib(path, url):
    """The importer's peak resident memory: a fresh Python process runs it as its only
    child, so RUSAGE_CHILDREN's maximum is the importer's own."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, BIN, "import", path], check=True, capture_output=True, text=True,
                         env=dict(os.environ, BILLGRAPH_DATABASE_URL=url))
    return int(out.stdout)


def test_the_importers_memory_does_not_grow_with_the_file(big):
    """Seven times the lines, about the same peak: the file streams through a piece of
    COPY at a time. (Holding the file took about 1 KB a line: 45 MiB more here.)"""
    small = os.path.join(tempfile.mkdtemp(), "small.jsonl")
    seed(small, customers=300, orgs=2, seed_value=14)
    with open(small) as f:
        assert len(big) > 6 * sum(1 for _ in f)
    small_peak = peak_kib(small, create_database())
    big_peak = peak_kib(write(big), create_database())
    assert big_peak < small_peak + 16 * 1024, (small_peak, big_peak)
