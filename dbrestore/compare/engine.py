"""``compare(source, **options)``: the backup against the database, as the restore with these
options would see it, writing nothing.

The restore's own pieces decide: :meth:`RestoreOptions.for_source <dbrestore.options.RestoreOptions.for_source>`
the options (and refuses what it refuses), :func:`~dbrestore.sources.open_backup` the format,
:func:`~dbrestore.plan.build.build_plan` the models, the manifest's checksums and the outside
references the same checks as before a restore, :class:`~dbrestore.convert.row_converter.RowConverter`
the values. Each table is then compared by :class:`~dbrestore.compare.table.TableComparison`.

Reads only, each in a transaction of its own as long as one batch: the restore lock is not
taken, and a restore that runs meanwhile is not held up (on PostgreSQL a read that would wait
for a table a restore is writing gives up after ``LOCK_TIMEOUT`` and says so).
"""

from __future__ import annotations

import time
from typing import Any

from django.db import DatabaseError, models

from dbrestore import conf
from dbrestore.backups.safety import prepare_outside_references
from dbrestore.compare.reading import patient_reads
from dbrestore.compare.report import DiffReport, OutsideEffect
from dbrestore.compare.table import TableComparison, Watcher
from dbrestore.exceptions import RestoreAbortedError, RestoreConfigError, first_line
from dbrestore.files.storage import Source
from dbrestore.integrity.verify import migration_drift, verify_checksums
from dbrestore.models import RestoreRun
from dbrestore.native.formats import NATIVE_FORMATS
from dbrestore.options import RestoreOptions, absolute
from dbrestore.plan.build import Plan, build_plan, plan_warnings
from dbrestore.sources import open_backup

DEFAULT_SAMPLES = 5


def compare(source: Source, *, samples: int = DEFAULT_SAMPLES, **options: Any) -> DiffReport:
    """Compare backup ``source`` with the database as a restore with ``options`` would: per
    table, rows added, changed (with the fields), removed, unchanged and rejected (with the
    reason), with up to ``samples`` examples of each. Writes nothing; raises the
    :class:`~dbrestore.exceptions.DbRestoreError` the restore would raise for bad input."""
    if samples < 0:
        raise RestoreConfigError(f"--diff-samples must be 0 or more (got {samples})")
    started = time.monotonic()
    opts = RestoreOptions.for_source(source, **options)
    opts.check_row_load()
    backup = open_backup(source)
    if backup.format in NATIVE_FORMATS:
        raise RestoreConfigError(
            f"{backup.path}: a PostgreSQL dump ({backup.format}) is restored by psql / pg_restore, not row by row: "
            "it cannot be compared (restore it into a scratch database and back that up with create_backup)"
        )
    report = DiffReport(absolute(backup.path), opts.database, opts.mode, backup.format, samples=samples)
    report.warnings.extend(backup.notes)
    plan = build_plan(backup, only=opts.only, exclude=opts.exclude, ignore_unknown=opts.ignore_unknown)
    report.warnings.extend(plan_warnings(plan))
    report.warnings.extend(
        f"{table.data.origin}: {table.label} is excluded (--exclude or DBRESTORE['EXCLUDE']): not compared"
        for table in plan.excluded
    )
    if not opts.skip_checksum:
        verify_checksums(plan)
    report.warnings.extend(migration_drift(backup, opts.database))
    report.warnings.extend(_running_restores(opts.database))
    try:
        with patient_reads(opts.database):
            if opts.mode == "replace":
                report.warnings.extend(prepare_outside_references(plan, opts))  # refuses as the restore does
            _compare_tables(plan, opts, report)
    except DatabaseError as exc:
        raise RestoreAbortedError(_read_failed(exc)) from exc
    report.seconds = time.monotonic() - started
    return report


def _compare_tables(plan: Plan, opts: RestoreOptions, report: DiffReport) -> None:
    watchers = _watchers(plan)
    for planned in plan.tables:
        started = time.monotonic()
        diff = report.table(planned.label, planned.db_table)
        comparison = TableComparison(
            planned, diff, using=opts.database, mode=opts.mode, watchers=watchers.get(planned.model, [])
        )
        comparison.run()
        diff.seconds = time.monotonic() - started
        for (model, fk), (rows, example) in comparison.pointing.items():
            if rows:
                report.outside.append(
                    OutsideEffect(model._meta.label, fk.name, planned.label, rows, example, emptied=False)
                )
    loaded = set(plan.models)
    for model in plan.models_to_empty:  # --cascade: tables outside the backup, emptied whole
        if model not in loaded:
            _emptied(model, opts.database, report)


def _watchers(plan: Plan) -> dict[type[models.Model], list[Watcher]]:
    """The outside FKs a replace keeps (their rows stay, pointing into replaced tables), by the
    table they point to: only FKs to its primary key can be followed through removed keys."""
    found: dict[type[models.Model], list[Watcher]] = {}
    for kept in plan.kept_outside:
        fk = kept.field
        if isinstance(fk, models.ForeignKey) and fk.target_field.primary_key:
            found.setdefault(fk.related_model, []).append((kept.model, fk))
    return found


def _emptied(model: type[models.Model], using: str, report: DiffReport) -> None:
    diff = report.table(model._meta.label, model._meta.db_table)
    rows = model._base_manager.using(using)
    diff.removed = rows.count()
    diff.removed_pks = list(rows.order_by("pk").values_list("pk", flat=True)[: report.samples])
    diff.notes.append("not in the backup: --cascade empties it")


def _running_restores(database: str) -> list[str]:
    """A restore queued or running against the database: the diff compares with what the
    database has committed, not with what that restore will leave."""
    runs = RestoreRun.objects.using(conf.run_database()).filter(
        database=database, status__in=RestoreRun.ACTIVE_STATUSES
    )
    return [
        f"restore #{run.pk} of {run.source} is {run.status} against database {database!r}: this diff compares "
        "with the rows committed before it"
        for run in runs.order_by("created_at")[:3]
    ]


def _read_failed(exc: DatabaseError) -> str:
    if getattr(getattr(exc, "__cause__", None), "sqlstate", None) == "55P03":  # lock_not_available
        return (
            "a restore is writing the tables now (it holds their lock): compare again when it has finished "
            f"({first_line(exc)})"
        )
    return f"the database stopped the diff: {first_line(exc)}"
