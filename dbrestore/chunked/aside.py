"""Indexes and FK constraints set aside for a chunked run, recorded on the run, put back at its end.

A chunked run (``--no-atomic``, and so ``--resume``, ``--jobs N``, ``--distribute``) loads into
tables without their secondary indexes and the FK constraints between restored tables, as the
atomic default does (:mod:`dbrestore.load.indexes`), but over many transactions and processes,
so what was dropped is written down first: names and exact definitions go on the run
(``RestoreRun.checkpoint["set_aside"]``), committed before the first ``DROP``. Whoever finishes
the run puts them back from that record: the restoring process after its last chunk, a
``--resume``, or the final job of ``--distribute``. Indexes are built side by side, each on a
connection of its own; then the FK constraints are added, which validates every row (rows that
point nowhere are rejected first, as the atomic path does). Each step is taken off the record
as it is done, so a kill among them loses nothing: the next attempt builds what is left.

A run that fails with indexes set aside says so (``restore_status``, the admin's run page, the
``dbrestore.W004`` check on its database); ``manage.py restore_indexes RUN_ID`` puts them back
without finishing the load. Unique indexes and primary keys never leave: they are what tells a
duplicate row, and what ``--mode append`` and ``merge`` need for their conflicts. In those modes
the FK constraints stay too (the tables keep rows the run did not write).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.db import connections, transaction

from dbrestore.conf import run_database
from dbrestore.integrity import sweep_orphans
from dbrestore.load import indexes
from dbrestore.load.indexes import SetAside
from dbrestore.load.rejects import RejectsFile
from dbrestore.models import RestoreRun
from dbrestore.options import RestoreOptions
from dbrestore.plan.build import Plan
from dbrestore.runs.progress import BaseListener
from dbrestore.runs.report import RestoreResult

logger = logging.getLogger(__name__)

KEY = "set_aside"


def recorded(run: RestoreRun, using: str | None = None) -> SetAside:
    """What the run has set aside and not put back yet, as its record says."""
    return SetAside.from_record(using or run.database, (run.checkpoint or {}).get(KEY))


def set_aside_for_run(run: RestoreRun, opts: RestoreOptions, plan: Plan) -> None:
    """Before the first chunk: record, then drop, the indexes and FKs to build after the load."""
    if not opts.indexes_after_load or connections[opts.database].vendor != "postgresql":
        return
    restored = plan.models if opts.mode == "replace" else []  # append / merge: the FKs stay
    found = indexes.find(indexes.worth_setting_aside(plan.tables), opts.database, restored=restored)
    aside = found.merged(recorded(run, opts.database))  # an earlier attempt may have dropped some
    if not aside:
        return
    save(run, aside)  # committed before anything is dropped
    indexes.drop(aside)


def save(run: RestoreRun, aside: SetAside) -> None:
    """Write what is still set aside on the run (its record gone once nothing is)."""
    using = run_database()
    runs = RestoreRun.objects.using(using)
    with transaction.atomic(using=using):
        checkpoint = dict(runs.select_for_update().values_list("checkpoint", flat=True).get(pk=run.pk) or {})
        if aside:
            checkpoint[KEY] = aside.as_record()
        else:
            checkpoint.pop(KEY, None)
        runs.filter(pk=run.pk).update(checkpoint=checkpoint)
    run.checkpoint = {**(run.checkpoint or {}), **checkpoint}
    if not aside:
        run.checkpoint.pop(KEY, None)


def workers(opts: RestoreOptions) -> int:
    """Index builds side by side: ``--jobs N``, or the cores of this machine if more."""
    return max(opts.jobs, os.cpu_count() or 1)


def put_back(context: Any, result: RestoreResult, rejects: RejectsFile, progress: BaseListener) -> None:
    """After the last chunk (``context``: the :class:`~dbrestore.chunked.restore.ChunkedRun`):
    build the indexes, then add the FK constraints, rejecting the rows that point nowhere."""
    run, using = context.run, context.using
    aside = recorded(run, using)
    if not aside:
        return
    if aside.indexes:
        progress.phase_started(f"building {len(aside.indexes)} indexes")
        try:
            aside.rebuild_side_by_side(workers(context.opts))
        finally:
            save(run, aside)  # those built are off the record, even when one failed
    if aside.foreign_keys:
        progress.phase_started(f"adding {len(aside.foreign_keys)} foreign key constraints")
        if not aside.add_foreign_keys_if_valid():
            sweep_orphans(
                context.plan,
                using,
                result,
                rejects,
                every_foreign_key=True,
                checked_while_loading=_checked(context, aside),
            )
            aside.add_foreign_keys()
        aside.foreign_keys = []
        save(run, aside)


def _checked(context: Any, aside: SetAside) -> list:
    """The FK edges whose rows were checked as they loaded: those whose constraint stayed."""
    qn = connections[context.using].ops.quote_name
    gone = {(table, column) for table, _, _, column in aside.foreign_keys}
    return [
        edge
        for settled, deferred in context.foreign_keys.values()
        for edge in settled + deferred
        if (qn(edge.model._meta.db_table), edge.field.column) not in gone
    ]


def put_back_now(run: RestoreRun) -> SetAside:
    """``restore_indexes RUN_ID``: put back what a run that will not finish set aside (its
    rows as they are: an FK that a row violates is named, and stays off the record's end)."""
    aside = recorded(run)
    if not aside:
        return aside
    done = SetAside(run.database, indexes=list(aside.indexes), foreign_keys=list(aside.foreign_keys))
    try:
        aside.rebuild_side_by_side(os.cpu_count() or 1)
        aside.add_foreign_keys()
        aside.foreign_keys = []
    finally:
        save(run, aside)
    return done


def describe(run: RestoreRun) -> str | None:
    """One line on what the run has set aside, or None when nothing is."""
    aside = recorded(run)
    if not aside:
        return None
    what = f"{len(aside.indexes)} indexes and {len(aside.foreign_keys)} foreign keys ({', '.join(aside.names())})"
    if run.is_active:
        return f"{what} set aside for the load; built again after its last chunk"
    return (
        f"{what} are set aside: the tables have no such index or constraint until the run ends "
        f"(restore_backup --resume {run.pk}) or they are put back (manage.py restore_indexes {run.pk})"
    )
