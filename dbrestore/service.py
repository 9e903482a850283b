"""The restore service: one call used by the command, the admin and the RQ job.

Data flows one way: source (``sources``) -> plan (``plan``, with ``backups.safety``) -> convert
and load (``convert``, ``load``; ``chunked`` for ``--no-atomic``) -> integrity and verification
(``integrity``) -> report (``runs.report``), with progress events along the way
(``runs.progress``) and the run's history in a RestoreRun row (``runs``). A PostgreSQL dump goes
through ``native.restore`` instead of the load.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.db.utils import DatabaseError

from dbrestore import conf, signals
from dbrestore.chunked import restore as chunked
from dbrestore.chunked import resume as resume_rules
from dbrestore.chunked.loop import restore_chunked
from dbrestore.exceptions import DbRestoreError, RestoreAbortedError, RestoreCancelled, RestoreConfigError, first_line
from dbrestore.files.storage import StoragePath, as_location
from dbrestore.load.atomic import LoadContext, load, restore_transaction
from dbrestore.load.rejects import RejectsFile, default_rejects_path
from dbrestore.models import RestoreRun
from dbrestore.native.restore import restore_native
from dbrestore.options import RestoreOptions, absolute
from dbrestore.plan.build import Plan
from dbrestore.plan.prepare import check_and_make_safe
from dbrestore.plan.recorded import recorded_options, recorded_restore
from dbrestore.runs import locks
from dbrestore.runs.lifecycle import (
    RunRecorder,
    create_run,
    describe_tables,
    finish_run,
    mark_running,
    reap_dead_runs,
    tables_progress,
)
from dbrestore.runs.progress import Broadcast, ProgressListener
from dbrestore.runs.report import CANCELLED, FAILED, PARTIAL, SUCCEEDED, RestoreResult
from dbrestore.runs.watch import RunWatch
from dbrestore.select.restore import restore_selection
from dbrestore.sources import Backup, refuse_outputs

logger = logging.getLogger(__name__)


def restore(
    source: str | Path | StoragePath,
    *,
    requested_by: str = "",
    listeners: Iterable[ProgressListener] = (),
    **options: Any,
) -> RestoreResult:
    """Restore ``source`` into the database; record and return the outcome.

    Raises a :class:`~dbrestore.exceptions.DbRestoreError` for bad input or options (the run,
    when one was created, is marked failed with that message first).
    """
    opts = RestoreOptions.for_source(source, **options)
    with locks.holding(opts.database) as lock:
        run = create_run(
            source=absolute(source),
            database=opts.database,
            mode=opts.mode,
            options=opts.as_json(),
            requested_by=requested_by,
        )
        return execute(run, lock=lock, listeners=listeners)


def execute(
    run: RestoreRun, *, lock: locks.DatabaseLock, listeners: Iterable[ProgressListener] = (), job_id: str | None = None
) -> RestoreResult:
    """Run a RestoreRun (fresh, or queued by ``--async`` / the admin) to its end, holding
    ``lock``, the database's restore lock (``job_id``: the RQ job running it, watched)."""
    opts = recorded_options(run)
    result = RestoreResult(
        run_id=run.pk,
        source=run.source,
        database=opts.database,
        dry_run=opts.dry_run,
        method="copy" if opts.uses_copy() else "orm",
    )
    # Chunks commit in transactions of their own: progress goes through a connection of its own too.
    recorder = RunRecorder(
        run,
        restore_database=opts.database,
        atomic=opts.atomic and not opts.dry_run,
        lock=lock,
        own_connection=not opts.dry_run,
    )
    watch = RunWatch(recorder, job_id=job_id)
    progress = Broadcast([recorder, *listeners])
    rejects = RejectsFile(
        Path(opts.rejects_file) if opts.rejects_file else default_rejects_path(run), max_rejects=opts.max_rejects
    )
    started = time.monotonic()
    plan: Plan | None = None
    mark_running(run)
    try:
        recorded = recorded_restore(run, opts)
        backup, plan = recorded.backup, recorded.plan
        refuse_outputs(backup, [rejects.path])
        if opts.rejects_file:  # a typo in --rejects-file fails now, not at the first reject
            rejects.check_writable()
        run.source_format = backup.format
        result.warnings.extend(backup.notes)
        if plan is None:
            if opts.select:
                raise RestoreConfigError(
                    f"--select reads JSON backups; {run.source} is a PostgreSQL dump, which pg_restore restores whole"
                )
            restore_native(run, backup, opts, result, progress, recorder, watch)
        elif opts.select:
            restore_selection(backup, plan, opts, result, progress)
        else:
            _restore_rows(run, backup, plan, opts, result, rejects, progress, watch)
        result.errors.extend(result.verification.get("mismatches", []))
        result.status = PARTIAL if result.rejected or not result.verification.get("ok", True) else SUCCEEDED
    except RestoreCancelled as exc:
        result.status = CANCELLED
        result.errors.append(str(exc))
    except DbRestoreError as exc:
        result.status = FAILED
        result.errors.append(str(exc))
        raise
    except BaseException as exc:  # KeyboardInterrupt and SystemExit (SIGTERM) end the run too
        result.status = FAILED
        result.errors.append(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        raise
    finally:
        recorder.close()
        result.seconds = time.monotonic() - started
        result.rejects_file = result.rejects_file or (str(rejects.path) if rejects.used else None)
        tables = tables_progress(result, recorder.finished)
        with contextlib.suppress(Exception):  # a full disk must not keep the outcome from being recorded
            rejects.close()
        if result.status in (FAILED, CANCELLED):
            _note_table_states(plan, opts, result, tables)
            chunked.note_chunk_states(run, result, tables)
        finish_run(run, result, tables)
        chunked.discard_parts(run, opts, result.status)
        progress.restore_finished(result)
    signals.post_restore.send(sender=RestoreRun, run=run, tables=list(result.tables), result=result)
    return result


def resume(
    run_id: int,
    *,
    source: str | Path | StoragePath | None = None,
    listeners: Iterable[ProgressListener] = (),
    **options: Any,
) -> RestoreResult:
    """Resume failed, cancelled or dead ``--no-atomic`` run ``run_id`` (``--resume``): its done
    chunks are skipped, the others loaded, then the post-load steps run. ``source`` and
    ``options``, when given, must be the run's; so must the backup and the target database."""
    run = resume_rules.resumable_run(run_id)
    with locks.holding(run.database, resuming=run.pk) as lock:  # its killed session may be ending
        reap_dead_runs(run.database)  # the run itself, if its process died
        run.refresh_from_db()
        resume_rules.refuse_resume(run, source, options)
        resume_rules.reopen(run)
        return execute(run, lock=lock, listeners=listeners)


def _note_table_states(plan: Plan | None, opts: RestoreOptions, result: RestoreResult, tables: dict[str, Any]) -> None:
    """After a failure, say what each table was left holding (rows now, rows expected, complete
    or not: counted in the database, recorded on ``tables`` too)."""
    if plan is None or opts.dry_run:
        return
    if opts.atomic:
        result.errors.append("rolled back: the database is as it was before the restore")
        return
    result.errors.extend(describe_tables(opts.database, tables, opts.mode))


def _restore_rows(
    run: RestoreRun,
    backup: Backup,
    plan: Plan,
    opts: RestoreOptions,
    result: RestoreResult,
    rejects: RejectsFile,
    progress: Broadcast,
    watch: RunWatch,
) -> None:
    """A JSON backup: check it, make the restore safe, then load the rows (in one transaction,
    or chunk by chunk with checkpoints: ``--no-atomic``, see :mod:`dbrestore.chunked`)."""
    try:
        if chunked.applies(opts):
            restore_chunked(run, backup, plan, opts, result, progress, watch)
            return
        small = check_and_make_safe(run, backup, plan, opts, result, progress)
        with restore_transaction(opts):
            load(LoadContext(plan, opts, result, rejects, progress, watch=watch, truncate=not small))
    except DatabaseError as exc:
        raise RestoreAbortedError(f"the database stopped the restore: {first_line(exc)}") from exc


def rollback_source(run_id: int) -> Path | StoragePath:
    """The safety backup restore run ``run_id`` took, to restore it (``--rollback``)."""
    run = RestoreRun.objects.using(conf.get("RUN_DATABASE")).filter(pk=run_id).first()
    if run is None:
        raise RestoreConfigError(f"no restore run #{run_id}")
    if not run.safety_backup:
        raise RestoreConfigError(f"restore run #{run_id} took no safety backup; there is nothing to roll back to")
    path = as_location(run.safety_backup)
    if not path.exists():
        raise RestoreConfigError(f"the safety backup of run #{run_id} is gone: {path}")
    return path
