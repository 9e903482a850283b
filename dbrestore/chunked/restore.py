"""``--no-atomic`` restores of JSON backups, chunk by chunk, with checkpoints: resumable.

A run is prepared once (checks, checksums, safety backup, emptying in replace mode, the chunks
planned: :func:`prepare_chunked_run`), recorded on the run so that a resume does not do it
again. Then each chunk loads in a transaction of its own that also marks its checkpoint done
(:func:`load_chunk`), level by level. Then the post-load steps, which may run again safely
(:func:`finish_chunked_run`): natural keys and FK columns filled in, constraints checked,
sequences moved, rejects joined, counts verified.

``load_chunk(run_id, chunk)`` needs nothing but the run's id: it opens the run, its backup and
its plan itself, so it may run in another process, or in an RQ worker on another host.

Rejected rows of a chunk go to a part file of their own (``<rejects file>.parts/``), renamed
into place just before the chunk commits; a chunk loaded again overwrites its part. The parts
of the done chunks, then the post-load steps' rejects, make the run's rejects file at the end.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import DatabaseError, connections, transaction

from dbrestore.backups.safety import empty_tables
from dbrestore.chunked import aside, checkpoints
from dbrestore.chunked import reject_parts as parts
from dbrestore.chunked.chunks import Chunk, chunk_bytes, plan_chunks
from dbrestore.chunked.finish import post_load
from dbrestore.conf import run_database
from dbrestore.exceptions import RestoreConfigError
from dbrestore.integrity import classify_foreign_keys, nullable_deferred_fields
from dbrestore.load.m2m import clear_given_lists
from dbrestore.load.rejects import RejectsFile, default_rejects_path
from dbrestore.load.table import StopCheck, TableLoad, never_stop
from dbrestore.models import RestoreRun, table_totals
from dbrestore.options import RestoreOptions
from dbrestore.plan.build import Plan, PlannedTable
from dbrestore.plan.prepare import check_and_make_safe, expected_rows, note_plan
from dbrestore.plan.recorded import recorded_restore
from dbrestore.runs.lifecycle import finish_run, tables_progress
from dbrestore.runs.progress import BaseListener
from dbrestore.runs.report import PARTIAL, SUCCEEDED, RestoreResult, TableResult
from dbrestore.sources import Backup

logger = logging.getLogger(__name__)


def applies(opts: RestoreOptions) -> bool:
    """Chunked with checkpoints: every ``--no-atomic`` JSON restore that writes rows."""
    return not opts.atomic and not opts.dry_run


@dataclass
class ChunkedRun:
    """What loading a chunk needs, rebuilt from the run's id in any process."""

    run: RestoreRun
    opts: RestoreOptions
    backup: Backup
    plan: Plan
    #: Asked between batches whether to stop (the restoring process's RunWatch; workers never stop).
    watch: StopCheck = never_stop
    tables: dict[str, PlannedTable] = field(init=False)
    foreign_keys: dict = field(init=False)

    def __post_init__(self) -> None:
        self.tables = {table.label: table for table in self.plan.tables}
        self.foreign_keys = classify_foreign_keys(self.plan)

    @property
    def using(self) -> str:
        return self.opts.database

    @property
    def rejects_path(self) -> Path:
        return Path(self.opts.rejects_file) if self.opts.rejects_file else default_rejects_path(self.run)


_open_runs: dict[tuple[int, int], ChunkedRun] = {}


def open_run(run_id: int) -> ChunkedRun:
    """The run's context (cached per process: its backup opened and planned once)."""
    key = (run_id, os.getpid())
    if key not in _open_runs:
        run = RestoreRun.objects.using(run_database()).get(pk=run_id)
        recorded = recorded_restore(run)
        assert recorded.plan is not None  # a chunked run restores a JSON backup (checked before it started)
        _open_runs[key] = ChunkedRun(run, recorded.options, recorded.backup, recorded.plan)
    return _open_runs[key]


