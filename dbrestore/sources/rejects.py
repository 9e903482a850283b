"""A rejects file as a backup: fix the rows in it, then restore it (``--mode append``).

Each line of a rejects file (``dbrestore.rejects``) holds ``model``, ``table``, ``position``,
``row`` and ``reason``. Read as a backup, it is one table per model, each streaming the
``row`` values of its ``"kind": "rejected"`` lines (``"skipped"`` lines were never lost).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from .base import Backup, PositionedRow, TableData
from .readers import data_suffix, iter_json_lines, open_binary

REJECT_KEYS = {"model", "table", "row", "reason"}


def is_rejects_file(path: Path, first: bytes) -> bool:
    """A JSON Lines file whose first line is a rejects record."""
    if first != b"{" or data_suffix(path) not in (".jsonl", ".ndjson"):
        return False
    with open_binary(path) as stream:
        line = stream.readline()
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(record, dict) and REJECT_KEYS <= set(record) and isinstance(record.get("row"), dict)


def _rows_of(path: Path, model: str) -> Iterator[PositionedRow]:
    for line_number, record in iter_json_lines(path):
        if record.get("model") == model and record.get("kind", "rejected") == "rejected":
            yield line_number, record["row"]


def open_rejects_file(path: Path) -> Backup:
    models: dict[str, str] = {}
    for _, record in iter_json_lines(path):
        if record.get("kind", "rejected") == "rejected":
            models.setdefault(record["model"], record.get("table") or record["model"])
    tables = [
        TableData(key=table, origin=path, open_rows=lambda model=model: _rows_of(path, model), model_label=model)
        for model, table in models.items()
    ]
    return Backup(path=path, format="rejects", tables=tables)
