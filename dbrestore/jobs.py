"""Background restores: the RQ job and how runs get onto the queue.

The job takes a RestoreRun id (never the object) and is enqueued only after the run's row is
committed, so the worker always finds it. With ``DBRESTORE["SYNC_JOBS"]`` (the SQLite demo,
no Redis) the "job" runs in-process right away.
"""

from __future__ import annotations

import logging

from django.db import connections, transaction

from . import conf
from .exceptions import DbRestoreError
from .models import RestoreRun
from .runs import run_database

logger = logging.getLogger(__name__)


def job_id_for(run: RestoreRun) -> str:
    return f"dbrestore-run-{run.pk}"


def run_restore(run_id: int) -> str:
    """The RQ job: run a queued RestoreRun to its end; return its final status."""
    from .engine import execute

    connections.close_all()  # a forked work horse must not share its parent's connections
    run = RestoreRun.objects.using(run_database()).get(pk=run_id)
    if run.status != RestoreRun.Status.QUEUED:
        logger.warning("Restore #%s is %s, not queued; the job does nothing", run_id, run.status)
        return run.status
    try:
        execute(run)
    except DbRestoreError as exc:
        logger.warning("Restore #%s failed: %s", run_id, exc)  # recorded on the run already
    run.refresh_from_db()
    return run.status


def get_queue():
    import django_rq

    return django_rq.get_queue(conf.get("QUEUE"), default_timeout=conf.get("JOB_TIMEOUT"))


def enqueue(run: RestoreRun) -> None:
    """Put the run on the queue once its row is committed (or run it now with SYNC_JOBS)."""
    run.job_id = job_id_for(run)
    RestoreRun.objects.using(run_database()).filter(pk=run.pk).update(job_id=run.job_id)
    if conf.get("SYNC_JOBS"):
        transaction.on_commit(lambda: run_restore(run.pk), using=run_database())
        return
    transaction.on_commit(
        lambda: get_queue().enqueue_call(
            run_restore, args=(run.pk,), job_id=run.job_id, timeout=conf.get("JOB_TIMEOUT"),
            description=f"dbrestore: restore #{run.pk} of {run.source}",
        ),
        using=run_database(),
    )


def cancel_job(run: RestoreRun) -> bool:
    """Cancel the queued job of a run; True when there was one to cancel."""
    if conf.get("SYNC_JOBS") or not run.job_id:
        return False
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    queue = get_queue()
    try:
        job = Job.fetch(run.job_id, connection=queue.connection)
    except NoSuchJobError:
        return False
    job.cancel()
    return True
