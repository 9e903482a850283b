"""RestoreRun bookkeeping: creating runs, recording progress, finishing them.

Progress must be visible to other processes (the admin's progress page, ``restore_status``)
while an atomic restore holds its transaction open. When the history lives on the same
PostgreSQL database as the restore, :class:`RunRecorder` therefore writes through a second
connection of its own, outside the restore's transaction. On SQLite, which allows one writer
at a time, it writes through the restore's own connection (seen by others at the end).
"""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.db.models.sql import UpdateQuery
from django.db.models.sql.constants import NO_RESULTS, SINGLE
from django.utils import timezone

from . import conf
from .exceptions import RestoreCancelled, RestoreLockedError
from .models import RestoreRun
from .progress import BaseListener
from .report import RestoreResult, TableResult

logger = logging.getLogger(__name__)


def run_database() -> str:
    return conf.get("RUN_DATABASE")


def _bounded(messages: list[str]) -> list[str]:
    limit = conf.get("MAX_MESSAGES")
    return messages[:limit] if len(messages) > limit else list(messages)


def tables_progress(result: RestoreResult) -> dict[str, Any]:
    """Per-table progress for RestoreRun.tables; ``position`` keeps the load order, which a
    PostgreSQL jsonb object does not."""
    return {label: {**table.as_dict(), "position": index} for index, (label, table) in enumerate(result.tables.items())}


class RunRecorder(BaseListener):
    """Copies progress onto a RestoreRun row at most every ``PROGRESS_INTERVAL`` seconds."""

    def __init__(self, run: RestoreRun, *, restore_database: str, atomic: bool):
        self.run = run
        self.interval = conf.get("PROGRESS_INTERVAL")
        self._last_flush = 0.0
        self._result: RestoreResult | None = None
        self._side = None
        history_db = run._state.db or run_database()
        if atomic and history_db == restore_database and connections[history_db].vendor == "postgresql":
            main = connections[history_db]
            self._side = type(main)(dict(main.settings_dict), history_db)

    def backend_pids(self) -> list[int]:
        """PostgreSQL backend pids of this recorder's own connection (to spare it)."""
        if self._side is None or self._side.connection is None:
            return []
        return [self._side.connection.info.backend_pid]

    def close(self) -> None:
        if self._side is not None:
            self._side.close()
            self._side = None

    # The listener events -------------------------------------------------------------
    def restore_started(self, result: RestoreResult, rows_expected: int | None) -> None:
        self._result = result
        self.write(rows_total=rows_expected or 0, tables=self._tables(), force=True)

    def table_started(self, table: TableResult) -> None:
        self.write(current_table=table.label, tables=self._tables(), force=True)

    def batch_done(self, table: TableResult) -> None:
        self.write(current_table=table.label, tables=self._tables())

    def table_finished(self, table: TableResult) -> None:
        # Throttled like a batch: the next table_started (forced) or finish_run writes it anyway,
        # and forced it would cost a small restore two more round trips per table.
        self.write(tables=self._tables())

    # ---------------------------------------------------------------------------------
    def _tables(self) -> dict[str, Any]:
        assert self._result is not None
        return tables_progress(self._result)

    def write(self, *, force: bool = False, **values: Any) -> None:
        """Save progress values (throttled unless ``force``) and check for a cancel request."""
        now = time.monotonic()
        if not force and now - self._last_flush < self.interval:
            return
        self._last_flush = now
        if self._result is not None:
            values.update(
                rows_processed=self._result.total,
                rows_inserted=self._result.inserted,
                rows_skipped=self._result.skipped,
                rows_rejected=self._result.rejected,
                warnings=_bounded(self._result.warnings),
                errors=_bounded(self._result.errors),
            )
        values["heartbeat_at"] = timezone.now()
        for name, value in values.items():
            setattr(self.run, name, value)
        cancel = self._update(values)
        if cancel:
            raise RestoreCancelled(f"restore #{self.run.pk} was cancelled")

    def _update(self, values: dict[str, Any]) -> bool:
        """UPDATE the run row and return its ``cancel_requested`` flag."""
        if self._side is None:
            using = self.run._state.db or run_database()
            RestoreRun.objects.using(using).filter(pk=self.run.pk).update(**values)
            return RestoreRun.objects.using(using).filter(pk=self.run.pk, cancel_requested=True).exists()
        query = RestoreRun.objects.filter(pk=self.run.pk).query.chain(UpdateQuery)
        query.add_update_values(values)
        query.get_compiler(connection=self._side).execute_sql(NO_RESULTS)
        flag = RestoreRun.objects.filter(pk=self.run.pk).values_list("cancel_requested", flat=True).query
        row = flag.get_compiler(connection=self._side).execute_sql(SINGLE)
        return bool(row and row[0])


