"""Background restores: queueing and cancelling a run, the RQ job, how runs get onto the queue.

The job takes a RestoreRun id (never the object) and is enqueued once the run's row is
committed, so the worker always finds it. With ``DBRESTORE["SYNC_JOBS"]`` (the SQLite demo,
no Redis) the "job" runs in-process right away. A run that cannot be enqueued is failed with
the reason at once: a ``queued`` run with no job behind it would block its database.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.db import connections, transaction
from django.utils import timezone

from dbrestore import conf
from dbrestore.chunked.resume import refuse_resume, reopen
from dbrestore.conf import run_database
from dbrestore.exceptions import DbRestoreError, RestoreConfigError, RestoreQueueError
from dbrestore.models import RestoreRun
from dbrestore.options import RestoreOptions, absolute
from dbrestore.runs import locks
from dbrestore.runs.lifecycle import cancel_queued, create_run, mark_running, reap_dead_runs, request_cancel, settle
from dbrestore.runs.queue import cancel_job, check_queue, get_queue
from dbrestore.service import execute

logger = logging.getLogger(__name__)


def queue_restore(source: str | Path, *, requested_by: str = "", **options: Any) -> RestoreRun:
    """Create a queued RestoreRun and hand it to the RQ worker (``--async``, the admin)."""
    opts = RestoreOptions.for_source(source, **options)
    check_queue()
    if opts.distribute and conf.get("SYNC_JOBS"):
        raise RestoreConfigError("--distribute needs RQ workers, and DBRESTORE['SYNC_JOBS'] runs jobs in-process")
    with locks.holding(opts.database):
        # The run is created and its job enqueued under the lock: nobody can see it queued
        # without a job (and fail it for that) in between.
        run = create_run(
            source=absolute(source),
            database=opts.database,
            mode=opts.mode,
            options=opts.as_json(),
            requested_by=requested_by,
            status=RestoreRun.Status.QUEUED,
        )
        if not conf.get("SYNC_JOBS"):
            enqueue(run)
    if conf.get("SYNC_JOBS"):
        enqueue(run)  # runs it in-process, taking the lock again
    return run


def queue_resume(
    run: RestoreRun, *, requested_by: str = "", source: Any = None, options: dict[str, Any] | None = None
) -> RestoreRun:
    """Queue the resume of failed, cancelled or dead ``--no-atomic`` run ``run`` (the admin's
    Resume button): refused as ``restore_backup --resume`` refuses; the same run goes on."""
    check_queue()
    with locks.holding(run.database, resuming=run.pk):
        reap_dead_runs(run.database)  # the run itself, when its process died
        run.refresh_from_db()
        refuse_resume(run, source, options)
        reopen(run)
        run.status = RestoreRun.Status.QUEUED
        run.save(update_fields=["status"])
        logger.info("Restore #%s queued to resume (by %s)", run.pk, requested_by or "?")
        if not conf.get("SYNC_JOBS"):
            enqueue(run, resumed=True)
    if conf.get("SYNC_JOBS"):
        enqueue(run, resumed=True)
    return run


def cancel_restore(run: RestoreRun) -> str:
    """Cancel a queued run now, or ask a running one to stop at its next batch boundary."""
    settle(run.database)
    run.refresh_from_db()
    if run.status == RestoreRun.Status.QUEUED:
        cancel_job(run)
        cancel_queued(run)
        return "cancelled"
    if run.status == RestoreRun.Status.RUNNING:
        request_cancel(run)
        return "stopping"
    return run.status


def job_id_for(run: RestoreRun) -> str:
    return f"dbrestore-run-{run.pk}"


def run_restore(run_id: int) -> str:
    """The RQ job: run a queued RestoreRun to its end, holding its database's lock; return
    its final status."""
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
            if run.options.get("distribute"):
                _start_distributed(run, lock)
            else:
                execute(run, lock=lock, job_id=run.job_id if _in_rq_job() else None)
        except DbRestoreError as exc:
            logger.warning("Restore #%s failed: %s", run_id, exc)  # recorded on the run already
    finally:
        lock.release()
    run.refresh_from_db()
    return run.status


def _start_distributed(run: RestoreRun, lock: locks.DatabaseLock) -> None:
    """``--distribute``: prepare the run and enqueue its chunks, for any worker to run."""
    from dbrestore.chunked.distribute import start

    mark_running(run)
    start(run, lock=lock)


def _in_rq_job() -> bool:
    if conf.get("SYNC_JOBS"):
        return False
    from rq import get_current_job

    return get_current_job() is not None


def enqueue(run: RestoreRun, *, resumed: bool = False) -> None:
    """Put the run on the queue once its row is committed (or run it now with SYNC_JOBS).

    Raises :class:`RestoreQueueError` (the run failed with the reason) when it cannot be
    enqueued now; when the enqueue waits for an outer transaction's commit, a failure then
    fails the run and is logged.
    """
    run.job_id = job_id_for(run) + (f"-resume-{int(timezone.now().timestamp())}" if resumed else "")
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
            run_restore,
            args=(run.pk,),
            job_id=run.job_id,
            timeout=conf.get("JOB_TIMEOUT"),
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
    updated = (
        RestoreRun.objects.using(run_database())
        .filter(pk=run.pk, status=RestoreRun.Status.QUEUED)
        .update(
            status=RestoreRun.Status.FAILED,
            finished_at=timezone.now(),
            errors=[*run.errors, reason],
        )
    )
    if updated:
        logger.log(level, "Restore #%s failed before it started: %s", run.pk, reason)
