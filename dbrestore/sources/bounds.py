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
import io
import lzma
import re
import stat
import sys
import zlib
from collections.abc import Iterator
from typing import IO, Any

import orjson

from dbrestore import conf
from dbrestore.exceptions import BackupFormatError, InputTooLargeError
from dbrestore.files.storage import Location, StoragePath

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
_MARK = "\ufdd0"
_MARKED = re.compile("\ufdd0([0-9a-f]{4})\ufdd1")


def _unmark_text(text: str) -> str:
    return _MARKED.sub(lambda match: chr(int(match.group(1), 16)), text)


_DIGIT_MAP = bytes(ord("d") if chr(i) in "0123456789" else ord(" ") for i in range(256))


def require_regular_file(path: Location) -> None:
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

    def __init__(self, stream: IO[bytes], path: Location, *, raw: io.RawIOBase | None = None, rows: bool = True):
        self._stream = stream
        self._raw = raw
        self.path = path
        self.offset = 0  # decompressed bytes read so far
        self._mark = 0
        self.max_row: int | None = conf.get("MAX_ROW_BYTES") if rows else None
        self.max_ratio: float | None = conf.get("MAX_INFLATION_RATIO") if raw is not None else None
        self._digits: int | None = digit_limit() if rows else None
        self._digit_run: bytes | None = b"d" * (self._digits + 1) if self._digits else None
        self._trailing_digits = 0
        self._escapes = False  # mark lone surrogate escapes (see mark_lone_surrogates)
        self._held = b""  # the last bytes read, held back until the next read (an escape may be cut there)
        self._context = b""  # the last bytes handed out, as read (what precedes the next ones)
        #: Whether a lone surrogate escape was marked: rows read from here need :meth:`unmark`.
        self.rewrote_escapes = False

    # -- the stream protocol ijson, orjson callers and hashlib loops use
    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(PARSER_BUFFER), b""))
        row_so_far = self.offset - self._mark
        if self.max_row and row_so_far > _GROW_AFTER:
            size = max(size, min(row_so_far // 2, self.max_row + 1 - row_so_far))
        data = self._call(self._stream.read, size)
        self._advance(data)
        if self._escapes:
            while data and len(self._held) + len(data) <= _ESCAPE_TAIL:  # never hand out b"" before the end
                self._held += data
                data = self._call(self._stream.read, size)
                self._advance(data)
            return self._mark_escapes(data)
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

    def mark_lone_surrogates(self) -> None:
        """From here on, mark each lone surrogate escape (``"\\ud800"``) so that it is read as
        that code point (:meth:`unmark`), as ``json.loads`` reads it in JSON Lines, where the
        converters reject its row: ijson's C parser would read it as ``?``, a changed value
        stored silently."""
        self._escapes = True

    def _mark_escapes(self, data: bytes) -> bytes:
        """``data`` (held back by its last bytes) with each lone surrogate escape ``\\udXYZ``
        written ``\\ufdd0dXYZ\\ufdd1``: noncharacters (U+FDD0-U+FDEF are reserved for a
        program's internal use) around its hex digits, which :meth:`unmark` turns back."""
        window = self._held + data
        cut = len(window) - _ESCAPE_TAIL if data else len(window)
        ready, self._held = window[:cut], window[cut:]
        before = self._context
        self._context = (before + ready)[-_ESCAPE_TAIL:]
        seen = before + ready + self._held
        if b"\\ud" not in seen and b"\\uD" not in seen:
            return ready
        starts = []
        for pattern in (_LONE_HIGH, _LONE_LOW):
            for match in pattern.finditer(seen):
                start = match.start(1) - 2 - len(before)  # the backslash of the escape, in ``ready``
                if 0 <= start < len(ready):
                    starts.append(start)
        if not starts:
            return ready
        self.rewrote_escapes = True
        pieces, done = [], 0
        for start in sorted(starts):
            pieces += [ready[done:start], b"\\ufdd0", ready[start + 2 : start + 6].lower(), b"\\ufdd1"]
            done = start + 6
        pieces.append(ready[done:])
        return b"".join(pieces)

    @staticmethod
    def unmark(row: Any) -> Any:
        """``row`` with each marked lone surrogate (see :meth:`_mark_escapes`) the code point again."""
        fix = _unmark_text
        todo = [row]
        while todo:
            container = todo.pop()
            if type(container) is dict:
                items = list(container.items())
                if any(type(key) is str and _MARK in key for key, _ in items):
                    container.clear()
                    container.update((fix(key) if type(key) is str else key, value) for key, value in items)
                    items = list(container.items())
                for key, value in items:
                    if type(value) is str:
                        if _MARK in value:
                            container[key] = fix(value)
                    elif type(value) is dict or type(value) is list:
                        todo.append(value)
            else:
                for index, value in enumerate(container):
                    if type(value) is str:
                        if _MARK in value:
                            container[index] = fix(value)
                    elif type(value) is dict or type(value) is list:
                        todo.append(value)
        return row

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
        return BackupFormatError(
            f"cannot read (corrupt or truncated): {exc}", path=self.path, position=f"byte {self.offset}"
        )

    def _advance(self, data: bytes) -> None:
        self.offset += len(data)
        if self.max_row and self.offset - self._mark > self.max_row + PARSER_BUFFER:
            self._too_long()
        if self.max_ratio:
            self._check_ratio()
        if self._digit_run is not None and data:
            self._check_digits(data)

    def _too_long(self) -> None:
        raise InputTooLargeError(
            f"a row longer than {self.max_row} bytes (DBRESTORE['MAX_ROW_BYTES']): refused",
            path=self.path,
            position=f"from byte {self._mark}",
        )

    def _check_ratio(self) -> None:
        if self.offset <= RATIO_FLOOR or self._raw is None or self.max_ratio is None:  # set with raw
            return
        compressed = max(self._raw.tell(), 1)
        if self.offset > self.max_ratio * compressed:
            raise InputTooLargeError(
                f"decompresses to more than {self.max_ratio} times its compressed size "
                f"(DBRESTORE['MAX_INFLATION_RATIO']): refused as a compression bomb",
                path=self.path,
                position=f"byte {self.offset}",
            )

    def _check_digits(self, data: bytes) -> None:
        if self._digits is None or self._digit_run is None:  # set together (rows=True)
            return
        leading = len(data) - len(data.lstrip(_DIGITS))
        found = self._trailing_digits + leading > self._digits or self._digit_run in data.translate(_DIGIT_MAP)
        if found:
            raise InputTooLargeError(
                f"a number of more than {self._digits} digits (DBRESTORE['MAX_NUMBER_DIGITS']): refused",
                path=self.path,
                position=f"near byte {self.offset - len(data)}",
            )
        self._trailing_digits = (
            (self._trailing_digits + len(data)) if leading == len(data) else (len(data) - len(data.rstrip(_DIGITS)))
        )


class RowCheck:
    """Finds a value nested deeper than ``MAX_NESTING`` levels, and (``numbers``) a decimal whose
    exponent would make a huge integer (``1e2000000``: 2 million digits): ``reason(row)`` says
    which column holds it and why (the row is then an
    :class:`~dbrestore.sources.base.UnreadableRow`, rejected with that reason), or None.

    orjson walks a row in C first (it stops at 255 levels and hands each Decimal to
    :meth:`_decimal`); only a row it refuses (too deep, an integer past 64 bits) is walked again
    here, to say exactly what is wrong, or let it through.
    """

    def __init__(self, path: Location | None, *, numbers: bool = True):
        self.path = path
        self.max_digits = (conf.get("MAX_NUMBER_DIGITS") or 0) if numbers else 0
        self.max_depth = conf.get("MAX_NESTING") or 0

    def reason(self, row: dict) -> str | None:
        if not (self.max_depth or self.max_digits):
            return None
        try:
            orjson.dumps(row, default=self._decimal)
        except orjson.JSONEncodeError as exc:
            if isinstance(exc.__cause__, _TooLong):
                return self._in_column(row, exc.__cause__.args[0])
            return self._walk(row)
        return None

    def _decimal(self, value: Any) -> None:
        if isinstance(value, decimal.Decimal):
            problem = self._number(value)
            if problem:
                raise _TooLong(problem)
            return None
        raise TypeError

    def _in_column(self, row: dict, problem: str) -> str:
        """``problem`` with the column whose value has it (the first one, for a number)."""
        for key, value in _columns(row):
            if self._walk({key: value}) is not None:
                return f"column {key!r}: {problem}"
        return problem

    def _walk(self, row: dict) -> str | None:
        todo: list[tuple[Any, int, Any]] = [(value, 1, key) for key, value in reversed(list(_columns(row)))]
        while todo:
            value, depth, column = todo.pop()
            kind = type(value)
            if kind is dict or kind is list:
                if self.max_depth and depth > self.max_depth:
                    return (
                        f"column {column!r}: a value nested more than {self.max_depth} levels deep "
                        "(DBRESTORE['MAX_NESTING'])"
                    )
                for item in value.values() if kind is dict else value:
                    todo.append((item, depth + 1, column))
            elif kind is decimal.Decimal:
                problem = self._number(value)
                if problem:
                    return f"column {column!r}: {problem}"
        return None

    def _number(self, value: decimal.Decimal) -> str | None:
        if self.max_digits and value.is_finite() and value.adjusted() > self.max_digits:
            return (
                f"the number {str(value)[:20]} has more than {self.max_digits} digits (DBRESTORE['MAX_NUMBER_DIGITS'])"
            )
        return None


class _TooLong(Exception):
    pass


def _columns(row: dict):
    """A row's (column, value) pairs; a dumpdata object's are those of its ``fields``."""
    for key, value in row.items():
        if key == "fields" and type(value) is dict and "model" in row:
            yield from value.items()
        else:
            yield key, value
