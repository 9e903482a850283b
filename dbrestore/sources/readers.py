"""Streaming row readers for JSON arrays and JSON Lines, compressed or not, encrypted or not.

Both read in constant memory: JSON arrays through ijson's C backend, one item at a time;
JSON Lines line by line through orjson, every read bounded (:mod:`.bounds`). Errors name the
file and the line or row. The bytes come through :func:`open_binary`, which peels compression
and encryption (:mod:`dbrestore.files.layers`) off a local file or a stored object alike.
"""

from __future__ import annotations

import decimal
import functools
import io
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import ijson
import orjson

from dbrestore import conf
from dbrestore.exceptions import BackupFormatError, first_line
from dbrestore.files import layers
from dbrestore.files.storage import Location, StoragePath
from dbrestore.sources.base import PositionedRow, UnreadableRow, guarded
from dbrestore.sources.bounds import PARSER_BUFFER, BoundedReader, RowCheck, require_regular_file

#: orjson reads integers beyond 64 bits as floats (rounded): lines with 20 digits in a row are
#: parsed by the standard library instead, which keeps every integer exact (as loaddata does).
#: Found by mapping every digit to "9" (bytes.translate, C speed: a regex costs 3x orjson).
_DIGITS_AS_NINES = bytes.maketrans(b"0123456789", b"9999999999")
_TWENTY_DIGITS = b"9" * 20


class _BeyondFloat(ValueError):
    """A JSON number beyond a float's range: valid JSON, so the row is rejected, not the file."""


def _finite_float(text: str) -> float:
    """A JSON number as a float; one beyond a float's range (``1e2000000``) is refused, not infinity."""
    value = float(text)
    if math.isinf(value):
        raise _BeyondFloat(f"number {text[:32]} is out of range")
    return value


def _float_or_decimal(text: str) -> float | decimal.Decimal:
    """A JSON number as a float, or as a Decimal when it is beyond a float's range (as a JSON
    array's reader gives it: the converters reject it in the column, with the reason)."""
    value = float(text)
    return decimal.Decimal(text) if math.isinf(value) else value


def loads_line(line: bytes):
    """One JSON Lines line as ``json.loads`` (loaddata) reads it, at orjson's speed where they
    agree. orjson rounds integers beyond 64 bits to floats and refuses lone surrogates, NaN and
    deep nesting: such lines go through the standard library (whose lone surrogates the
    converters then reject with the row), and an error stays orjson's."""
    if _TWENTY_DIGITS not in line.translate(_DIGITS_AS_NINES):
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            error = exc
    else:
        error = None
    try:
        return json.loads(line, parse_float=_finite_float)
    except _BeyondFloat:
        # Valid JSON with a number beyond a float's range: that number read as a Decimal; one of
        # more than MAX_NUMBER_DIGITS digits makes the row an UnreadableRow, as in a JSON array.
        row = json.loads(line, parse_float=_float_or_decimal)
        reason = RowCheck(None).reason(row) if isinstance(row, dict) else None
        return row if reason is None else UnreadableRow(row, reason)
    except (ValueError, RecursionError) as exc:
        deep = _deep_line(line) if isinstance(exc, RecursionError) else None
        if deep is not None:
            return deep
        if error is not None:
            raise error from None
        raise orjson.JSONDecodeError(str(exc), line.decode("utf-8", "replace"), 0) from exc


def _deep_line(line: bytes):
    """A line nested too deeply for the standard library, read from ijson's C events (no depth
    limit, no prefixes: ijson's ``items`` takes memory quadratic in the depth) when it is valid
    JSON; None when it is not. Containers deeper than ``MAX_NESTING`` + 1 are kept empty: the
    row is rejected by its :class:`RowCheck` all the same, and written to the rejects file
    without the part no restore could take."""
    limit = (conf.get("MAX_NESTING") or 1000) + 1
    stack: list = []
    keys: list = []
    skipped = 0  # containers open beyond the limit
    root = None
    try:
        for event, value in ijson.basic_parse(io.BytesIO(line), use_float=False):  # True: 64-bit integers only
            if value.__class__ is decimal.Decimal:
                value = _float_or_decimal(str(value))  # as json.loads reads it
            if skipped:
                skipped += (
                    1 if event in ("start_map", "start_array") else -1 if event in ("end_map", "end_array") else 0
                )
            elif event == "map_key":
                keys.append(value)
            elif event in ("start_map", "start_array"):
                container: dict[str, Any] | list[Any] = {} if event == "start_map" else []
                if stack:
                    _add(stack[-1], keys, container)
                else:
                    root = container
                if len(stack) >= limit:
                    skipped = 1  # kept empty
                else:
                    stack.append(container)
            elif event in ("end_map", "end_array"):
                stack.pop()
            elif stack:
                _add(stack[-1], keys, value)
            else:
                root = value
    except (ijson.JSONError, UnicodeDecodeError, ValueError):
        return None
    return root


def _add(container, keys: list, value) -> None:
    if container.__class__ is dict:
        container[keys.pop()] = value
    else:
        container.append(value)


def compression_suffix(path: Location) -> str | None:
    return layers.compression_suffix(path)


JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


def data_suffix(path: Location) -> str:
    """``.json`` or ``.jsonl`` (or another) ignoring compression and encryption suffixes."""
    return Path(layers.content_name(path)).suffix.lower()


