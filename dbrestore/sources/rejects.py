"""A rejects file as a backup: fix the rows in it, then restore it (``--mode append``).

Each line of a rejects file (``dbrestore.load.rejects``) holds ``model``, ``table``, ``position``,
``row`` and ``reason``. Read as a backup, it is one table per model, each streaming the
``row`` values of its ``"kind": "rejected"`` lines (``"skipped"`` lines were never lost).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import orjson

from dbrestore.exceptions import BackupFormatError
from dbrestore.files.storage import Location
from dbrestore.sources.base import Backup, PositionedRow, TableData
from dbrestore.sources.readers import is_json_lines_name, iter_json_lines, loads_line, open_binary

REJECT_KEYS = {"model", "table", "row", "reason"}
KINDS = ("rejected", "skipped")


def is_rejects_file(path: Location, first: bytes) -> bool:
    """A JSON Lines file whose first line is a rejects record."""
    if first != b"{" or not is_json_lines_name(path):
        return False
    with open_binary(path) as stream:
        line = next(stream.lines(), b"")
    try:
        record = loads_line(line)  # a row too deep for orjson is read too
    except orjson.JSONDecodeError:
        return False
    return isinstance(record, dict) and REJECT_KEYS <= set(record) and isinstance(record.get("row"), dict)


def _records(path: Location) -> Iterator[tuple[int, dict]]:
    """The ``"kind": "rejected"`` records, each checked: a model label, a table name, a row object."""
    for line_number, record in iter_json_lines(path):
        kind = record.get("kind", "rejected")
        if kind not in KINDS:
            raise BackupFormatError(
                f'"kind" must be one of {", ".join(KINDS)}, not {kind!r}', path=path, position=f"line {line_number}"
            )
        if kind != "rejected":
            continue
        problem = _record_problem(record)
        if problem:
            raise BackupFormatError(f"not a rejects record: {problem}", path=path, position=f"line {line_number}")
        yield line_number, record


def _record_problem(record: dict) -> str | None:
    if not isinstance(record.get("model"), str) or not record["model"]:
        return '"model" must be a model label'
    if not isinstance(record.get("row"), dict):
        return '"row" must be an object'
    if record.get("table") is not None and not isinstance(record["table"], str):
        return '"table" must be a string'
    return None


def _rows_of(path: Location, model: str) -> Iterator[PositionedRow]:
    for line_number, record in _records(path):
        if record["model"] == model:
            yield line_number, record["row"]


def open_rejects_file(path: Location) -> Backup:
    models: dict[str, str] = {}
    for _, record in _records(path):
        models.setdefault(record["model"], record.get("table") or record["model"])
    tables = [
        TableData(key=table, origin=path, open_rows=functools.partial(_rows_of, path, model), model_label=model)
        for model, table in models.items()
    ]
    return Backup(path=path, format="rejects", tables=tables)
