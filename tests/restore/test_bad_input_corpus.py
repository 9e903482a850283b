"""A corpus of bad inputs, one case per class of issue 18 (input side), run on both databases.

Each case restores into a database that already holds a sample backup's rows and asserts: the
command fails with one line naming the problem (no traceback), the exit status, every table's
row count and checksum unchanged, and the run's final status (or that no run was started).
"""

from __future__ import annotations

import bz2
import decimal
import functools
import gzip
import hashlib
import json
import lzma
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import CommandError
from django.urls import reverse

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Product, Tag
from tests.support.fuzz_seeds import dumpdata_fixture
from tests.support.paths import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024**2


def database_state() -> dict[str, tuple[int, str]]:
    """Row count and a checksum of the rows of every table but the run history."""
    state = {}
    for model in apps.get_models(include_auto_created=True):
        if model._meta.label == "dbrestore.RestoreRun" or not model._meta.managed or model._meta.proxy:
            continue
        names = [f.attname for f in model._meta.concrete_fields]
        rows = list(model._base_manager.order_by("pk").values_list(*names))
        state[model._meta.label] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
    return state


@pytest.fixture
def seeded(sample_backup, run_command):
    """The database holding a small sample backup's rows, and its state."""
    run_command("restore_backup", sample_backup(rows=60, name="seed"), "--noinput", "--no-safety-backup")
    state = database_state()
    assert state["shop.OrderItem"][0] > 0 and state["shop.Tag"][0] > 0
    return state


@functools.cache
def _bomb_member() -> bytes:
    return gzip.compress(b"x" * (16 * MiB), compresslevel=9)


