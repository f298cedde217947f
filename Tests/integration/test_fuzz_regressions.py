"""The fuzz harnesses' inputs replayed through the plain build of billgraph-fuzz: the
inputs that once broke a property (Tests/fuzz/regressions/TARGET/) and the seeds
(Tests/fuzz/corpus/TARGET/). scripts/fuzz runs the harnesses under libFuzzer."""
import os
import re
import subprocess

import pytest

from conftest import BIN

FUZZ = os.path.join(os.path.dirname(BIN), "billgraph-fuzz")
ROOT = os.path.join(os.path.dirname(__file__), "..", "fuzz")
QUERIES = os.path.join(ROOT, "..", "..", "schema", "queries")
# (target, folder): every committed input, and the canonical queries, which seed the
# GraphQL targets where they live.
FOLDERS = sorted((target, os.path.join(ROOT, kind, target)) for kind in ("regressions", "corpus")
                 for target in os.listdir(os.path.join(ROOT, kind))) + [("graphql", QUERIES), ("prepare", QUERIES)]


@pytest.mark.parametrize("target,folder", FOLDERS, ids=[f"{t}:{os.path.relpath(f, ROOT)}" for t, f in FOLDERS])
def test_inputs_keep_their_properties(target, folder):
    # The time limit matters too: some of these inputs once stalled preparation.
    out = subprocess.run([FUZZ, target, folder], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[:4000]
    replayed = re.match(rf"{target}: (\d+) inputs replayed", out.stdout)
    assert replayed and int(replayed[1]) == len(os.listdir(folder)) > 0, out.stdout
