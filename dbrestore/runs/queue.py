"""The RQ queue as dbrestore asks it: which queue, whether a job is still there, cancelling
one. No RestoreRun is written here (that is :mod:`dbrestore.runs.lifecycle` and :mod:`dbrestore.jobs`)."""

from __future__ import annotations

import logging

from dbrestore import conf
from dbrestore.exceptions import RestoreConfigError
from dbrestore.models import RestoreRun

logger = logging.getLogger(__name__)

LIVE_JOB_STATUSES = ("queued", "started", "deferred", "scheduled")


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