def fail_dead_runs(database: str | None = None) -> list[RestoreRun]:
    """Mark failed the running restores whose heartbeat stopped (a killed process or worker)."""
    timeout = conf.get("HEARTBEAT_TIMEOUT")
    cutoff = timezone.now() - datetime.timedelta(seconds=timeout)
    runs = RestoreRun.objects.using(run_database()).filter(status=RestoreRun.Status.RUNNING, heartbeat_at__lt=cutoff)
    if database is not None:
        runs = runs.filter(database=database)
    dead = list(runs)
    for run in dead:
        run.status = RestoreRun.Status.FAILED
        run.finished_at = timezone.now()
        run.errors = [*run.errors, f"no heartbeat for more than {timeout}s: the restoring process died"][-conf.get("MAX_MESSAGES"):]
        run.save(update_fields=["status", "finished_at", "errors"])
        logger.warning("Restore #%s had no heartbeat since %s; marked failed", run.pk, run.heartbeat_at)
    return dead


def active_run(database: str) -> RestoreRun | None:
    """The queued or running restore against ``database``, if any (dead ones are failed first)."""
    fail_dead_runs(database)
    return (
        RestoreRun.objects.using(run_database())
        .filter(database=database, status__in=RestoreRun.ACTIVE_STATUSES)
        .order_by("created_at")
        .first()
    )


def progress_data(run: RestoreRun) -> dict[str, Any]:
    """Where a run is: the admin's progress endpoint and ``restore_status --json``."""
    if run.is_active:
        fail_dead_runs(run.database)
        run.refresh_from_db()
    speed = run.rows_per_s if run.status == RestoreRun.Status.RUNNING else None
    remaining = max(run.rows_total - run.rows_processed, 0)
    return {
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
    }


def create_run(*, source: str, database: str, mode: str, options: dict[str, Any], requested_by: str = "",
               status: str = RestoreRun.Status.RUNNING) -> RestoreRun:
    """A new RestoreRun row, committed at once so that other processes can see it.

    Refused with :class:`RestoreLockedError` while another restore of the same database is
    queued or running.
    """
    using = run_database()
    with transaction.atomic(using=using):
        _lock_runs(using)
        other = active_run(database)
        if other is not None:
            raise RestoreLockedError(
                f"restore #{other.pk} of {other.source} is already {other.status} "
                f"against database {database!r}; wait for it or cancel it"
            )
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


def _lock_runs(using: str) -> None:
    """Serialise run creation (PostgreSQL: a transaction-level advisory lock) so that two
    restores started at the same moment cannot both pass the one-at-a-time check."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [0x6462_7273])


def finish_run(run: RestoreRun, result: RestoreResult) -> None:
    """Store the final counts and status of a run."""
    run.status = result.status
    run.finished_at = timezone.now()
    run.heartbeat_at = run.finished_at
    run.current_table = ""
    run.tables = tables_progress(result)
    run.rows_processed = result.total
    run.rows_inserted = result.inserted
    run.rows_skipped = result.skipped
    run.rows_rejected = result.rejected
    if not run.rows_total:
        run.rows_total = result.total
    run.warnings = _bounded(result.warnings)
    run.errors = _bounded(result.errors)
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
        run.save(using=using)
