"""Progress copied onto a RestoreRun row while a restore runs (:class:`RunRecorder`)."""

from __future__ import annotations

import time
from typing import Any

from django.db import connections
from django.db.models.sql import UpdateQuery
from django.db.models.sql.constants import NO_RESULTS, SINGLE
from django.utils import timezone

from dbrestore import conf
from dbrestore.conf import run_database
from dbrestore.models import RestoreRun, table_totals
from dbrestore.runs.locks import DatabaseLock
from dbrestore.runs.progress import BaseListener
from dbrestore.runs.report import RestoreResult, TableResult
from dbrestore.runs.storable import storable_fields


def bounded(messages: list[str]) -> list[str]:
    limit = conf.get("MAX_MESSAGES")
    return messages[:limit] if len(messages) > limit else list(messages)


def tables_progress(result: RestoreResult, finished: set[str] | None = None) -> dict[str, Any]:
    """Per-table progress for RestoreRun.tables; ``position`` keeps the load order, which a
    PostgreSQL jsonb object does not; ``finished``: the table's load ran to its end."""
    return {
        label: {**table.as_dict(), "position": index, "finished": label in (finished or ())}
        for index, (label, table) in enumerate(result.tables.items())
    }


class RunRecorder(BaseListener):
    """Copies progress onto a RestoreRun row at most every ``PROGRESS_INTERVAL`` seconds. A
    listener only observes: whether the run may go on is :class:`~dbrestore.runs.watch.RunWatch`'s question, asked by
    the load loop.

    Without one transaction (``--no-atomic``, chunk by chunk) every batch is recorded at once,
    the chunk in flight included; once the run has ended, its counts are those of its done chunks
    (:func:`dbrestore.chunked.checkpoints.settle_counts`).
    """

    def __init__(
        self,
        run: RestoreRun,
        *,
        restore_database: str,
        atomic: bool,
        lock: DatabaseLock | None = None,
        own_connection: bool | None = None,
    ):
        self.run = run
        self.interval = conf.get("PROGRESS_INTERVAL") if atomic else 0.0
        self.lock = lock
        self.finished: set[str] = set()
        self._last_flush = 0.0
        self._result: RestoreResult | None = None
        self._side = None
        history_db = run._state.db or run_database()
        # Its own connection outside the restore's transaction: in one transaction (atomic) and
        # when chunks commit in transactions of their own (``own_connection``, chunked restores).
        separate = atomic if own_connection is None else own_connection
        if separate and history_db == restore_database and connections[history_db].vendor == "postgresql":
            main = connections[history_db]
            self._side = type(main)(dict(main.settings_dict), history_db)

    def backend_pids(self) -> list[int]:
        """PostgreSQL backend pids of this recorder's own connection and of the lock's (to spare them)."""
        pids = self.lock.backend_pids() if self.lock is not None else []
        if self._side is not None and self._side.connection is not None:
            pids.append(self._side.connection.info.backend_pid)
        return pids

    def close(self) -> None:
        if self._side is not None:
            self._side.close()
            self._side = None

    # The listener events -------------------------------------------------------------
    def restore_started(self, result: RestoreResult, rows_expected: int | None) -> None:
        self._result = result
        self.write(rows_total=rows_expected or 0, force=True)

    def table_started(self, table: TableResult) -> None:
        self.write(current_table=table.label, force=True)

    def batch_done(self, table: TableResult) -> None:
        self.write(current_table=table.label)

    def table_finished(self, table: TableResult) -> None:
        self.finished.add(table.label)
        # Throttled like a batch (with --no-atomic every write goes through anyway): the next
        # table_started (forced) or finish_run writes it, and forced it would cost a small restore
        # two more round trips per table.
        self.write()

    # ---------------------------------------------------------------------------------
    def _tables(self) -> dict[str, Any]:
        assert self._result is not None
        return tables_progress(self._result, self.finished)

    def write(self, *, force: bool = False, **values: Any) -> None:
        """Save progress values (throttled unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_flush < self.interval:
            return
        self._last_flush = now
        if self._result is not None:
            tables = self._tables()
            values.update(
                tables=tables,
                **table_totals(tables),
                warnings=bounded(self._result.warnings),
                errors=bounded(self._result.errors),
            )
        values["heartbeat_at"] = timezone.now()
        for name, value in values.items():
            setattr(self.run, name, value)
        self._update(values)

    def _update(self, values: dict[str, Any]) -> None:
        """UPDATE the run row (through the side connection when there is one)."""
        values = storable_fields(RestoreRun, values)
        if self._side is None:
            using = self.run._state.db or run_database()
            RestoreRun.objects.using(using).filter(pk=self.run.pk).update(**values)
            return
        query = RestoreRun.objects.filter(pk=self.run.pk).query.chain(UpdateQuery)
        assert isinstance(query, UpdateQuery)  # chain(klass) makes one
        query.add_update_values(values)
        query.get_compiler(connection=self._side).execute_sql(NO_RESULTS)
        self._side.queries_log.clear()  # DEBUG keeps 9,000 queries: megabytes of progress JSON

    def cancel_requested(self) -> bool:
        """The run row's ``cancel_requested`` flag, read where the recorder writes."""
        if self._side is None:
            using = self.run._state.db or run_database()
            return RestoreRun.objects.using(using).filter(pk=self.run.pk, cancel_requested=True).exists()
        flag = RestoreRun.objects.filter(pk=self.run.pk).values_list("cancel_requested", flat=True).query
        row = flag.get_compiler(connection=self._side).execute_sql(SINGLE)
        self._side.queries_log.clear()
        return bool(row and row[0])
