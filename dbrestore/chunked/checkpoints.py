"""RestoreChunk rows: the planned chunks of a ``--no-atomic`` restore and their checkpoints.

They live in the restored database, so that a chunk's checkpoint commits with its rows; the
table is created there on first use when that database has not run dbrestore's migrations
(a second database restored with the history on ``default``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import connections
from django.db.models import F
from django.utils import timezone

from dbrestore.chunked.chunks import Chunk
from dbrestore.models import RestoreChunk, table_totals
from dbrestore.runs.report import TableResult

COUNTS = ("total", "inserted", "skipped", "rejected")


_present: set[str] = set()  # the aliases whose database has the table (asked once per process)


def has_table(using: str) -> bool:
    if using not in _present and RestoreChunk._meta.db_table in connections[using].introspection.table_names():
        _present.add(using)
    return using in _present


def ensure_table(using: str) -> None:
    """Create dbrestore_restorechunk in ``using`` if it is not there."""
    if has_table(using):
        return
    with connections[using].schema_editor() as editor:
        editor.create_model(RestoreChunk)
    _present.add(using)


def record_planned(run_id: int, levels: list[list[Chunk]], using: str) -> None:
    """Write the planned chunks (replacing any of an earlier, unprepared attempt)."""
    ensure_table(using)
    chunks = RestoreChunk.objects.using(using)
    chunks.filter(run_id=run_id).delete()
    chunks.bulk_create(
        [
            RestoreChunk(
                run_id=run_id,
                table=c.table,
                index=c.index,
                level=c.level,
                position=c.position,
                start=c.start,
                end=c.end,
                first_line=c.first_line,
            )
            for level in levels
            for c in level
        ]
    )


def _as_chunk(row: RestoreChunk) -> Chunk:
    return Chunk(row.table, row.index, row.start, row.end, row.first_line, row.level, row.position)


def planned_levels(run_id: int, using: str) -> list[list[Chunk]]:
    """The run's chunks as planned, grouped by level, in load order."""
    levels: dict[int, list[Chunk]] = defaultdict(list)
    for row in RestoreChunk.objects.using(using).filter(run_id=run_id).order_by("position"):
        levels[row.level].append(_as_chunk(row))
    return [levels[number] for number in sorted(levels)]


def claim(run_id: int, chunk: Chunk, using: str) -> RestoreChunk:
    """The chunk's checkpoint row, locked until the caller's transaction ends: a second loader
    of the same chunk waits here, then finds it done.

    An UPDATE first, not SELECT ... FOR UPDATE: on SQLite a transaction that reads first and
    writes later fails at once (SQLITE_BUSY) when another writer came in between, while one that
    writes first waits for it (the busy timeout); on PostgreSQL both lock the row."""
    rows = RestoreChunk.objects.using(using).filter(run_id=run_id, table=chunk.table, index=chunk.index)
    rows.update(state=F("state"))
    return rows.get()


def mark_done(row: RestoreChunk, counts: TableResult, details: dict[str, Any], using: str) -> None:
    """The checkpoint: in the chunk's transaction, so it commits with the chunk's rows."""
    row.state = RestoreChunk.DONE
    for name in COUNTS:
        setattr(row, name, getattr(counts, name))
    row.details = details
    row.finished_at = timezone.now()
    row.save(using=using, update_fields=["state", *COUNTS, "details", "finished_at"])


def done_rows(run_id: int, using: str) -> list[RestoreChunk]:
    return list(RestoreChunk.objects.using(using).filter(run_id=run_id, state=RestoreChunk.DONE).order_by("position"))


def table_states(run_id: int, using: str) -> dict[str, dict[str, int]]:
    """Per table: chunks planned and done, and the counts of the done ones."""
    states: dict[str, dict[str, int]] = {}
    if not has_table(using):
        return states
    for row in RestoreChunk.objects.using(using).filter(run_id=run_id).order_by("position"):
        state = states.setdefault(row.table, {"chunks": 0, "chunks_done": 0, **dict.fromkeys(COUNTS, 0)})
        state["chunks"] += 1
        if row.state == RestoreChunk.DONE:
            state["chunks_done"] += 1
            for name in COUNTS:
                state[name] += getattr(row, name)
    return states


def describe_state(state: dict[str, int]) -> str:
    """done, partial N of M chunks, or untouched."""
    done, planned = state.get("chunks_done", 0), state.get("chunks", 0)
    if planned and done == planned:
        return "done"
    return f"partial: {done} of {planned} chunks" if done else "untouched"


def overlay(run: Any, data: dict[str, Any]) -> None:
    """Per table of a chunked run's progress document: chunks planned and done, and its state
    (done, partial N of M chunks, untouched). Once the run has ended, its counts are what the
    done chunks hold (a killed process may have recorded rows its last chunk never committed)."""
    if not (run.checkpoint or {}).get("prepared") or run.database not in connections:
        return
    states = table_states(run.pk, run.database)
    ended = not run.is_active and run.status != "succeeded"
    tables = data.get("tables") or {}
    _apply(states, tables, counts=ended)
    if ended and states:
        totals = table_totals(tables)
        data.update(rows_done=totals.pop("rows_processed"), **totals)


def settle_counts(run: Any) -> None:
    """A chunked run that died: its table entries and counts set to what its done chunks hold
    (the caller saves the run)."""
    if not (run.checkpoint or {}).get("prepared") or run.database not in connections:
        return
    states = table_states(run.pk, run.database)
    _apply(states, run.tables, counts=True)
    run.set_tables(run.tables)


def _apply(states: dict[str, dict[str, int]], tables: dict[str, Any], *, counts: bool) -> None:
    for label, state in states.items():
        if label not in tables:
            continue
        entry = tables[label]
        entry.update(chunks=state["chunks"], chunks_done=state["chunks_done"], state=describe_state(state))
        if counts:
            entry.update({name: state[name] for name in COUNTS})