def is_json_lines_name(path: Location) -> bool:
    """Named as JSON Lines (``.jsonl`` or ``.ndjson``, under any compression or encryption suffix)."""
    return data_suffix(path) in JSON_LINES_SUFFIXES


def open_binary(path: Location, *, rows: bool = True) -> BoundedReader:
    """Open a data file (a local path or a stored object) for reading, decrypting ``.gpg`` and
    decompressing ``.gz``, ``.bz2``, ``.xz`` and ``.zst`` as a stream, through
    :class:`BoundedReader` (``rows=False``: no row or digit bounds, for hashing)."""
    if not isinstance(path, StoragePath):
        require_regular_file(path)
    try:
        stream, compressed = layers.open_layers(path)
    except OSError as exc:
        raise BackupFormatError(f"cannot open: {exc.strerror or exc}", path=path) from exc
    return BoundedReader(stream, path, raw=compressed, rows=rows)


def iter_json_lines(path: Location) -> Iterator[PositionedRow]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON Lines file."""
    with open_binary(path) as stream:
        yield from iter_json_lines_stream(stream, path)


def iter_json_lines_stream(stream: BoundedReader, path: Location, first_line: int = 1) -> Iterator[PositionedRow]:
    """The rows of JSON Lines read from ``stream``, numbered from ``first_line`` (a chunk of a
    file starts on a later line, see :mod:`.ranges`)."""
    return rows_of_lines(stream.lines(), path, first_line)


class JsonLinesBlocks:
    """A JSON Lines file read as blocks of whole lines, each parsed on its own (in another
    process, see :mod:`dbrestore.load.forked`) into exactly the rows :func:`iter_json_lines` reads."""

    def __init__(self, path: Location):
        self.path = path

    def blocks(self, size: int) -> Iterator[tuple[int, bytes]]:
        """``(number of its first line, block)``: blocks of about ``size`` bytes, read under the
        bounds of :meth:`BoundedReader.line_blocks`."""
        first_line = 1
        with open_binary(self.path) as stream:
            for block in stream.line_blocks(size):
                yield first_line, block
                first_line += block.count(b"\n")

    def rows(self, first_line: int, block: bytes) -> Iterator[PositionedRow]:
        """The rows of one block, behind the readers' error boundary."""
        return guarded(functools.partial(self._parse, first_line, block), self.path)

    def _parse(self, first_line: int, block: bytes) -> Iterator[PositionedRow]:
        return rows_of_lines(io.BytesIO(block), self.path, first_line)  # lines as readline cuts them


def rows_of_lines(lines: Iterable[bytes], path: Location, first_line: int) -> Iterator[PositionedRow]:
    """Each non-blank line parsed (as ``json.loads``, at orjson's speed), numbered from ``first_line``."""
    check = RowCheck(path, numbers=False)
    deep_enough = 2 * check.max_depth if check.max_depth else float("inf")  # a shorter line cannot nest deeper
    for line_number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        try:
            row = loads_line(line)
        except orjson.JSONDecodeError as exc:
            raise BackupFormatError(f"invalid JSON: {exc}", path=path, position=f"line {line_number}") from exc
        if not isinstance(row, dict):
            raise BackupFormatError(
                f"expected an object, found {type(row).__name__}", path=path, position=f"line {line_number}"
            )
        if row.__class__ is dict and len(line) > deep_enough and line.count(b"[") + line.count(b"{") > check.max_depth:
            reason = check.reason(row)
            if reason is not None:
                row = UnreadableRow(row, reason)
        yield line_number, row


def iter_json_array(path: Location, prefix: str = "item") -> Iterator[PositionedRow]:
    """Yield ``(row_number, object)`` for each item of a JSON array (or of the array at ``prefix``)."""
    with open_binary(path) as stream:
        yield from iter_json_array_stream(stream, path, prefix)


def iter_json_array_stream(stream: BoundedReader, path: Location, prefix: str = "item") -> Iterator[PositionedRow]:
    position = 0
    check = RowCheck(path)
    try:
        stream.mark_lone_surrogates()
        items = ijson.items(stream, prefix, use_float=False, buf_size=PARSER_BUFFER)
        for position, row in enumerate(items, start=1):
            stream.mark()
            if not isinstance(row, dict):
                raise BackupFormatError(
                    f"expected an object, found {type(row).__name__}", path=path, position=f"row {position}"
                )
            if stream.rewrote_escapes:
                row = stream.unmark(row)
            reason = check.reason(row)
            yield position, (row if reason is None else UnreadableRow(row, reason))
    except ijson.JSONError as exc:
        raise BackupFormatError(
            f"invalid or truncated JSON: {first_line(exc)}", path=path, position=f"after row {position}"
        ) from exc
    except UnicodeDecodeError as exc:  # ijson decodes strings itself: bad UTF-8, a lone surrogate escape
        raise BackupFormatError(
            f"a string that is not valid UTF-8: {first_line(exc)}", path=path, position=f"after row {position}"
        ) from exc


def iter_rows(path: Location) -> Iterator[PositionedRow]:
    """Rows of a ``.jsonl`` or ``.json`` data file (either optionally compressed)."""
    if is_json_lines_name(path):
        return iter_json_lines(path)
    return iter_json_array(path)


def first_significant_byte(path: Location) -> bytes:
    """The first non-whitespace byte of a (possibly compressed) file, ``b""`` when empty."""
    with open_binary(path) as stream:
        while chunk := stream.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                return stripped[:1]
    return b""
