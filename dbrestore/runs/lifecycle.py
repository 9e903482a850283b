"""RestoreRun bookkeeping: creating runs, recording progress, finishing them.

Progress must be visible to other processes (the admin's progress page, ``restore_status``)
while an atomic restore holds its transaction open. When the history lives on the same
PostgreSQL database as the restore, :class:`RunRecorder` therefore writes through a second
connection of its own, outside the restore's transaction. On SQLite, which allows one writer
at a time, it writes through the restore's own connection (seen by others at the end).

Whether a run is alive follows from its database's restore lock (:mod:`dbrestore.runs.locks`):
whoever holds the lock may fail the runs left ``running`` (:func:`reap_dead_runs`).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from dbrestore import conf
from dbrestore.chunked import checkpoints, fanout
from dbrestore.conf import run_database
from dbrestore.exceptions import RestoreAbortedError, RestoreLockedError, describe
from dbrestore.models import RestoreRun
from dbrestore.runs import queue
from dbrestore.runs.locks import lock_for, locked_message
from dbrestore.runs.recorder import RunRecorder, bounded, tables_progress
from dbrestore.runs.report import RestoreResult

logger = logging.getLogger(__name__)

__all__ = [
    "RunRecorder",
    "active_run",
    "cancel_queued",
    "count_rows",
    "create_run",
    "describe_tables",
    "finish_run",
    "mark_running",
    "progress_data",
    "reap_dead_runs",
    "record_safety_backup",
    "request_cancel",
    "seems_dead",
    "settle",
    "tables_progress",
]


def count_rows(database: str, db_table: str) -> int | None:
    """Rows in ``db_table`` now (None when the database cannot say); retried on a fresh
    connection when the restore's own one died."""
    connection = connections[database]
    sql = f"SELECT COUNT(*) FROM {connection.ops.quote_name(db_table)}"
    for attempt in (1, 2):
        try:
            if connection.connection is not None and not connection.is_usable():
                connection.close()
            if connection.vendor == "postgresql" and not connection.in_atomic_block:
                # A killed restore's backend may still hold a table lock until it notices: do not hang.
                with transaction.atomic(using=database), connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '2s'")
                    cursor.execute(sql)
                    return cursor.fetchone()[0]
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchone()[0]
        except DatabaseError as exc:
            if connection.in_atomic_block:
                return None
            connection.close()
            if attempt == 2:
                logger.warning("Could not count the rows of %s: %s", db_table, exc)
    return None


def describe_tables(database: str, tables: dict[str, dict[str, Any]], mode: str) -> list[str]:
    """After a failed ``--no-atomic`` restore: count what each table holds now, record it on
    each entry of ``tables`` (``rows_now``, ``complete``) and return one line per table."""
    lines = []
    for label, table in tables.items():
        rows_now = count_rows(database, table["table"])
        expected = table.get("expected")
        # Replace mode emptied the table first: holding the expected count, it holds them all
        # (the COPY pipeline may have committed a batch it had not yet recorded).
        complete = bool(table.get("finished")) or (mode == "replace" and expected is not None and rows_now == expected)
        table["rows_now"], table["complete"] = rows_now, complete
        now = "?" if rows_now is None else rows_now
        of = f"{expected} expected" if expected is not None else "expected unknown"
        touched = table.get("total") or table.get("finished")
        state = "complete" if complete else ("incomplete" if touched or mode == "replace" else "not touched")
        lines.append(f"{label}: {now} rows now, {of}, {state}")
    return lines


def reap_dead_runs(database: str) -> list[RestoreRun]:
    """Fail the runs of ``database`` nobody is behind any more. Call with its lock held.

    Holding the lock proves that no restore of ``database`` is alive, so a ``running`` run is
    dead (a killed process or worker). A ``queued`` run is dead when RQ has no live job for it.
    """
    dead = []
    runs = RestoreRun.objects.using(run_database()).filter(database=database, status__in=RestoreRun.ACTIVE_STATUSES)
    for run in runs:
        reason = _why_dead(run, lock_free=True)
        if reason is None:
            continue
        if run.options.get("distribute") and run.status == RestoreRun.Status.RUNNING:
            run.refresh_from_db()  # its last job (or a failure callback) may have ended it meanwhile
            if run.status != RestoreRun.Status.RUNNING:
                continue
            fanout.cancel_jobs(run.pk)  # what still waits behind a failed job would never run
        _fail(run, reason)
        dead.append(run)
    return dead


