"""The undelete as a restore: the selection found, compared, then written in one transaction.

:func:`restore_selection` is what :func:`dbrestore.service.execute` runs for a run with
``--select`` (the command, the admin's "Restore objects" page and the RQ job alike);
:func:`preview_selection` is the same walk and comparison without a run, for the question the
command asks and the admin's preview."""

from __future__ import annotations

from typing import Any

from django.core.management.color import no_style
from django.db import DatabaseError, connections, transaction

from dbrestore.exceptions import RestoreAbortedError, RestoreConfigError, SelectionConflictError, first_line
from dbrestore.files.storage import Source
from dbrestore.options import RestoreOptions
from dbrestore.plan.build import Plan
from dbrestore.plan.recorded import plan_for
from dbrestore.runs.progress import BaseListener
from dbrestore.runs.report import RestoreResult
from dbrestore.select.apply import SelectionOutcome, compare, write
from dbrestore.select.graph import collect
from dbrestore.select.lookups import parse_selection
from dbrestore.select.walk import Collection
from dbrestore.sources import Backup, open_backup


def find(plan: Plan, opts: RestoreOptions) -> tuple[Collection, SelectionOutcome]:
    """The rows the selection brings back and how each stands against the database. A selection
    that matches nothing, or rows it needs that cannot be had, are refused in one line."""
    selections = [parse_selection(text) for text in opts.select]
    collection = collect(plan, selections, using=opts.database, depth=opts.select_depth, children=opts.select_children)
    if collection.problems:
        label, where, why = collection.problems[0]
        count = len(collection.problems)
        raise RestoreConfigError(
            f"{count} {'row' if count == 1 else 'rows'} the selection needs cannot be restored, nothing was "
            f"written; first: {label} {where}: {why}"
        )
    if not collection.total:
        given = ", ".join(repr(text) for text in opts.select)
        raise RestoreConfigError(f"--select {given}: no row of the backup matches; nothing was restored")
    return collection, compare(collection, opts.database)


def preview_selection(source: Source, **options: Any) -> SelectionOutcome:
    """What ``--select`` would do, found without writing: per table, rows added, unchanged and
    conflicting."""
    opts = RestoreOptions.for_source(source, **options)
    return find(plan_for(open_backup(source), opts), opts)[1]


def restore_selection(
    backup: Backup, plan: Plan, opts: RestoreOptions, result: RestoreResult, progress: BaseListener
) -> SelectionOutcome:
    """Find, compare, then (unless ``--dry-run``) upsert the selection in one transaction; the
    outcome is recorded on ``result`` (per table, and as ``result.selection``)."""
    progress.phase_started(f"finding the rows of {', '.join(opts.select)}")
    collection, outcome = find(plan, opts)
    try:
        if not opts.dry_run:
            progress.phase_started(f"restoring {collection.total} rows")
            with transaction.atomic(using=opts.database):
                write(collection, outcome, opts.database, overwrite=opts.overwrite)
                _reset_sequences([table.model for table, _ in collection.picked()], opts.database)
    except SelectionConflictError:
        _record(outcome, result, written=False)
        raise
    except DatabaseError as exc:
        raise RestoreAbortedError(f"the database stopped the restore: {first_line(exc)}") from exc
    _record(outcome, result, written=not opts.dry_run)
    return outcome


def _record(outcome: SelectionOutcome, result: RestoreResult, *, written: bool) -> None:
    for table in outcome.tables:
        counts = result.table(table.label, table.db_table, expected=table.total)
        counts.total = table.total
        counts.inserted = len(table.added) + len(table.overwritten) if written else 0
        counts.skipped = len(table.unchanged)
    result.selection = outcome.as_dict()


def _reset_sequences(models: list, using: str) -> None:
    """Sequences stay ahead of every restored key (PostgreSQL; SQLite needs nothing)."""
    connection = connections[using]
    statements = connection.ops.sequence_reset_sql(no_style(), models)
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
