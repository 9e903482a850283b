"""The load phase of a JSON backup in one transaction (or a dry run): empty, load each table, then
the integrity steps after it (deferred keys, indexes, orphans, constraints, sequences) and the
row-count verification."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from django.core.management.color import no_style
from django.db import connections, transaction

from dbrestore.backups.safety import check_outside_rows, empty_tables
from dbrestore.exceptions import RestoreCancelled
from dbrestore.integrity import (
    ForeignKeyEdge,
    apply_deferred_foreign_keys,
    apply_deferred_natural_keys,
    check_constraints,
    classify_foreign_keys,
    nullable_deferred_fields,
    sweep_orphans,
)
from dbrestore.integrity.verify import verify_counts
from dbrestore.load import indexes as postload
from dbrestore.load.m2m import clear_given_lists
from dbrestore.load.rejects import RejectsFile
from dbrestore.load.table import TableLoader, never_stop
from dbrestore.options import RestoreOptions
from dbrestore.plan.build import Plan, PlannedTable
from dbrestore.runs.progress import BaseListener, Broadcast
from dbrestore.runs.report import RestoreResult

if TYPE_CHECKING:
    from dbrestore.load.copy import CopyTableLoader

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def restore_transaction(opts: RestoreOptions) -> Iterator[None]:
    if opts.atomic and not opts.dry_run:
        with transaction.atomic(using=opts.database):
            yield
    else:
        yield


#: Asked between batches whether to stop: a reason, or None (``force``: ask now, not throttled).
Watch = Callable[..., "str | None"]


def load(
    plan: Plan,
    opts: RestoreOptions,
    result: RestoreResult,
    rejects: RejectsFile,
    progress: Broadcast,
    started: float,
    truncate: bool = True,
    watch: Watch = never_stop,
) -> None:
    """Empty, load every table, then the steps after the load. ``watch`` (the run's
    :class:`~dbrestore.runs.watch.RunWatch`) is asked before each table and between batches."""
    connection = connections[opts.database]
    outside_aside = None
    if opts.mode == "replace" and not opts.dry_run:
        outside_aside = postload.set_aside_foreign_keys(
            [(kept.model, kept.field) for kept in plan.kept_outside], opts.database
        )
        progress.phase_started(f"emptying {len(plan.models_to_empty)} tables")
        empty_tables(plan, opts.database, truncate=truncate)
    progress.phase_started("checking the rows (dry run)" if opts.dry_run else f"loading {len(plan.tables)} tables")
    aside = None
    if opts.indexes_after_load and not opts.dry_run:
        aside = postload.set_aside(postload.worth_setting_aside(plan.tables), opts.database, restored=plan.models)
    foreign_keys = classify_foreign_keys(plan)
    checked_while_loading: set[ForeignKeyEdge] = set()
    deferred_natural_keys: list[tuple[PlannedTable, list]] = []

    def load_table(table: PlannedTable, listener: BaseListener) -> None:
        settled, deferred = foreign_keys[table.model]
        table_result = result.table(table.label, table.db_table)
        reason = watch(force=True)
        if reason:
            raise RestoreCancelled(reason)
        listener.table_started(table_result)
        table_started = time.monotonic()
        if opts.mode == "merge" and table.data.open_owners is not None and not opts.dry_run:
            clear_given_lists(table, opts.database)

        def on_batch(current):
            current.seconds = time.monotonic() - table_started
            listener.batch_done(current)

        assert opts.batch_size is not None  # set by opts.validate()
        loader = opts.loader_class()(
            table.model,
            using=opts.database,
            batch_size=opts.batch_size,
            result=table_result,
            rejects=rejects,
            dry_run=opts.dry_run,
            on_batch=on_batch,
            mode=opts.mode,
            # One transaction: FKs are checked after the load by one anti-join each (sweep_orphans),
            # except those the COPY path has the database check as it goes (checked_foreign_keys).
            # Batch by batch commits must check settled parents first: COPY has the database do it
            # as each COPY commits, the ORM path asks a query per FK per batch.
            fk_checks=[] if opts.atomic else settled,
            settled_foreign_keys=settled,
            nulled_fields=[] if opts.atomic else nullable_deferred_fields(deferred),
            log_skipped=opts.log_skipped,
            should_stop=watch,
        )
        processes = opts.conversion_processes(table.data)
        if processes > 1:  # only on the COPY path (see conversion_processes)
            from dbrestore.load.copy import CopyTableLoader

            assert isinstance(loader, CopyTableLoader)
            loader.load(table.data.rows(), blocks=table.data.blocks, processes=processes)
        else:
            loader.load(table.data.rows())
        checked_while_loading.update(loader.checked_foreign_keys)
        if loader.deferred_natural_keys:
            deferred_natural_keys.append((table, loader.deferred_natural_keys))
        _note_drift(table, loader, result)
        table_result.seconds = time.monotonic() - table_started
        listener.table_finished(table_result)

    for table in plan.tables:  # --no-atomic (and --jobs N with it) goes through chunked.py instead
        load_table(table, progress)
    if not opts.dry_run:
        apply_deferred_natural_keys(deferred_natural_keys, opts.database, result, rejects)
        if aside is not None:
            progress.phase_started("building indexes")
            aside.rebuild_indexes()
            if aside.add_foreign_keys_if_valid():  # then PostgreSQL has checked them, once each
                qn = connection.ops.quote_name
                checked_while_loading.update(
                    edge
                    for settled, deferred in foreign_keys.values()
                    for edge in settled + deferred
                    if aside.validates(qn(edge.model._meta.db_table), edge.field.column)
                )
        progress.phase_started("checking foreign keys")
        if opts.atomic:
            sweep_orphans(
                plan,
                opts.database,
                result,
                rejects,
                every_foreign_key=True,
                checked_while_loading=checked_while_loading,
            )
        else:
            assert opts.batch_size is not None  # set by opts.validate()
            apply_deferred_foreign_keys(plan, opts.database, opts.batch_size, result, rejects)
        if aside is not None and not aside.foreign_keys_added:
            progress.phase_started("adding foreign key constraints")
            aside.rebuild()
        if plan.kept_outside:
            check_outside_rows(plan, opts.database)
        if outside_aside is not None:
            outside_aside.rebuild()
        check_constraints(plan, connection)
        reset_sequences(plan, opts.database)
    progress.phase_started("verifying row counts")
    result.verification = verify_counts(plan, result, opts.database, None if opts.dry_run else opts.mode)
    # The last look before COMMIT, not throttled: a run cancelled or without its lock (another
    # restore may have started) never commits, however soon after the last batch that happened.
    reason = watch(force=True)
    if reason:
        raise RestoreCancelled(reason)


def _note_drift(table, loader: TableLoader | CopyTableLoader, result: RestoreResult) -> None:
    converter = loader.converter
    result.warnings.extend(
        drift_warnings(
            table, sorted(converter.unknown_columns), sorted(converter.missing_columns), converter.dropped_values
        )
    )


def drift_warnings(
    table: PlannedTable, unknown: list[str], missing: list[str], dropped: int | None = None
) -> list[str]:
    """The warnings for backup columns that are no field and fields the backup lacks (the
    preview, which reads one row, has no count of the values dropped)."""
    warnings = []
    if unknown:
        count = "their values dropped" if dropped is None else f"{dropped} values dropped"
        warnings.append(f"{table.data.origin}: columns {', '.join(unknown)} are not fields of {table.label}; {count}")
    if missing:
        warnings.append(
            f"{table.data.origin}: {table.label} fields missing from the backup: "
            f"{', '.join(missing)} (default or NULL used; rows rejected where neither)"
        )
    return warnings


def reset_sequences(plan: Plan, using: str) -> None:
    """Move PostgreSQL sequences past the restored ids so the next INSERT does not collide."""
    connection = connections[using]
    statements = connection.ops.sequence_reset_sql(no_style(), plan.models)
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