def seems_dead(run: RestoreRun) -> str | None:
    """Why nobody seems to be behind active ``run`` any more, found without writing or locking
    anything (None: alive, or it cannot be told). Pages that only look show it; failing the run
    is :func:`settle`'s job: the next restore's, a worker's, ``restore_status``'s, or the run
    page's "Mark failed" button (a POST)."""
    if not run.is_active or run.database not in connections:
        return None
    busy = lock_for(run.database).busy() if run.status == RestoreRun.Status.RUNNING else None
    return _why_dead(run, lock_free=busy is False)


def _why_dead(run: RestoreRun, *, lock_free: bool) -> str | None:
    """``lock_free``: nobody holds the database's restore lock (the caller holds it, or saw it free)."""
    if run.status == RestoreRun.Status.RUNNING and run.options.get("distribute"):
        alive, why = fanout.run_alive(run.pk, run.database)  # no process holds the lock between its jobs
        return None if alive else f"the distributed restore has no live RQ job left ({why})"
    if run.status == RestoreRun.Status.RUNNING:
        return "the restoring process died (its database lock was released)" if lock_free else None
    job = queue.job_status(run)
    if job is True:
        return None
    return f"its RQ job {run.job_id or '(none)'} is gone ({job or 'not on the queue'}); the restore never started"


def _fail(run: RestoreRun, reason: str) -> None:
    messages = [*run.errors, reason]
    atomic = run.options.get("atomic", True) and not run.options.get("dry_run")
    if run.status == RestoreRun.Status.RUNNING and run.tables:
        if atomic:
            messages.append("rolled back: the database is as it was before the restore")
        else:
            checkpoints.settle_counts(run)  # chunked: what the done chunks hold, not what was in flight
            messages.extend(describe_tables(run.database, run.tables, run.mode))
    run.status = RestoreRun.Status.FAILED
    run.finished_at = timezone.now()
    run.current_table = ""
    run.errors = messages[-conf.get("MAX_MESSAGES") :]
    run.save(
        update_fields=[
            "status",
            "finished_at",
            "errors",
            "tables",
            "current_table",
            "rows_processed",
            "rows_inserted",
            "rows_skipped",
            "rows_rejected",
        ]
    )
    logger.warning("Restore #%s marked failed: %s", run.pk, reason)


def settle(database: str) -> None:
    """Fail the dead runs of ``database`` if its lock is free right now (never waits)."""
    if database not in connections:
        return  # a run of a database alias no longer configured: nothing can be known
    lock = lock_for(database)
    if lock.busy():
        return  # seen without taking it (PostgreSQL): a restore holds it, alive
    try:
        if lock.acquire():
            reap_dead_runs(database)
    finally:
        lock.release()


def active_run(database: str) -> RestoreRun | None:
    """The queued or running restore against ``database``, if any (dead ones are failed first
    when nobody holds the database's lock)."""
    settle(database)
    return (
        RestoreRun.objects.using(run_database())
        .filter(database=database, status__in=RestoreRun.ACTIVE_STATUSES)
        .order_by("created_at")
        .first()
    )


def progress_data(run: RestoreRun) -> dict[str, Any]:
    """Where a run is: the admin's progress endpoint and ``restore_status --json``. Only reads:
    a run that seems dead says why in ``seems_dead`` (``restore_status`` settles it first)."""
    speed = run.rows_per_s if run.status == RestoreRun.Status.RUNNING else None
    remaining = max(run.rows_total - run.rows_processed, 0)
    data = {
        "id": run.pk,
        "status": run.status,
        "final": run.status in RestoreRun.FINAL_STATUSES,
        "percent": round(run.percent, 1),
        "rows_total": run.rows_total,
        "rows_done": run.rows_processed,
        "rows_inserted": run.rows_inserted,
        "rows_skipped": run.rows_skipped,
        "rows_rejected": run.rows_rejected,
        "rows_per_s": round(run.rows_per_s or 0, 1),
        "eta_s": round(remaining / speed, 1) if speed else None,
        "current_table": run.current_table,
        "tables": run.tables,
        "errors": run.errors,
        "warnings": run.warnings,
        "cancel_requested": run.cancel_requested,
        "seems_dead": seems_dead(run),
    }
    checkpoints.overlay(run, data)
    return data


