"""The rejects file: one JSON line per row that could not be restored, with the reason.

Opened lazily: a run without rejects leaves no file behind. Unbuffered, so a record that cannot
be written (a full disk, a path under a file) fails the restore at that row, inside its
transaction, with :class:`RejectsWriteError`: a row that cannot be recorded is never lost quietly.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import IO, Any

import orjson

from .exceptions import RejectsWriteError, TooManyRejectsError

logger = logging.getLogger(__name__)


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (datetime.timedelta,)):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError


def _encode(record: dict[str, Any], table: str, position: int | None) -> bytes:
    """One JSON line. orjson first; the standard library for what orjson refuses (integers past
    64 bits, lone surrogates, escaped as ``\\udxxx``); a row neither can write fails the restore."""
    try:
        return orjson.dumps(record, default=_default) + b"\n"
    except (orjson.JSONEncodeError, TypeError):
        pass
    try:
        return json.dumps(record, default=_stdlib_default, ensure_ascii=True).encode("ascii") + b"\n"
    except (TypeError, ValueError, RecursionError) as exc:
        raise RejectsWriteError(
            f"cannot record a rejected row of {table} at {position} in the rejects file: {type(exc).__name__}: {exc}"
        ) from exc


def _stdlib_default(value: Any) -> Any:
    try:
        return _default(value)
    except TypeError:
        if isinstance(value, (set, frozenset, tuple)):
            return list(value)
        raise


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
        line = _encode(record, table, position)
        with self._lock:
            try:
                if self._stream is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._stream = open(self.path, "ab", buffering=0)
                self._stream.write(line)
            except OSError as exc:
                raise RejectsWriteError(
                    f"cannot write the rejects file {self.path}: {exc.strerror or exc} "
                    f"(a row of {table} at {position} could not be recorded)"
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