# -- prepare -------------------------------------------------------------------------------
def prepare_chunked_run(
    run: RestoreRun, opts: RestoreOptions, backup: Backup, plan: Plan, result: RestoreResult, progress: BaseListener
) -> list[list[Chunk]]:
    """Do (once per run) what comes before the first chunk and plan the chunks; return them,
    grouped by FK level. A prepared run (a resume) gets its recorded chunks and counts back."""
    if run.checkpoint.get("prepared"):
        refuse_changed(run, plan)  # checked when it was queued too; the backup may have changed since
        _resume_result(run, opts, plan, result, progress)
        return checkpoints.planned_levels(run.pk, opts.database)
    result.safety_backup = run.safety_backup or None  # taken by an attempt that died before the plan was recorded
    small = check_and_make_safe(run, backup, plan, opts, result, progress)
    checkpoints.ensure_table(opts.database)
    if opts.mode == "replace":
        progress.phase_started(f"emptying {len(plan.models_to_empty)} tables")
        empty_tables(plan, opts.database, truncate=not small)
    aside.set_aside_for_run(run, opts, plan)
    levels = plan_chunks(plan, chunk_bytes(opts.chunk_bytes))
    checkpoints.record_planned(run.pk, levels, opts.database)
    run.checkpoint = {
        **run.checkpoint,
        "prepared": True,
        "fingerprint": fingerprint(plan),
        "target": target(opts.database),
        "warnings": list(result.warnings),
        "excluded": {t.label: result.tables[t.label].as_dict() for t in plan.excluded},
    }
    RestoreRun.objects.using(run._state.db or run_database()).filter(pk=run.pk).update(checkpoint=run.checkpoint)
    return levels


def _resume_result(
    run: RestoreRun, opts: RestoreOptions, plan: Plan, result: RestoreResult, progress: BaseListener
) -> None:
    """The result of a resumed run as its checkpoints say, before its remaining chunks load."""
    state = run.checkpoint
    result.warnings.extend(state.get("warnings", []))
    result.safety_backup = run.safety_backup or None
    note_plan(plan, result)
    for table in plan.excluded:
        done = state.get("excluded", {}).get(table.label, {})
        excluded = result.table(table.label, table.db_table, expected=table.data.expected_rows)
        excluded.total, excluded.skipped = done.get("total", 0), done.get("skipped", 0)
    for label, counts in checkpoints.table_states(run.pk, opts.database).items():
        if label in result.tables:
            add(result.tables[label], counts)
    progress.restore_started(result, expected_rows(plan))


def fingerprint(plan: Plan) -> dict[str, list[Any]]:
    """Per data file: size, modification time and the manifest's sha256: a resume refuses a
    backup that changed since the run began (its chunks' byte ranges would be wrong)."""
    files = {}
    for table in [*plan.tables, *plan.excluded]:
        path = table.data.origin
        if isinstance(path, Path):
            stat = path.stat()
            files[str(path)] = [stat.st_size, stat.st_mtime_ns, table.data.expected_sha256]
        else:
            files[str(path)] = [path.size(), None, table.data.expected_sha256]
    return files


def target(using: str) -> dict[str, Any]:
    """The database a run writes to, beyond its alias."""
    settings = connections[using].settings_dict
    return {
        "alias": using,
        "vendor": connections[using].vendor,
        **{key.lower(): str(settings.get(key) or "") for key in ("NAME", "HOST", "PORT")},
    }


def refuse_changed(run: RestoreRun, plan: Plan) -> None:
    """Refuse to resume when the backup or the target database differ from the run's."""
    state = run.checkpoint
    if state.get("target") and target(run.database) != state["target"]:
        raise RestoreConfigError(
            f"restore #{run.pk} cannot resume: database {run.database!r} is not the one it "
            f"wrote to ({state['target'].get('name')})"
        )
    now = fingerprint(plan)
    for path, recorded in (state.get("fingerprint") or {}).items():
        if now.get(path) != recorded:
            raise RestoreConfigError(
                f"restore #{run.pk} cannot resume: the backup changed since it began ({path} is not the file it read)"
            )
    if set(now) - set(state.get("fingerprint") or {}):
        raise RestoreConfigError(f"restore #{run.pk} cannot resume: the backup changed since it began (new files)")


