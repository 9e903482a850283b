"""Bounds on every read of a backup: whatever opened the byte stream (a file, a decompressor),
reads go through :class:`BoundedReader`, which turns any decoding error into a one-line
:class:`~dbrestore.exceptions.BackupFormatError` with the file and byte offset, and refuses

- a row longer than ``MAX_ROW_BYTES`` (a gzip bomb of one line, one endless string);
- a compressed file inflating more than ``MAX_INFLATION_RATIO`` times past its first 16 MiB;
- a run of digits longer than Python's integer limit (ijson's C parser crashes on one);
- a value nested deeper than ``MAX_NESTING`` (converting it would exhaust the stack).

Readers call :meth:`BoundedReader.mark` where a row ends; the row bound counts bytes from there.
"""

from __future__ import annotations

import decimal
import lzma
import re
import stat
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from .. import conf
from ..exceptions import BackupFormatError, InputTooLargeError
from ..storage import StoragePath

#: Inflation is only judged past this many decompressed bytes: small files never trip it.
RATIO_FLOOR = 16 * 1024**2
#: ijson reads this much at a time: its default, fastest for rows of ordinary size. A row
#: already longer than 1 MiB is read in ever larger pieces (half its length so far), as ijson
#: takes quadratic time over one long string read 64 KiB at a time (64 MB: 43 s, against 0.6 s).
PARSER_BUFFER = 64 * 1024
_GROW_AFTER = 1024 * 1024
_DECODE_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)
_DIGITS = b"0123456789"
#: A \\uD800-\\uDBFF escape not followed by a \\uDC00-\\uDFFF one, and one of those not preceded by
#: the first kind; an escaped backslash before the ``u`` (an even run of them) is not an escape.
_LONE_HIGH = re.compile(rb"(?<!\\)(?:\\\\)*\\u([dD][89abAB][0-9a-fA-F]{2})(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})")
_LONE_LOW = re.compile(rb"(?<!\\)(?:\\\\)*(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})")
_ESCAPE_TAIL = 12
_DIGIT_MAP = bytes(ord("d") if chr(i) in "0123456789" else ord(" ") for i in range(256))


def require_regular_file(path: Path | StoragePath) -> None:
    """Refuse FIFOs, devices and sockets before opening them (reading one may never end); an
    object in a storage is always a plain object."""
    if isinstance(path, StoragePath):
        return
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise BackupFormatError(f"cannot open: {exc.strerror or exc}", path=path) from exc
    if not stat.S_ISREG(mode):
        raise BackupFormatError("not a regular file (a FIFO, device or socket): refused", path=path)


def digit_limit() -> int | None:
    """The longest run of digits a parsed number may have (``MAX_NUMBER_DIGITS``, at most
    Python's own int limit, past which ijson's C backend crashes)."""
    limits = [n for n in (conf.get("MAX_NUMBER_DIGITS"), sys.get_int_max_str_digits()) if n]
    return min(limits) if limits else None


