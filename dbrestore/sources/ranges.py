"""Byte ranges of a JSON Lines file, on line boundaries: the chunks a restore is cut into.

Only an uncompressed, unencrypted local JSON Lines file can be read from the middle: a JSON
array must be parsed from its first byte, and a compressed or encrypted stream decoded from
its start. Such files (and dumpdata, keyed objects, rejects files) are one chunk each.

Planning reads the file once (newlines counted at memory speed, no JSON parsed), so that each
range knows the line it starts on: the positions in rejects files stay those of the whole file.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dbrestore.files import layers
from dbrestore.files.storage import StoragePath
from dbrestore.sources.base import PositionedRow, TableData, guarded
from dbrestore.sources.bounds import BoundedReader
from dbrestore.sources.readers import JsonLinesBlocks, is_json_lines_name, iter_json_lines_stream, iter_rows

_BLOCK = 1024 * 1024

#: (start byte, end byte or None for the end of the file, the line the range starts on)
ByteRange = tuple[int, int | None, int]


def splittable(data: TableData) -> bool:
    """A table whose rows are a plain JSON Lines file on the local disk, read by :func:`iter_rows`."""
    opener = data.open_rows
    path = data.origin
    return (
        isinstance(opener, functools.partial)
        and opener.func is iter_rows
        and not isinstance(path, StoragePath)
        and is_json_lines_name(path)
        and layers.compression_suffix(path) is None
        and not layers.is_encrypted(path)
    )


def line_ranges(data: TableData, chunk_bytes: int) -> list[ByteRange]:
    """The table's file cut into ranges of about ``chunk_bytes`` ending on a newline (one range,
    the whole file, when it cannot be split or is small)."""
    path = data.origin
    # (a StoragePath is not splittable)
    if not splittable(data) or isinstance(path, StoragePath) or chunk_bytes <= 0 or path.stat().st_size <= chunk_bytes:
        return [(0, None, 1)]
    ranges: list[ByteRange] = []
    start, line = 0, 1
    with open(path, "rb") as stream:
        while True:
            newlines, end = _scan(stream, start, start + chunk_bytes)
            if end is None:
                ranges.append((start, None, line))
                return ranges
            ranges.append((start, end, line))
            start, line = end, line + newlines


def _scan(stream: Any, start: int, target: int) -> tuple[int, int | None]:
    """From ``start``: the newlines up to the first one at or after ``target`` (included), and
    the offset just after it (None when the file ends first, or ends right there)."""
    stream.seek(start)
    newlines, offset = 0, start
    while offset < target:
        block = stream.read(min(_BLOCK, target - offset))
        if not block:
            return newlines, None
        newlines += block.count(b"\n")
        offset += len(block)
    while True:
        block = stream.read(_BLOCK)
        if not block:
            return newlines, None
        found = block.find(b"\n")
        if found >= 0:
            end = offset + found + 1
            stream.seek(end)
            if not stream.read(1):
                return newlines + 1, None  # the newline ends the file: this range is the last
            return newlines + 1, end
        offset += len(block)


class _Range(io.RawIOBase):
    """Bytes ``start`` to ``end`` of a file (to its end when ``end`` is None)."""

    def __init__(self, path: Path, start: int, end: int | None):
        self._file = open(path, "rb")
        self._file.seek(start)
        self._left = None if end is None else end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer) if self._left is None else min(len(buffer), self._left)
        data = self._file.read(size)
        buffer[: len(data)] = data
        if self._left is not None:
            self._left -= len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
            super().close()


def _range_rows(path: Path, start: int, end: int | None, first_line: int) -> Iterator[PositionedRow]:
    stream = BoundedReader(io.BufferedReader(_Range(path, start, end), buffer_size=_BLOCK), path)
    with stream:
        yield from iter_json_lines_stream(stream, path, first_line)


class RangeBlocks(JsonLinesBlocks):
    """One range of a JSON Lines file as blocks of whole lines (a chunk's rows converted in
    forked processes, see :mod:`dbrestore.load.forked`)."""

    def __init__(self, path: Path, start: int, end: int | None, first_line: int):
        super().__init__(path)
        self.start, self.end, self.first_line = start, end, first_line

    def blocks(self, size: int) -> Iterator[tuple[int, bytes]]:
        assert isinstance(self.path, Path)
        first_line = self.first_line
        with BoundedReader(
            io.BufferedReader(_Range(self.path, self.start, self.end), buffer_size=_BLOCK), self.path
        ) as stream:
            for block in stream.line_blocks(size):
                yield first_line, block
                first_line += block.count(b"\n")


def range_rows(data: TableData, start: int, end: int | None, first_line: int) -> Iterator[PositionedRow]:
    """The rows of one range of the table's file (all its rows for the range ``(0, None, 1)``)."""
    if start == 0 and end is None:
        return data.rows()
    origin = data.origin
    assert isinstance(origin, Path), "only local files are cut into ranges (see splittable)"
    return guarded(functools.partial(_range_rows, origin, start, end, first_line), origin)