# -- load ----------------------------------------------------------------------------------
def load_chunk(run_id: int, chunk: Chunk | dict[str, Any]) -> dict[str, int] | None:
    """Load one chunk of a prepared run, its checkpoint in the same transaction; from any
    process. Returns its counts, or None when it was done already (safe to call twice)."""
    context = open_run(run_id)
    chunk = chunk if isinstance(chunk, Chunk) else Chunk.from_dict(chunk)
    table = context.tables[chunk.table]
    counts = TableResult(label=table.label, table=table.db_table)
    return load_counted(context, chunk, counts, BaseListener())


def load_counted(
    context: ChunkedRun,
    chunk: Chunk,
    table_result: TableResult,
    listener: BaseListener,
    side_by_side: int = 1,
    processes: int = 1,
) -> dict[str, int] | None:
    """Load ``chunk`` in one transaction with its checkpoint, counting into ``table_result``
    (put back as it was when the chunk rolls back: a commit is never counted twice or lost).
    ``side_by_side``: loads sharing this process's memory budget; ``processes``: forked
    processes converting its rows (COPY path, JSON Lines)."""
    opts, using = context.opts, context.using
    table = context.tables[chunk.table]
    settled, deferred = context.foreign_keys[table.model]
    before = _counts(table_result)
    counts = TableResult(label=table.label, table=table.db_table)
    part = parts.Part(context.rejects_path, chunk)
    rejects = RejectsFile(part.writing, max_rejects=_rejects_left(context, table_result))
    started = time.monotonic()

    def on_batch(current: TableResult) -> None:
        _set(table_result, before, current)
        listener.batch_done(table_result)

    try:
        with transaction.atomic(using=using):
            checkpoint = checkpoints.claim(context.run.pk, chunk, using)
            if checkpoint.state == checkpoint.DONE:
                return None
            if opts.mode == "merge" and table.data.open_owners is not None:  # a fixture: one chunk
                clear_given_lists(table, using)
            assert opts.batch_size is not None  # set by opts.validate()
            loader = opts.loader_class()(
                TableLoad(
                    table.model,
                    using=using,
                    batch_size=opts.batch_size,
                    result=counts,
                    rejects=rejects,
                    on_batch=on_batch,
                    mode=opts.mode,
                    fk_checks=settled,
                    settled_foreign_keys=settled,
                    nulled_fields=nullable_deferred_fields(deferred),
                    log_skipped=opts.log_skipped,
                    side_by_side=side_by_side,
                    should_stop=context.watch,
                )
            )
            blocks = chunk.blocks(table) if processes > 1 else None
            if blocks is not None:  # only on the COPY path (see conversion_processes)
                from dbrestore.load.copy import CopyTableLoader

                assert isinstance(loader, CopyTableLoader)
                loader.load(chunk.rows(table), blocks=blocks, processes=processes)
            else:
                loader.load(chunk.rows(table))
            rejects.close()
            part.publish(rejects.used)
            checkpoints.mark_done(checkpoint, counts, _details(loader), using)
    except BaseException:
        _set(table_result, before, None)
        raise
    finally:
        rejects.close()
        part.discard()
    _set(table_result, before, counts)
    table_result.seconds += time.monotonic() - started
    return {name: getattr(counts, name) for name in checkpoints.COUNTS}


def _rejects_left(context: ChunkedRun, table_result: TableResult) -> int | None:
    """``--max-rejects`` across the chunks: what the run may still reject."""
    if context.opts.max_rejects is None:
        return None
    done = sum(state["rejected"] for state in checkpoints.table_states(context.run.pk, context.using).values())
    return max(context.opts.max_rejects - done, 0)


