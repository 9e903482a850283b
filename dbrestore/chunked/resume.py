"""``restore_backup --resume RUN_ID``: which runs may go on, and what they refuse.

A ``--no-atomic`` JSON restore that failed or was cancelled (or whose process died) resumes:
its done chunks are skipped, the rest load, then the post-load steps run. An atomic restore
does not: it rolled back, and running it again is its resume.
"""

from __future__ import annotations

from typing import Any

from dbrestore import conf
from dbrestore.chunked.restore import refuse_changed
from dbrestore.exceptions import RestoreConfigError
from dbrestore.models import RestoreRun
from dbrestore.native.formats import NATIVE_FORMATS
from dbrestore.options import absolute
from dbrestore.plan.recorded import recorded_options, recorded_restore


def resumable_run(run_id: int) -> RestoreRun:
    run = RestoreRun.objects.using(conf.run_database()).filter(pk=run_id).first()
    if run is None:
        raise RestoreConfigError(f"no restore run #{run_id}")
    return run


def refuse_resume(run: RestoreRun, source: Any = None, given: dict[str, Any] | None = None) -> None:
    """Raise :class:`RestoreConfigError` (one line) unless ``run`` can be resumed as asked:
    ``source`` and ``given`` (options) must be the run's, when given at all."""

    def refuse(why: str) -> RestoreConfigError:
        return RestoreConfigError(f"restore #{run.pk} cannot resume: {why}")

    options = run.options or {}
    if run.status in (RestoreRun.Status.SUCCEEDED, RestoreRun.Status.PARTIAL):
        raise refuse(f"it finished ({run.status}); there is nothing left to load")
    if run.is_active:
        raise refuse(f"it is {run.status}")
    if options.get("atomic", True):
        raise refuse("it ran in one transaction, which rolled back; atomic restores roll back: run it again")
    if options.get("dry_run"):
        raise refuse("it was a dry run and wrote nothing: run it again")
    if run.source_format in NATIVE_FORMATS:
        raise refuse("it restored a PostgreSQL dump (pg_restore starts over): run it again")
    if source is not None and absolute(source) != run.source:
        raise refuse(f"it restored {run.source}, not {source}")
    recorded = recorded_options(run).as_json()
    for name, value in (given or {}).items():
        if name in recorded and recorded[name] != value:
            raise refuse(f"the option {name}={value!r} differs from the run's ({recorded[name]!r})")
    if run.checkpoint.get("prepared"):
        plan = recorded_restore(run).plan
        if plan is not None:
            refuse_changed(run, plan)


def reopen(run: RestoreRun) -> None:
    """The run is running again: no cancel request, no end."""
    RestoreRun.objects.using(conf.run_database()).filter(pk=run.pk).update(cancel_requested=False, finished_at=None)
    run.cancel_requested, run.finished_at = False, None
