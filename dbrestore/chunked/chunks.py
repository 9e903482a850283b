"""A restore as a list of chunks: the unit of work, of progress and of checkpoints.

Each table is cut into byte ranges of its JSON Lines file on line boundaries (about
``DBRESTORE["CHUNK_BYTES"]`` each, see :mod:`dbrestore.sources.ranges`), or is one chunk when
its file cannot be read from the middle. The chunks are grouped by FK level
(:func:`~dbrestore.chunked.levels.load_levels`): every chunk of a level may load once the levels
before it are done, side by side with the others of its level.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dbrestore import conf
from dbrestore.chunked.levels import load_levels
from dbrestore.integrity import classify_foreign_keys
from dbrestore.options import RestoreOptions, default_convert_processes
from dbrestore.plan.build import Plan, PlannedTable
from dbrestore.sources.base import BlockSource, PositionedRow
from dbrestore.sources.ranges import RangeBlocks, line_ranges, range_rows


@dataclass(frozen=True)
class Chunk:
    """Rows ``start`` to ``end`` (bytes; None: to the end of the file) of table ``table`` (a
    model label), the ``index``-th chunk of that table; its rows are numbered from ``first_line``."""

    table: str
    index: int
    start: int = 0
    end: int | None = None
    first_line: int = 1
    level: int = 0
    position: int = 0  # its place in the whole restore's order

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})

    def rows(self, table: PlannedTable) -> Iterator[PositionedRow]:
        return range_rows(table.data, self.start, self.end, self.first_line)

    def blocks(self, table: PlannedTable) -> BlockSource | None:
        """The chunk's rows as blocks of whole lines (JSON Lines only), for forked conversion."""
        data = table.data
        if data.blocks is None:
            return None
        if self.start == 0 and self.end is None:
            return data.blocks
        return (
            RangeBlocks(Path(data.origin), self.start, self.end, self.first_line)
            if isinstance(data.origin, Path)
            else None
        )


def conversion_processes(opts: RestoreOptions, table: PlannedTable) -> int:
    """Processes converting a chunk's rows when the restoring process loads it (1: itself):
    as in one transaction (:meth:`RestoreOptions.conversion_processes`), the COPY path forks
    ``--convert-processes`` children for a JSON Lines table of ``CONVERT_MIN_ROWS`` rows or more.
    ``--jobs N`` workers and ``--distribute`` jobs convert their chunk themselves."""
    processes = default_convert_processes() if opts.convert_processes is None else opts.convert_processes
    if processes <= 1 or not opts.uses_copy() or table.data.blocks is None:
        return 1
    return processes if table.data.at_least_rows(int(conf.get("CONVERT_MIN_ROWS"))) else 1


def chunk_bytes(value: int | None = None) -> int:
    """The chunk size: ``value`` (``--chunk-bytes``) or ``DBRESTORE["CHUNK_BYTES"]``."""
    return int(value or conf.get("CHUNK_BYTES"))


def plan_chunks(plan: Plan, size: int) -> list[list[Chunk]]:
    """The plan's tables as chunks of about ``size`` bytes, grouped by FK level, in load order."""
    foreign_keys = classify_foreign_keys(plan)
    parents = {model: [edge.parent for edge in settled] for model, (settled, _) in foreign_keys.items()}
    tables = {table.model: table for table in plan.tables}
    levels: list[list[Chunk]] = []
    position = 0
    for number, models in enumerate(load_levels(plan.models, parents)):
        level: list[Chunk] = []
        for model in models:
            for index, (start, end, first_line) in enumerate(line_ranges(tables[model].data, size)):
                level.append(Chunk(model._meta.label, index, start, end, first_line, number, position))
                position += 1
        levels.append(level)
    return levels