def create_run(
    *,
    source: str,
    database: str,
    mode: str,
    options: dict[str, Any],
    requested_by: str = "",
    status: str = RestoreRun.Status.RUNNING,
) -> RestoreRun:
    """A new RestoreRun row, committed at once so that other processes can see it.

    Call it holding the database's lock (:func:`dbrestore.runs.locks.holding`): the dead runs are
    failed first, and a live queued one refuses it with :class:`RestoreLockedError`.
    """
    using = run_database()
    reap_dead_runs(database)
    other = (
        RestoreRun.objects.using(using)
        .filter(database=database, status__in=RestoreRun.ACTIVE_STATUSES)
        .order_by("created_at")
        .first()
    )
    if other is not None:
        raise RestoreLockedError(locked_message(database, other))
    return RestoreRun.objects.using(using).create(
        source=source,
        database=database,
        mode=mode,
        options=options,
        requested_by=requested_by,
        status=status,
        started_at=timezone.now() if status == RestoreRun.Status.RUNNING else None,
        heartbeat_at=timezone.now(),
    )


def finish_run(run: RestoreRun, result: RestoreResult, tables: dict[str, Any] | None = None) -> None:
    """Store the final counts and status of a run (``tables``: its per-table record, when
    the caller has more to say than the result, such as what a failure left in each)."""
    run.status = result.status
    run.finished_at = timezone.now()
    run.heartbeat_at = run.finished_at
    run.current_table = ""
    run.set_tables(tables if tables is not None else tables_progress(result))
    if not run.rows_total:
        run.rows_total = run.rows_processed
    run.warnings = bounded(result.warnings)
    run.errors = bounded(result.errors)
    run.verification = result.verification
    run.rejects_file = result.rejects_file or ""
    run.safety_backup = result.safety_backup or ""
    using = run._state.db or run_database()
    try:
        run.save(using=using)
    except DatabaseError:
        # The restore's connection may be the one that died (killed backend, network): the
        # run's outcome still has to be recorded, so try once more on a fresh connection.
        connections[using].close()
        try:
            run.save(using=using)
        except DatabaseError as exc:
            _fail_unsaved(run, using, exc)


def _fail_unsaved(run: RestoreRun, using: str, exc: DatabaseError) -> None:
    """The run's record could not be saved: end it ``failed`` with a reason that can be (a run
    is never left ``running`` because of its own record), then stop with that reason."""
    reason = f"the run's record could not be saved: {describe(exc)}"
    logger.error("Restore #%s: %s", run.pk, reason)
    connections[using].close()
    RestoreRun.objects.using(using).filter(pk=run.pk).update(
        status=RestoreRun.Status.FAILED,
        finished_at=run.finished_at or timezone.now(),
        current_table="",
        errors=[*bounded(list(run.errors or []))[-10:], reason],
    )
    run.status = RestoreRun.Status.FAILED
    raise RestoreAbortedError(reason) from exc


def cancel_queued(run: RestoreRun) -> None:
    """Mark a queued run (its job already taken off the queue) cancelled."""
    run.status = RestoreRun.Status.CANCELLED
    run.finished_at = timezone.now()
    run.errors = [*run.errors, "cancelled before it started"]
    run.save(update_fields=["status", "finished_at", "errors"])


def request_cancel(run: RestoreRun) -> None:
    """Ask a running restore to stop at its next batch boundary (its recorder reads the flag)."""
    RestoreRun.objects.filter(pk=run.pk).update(cancel_requested=True)


def mark_running(run: RestoreRun) -> None:
    run.status = RestoreRun.Status.RUNNING
    run.started_at = run.started_at or timezone.now()
    run.save(update_fields=["status", "started_at"])


def record_safety_backup(run: RestoreRun, location: str) -> None:
    """Put the safety backup's location on the run as soon as it exists (a crash later must not lose it)."""
    RestoreRun.objects.filter(pk=run.pk).update(safety_backup=location)
