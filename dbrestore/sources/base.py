"""What every backup reader produces: a Backup made of TableData streams."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from dbrestore.exceptions import BackupFormatError, DbRestoreError, describe
from dbrestore.files.storage import Location, StoragePath

Row = dict[str, Any]
#: A row and its 1-based position in its file (line for JSON Lines, item for arrays).
PositionedRow = tuple[int, Row]


class UnreadableRow(dict):
    """A row the reader could isolate but not read as it is written: a value nested deeper than
    ``MAX_NESTING``, a number of more than ``MAX_NUMBER_DIGITS`` digits or beyond a float's range,
    a dumpdata object whose M2M value is not a list.
    It holds what could be read (for the rejects file), and ``reason`` says what is wrong: the
    converter rejects it with that reason (:meth:`dbrestore.convert.row_converter.RowConverter.convert`),
    the rest of the file goes on."""

    def __init__(self, row: Row, reason: str):
        super().__init__(row)
        self.reason = reason

    def __reduce__(self):  # to and from the converting processes
        return (UnreadableRow, (dict(self), self.reason))


class BlockSource(Protocol):
    """A table's rows as blocks of bytes, each parsed on its own (in another process): see
    :class:`~dbrestore.sources.readers.JsonLinesBlocks`."""

    def blocks(self, size: int) -> Iterator[tuple[int, bytes]]: ...

    def rows(self, first_line: int, block: bytes) -> Iterator[PositionedRow]: ...


@dataclass
class TableData:
    """One table's rows in a backup, readable as a stream as many times as needed."""

    key: str  # the table's name in the backup: a db_table, a model label, a file stem
    origin: Location  # the file the rows come from, for messages
    open_rows: Callable[[], Iterator[PositionedRow]]
    model_label: str | None = None  # when the backup says which model it is
    expected_rows: int | None = None  # from the manifest
    expected_sha256: str | None = None  # of the uncompressed data file, from the manifest
    columns: list[str] | None = None
    #: JSON Lines only: the same rows as ``open_rows``, readable as blocks of whole lines.
    blocks: BlockSource | None = None
    #: A many-to-many table of a dumpdata fixture: each object that gives the field, as a row
    #: holding only the through table's FK to it. Its list is set exactly (loaddata's ``set()``):
    #: a merge deletes the through rows of these owners before loading the fixture's.
    open_owners: Callable[[], Iterator[PositionedRow]] | None = None

    def owners(self) -> Iterator[PositionedRow]:
        assert self.open_owners is not None
        return guarded(self.open_owners, self.origin)

    def rows(self) -> Iterator[PositionedRow]:
        return guarded(self.open_rows, self.origin)

    def at_least_rows(self, rows: int) -> bool:
        """Whether the table holds ``rows`` rows or more, as far as can be told before reading it:
        the manifest's count; else the file's size, at 100 bytes a row (a dumpdata object takes
        well over 100 bytes, so a smaller file holds fewer rows); an unknown size counts as big."""
        if self.expected_rows is not None:
            return self.expected_rows >= rows
        if isinstance(self.origin, StoragePath):  # Path() of it raised TypeError: counted as big
            return True
        try:
            return Path(self.origin).stat().st_size >= rows * 100
        except (OSError, TypeError):
            return True


def guarded(open_rows: Callable[[], Iterator[PositionedRow]], origin: Location) -> Iterator[PositionedRow]:
    """The error boundary of every reader: whatever a reader raises that is not already one of
    dbrestore's errors becomes a :class:`BackupFormatError` naming the file and the last row read."""
    position = None
    try:
        for position, row in open_rows():
            yield position, row
    except DbRestoreError:
        raise
    except Exception as exc:
        where = f"after row {position}" if position is not None else "before the first row"
        raise BackupFormatError(f"cannot read: {describe(exc)}", path=origin, position=where) from exc


@dataclass
class Backup:
    """A readable backup: its tables and what it says about itself."""

    path: Location
    format: str
    tables: list[TableData]
    metadata: dict[str, Any] = field(default_factory=dict)
    #: What the reader did that the report must say (a symbolic link followed).
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` items (the last one shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