class BoundedReader:
    """A read-only binary stream over ``stream`` (decompressed) with the bounds above.

    ``raw`` is the compressed file under a decompressor (None when not compressed): its
    position says how many compressed bytes produced ``offset`` bytes.
    """

    def __init__(self, stream: IO[bytes], path: Path, *, raw: IO[bytes] | None = None, rows: bool = True):
        self._stream = stream
        self._raw = raw
        self.path = path
        self.offset = 0  # decompressed bytes read so far
        self._mark = 0
        self.max_row = conf.get("MAX_ROW_BYTES") if rows else None
        self.max_ratio = conf.get("MAX_INFLATION_RATIO") if raw is not None else None
        self._digits = digit_limit() if rows else None
        self._digit_run = b"d" * (self._digits + 1) if self._digits else None
        self._trailing_digits = 0
        self._escapes = False  # refuse lone surrogate escapes (see refuse_lone_surrogates)
        self._tail = b""

    # -- the stream protocol ijson, orjson callers and hashlib loops use
    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(PARSER_BUFFER), b""))
        row_so_far = self.offset - self._mark
        if self.max_row and row_so_far > _GROW_AFTER:
            size = max(size, min(row_so_far // 2, self.max_row + 1 - row_so_far))
        data = self._call(self._stream.read, size)
        self._advance(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        data = self._call(self._stream.readline, limit)
        self._advance(data)
        return data

    def lines(self) -> Iterator[bytes]:
        """The stream's lines, each at most ``MAX_ROW_BYTES`` long (each one is a row)."""
        max_row = self.max_row
        limit = (max_row + 1) if max_row else -1
        readline = self._stream.readline
        next_ratio_check = RATIO_FLOOR if self.max_ratio else float("inf")
        while True:
            try:
                line = readline(limit)
            except _DECODE_ERRORS as exc:
                raise self._corrupt(exc) from exc
            if not line:
                return
            if max_row and len(line) > max_row and not line.endswith(b"\n"):
                self._too_long()
            self.offset = self._mark = self.offset + len(line)
            if self.offset > next_ratio_check:
                self._check_ratio()
                next_ratio_check = self.offset + PARSER_BUFFER
            yield line

    def line_blocks(self, size: int) -> Iterator[bytes]:
        """The stream in pieces of about ``size`` bytes, each ending where a line ends, under the
        bounds :meth:`lines` keeps (a row of at most ``MAX_ROW_BYTES``, the inflation ratio).

        For conversion in other processes (:mod:`dbrestore.load.forked`): one read of ``size``
        bytes and one ``readline`` to finish its last line, instead of a Python step per line.
        """
        max_row = self.max_row
        limit = (max_row + 1) if max_row else -1
        while True:
            try:
                block = self._stream.read(size)
                if block and not block.endswith(b"\n"):
                    block += self._stream.readline(limit)
            except _DECODE_ERRORS as exc:
                raise self._corrupt(exc) from exc
            if not block:
                return
            if max_row and len(block) > max_row:
                self._check_line_lengths(block, max_row)
            self.offset = self._mark = self.offset + len(block)
            if self.max_ratio:
                self._check_ratio()
            yield block

    def _check_line_lengths(self, block: bytes, max_row: int) -> None:
        start = 0
        for line in block.split(b"\n"):
            if len(line) > max_row:
                self._mark = self.offset + start
                self._too_long()
            start += len(line) + 1

    def refuse_lone_surrogates(self) -> None:
        """From here on, refuse a lone surrogate escape: ijson, which reads rows from here, would
        read it as ``?``. (JSON Lines go through the standard library, which keeps it, and the
        converters reject that row.)"""
        self._escapes = True

    def mark(self) -> None:
        """A row ended at the current offset."""
        self._mark = self.offset

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            if self._raw is not None:
                self._raw.close()

    def __enter__(self) -> BoundedReader:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- the bounds
    def _call(self, method, argument):
        try:
            return method(argument)
        except _DECODE_ERRORS as exc:
            raise self._corrupt(exc) from exc

    def _corrupt(self, exc: Exception) -> BackupFormatError:
        return BackupFormatError(f"cannot read (corrupt or truncated): {exc}", path=self.path,
                                 position=f"byte {self.offset}")

    def _advance(self, data: bytes) -> None:
        self.offset += len(data)
        if self.max_row and self.offset - self._mark > self.max_row + PARSER_BUFFER:
            self._too_long()
        if self.max_ratio:
            self._check_ratio()
        if self._digit_run is not None and data:
            self._check_digits(data)
        if self._escapes:
            self._check_surrogates(data)

    def _too_long(self) -> None:
        raise InputTooLargeError(
            f"a row longer than {self.max_row} bytes (DBRESTORE['MAX_ROW_BYTES']): refused",
            path=self.path, position=f"from byte {self._mark}",
        )

    def _check_ratio(self) -> None:
        if self.offset <= RATIO_FLOOR:
            return
        compressed = max(self._raw.tell(), 1)
        if self.offset > self.max_ratio * compressed:
            raise InputTooLargeError(
                f"decompresses to more than {self.max_ratio} times its compressed size "
                f"(DBRESTORE['MAX_INFLATION_RATIO']): refused as a compression bomb",
                path=self.path, position=f"byte {self.offset}",
            )

    def _check_surrogates(self, data: bytes) -> None:
        """Refuse a lone UTF-16 surrogate escape (``"\\ud800"``), which ijson's C parser would read
        as ``?``, a changed value stored silently. The last bytes of each read are kept, so an
        escape or a pair split between two reads is seen whole."""
        window = self._tail + data
        judged = len(self._tail) - _ESCAPE_TAIL  # a match ending here or before was judged last time
        self._tail = window[-2 * _ESCAPE_TAIL:]  # the deferred matches and what precedes them
        if b"\\ud" not in window and b"\\uD" not in window:
            return
        for pattern in (_LONE_HIGH, _LONE_LOW):
            for match in pattern.finditer(window):
                if match.end() <= judged:
                    continue
                if match.end() > len(window) - _ESCAPE_TAIL and data:
                    continue  # its partner may come with the next read; the tail keeps it
                escape = match.group(1).decode("ascii")
                raise BackupFormatError(
                    f"a lone surrogate escape \\u{escape} (not valid UTF-16, so not valid text): refused",
                    path=self.path, position=f"near byte {self.offset - len(data)}",
                )

    def _check_digits(self, data: bytes) -> None:
        leading = len(data) - len(data.lstrip(_DIGITS))
        found = self._trailing_digits + leading > self._digits or self._digit_run in data.translate(_DIGIT_MAP)
        if found:
            raise InputTooLargeError(
                f"a number of more than {self._digits} digits (DBRESTORE['MAX_NUMBER_DIGITS']): refused",
                path=self.path, position=f"near byte {self.offset - len(data)}",
            )
        self._trailing_digits = (self._trailing_digits + len(data)) if leading == len(data) else (
            len(data) - len(data.rstrip(_DIGITS))
        )


class RowCheck:
    """Refuses a value nested deeper than ``MAX_NESTING`` levels, and (``numbers``) a decimal
    whose exponent would make a huge integer (``1e2000000``: 2 million digits).

    orjson walks a row in C first (it stops at 255 levels and hands each Decimal to
    :meth:`_decimal`); only a row it refuses (too deep, an integer past 64 bits) is walked again
    here, to say exactly what is wrong, or let it through.
    """

    def __init__(self, path: Path, *, numbers: bool = True):
        self.path = path
        self.max_digits = (conf.get("MAX_NUMBER_DIGITS") or 0) if numbers else 0
        self.max_depth = conf.get("MAX_NESTING") or 0
        self.position = ""

    def __call__(self, row: dict, position: str) -> None:
        if not (self.max_depth or self.max_digits):
            return
        self.position = position
        try:
            orjson.dumps(row, default=self._decimal)
        except orjson.JSONEncodeError as exc:
            if isinstance(exc.__cause__, InputTooLargeError):
                raise exc.__cause__ from None
            self._walk(row)

    def _decimal(self, value: Any) -> None:
        if isinstance(value, decimal.Decimal):
            self._number(value)
            return None
        raise TypeError

    def _walk(self, row: dict) -> None:
        todo: list[tuple[Any, int]] = [(row, 0)]
        while todo:
            container, depth = todo.pop()
            if self.max_depth and depth > self.max_depth:
                raise InputTooLargeError(
                    f"a value nested more than {self.max_depth} levels deep (DBRESTORE['MAX_NESTING']): refused",
                    path=self.path, position=self.position,
                )
            for value in container.values() if type(container) is dict else container:
                kind = type(value)
                if kind is dict or kind is list:
                    todo.append((value, depth + 1))
                elif kind is decimal.Decimal:
                    self._number(value)

    def _number(self, value: decimal.Decimal) -> None:
        if self.max_digits and value.is_finite() and value.adjusted() > self.max_digits:
            raise InputTooLargeError(
                f"the number {str(value)[:20]} has more than {self.max_digits} digits "
                "(DBRESTORE['MAX_NUMBER_DIGITS']): refused", path=self.path, position=self.position,
            )
