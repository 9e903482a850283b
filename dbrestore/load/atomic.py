"""The load phase of a JSON backup in one transaction (or a dry run): empty, load each table, then
the integrity steps after it (deferred keys, indexes, orphans, constraints, sequences) and the
row-count verification."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
from dbrestore.load.table import TableLoad, TableLoader, never_stop
from dbrestore.options import RestoreOptions
from dbrestore.plan.build import Plan, PlannedTable
from dbrestore.runs.progress import Broadcast
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


@dataclass
class LoadContext:
    """Everything the load phase is told, and what it learns on the way: the one argument of
    :func:`load` and of its steps. ``watch`` (the run's :class:`~dbrestore.runs.watch.RunWatch`)
    is asked before each table and between batches; ``truncate``: empty by TRUNCATE (False:
    DELETE, cheaper for small tables)."""

    plan: Plan
    options: RestoreOptions
    result: RestoreResult
    rejects: RejectsFile
    progress: Broadcast
    watch: Watch = never_stop
    truncate: bool = True
    #: FKs the database checked for every row while loading (no orphan sweep needed for them).
    checked_while_loading: set[ForeignKeyEdge] = field(default_factory=set)
    #: Natural keys that pointed at rows not loaded yet, filled in after the load.
    deferred_natural_keys: list[tuple[PlannedTable, list]] = field(default_factory=list)

    @property
    def writes(self) -> bool:
        return not self.options.dry_run


def load(context: LoadContext) -> None:
    """Empty, load every table, then the steps after the load, then verify the counts."""
    opts = context.options
    outside_aside = _empty_tables(context)
    context.progress.phase_started(
        "checking the rows (dry run)" if opts.dry_run else f"loading {len(context.plan.tables)} tables"
    )
    aside = None
    if opts.indexes_after_load and context.writes:
        aside = postload.set_aside(
            postload.worth_setting_aside(context.plan.tables), opts.database, restored=context.plan.models
        )
    foreign_keys = classify_foreign_keys(context.plan)
    for table in context.plan.tables:  # --no-atomic (and --jobs N with it) goes through chunked/ instead
        _load_table(context, table, foreign_keys[table.model])
    if context.writes:
        _after_load(context, foreign_keys, aside, outside_aside)
    context.progress.phase_started("verifying row counts")
    context.result.verification = verify_counts(
        context.plan, context.result, opts.database, opts.mode if context.writes else None
    )
    # The last look before COMMIT, not throttled: a run cancelled or without its lock (another
    # restore may have started) never commits, however soon after the last batch that happened.
    _stop_if_asked(context.watch)


def _stop_if_asked(watch: Watch) -> None:
    reason = watch(force=True)
    if reason:
        raise RestoreCancelled(reason)


def _empty_tables(context: LoadContext) -> postload.SetAside | None:
    """Replace mode: the FK constraints of kept outside rows set aside (returned), the plan's
    tables emptied."""
    opts = context.options
    if opts.mode != "replace" or not context.writes:
        return None
    plan = context.plan
    outside_aside = postload.set_aside_foreign_keys(
        [(kept.model, kept.field) for kept in plan.kept_outside], opts.database
    )
    context.progress.phase_started(f"emptying {len(plan.models_to_empty)} tables")
    empty_tables(plan, opts.database, truncate=context.truncate)
    return outside_aside


def _load_table(context: LoadContext, table: PlannedTable, foreign_keys: tuple[list, list]) -> None:
    opts, listener = context.options, context.progress
    settled, deferred = foreign_keys
    table_result = context.result.table(table.label, table.db_table)
    _stop_if_asked(context.watch)
    listener.table_started(table_result)
    table_started = time.monotonic()
    if opts.mode == "merge" and table.data.open_owners is not None and context.writes:
        clear_given_lists(table, opts.database)

    def on_batch(current):
        current.seconds = time.monotonic() - table_started
        listener.batch_done(current)

    assert opts.batch_size is not None  # set by opts.validate()
    loader = opts.loader_class()(
        TableLoad(
            table.model,
            using=opts.database,
            batch_size=opts.batch_size,
            result=table_result,
            rejects=context.rejects,
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
            should_stop=context.watch,
        )
    )
    processes = opts.conversion_processes(table.data)
    if processes > 1:  # only on the COPY path (see conversion_processes)
        from dbrestore.load.copy import CopyTableLoader

        assert isinstance(loader, CopyTableLoader)
        loader.load(table.data.rows(), blocks=table.data.blocks, processes=processes)
    else:
        loader.load(table.data.rows())
    context.checked_while_loading.update(loader.checked_foreign_keys)
    if loader.deferred_natural_keys:
        context.deferred_natural_keys.append((table, loader.deferred_natural_keys))
    _note_drift(table, loader, context.result)
    table_result.seconds = time.monotonic() - table_started
    listener.table_finished(table_result)


def _after_load(
    context: LoadContext,
    foreign_keys: dict,
    aside: postload.SetAside | None,
    outside_aside: postload.SetAside | None,
) -> None:
    """Deferred keys filled in, indexes and constraints back, orphans swept, outside rows and
    constraints checked, sequences moved past the restored ids."""
    plan, opts, result, rejects, progress = (
        context.plan,
        context.options,
        context.result,
        context.rejects,
        context.progress,
    )
    connection = connections[opts.database]
    apply_deferred_natural_keys(context.deferred_natural_keys, opts.database, result, rejects)
    if aside is not None:
        progress.phase_started("building indexes")
        aside.rebuild_indexes()
        if aside.add_foreign_keys_if_valid():  # then PostgreSQL has checked them, once each
            qn = connection.ops.quote_name
            context.checked_while_loading.update(
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
            checked_while_loading=context.checked_while_loading,
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