def gzip_bomb(prefix: bytes, size: int) -> bytes:
    """``prefix`` then ``size`` bytes of ``x``, no newline: concatenated gzip members, ~1000:1."""
    return gzip.compress(prefix) + _bomb_member() * (size // (16 * MiB))


def jsonl(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


TAGS = [{"id": 900 + i, "name": f"corpus-{i}"} for i in range(3000)]


@dataclass
class Case:
    build: Callable[[Path, Path], list[Any]]  # (tmp_path, sample backup dir) -> command arguments
    match: str  # in the one-line message
    status: str | None = "failed"  # the run's final status; None: refused before a run exists
    settings: dict[str, Any] = field(default_factory=dict)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _manifest_swap(key: str, value: Any, entry: int | None = 0) -> Callable[[Path, Path], list[Any]]:
    def build(tmp: Path, sample: Path) -> list[Any]:
        manifest_path = sample / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        (manifest["tables"][entry] if entry is not None else manifest)[key] = value
        manifest_path.write_text(json.dumps(manifest))
        return [sample]

    return build


def _corrupt_gzip(tmp: Path, sample: Path) -> list[Any]:
    payload = bytearray(gzip.compress(jsonl(TAGS)))
    middle = len(payload) // 2
    payload[middle : middle + 64] = bytes(64)
    return [_write(tmp / "in" / "shop_tag.jsonl.gz", bytes(payload))]


def _truncated_gzip_long_line(tmp: Path, sample: Path) -> list[Any]:
    payload = gzip.compress(json.dumps({"id": 1, "name": os.urandom(2 * MiB).hex()}).encode() + b"\n")
    return [_write(tmp / "in" / "shop_tag.jsonl.gz", payload[: len(payload) // 2])]


def _corrupt(compress: Callable[[bytes], bytes], name: str) -> Callable[[Path, Path], list[Any]]:
    def build(tmp: Path, sample: Path) -> list[Any]:
        payload = bytearray(compress(jsonl(TAGS)))
        payload[len(payload) // 2 : len(payload) // 2 + 32] = b"\xa5" * 32
        return [_write(tmp / "in" / name, bytes(payload))]

    return build


def _garbage(name: str) -> Callable[[Path, Path], list[Any]]:
    return lambda tmp, sample: [_write(tmp / "in" / name, os.urandom(4096))]


def _rejects_lines(*records: dict) -> Callable[[Path, Path], list[Any]]:
    return lambda tmp, sample: [_write(tmp / "in" / "fixed-rejects.jsonl", jsonl(list(records))), "--mode", "append"]


REJECT = {
    "kind": "rejected",
    "model": "shop.Tag",
    "table": "shop_tag",
    "position": 1,
    "row": {"id": 5000, "name": "fixed"},
    "reason": "test",
}


def _one_bad_tag(tmp: Path) -> Path:
    """A table file one of whose rows is rejected (a NULL name), the other restorable."""
    return _write(tmp / "in" / "shop_tag.jsonl", jsonl([{"id": 7001, "name": "fine"}, {"id": 7002, "name": None}]))


def _rejects_under_a_file(tmp: Path, sample: Path) -> list[Any]:
    _write(tmp / "a-file", b"")
    return [_one_bad_tag(tmp), "--mode", "append", "--rejects-file", tmp / "a-file" / "rejects.jsonl"]


def _rejects_on_a_full_disk(tmp: Path, sample: Path) -> list[Any]:
    return [_one_bad_tag(tmp), "--mode", "append", "--rejects-file", "/dev/full"]


def _report_in_a_missing_folder(tmp: Path, sample: Path) -> list[Any]:
    return [sample, "--report-json", tmp / "missing" / "report.json"]


def _report_over_the_backup(tmp: Path, sample: Path) -> list[Any]:
    return [sample, "--report-json", sample / "manifest.json"]


def _rejects_file_as_source(tmp: Path, sample: Path) -> list[Any]:
    path = _write(tmp / "in" / "restore-1-rejects.jsonl", jsonl([REJECT]))
    return [path, "--mode", "append", "--rejects-file", path]


def _rejects_file_in_the_source(tmp: Path, sample: Path) -> list[Any]:
    _write(tmp / "in" / "shop_tag.jsonl", jsonl(TAGS[:5]))
    _write(tmp / "in" / "restore-1-rejects.jsonl", jsonl([REJECT]))
    return [tmp / "in", "--mode", "append"]


def _rejects_path_is_a_source_file(tmp: Path, sample: Path) -> list[Any]:
    data = _write(tmp / "in" / "shop_tag.jsonl", jsonl(TAGS[:5]))
    return [tmp / "in", "--mode", "append", "--rejects-file", data]


def _fifo_in_a_directory(tmp: Path, sample: Path) -> list[Any]:
    (tmp / "in").mkdir()
    os.mkfifo(tmp / "in" / "shop_tag.jsonl")
    return [tmp / "in"]


def _fifo_in_a_manifest(tmp: Path, sample: Path) -> list[Any]:
    data = sample / "shop_tag.jsonl"
    data.unlink()
    os.mkfifo(data)
    return [sample, "--skip-checksum"]


def _bomb_jsonl(tmp: Path, sample: Path) -> list[Any]:
    return [_write(tmp / "in" / "shop_tag.jsonl.gz", gzip_bomb(b'{"id": 1, "name": "', 256 * MiB))]


def _bomb_of_lines(tmp: Path, sample: Path) -> list[Any]:
    line = b'{"id": 1, "name": "' + b"x" * 4000 + b'"}\n'
    member = gzip.compress(line * 4096, compresslevel=9)  # 16 MiB of 4 kB lines, 900:1
    return [_write(tmp / "in" / "shop_tag.jsonl.gz", member * 64)]


def _long_line(tmp: Path, sample: Path) -> list[Any]:
    return [_write(tmp / "in" / "shop_tag.jsonl", b'{"id": 1, "name": "' + b"y" * (3 * MiB) + b'"}\n')]


def _long_string_in_array(tmp: Path, sample: Path) -> list[Any]:
    return [_write(tmp / "in" / "shop_tag.json", b'[{"id": 1, "name": "' + b"y" * (3 * MiB) + b'"}]')]


def _number(literal: bytes, name: str = "shop_tag.json") -> Callable[[Path, Path], list[Any]]:
    row = b'{"id": ' + literal + b', "name": "n"}'
    data = row + b"\n" if name.endswith(".jsonl") else b"[" + row + b"]"
    return lambda tmp, sample: [_write(tmp / "in" / name, data)]


def _object_file_in_manifest_directory(tmp: Path, sample: Path) -> list[Any]:
    manifest = json.loads((sample / "manifest.json").read_text())
    entry = next(e for e in manifest["tables"] if e["table"] == "shop_tag")
    (sample / entry["file"]).unlink()
    entry["file"] = "shop_tag.json"
    entry.pop("sha256"), entry.pop("rows")
    _write(sample / "shop_tag.json", json.dumps({"shop_tag": TAGS[:3]}).encode())
    (sample / "manifest.json").write_text(json.dumps(manifest))
    return [sample]


def _object_file_in_plain_directory(tmp: Path, sample: Path) -> list[Any]:
    _write(tmp / "in" / "shop_tag.json", json.dumps({"shop_tag": TAGS[:3]}).encode())
    return [tmp / "in"]


def _fixture_in_plain_directory(tmp: Path, sample: Path) -> list[Any]:
    fixture = [{"model": "shop.tag", "pk": 1, "fields": {"name": "from-fixture"}}]
    _write(tmp / "in" / "shop_tag.json", json.dumps(fixture).encode())
    return [tmp / "in"]


def _non_data_file_in_manifest(tmp: Path, sample: Path) -> list[Any]:
    _write(sample / "notes.txt", b"hello")
    return _manifest_swap("file", "notes.txt")(tmp, sample)


CORPUS: dict[str, Case] = {
    # tracebacks before: corrupt compressed streams
    "zlib-error-mid-gzip": Case(_corrupt_gzip, "shop_tag.jsonl.gz"),
    "truncated-gzip-in-a-long-line": Case(_truncated_gzip_long_line, "corrupt or truncated"),
    "corrupt-xz": Case(_corrupt(lzma.compress, "shop_tag.jsonl.xz"), "shop_tag.jsonl.xz"),
    "garbage-xz": Case(_garbage("shop_tag.jsonl.xz"), "shop_tag.jsonl.xz"),
    "corrupt-bz2": Case(_corrupt(bz2.compress, "shop_tag.jsonl.bz2"), "shop_tag.jsonl.bz2"),
    "garbage-bz2": Case(_garbage("shop_tag.jsonl.bz2"), "shop_tag.jsonl.bz2"),
    "garbage-gz": Case(_garbage("shop_tag.json.gz"), "shop_tag.json.gz"),
    # tracebacks before: wrong JSON types in the manifest
    "manifest-file-number": Case(_manifest_swap("file", 12), '"file" must be a string'),
    "manifest-file-list": Case(_manifest_swap("file", ["a.jsonl"]), '"file" must be a string'),
    "manifest-sha256-number": Case(_manifest_swap("sha256", 1234), '"sha256" must be 64'),
    "manifest-sha256-short": Case(_manifest_swap("sha256", "abc"), '"sha256" must be 64'),
    "manifest-rows-string": Case(_manifest_swap("rows", "12"), '"rows" must be a whole number'),
    "manifest-rows-bool": Case(_manifest_swap("rows", True), '"rows" must be a whole number'),
    "manifest-rows-negative": Case(_manifest_swap("rows", -1), '"rows" must be a whole number'),
    "manifest-rows-float": Case(_manifest_swap("rows", 1.5), '"rows" must be a whole number'),
    "manifest-model-list": Case(_manifest_swap("model", ["shop.Tag"]), '"model" must be a non-empty string'),
    "manifest-table-object": Case(_manifest_swap("table", {"a": 1}), '"table" must be a non-empty string'),
    "manifest-columns-string": Case(_manifest_swap("columns", "id,name"), '"columns" must be a list'),
    "manifest-entry-string": Case(_manifest_swap("tables", ["shop_tag.jsonl"], entry=None), "must be an object"),
    "manifest-migrations-list": Case(_manifest_swap("migrations", ["0001"], entry=None), '"migrations" must be'),
    "manifest-migrations-names": Case(_manifest_swap("migrations", {"shop": [1]}, entry=None), '"migrations" must be'),
    "manifest-native-file-number": Case(_manifest_swap("native", {"file": 3}, entry=None), '"file" must be a string'),
    # tracebacks before: malformed rejects-file lines
    "rejects-line-without-model": Case(
        _rejects_lines(REJECT, {**REJECT, "model": None}), '"model" must be a model label'
    ),
    "rejects-row-not-an-object": Case(_rejects_lines(REJECT, {**REJECT, "row": [1, 2]}), '"row" must be an object'),
    "rejects-unknown-kind": Case(_rejects_lines(REJECT, {**REJECT, "kind": 3}), '"kind" must be one of'),
    # tracebacks before: output paths that cannot be written
    "rejects-file-under-a-file": Case(_rejects_under_a_file, "is not a directory"),
    "rejects-file-on-a-full-disk": Case(_rejects_on_a_full_disk, "No space left on device"),
    "report-json-missing-folder": Case(_report_in_a_missing_folder, "does not exist", status=None),
    "report-json-over-the-backup": Case(_report_over_the_backup, "would overwrite the backup", status=None),
    # inputs that never end
    "rejects-file-as-source-and-output": Case(_rejects_file_as_source, "cannot also be read"),
    "rejects-file-inside-the-source": Case(_rejects_file_in_the_source, "a rejects file, not a table's rows"),
    "rejects-output-is-a-source-file": Case(_rejects_path_is_a_source_file, "cannot also be read"),
    "char-device-as-source": Case(lambda tmp, sample: ["/dev/zero"], "not a regular file"),
    "fifo-in-a-plain-directory": Case(_fifo_in_a_directory, "not a regular file"),
    "fifo-as-a-manifest-data-file": Case(_fifo_in_a_manifest, "not a regular file"),
    "gzip-bomb-one-line": Case(_bomb_jsonl, "a row longer than 67108864 bytes"),
    "gzip-bomb-of-short-lines": Case(_bomb_of_lines, "compression bomb"),
    "gzip-bomb-one-line-no-ratio-limit": Case(
        _bomb_jsonl, "a row longer than", settings={"MAX_INFLATION_RATIO": None, "MAX_ROW_BYTES": 4 * MiB}
    ),
    "long-json-line": Case(_long_line, "a row longer than 1048576 bytes", settings={"MAX_ROW_BYTES": MiB}),
    "long-string-in-an-array": Case(_long_string_in_array, "a row longer than", settings={"MAX_ROW_BYTES": MiB}),
    "integer-of-5000-digits": Case(_number(b"1" * 5000), "a number of more than 4300 digits"),
    "integer-of-5000-digits-split": Case(_number(b" " * (1024 * 1024 - 10) + b"1" * 5000), "more than 4300 digits"),
    "invalid-utf8-in-an-array": Case(
        _number(b'1, "x": "\xff\xfe"'),
        "(after row 0): invalid or truncated JSON: lexical error: invalid bytes in UTF8 string.",
    ),
    "invalid-utf8-in-a-keyed-object": Case(
        lambda tmp, sample: [_write(tmp / "in" / "export.json", b'{"shop_tag": [{"id": 1, "name": "\xff"}]}')],
        "invalid or truncated JSON: lexical error: invalid bytes in UTF8 string.",
    ),
    "object-file-in-a-manifest-directory": Case(_object_file_in_manifest_directory, "not a table's rows"),
    "manifest-lists-itself": Case(_manifest_swap("file", "manifest.json"), "lists itself"),
    "manifest-lists-a-non-data-file": Case(_non_data_file_in_manifest, "not a .json or .jsonl data file"),
    "object-file-in-a-plain-directory": Case(_object_file_in_plain_directory, "not a table's rows"),
    "fixture-in-a-plain-directory": Case(_fixture_in_plain_directory, "a dumpdata fixture, not a table's rows"),
}


def _one_bad_row(literal: bytes, name: str = "shop_tag.json") -> Callable[[Path, Path], list[Any]]:
    """A good tag, a row whose ``id`` (or a value after it) is ``literal``, another good tag."""
    bad = b'{"id": ' + literal + (b"}" if b'"name"' in literal else b', "name": "n"}')
    rows = [b'{"id": 901, "name": "before"}', bad, b'{"id": 902, "name": "after"}']
    data = b"\n".join(rows) + b"\n" if name.endswith(".jsonl") else b"[" + b", ".join(rows) + b"]"
    return lambda tmp, sample: [_write(tmp / "in" / name, data), "--mode", "append"]


#: Valid JSON with one value that cannot be read as written: the row is a counted reject with
#: the reason, the rest of the file is restored (issue 26: these ended the whole restore before).
ISOLATED: dict[str, tuple[Callable[[Path, Path], list[Any]], str]] = {
    "exponent-2-million-digits": (_one_bad_row(b"1e2000000"), "has more than 4300 digits"),
    "exponent-in-a-nested-value": (
        _one_bad_row(b'1, "x": [{"y": 2.5E+9999}]'),
        "column 'x': the number 2.5E+9999 has more",
    ),
    "json-nested-10000-deep-in-an-array": (
        _one_bad_row(b'1, "x": ' + b"[" * 10_000 + b"]" * 10_000),
        "column 'x': a value nested more than 1000 levels",
    ),
    "json-nested-1010-deep-in-json-lines": (
        _one_bad_row(b'1, "x": ' + b"[" * 1010 + b"]" * 1010, name="shop_tag.jsonl"),
        "nested more than 1000 levels",
    ),
    "json-nested-10000-deep-in-json-lines": (
        _one_bad_row(b'1, "x": ' + b"[" * 10_000 + b"]" * 10_000, name="shop_tag.jsonl"),
        "nested more than 1000",
    ),
    "lone-surrogate-in-an-array": (_one_bad_row(b'1, "name": "\\udc80"'), "column 'name': not valid UTF-8"),
    "lone-surrogate-in-json-lines": (
        _one_bad_row(b'1, "name": "\\udc80"', name="shop_tag.jsonl"),
        "column 'name': not valid UTF-8",
    ),
    "exponent-in-json-lines": (_one_bad_row(b"1e2000000", name="shop_tag.jsonl"), "has more than 4300 digits"),
    "float-beyond-range-in-json-lines": (_one_bad_row(b"1e400", name="shop_tag.jsonl"), "Ensure this value is less"),
}


@pytest.mark.parametrize("strict", [False, True], ids=["counted", "strict"])
@pytest.mark.parametrize("name", list(ISOLATED))
def test_one_unreadable_row_is_a_counted_reject(name, strict, seeded, sample_backup, run_command, tmp_path):
    build, reason = ISOLATED[name]
    rejects = tmp_path / "rejects.jsonl"
    args = [*build(tmp_path, sample_backup(rows=60, name="victim")), "--noinput", "--rejects-file", rejects]
    with pytest.raises(CommandError) as info:
        run_command("restore_backup", *args, *(["--strict"] if strict else []))
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message, message
    run = RestoreRun.objects.order_by("-pk").first()
    if strict:  # --strict still stops the restore at the first reject, rolled back
        assert info.value.returncode == 1 and "more than 0 rows rejected" in message and reason in message, message
        assert database_state() == seeded and run.status == RestoreRun.Status.FAILED
        return
    assert info.value.returncode == 3, message
    assert run.status == RestoreRun.Status.PARTIAL
    assert (run.rows_processed, run.rows_inserted, run.rows_rejected) == (3, 2, 1)
    assert set(Tag.objects.filter(pk__in=[901, 902]).values_list("name", flat=True)) == {"before", "after"}
    assert Tag.objects.count() == seeded["shop.Tag"][0] + 2
    from dbrestore.sources.readers import loads_line

    [record] = [loads_line(line) for line in rejects.read_bytes().splitlines()]
    assert record["position"] == 2 and reason in record["reason"], record
    assert record["row"]["id"] is not None  # the row is kept


@pytest.mark.parametrize("name", list(CORPUS))
def test_bad_input(name, seeded, sample_backup, run_command, tmp_path, settings):
    case = CORPUS[name]
    settings.DBRESTORE = {**settings.DBRESTORE, **case.settings}
    args = case.build(tmp_path, sample_backup(rows=60, name="victim"))
    runs_before = RestoreRun.objects.count()
    started = time.process_time()
    with pytest.raises(CommandError) as info:
        run_command("restore_backup", *args, "--noinput")
    message = str(info.value)
    assert time.process_time() - started < 60
    assert case.match in message, message
    assert "\n" not in message and "Traceback" not in message and len(message) < 600, message
    assert info.value.returncode == 1
    assert database_state() == seeded
    if case.status is None:
        assert RestoreRun.objects.count() == runs_before
    else:
        run = RestoreRun.objects.order_by("-pk").first()
        assert RestoreRun.objects.count() == runs_before + 1
        assert run.status == case.status and run.finished_at is not None
        assert any(case.match in error for error in run.errors)


def test_every_class_of_the_issue_is_in_the_corpus():
    """The corpus keeps a case for each class it was written for."""
    for fragment in (
        "gzip",
        "xz",
        "bz2",
        "manifest-file",
        "manifest-sha256",
        "manifest-rows",
        "manifest-model",
        "manifest-table",
        "manifest-migrations",
        "rejects-line",
        "rejects-row",
        "rejects-file-under",
        "full-disk",
        "report-json-missing",
        "rejects-file-as-source",
        "rejects-file-inside",
        "fifo",
        "bomb",
        "2-million-digits",
        "long-string",
        "object-file-in-a-manifest",
        "lists-itself",
        "object-file-in-a-plain",
    ):
        assert any(fragment in name for name in [*CORPUS, *ISOLATED]), fragment


def test_fifo_source_fails_at_once_from_the_shell(tmp_path, subprocess_env, seeded):
    """A FIFO as the source: exit status 1 and one line on stderr, without ever opening it."""
    fifo = tmp_path / "shop_tag.jsonl"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "manage.py", "restore_backup", str(fifo), "--noinput"],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"CommandError: {fifo}: not a regular file (a FIFO, device or socket): refused"
    assert database_state() == seeded
    assert RestoreRun.objects.order_by("-pk").first().status == RestoreRun.Status.FAILED


def test_rejects_write_failure_exits_1_from_the_shell(tmp_path, subprocess_env, seeded):
    """The full disk at the rejects file, in a real process: rolled back, the run failed, not running."""
    _one_bad_tag(tmp_path)
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "restore_backup",
            str(tmp_path / "in" / "shop_tag.jsonl"),
            "--noinput",
            "--mode",
            "append",
            "--rejects-file",
            "/dev/full",
        ],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    # stderr holds the phases as they start, then the one-line error
    assert "Traceback" not in done.stderr and done.stderr.strip().splitlines()[-1].startswith("CommandError: ")
    assert "No space left on device" in done.stderr.strip().splitlines()[-1]
    assert database_state() == seeded
    run = RestoreRun.objects.order_by("-pk").first()
    assert run.status == RestoreRun.Status.FAILED and "rolled back" in " ".join(run.errors)


def test_report_json_is_written_after_a_good_restore(sample_backup, run_command, tmp_path):
    """The check before the restore lets a good path through."""
    run_command("restore_backup", sample_backup(rows=30), "--noinput", "--report-json", tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text())["status"] == "succeeded"


def test_rejects_with_big_integers_are_recorded(tmp_path, run_command, settings):
    """Rows orjson cannot write still reach the rejects file rather than a traceback."""
    path = _write(
        tmp_path / "in" / "shop_tag.json",
        b'[{"id": 1, "name": "ok"}, {"id": 2, "name": null, "extra": 123456789012345678901234567890}]',
    )
    rejects = tmp_path / "rejects.jsonl"
    with pytest.raises(CommandError, match="1 rows rejected"):
        run_command("restore_backup", path, "--noinput", "--rejects-file", rejects)
    record = json.loads(rejects.read_text())
    assert record["row"]["id"] == 2 and record["row"]["extra"] == 123456789012345678901234567890
    assert list(Tag.objects.values_list("name", flat=True)) == ["ok"]


def test_rejects_encoding_falls_back_for_what_orjson_refuses():
    from dbrestore.load.rejects import dumps_record

    line = dumps_record({"row": {"big": 2**70, "text": "a\udc80"}})
    assert json.loads(line) == {"row": {"big": 2**70, "text": "a\udc80"}}
    line = dumps_record({"row": {"n": decimal.Decimal("1.50"), "e": decimal.Decimal("1E+2000000")}})
    assert line == b'{"row":{"n":1.50,"e":1E+2000000}}'  # a JSON array's numbers stay numbers
    # A row too deep for orjson and json.dumps is kept whole (it was a truncated repr before, which
    # a restore of the rejects file could not read back); the JSON Lines reader reads it back, as
    # a row its converter rejects with the reason.
    from dbrestore.sources.base import UnreadableRow
    from dbrestore.sources.readers import loads_line, rows_of_lines

    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    line = dumps_record({"model": "shop.Tag", "row": {"deep": deep}, "reason": "too deep"})
    assert line.startswith(b'{"model":"shop.Tag","row":{"deep":[[[[') and line.endswith(b']]]]},"reason":"too deep"}')
    [(_, record)] = list(rows_of_lines([line], Path("rejects.jsonl"), 1))
    assert record["reason"] == "too deep" and "nested more than 1000" in record.reason
    assert isinstance(record, UnreadableRow) and loads_line(line)["model"] == "shop.Tag"


# -- the admin upload


@pytest.fixture
def operator(admin_client):
    return admin_client


def _upload(client, name: str, data: bytes):
    return client.post(
        reverse("admin:dbrestore_restorerun_restore"),
        {"upload": SimpleUploadedFile(name, data), "mode": "replace", "atomic": "on"},
    )


def test_upload_of_a_gzip_bomb_is_refused_in_bounded_memory(operator, backup_dir):
    """A 4 MB gzip inflating to 4 GiB without a newline: refused at the preview, memory bounded."""
    bomb = gzip_bomb(b'[{"id": 1, "name": "', 4096 * MiB)
    assert len(bomb) < 5 * MiB
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    response = _upload(operator, "shop_tag.json.gz", bomb)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    text = response.content.decode()
    assert "compression bomb" in text and "shop_tag.json.gz" in text
    assert grown_mib < 300 and time.process_time() - started < 30
    assert not list(backup_dir.glob("upload-*")) and RestoreRun.objects.count() == 0


def _confirm_and_run(client, response) -> RestoreRun:
    text = response.content.decode()
    assert "Yes, start the restore" in text, text
    form = response.context["form"]
    data = {name: form.initial.get(name, "") for name in ("backup", "mode", "batch_size", "only", "exclude")}
    data["atomic"] = "on"
    data = {k: v for k, v in data.items() if v not in (None, "")}
    client.post(reverse("admin:dbrestore_restorerun_confirm"), data)
    return RestoreRun.objects.get()


def test_upload_of_a_dumpdata_fixture_restores_as_from_the_command_line(operator, tmp_path, run_command):
    fixture = dumpdata_fixture([{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}])
    response = _upload(operator, "fixture.json", json.dumps(fixture).encode())
    run = _confirm_and_run(operator, response)
    assert run.status == RestoreRun.Status.SUCCEEDED, run.errors
    assert run.source_format == "dumpdata" and Path(run.source).name == "fixture.json"
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["blue", "red"]
    assert sorted(Product.objects.get().tags.values_list("name", flat=True)) == ["blue", "red"]


def test_upload_of_a_keyed_object_restores_as_from_the_command_line(operator):
    keyed = {
        "metadata": {"note": "x"},
        "shop_tag": [{"id": 1, "name": "green"}],
        "shop_category": [{"id": 1, "name": "Garden", "parent_id": None}],
    }
    response = _upload(operator, "export.json.gz", gzip.compress(json.dumps(keyed).encode()))
    run = _confirm_and_run(operator, response)
    assert run.status == RestoreRun.Status.SUCCEEDED, run.errors
    assert run.source_format == "json-object"
    assert list(Tag.objects.values_list("name", flat=True)) == ["green"]


def test_an_earlier_upload_is_listed_and_restored_as_its_file(operator, backup_dir):
    from dbrestore.backups.catalog import list_backups

    folder = backup_dir / "upload-20260101T000000-abcd"
    folder.mkdir()
    (folder / "fixture.json").write_text(json.dumps([{"model": "shop.tag", "pk": 3, "fields": {"name": "old"}}]))
    assert [info.name for info in list_backups()] == ["upload-20260101T000000-abcd/fixture.json"]
    response = operator.post(
        reverse("admin:dbrestore_restorerun_restore"),
        {"backup": "upload-20260101T000000-abcd/fixture.json", "mode": "replace", "atomic": "on"},
    )
    run = _confirm_and_run(operator, response)
    assert run.status == RestoreRun.Status.SUCCEEDED and run.source_format == "dumpdata"
    assert list(Tag.objects.values_list("name", flat=True)) == ["old"]


def test_upload_name_cannot_reach_outside_its_folder(operator, backup_dir):
    (backup_dir / "upload-x").mkdir()
    (backup_dir / "upload-x" / "shop_tag.json").write_text('[{"id": 1, "name": "a"}]')
    for name in ("upload-x/../../etc/passwd", "upload-x/..", "upload-x/shop_tag.json/x", "rejects/r.jsonl"):
        response = operator.post(reverse("admin:dbrestore_restorerun_confirm"), {"backup": name, "mode": "replace"})
        assert response.status_code == 302
    assert RestoreRun.objects.count() == 0


@pytest.mark.django_db(transaction=False)
def test_rows_within_the_bounds_are_read_whole(tmp_path, settings):
    """The bounds refuse only what passes them: a 3 MiB string under a 4 MiB row limit, a
    4300-digit integer, a value 255 levels deep and a 400:1 gzip under 16 MiB all read."""
    from dbrestore.sources.readers import iter_rows

    settings.DBRESTORE = {**settings.DBRESTORE, "MAX_ROW_BYTES": 4 * MiB}
    deep = "[" * 254 + "1" + "]" * 254
    array = _write(
        tmp_path / "t.json",
        b'[{"id": 1, "name": "' + b"y" * (3 * MiB) + b'"}, {"id": ' + b"7" * 4300 + b', "x": ' + deep.encode() + b"}]",
    )
    rows = [row for _, row in iter_rows(array)]
    assert len(rows[0]["name"]) == 3 * MiB and rows[1]["id"] == int("7" * 4300)
    lines = _write(tmp_path / "t.jsonl.gz", gzip.compress((b'{"id": 1, "x": ' + deep.encode() + b"}\n") * 20_000))
    assert sum(1 for _ in iter_rows(lines)) == 20_000
