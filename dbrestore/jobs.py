"""Background restores: the RQ job and how runs get onto the queue.

The job takes a RestoreRun id (never the object) and is enqueued once the run's row is
committed, so the worker always finds it. With ``DBRESTORE["SYNC_JOBS"]`` (the SQLite demo,
no Redis) the "job" runs in-process right away. A run that cannot be enqueued is failed with
the reason at once: a ``queued`` run with no job behind it would block its database.
"""

from __future__ import annotations

import logging

from django.db import connections, transaction
from django.utils import timezone

from . import conf, locks
from .exceptions import DbRestoreError, RestoreConfigError, RestoreQueueError
from .models import RestoreRun

logger = logging.getLogger(__name__)

LIVE_JOB_STATUSES = ("queued", "started", "deferred", "scheduled")


def run_database() -> str:
    return conf.get("RUN_DATABASE")


def job_id_for(run: RestoreRun) -> str:
    return f"dbrestore-run-{run.pk}"


def run_restore(run_id: int) -> str:
    """The RQ job: run a queued RestoreRun to its end, holding its database's lock; return
    its final status."""
    from .engine import execute
    from .runs import reap_dead_runs

    connections.close_all()  # a forked work horse must not share its parent's connections
    run = RestoreRun.objects.using(run_database()).get(pk=run_id)
    lock = locks.lock_for(run.database)
    # Someone may hold the lock for a moment (a progress page checking liveness): wait a little.
    if not lock.acquire(wait=max(conf.get("LOCK_WAIT"), 5.0)):
        lock.release()
        _fail_queued(run, f"the database {run.database!r} is locked by another restore")
        return RestoreRun.Status.FAILED
    try:
        run.refresh_from_db()
        if run.status != RestoreRun.Status.QUEUED:
            logger.warning("Restore #%s is %s, not queued; the job does nothing", run_id, run.status)
            return run.status
        reap_dead_runs(run.database)  # runs left running are dead: we hold the lock (this one is alive)
        try:
            execute(run, lock=lock, job_id=run.job_id if _in_rq_job() else None)
        except DbRestoreError as exc:
            logger.warning("Restore #%s failed: %s", run_id, exc)  # recorded on the run already
    finally:
        lock.release()
    run.refresh_from_db()
    return run.status


def _in_rq_job() -> bool:
    if conf.get("SYNC_JOBS"):
        return False
    from rq import get_current_job

    return get_current_job() is not None


def get_queue():
    import django_rq

    return django_rq.get_queue(conf.get("QUEUE"), default_timeout=conf.get("JOB_TIMEOUT"))


def check_queue() -> None:
    """Refuse before any run exists when the configured queue is not one django-rq knows."""
    if conf.get("SYNC_JOBS"):
        return
    from django_rq.settings import QUEUES

    if conf.get("QUEUE") not in QUEUES:
        raise RestoreConfigError(
            f"DBRESTORE['QUEUE'] is {conf.get('QUEUE')!r}, which is not in RQ_QUEUES ({', '.join(QUEUES)})"
        )


def enqueue(run: RestoreRun) -> None:
    """Put the run on the queue once its row is committed (or run it now with SYNC_JOBS).

    Raises :class:`RestoreQueueError` (the run failed with the reason) when it cannot be
    enqueued now; when the enqueue waits for an outer transaction's commit, a failure then
    fails the run and is logged.
    """
    run.job_id = job_id_for(run)
    RestoreRun.objects.using(run_database()).filter(pk=run.pk).update(job_id=run.job_id)
    if conf.get("SYNC_JOBS"):
        transaction.on_commit(lambda: run_restore(run.pk), using=run_database())
        return
    if connections[run_database()].in_atomic_block:
        transaction.on_commit(lambda: _enqueue_after_commit(run), using=run_database())
    else:
        _enqueue_now(run)


def _enqueue_now(run: RestoreRun) -> None:
    try:
        get_queue().enqueue_call(
            run_restore, args=(run.pk,), job_id=run.job_id, timeout=conf.get("JOB_TIMEOUT"),
            description=f"dbrestore: restore #{run.pk} of {run.source}",
        )
    except Exception as exc:  # redis.ConnectionError, a misconfigured queue...: the run must not stay queued
        reason = f"could not enqueue restore #{run.pk} on RQ queue {conf.get('QUEUE')!r}: {type(exc).__name__}: {exc}"
        _fail_queued(run, reason, logging.INFO)  # the caller gets the error
        raise RestoreQueueError(reason) from exc


def _enqueue_after_commit(run: RestoreRun) -> None:
    try:
        _enqueue_now(run)
    except RestoreQueueError as exc:
        logger.error("%s", exc)


def _fail_queued(run: RestoreRun, reason: str, level: int = logging.WARNING) -> None:
    updated = RestoreRun.objects.using(run_database()).filter(pk=run.pk, status=RestoreRun.Status.QUEUED).update(
        status=RestoreRun.Status.FAILED, finished_at=timezone.now(), errors=[*run.errors, reason],
    )
    if updated:
        logger.log(level, "Restore #%s failed before it started: %s", run.pk, reason)


def job_exists(job_id: str) -> bool:
    """Whether RQ still has job ``job_id`` (True when Redis cannot be asked: no false alarms)."""
    import redis

    try:
        return bool(get_queue().connection.exists(f"rq:job:{job_id}"))
    except redis.exceptions.RedisError as exc:
        logger.warning("Could not ask Redis about job %s: %s", job_id, exc)
        return True


def job_status(run: RestoreRun) -> bool | str | None:
    """True when a live RQ job stands behind the queued ``run``; else its RQ status or None
    (no such job). With SYNC_JOBS, or when Redis cannot be asked, True (no false alarms)."""
    if conf.get("SYNC_JOBS"):
        return True
    if not run.job_id:
        return None
    import redis
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        job = Job.fetch(run.job_id, connection=get_queue().connection)
        status = job.get_status(refresh=False)
    except NoSuchJobError:
        return None
    except redis.exceptions.RedisError as exc:
        logger.warning("Could not ask Redis about job %s: %s", run.job_id, exc)
        return True
    status = getattr(status, "value", status)
    return True if status in LIVE_JOB_STATUSES else status


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