def _details(loader) -> dict[str, Any]:
    converter = loader.converter
    return {
        "unknown": sorted(converter.unknown_columns),
        "missing": sorted(converter.missing_columns),
        "dropped": converter.dropped_values,
        "natural_keys": [
            [position, row, pk, field.name, marker.key, marker.reason]
            for position, row, pk, field, marker in loader.deferred_natural_keys
        ],
    }


def _counts(result: TableResult) -> dict[str, int]:
    return {name: getattr(result, name) for name in checkpoints.COUNTS}


def _set(result: TableResult, before: dict[str, int], chunk: TableResult | None) -> None:
    for name in checkpoints.COUNTS:
        setattr(result, name, before[name] + (getattr(chunk, name) if chunk is not None else 0))


def add(result: TableResult, counts: dict[str, int]) -> None:
    for name in checkpoints.COUNTS:
        setattr(result, name, getattr(result, name) + counts[name])


# -- finish --------------------------------------------------------------------------------
def finish_chunked_run(run_id: int) -> RestoreResult:
    """The post-load steps of a run whose chunks are all done (from any process), then the run
    finished with the counts its checkpoints sum up to."""
    context = open_run(run_id)
    run, opts = context.run, context.opts
    run.refresh_from_db()
    result = RestoreResult(
        run_id=run.pk, source=run.source, database=opts.database, method="copy" if opts.uses_copy() else "orm"
    )
    _resume_result(run, opts, context.plan, result, BaseListener())
    complete(context, result, BaseListener())
    result.errors.extend(result.verification.get("mismatches", []))
    result.status = PARTIAL if result.rejected or not result.verification.get("ok", True) else SUCCEEDED
    finish_run(run, result, tables_progress(result, set(context.tables)))
    discard_parts(run, opts, result.status)
    return result


def discard_parts(run: RestoreRun, opts: RestoreOptions, status: str) -> None:
    """Once a run has finished (it can no longer resume), its rejects file holds every part."""
    if applies(opts) and status in (SUCCEEDED, PARTIAL):
        parts.remove(Path(opts.rejects_file) if opts.rejects_file else default_rejects_path(run))


def complete(context: ChunkedRun, result: RestoreResult, progress: BaseListener) -> None:
    """The post-load steps; each may run again (a resume after a failure here)."""
    post_load(context, result, progress)


def note_chunk_states(run: RestoreRun, result: RestoreResult, tables: dict[str, Any]) -> None:
    """After a failure of a chunked run: per table done / partial N of M chunks / untouched (on
    ``tables``, and in one line with how to resume)."""
    if not run.checkpoint.get("prepared"):
        return
    try:
        states = checkpoints.table_states(run.pk, run.database)
    except DatabaseError as exc:  # the connection that died with the restore
        connections[run.database].close()
        logger.warning("Could not read the checkpoints of restore #%s: %s", run.pk, exc)
        states = {}
    described = []
    for label, state in states.items():
        if label in tables:
            tables[label].update(
                chunks=state["chunks"], chunks_done=state["chunks_done"], state=checkpoints.describe_state(state)
            )
            described.append(f"{label} {checkpoints.describe_state(state)}")
    result.errors.append(f"resume it with: manage.py restore_backup --resume {run.pk} ({'; '.join(described)})")


def refresh_run_counts(run_id: int) -> None:
    """Put the sums of the run's done chunks on its RestoreRun row (its progress when chunks
    load elsewhere: RQ workers, worker processes)."""
    runs = RestoreRun.objects.using(run_database())
    run = runs.get(pk=run_id)
    states = checkpoints.table_states(run_id, run.database)
    tables = dict(run.tables or {})
    for label, state in states.items():
        entry = tables.setdefault(label, {})
        entry.update(
            {name: state[name] for name in checkpoints.COUNTS},
            chunks=state["chunks"],
            chunks_done=state["chunks_done"],
            state=checkpoints.describe_state(state),
        )
    runs.filter(pk=run_id).update(tables=tables, **table_totals(tables))
