"""The rejects file: one JSON line per row that could not be restored, with the reason.

Opened lazily: a run without rejects leaves no file behind. Unbuffered, so a record that cannot
be written (a full disk, a path under a file) fails the restore at that row, inside its
transaction, with :class:`RejectsWriteError`: a row that cannot be recorded is never lost quietly.
"""

from __future__ import annotations

import decimal
import json
import logging
import os
import threading
from pathlib import Path
from typing import IO, Any

import orjson

from dbrestore import conf
from dbrestore.exceptions import RejectsWriteError, TooManyRejectsError
from dbrestore.files.jsonvalues import encode_value

logger = logging.getLogger(__name__)


def _number_or_value(value: Any) -> Any:
    """orjson's ``default`` here: a Decimal (a JSON array's number, as ijson read it) stays the
    number it was, so that the row reads back as it was read, and is judged the same way."""
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return orjson.Fragment(str(value))
    return encode_value(value)


def dumps_record(record: dict[str, Any]) -> bytes:
    """One rejects-file line, values written as in a backup (:mod:`dbrestore.files.jsonvalues`). orjson
    first; what orjson cannot write (integers beyond 64 bits, lone surrogates, values nested
    more than 255 levels deep) is written by :func:`json_text`, so that every row is kept whole
    and reads back as it was read."""
    try:
        return orjson.dumps(record, default=_number_or_value)
    except (TypeError, orjson.JSONEncodeError):
        return json_text(record).encode()


_END = object()


def json_text(value: Any) -> str:
    """JSON text of a value of any depth, written without recursion: scalars as ``json.dumps``
    writes them (integers exact, lone surrogates escaped), a Decimal as its number, any other
    type as :func:`~dbrestore.files.jsonvalues.encode_value` spells it (else its ``str``)."""
    out: list[str] = []
    stack: list[tuple[Any, bool]] = []

    def start(item: Any) -> None:
        if isinstance(item, dict):
            out.append("{")
            stack.append((iter(item.items()), True))
        elif isinstance(item, (list, tuple)):
            out.append("[")
            stack.append((iter(item), False))
        else:
            out.append(_scalar(item))

    start(value)
    while stack:
        items, is_object = stack[-1]
        item: Any = next(items, _END)  # a JSON value (a (key, value) pair in an object), or _END
        if item is _END:
            stack.pop()
            out.append("}" if is_object else "]")
            continue
        if out[-1] not in ("{", "["):
            out.append(",")
        if is_object:
            key, item = item
            out.append(json.dumps(key if isinstance(key, str) else str(key)) + ":")
        start(item)
    return "".join(out)


def _scalar(value: Any) -> str:
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return str(value)
    if value is None or isinstance(value, (str, int, float)):
        return json.dumps(value)
    try:
        value = encode_value(value)
    except TypeError:
        value = str(value)
    return json.dumps(value, default=str)


class RejectsFile:
    """Rejected (and, with ``--log-skipped``, skipped) rows. More than ``max_rejects`` rejected
    rows raise :class:`TooManyRejectsError` (``None``: no limit)."""

    def __init__(self, path: Path, *, max_rejects: int | None = None):
        self.path = Path(path)
        self.count = 0
        self.rejected = 0
        self.max_rejects = max_rejects
        self._stream: IO[bytes] | None = None
        self._lock = threading.Lock()  # tables loading side by side (--jobs) share the file

    def write(
        self, *, model: str, table: str, position: int | None, row: dict[str, Any], reason: str, kind: str = "rejected"
    ) -> None:
        record = {"kind": kind, "model": model, "table": table, "position": position, "row": row, "reason": reason}
        line = dumps_record(record) + b"\n"
        with self._lock:
            try:
                if self._stream is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    # Unbuffered: a full disk fails this write, inside the restore's transaction,
                    # not a flush after its commit.
                    self._stream = open(self.path, "ab", buffering=0)
                self._stream.write(line)
            except OSError as exc:
                raise RejectsWriteError(
                    f"{self.path}: the rejects file cannot be written ({exc.strerror or exc}); "
                    f"{table} row {position} could not be recorded"
                ) from exc
            self.count += 1
            if kind != "rejected":
                return
            self.rejected += 1
            if self.max_rejects is not None and self.rejected > self.max_rejects:
                raise TooManyRejectsError(
                    f"more than {self.max_rejects} rows rejected (--max-rejects); stopped at {table} row {position}: "
                    f"{reason}"
                )

    @property
    def used(self) -> bool:
        return self._stream is not None

    def check_writable(self) -> None:
        """Fail before the restore when the rejects file could never be created (a missing
        folder is made later; a file in the way, or a folder that is not writable, is not)."""
        folder = self.path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if self.path.is_dir():
            raise RejectsWriteError(f"the rejects file {self.path} is a directory")
        if not folder.is_dir():
            raise RejectsWriteError(f"cannot write the rejects file {self.path}: {folder} is not a directory")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise RejectsWriteError(f"cannot write the rejects file {self.path}: {folder} is not writable")

    def close(self) -> None:
        """Close the file; unbuffered, nothing is left to write, so closing cannot lose a record."""
        if self._stream is not None:
            try:
                self._stream.close()
            except OSError as exc:
                logger.warning("closing the rejects file %s: %s", self.path, exc)


def default_rejects_path(run) -> Path:
    """BACKUP_DIR/rejects/restore-<run>-rejects.jsonl: where a run's rejected rows go by default."""
    return conf.backup_dir() / "rejects" / f"restore-{run.pk}-rejects.jsonl"
