"""Fuzzing the readers in-process: mutated valid backups of every format (bit flips, truncations,
insertions, manifest type swaps) must end in rows or in one of dbrestore's own errors, never in
another exception, a hang or unbounded memory.

A short seeded run is part of the suite. The long run:
``DBRESTORE_FUZZ_EXAMPLES=100000 .venv/bin/python -m pytest tests/sources/test_fuzz_readers.py -q -s``
(prints how many inputs ended in rows and in errors, and the peak RSS).
"""

from __future__ import annotations

import collections
import json
import os
import re
import resource
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbrestore.exceptions import DbRestoreError
from dbrestore.plan.build import build_plan
from dbrestore.sources import open_backup
from dbrestore.sources.readers import open_binary
from tests.support.fuzz_seeds import SEEDS, TOKENS, compress, write_backup

EXAMPLES = int(os.environ.get("DBRESTORE_FUZZ_EXAMPLES", "250"))
LONG_RUN = "DBRESTORE_FUZZ_EXAMPLES" in os.environ

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)


@st.composite
def mutated_backup(draw) -> tuple[str, dict[str, bytes], str]:
    """A seed backup, one of its files mutated; returns (seed, files as stored, what was done)."""
    seed = draw(st.sampled_from(sorted(SEEDS)))
    files = dict(SEEDS[seed])
    target = draw(st.sampled_from(sorted(files)))
    content = files[target]
    kind = draw(
        st.sampled_from(
            ["flip", "truncate", "insert", "replace", "swap"]
            if target == "manifest.json"
            else ["flip", "truncate", "insert", "replace"]
        )
    )
    on_compressed = target.endswith((".gz", ".bz2", ".xz")) and draw(st.booleans())
    stored = {name: compress(name, data) for name, data in files.items()}
    data = bytearray(stored[target] if on_compressed else content)
    if kind == "swap":
        manifest = json.loads(content)
        where = draw(st.sampled_from(["top", *range(len(manifest["tables"]))]))
        holder = manifest if where == "top" else manifest["tables"][where]
        key = draw(st.sampled_from(sorted(holder) + ["native", "tables", "file"]))
        holder[key] = draw(JSON_VALUES)
        data = bytearray(json.dumps(manifest).encode())
    elif kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            position = draw(st.integers(0, max(len(data) - 1, 0)))
            if data:
                data[position] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        del data[draw(st.integers(0, len(data))) :]
    elif kind == "insert":
        position = draw(st.integers(0, len(data)))
        inserted = draw(st.sampled_from(TOKENS) | st.binary(max_size=16))
        data[position:position] = inserted
    else:
        start = draw(st.integers(0, len(data)))
        data[start : start + draw(st.integers(1, 16))] = draw(st.binary(min_size=1, max_size=16))
    stored[target] = bytes(data) if on_compressed else compress(target, bytes(data))
    return seed, stored, f"{kind} {target}{' (compressed bytes)' if on_compressed else ''}"


def _read(read) -> tuple:
    """What reading gives: the rows, or the error (its byte offsets aside: a block and a line
    reader stop at different offsets of a corrupt compressed stream)."""
    try:
        return "rows", read()
    except DbRestoreError as exc:
        return "error", type(exc).__name__, re.sub(r"byte \d+", "byte N", str(exc)), exc


def read_everything(path: Path) -> int:
    """Everything a restore reads before writing: detection, the plan, every row (read as lines,
    and for JSON Lines as blocks too, as the forked conversion reads them: both the same), the hashes."""
    backup = open_backup(path)
    build_plan(backup, ignore_unknown=True)
    rows = 0
    for table in backup.tables:
        as_lines = _read(lambda table=table: list(table.rows()))
        if table.blocks is not None:
            as_blocks = _read(
                lambda table=table: [
                    r for first, block in table.blocks.blocks(64) for r in table.blocks.rows(first, block)
                ]
            )
            assert as_blocks[:3] == as_lines[:3]
        if as_lines[0] == "error":
            raise as_lines[3]
        rows += len(as_lines[1])
        with open_binary(table.origin, rows=False) as stream:
            while stream.read(1024 * 1024):
                pass
    return rows


OUTCOMES: collections.Counter = collections.Counter()
RSS: dict[str, int] = {}
PROCESS = psutil.Process()
MiB = 1024**2


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_every_seed_is_a_valid_backup(seed, tmp_path):
    stored = {name: compress(name, data) for name, data in SEEDS[seed].items()}
    assert read_everything(write_backup(tmp_path, seed, stored)) > 0


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG_RUN,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(mutated_backup())
def test_mutated_backups_end_in_rows_or_a_dbrestore_error(case):
    seed, stored, what = case
    with tempfile.TemporaryDirectory(prefix="dbrestore-fuzz-") as folder:
        path = write_backup(Path(folder), seed, stored)
        started = time.process_time()  # CPU time: the machine may be busy
        try:
            read_everything(path)
            OUTCOMES["rows"] += 1
        except DbRestoreError as exc:
            assert "\n" not in str(exc), (what, str(exc))
            OUTCOMES[type(exc).__name__] += 1
            caught = re.search(r"cannot read: (\w+(Error|Exception))", str(exc))
            if caught:  # an exception the boundary turned into a BackupFormatError
                OUTCOMES[f"boundary {caught.group(1)}"] += 1
        assert time.process_time() - started < 10, what
        rss = PROCESS.memory_info().rss
        RSS.setdefault("first", rss)
        RSS["max"] = max(RSS.get("max", 0), rss)
    if LONG_RUN and sum(OUTCOMES.values()) % 10_000 == 0:
        print(f"fuzz: {sum(OUTCOMES.values())} inputs, {dict(OUTCOMES)}", flush=True)


def test_fuzz_memory_stayed_bounded():
    """After the fuzz run above (same process): RSS never grew more than 256 MiB over the first
    input's (512 MiB in the long run: hypothesis keeps about 2 kB per input it tried; the readers
    alone stay flat, 93 MiB from the 5,000th to the 20,000th input)."""
    if not RSS:
        pytest.skip("the fuzz run did not run")
    grown_mib = (RSS["max"] - RSS["first"]) / MiB
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nfuzz: {sum(OUTCOMES.values())} inputs, outcomes {dict(OUTCOMES)}, RSS grew {grown_mib:.0f} MiB "
        f"(process peak {peak_mib:.0f} MiB)"
    )
    assert grown_mib < (512 if LONG_RUN else 256)
