"""A recorded run turned back into what it restores: its options, its backup, its plan.

Whoever goes on with a run (the process that executes a queued run, a ``--distribute`` job, a
``--resume``) starts here, so that every one of them reads the run's record the same way."""

from __future__ import annotations

from dataclasses import dataclass

from dbrestore.models import RestoreRun
from dbrestore.native.formats import NATIVE_FORMATS
from dbrestore.options import RestoreOptions
from dbrestore.plan.build import Plan, build_plan
from dbrestore.sources import Backup, open_backup


@dataclass(frozen=True)
class RecordedRestore:
    options: RestoreOptions
    backup: Backup
    plan: Plan | None  # None for a PostgreSQL dump: psql / pg_restore plan it

    @property
    def is_native(self) -> bool:
        return self.plan is None


def recorded_options(run: RestoreRun) -> RestoreOptions:
    """The options ``run`` was started with, checked again (a hand-edited record fails here)."""
    options = RestoreOptions(**(run.options or {}))
    options.validate()
    return options


def plan_for(backup: Backup, options: RestoreOptions) -> Plan:
    """The plan of ``backup`` under ``options`` (``--only``, ``--exclude``, ``--ignore-unknown``)."""
    return build_plan(backup, only=options.only, exclude=options.exclude, ignore_unknown=options.ignore_unknown)


def recorded_restore(run: RestoreRun, options: RestoreOptions | None = None) -> RecordedRestore:
    """``run``'s options (``options`` when the caller already read them), its backup opened again
    and planned again."""
    options = options or recorded_options(run)
    backup = open_backup(run.source)
    plan = None if backup.format in NATIVE_FORMATS else plan_for(backup, options)
    return RecordedRestore(options, backup, plan)
