"""``--distribute``: a ``--no-atomic`` restore's chunks as RQ jobs that any number of workers run.

The run is queued like ``--async``; its first job (:func:`dbrestore.jobs.run_restore`, holding the
database's lock) prepares it (checks, safety backup, emptying, the chunk plan) and enqueues:

* one job per chunk (:func:`run_chunk`); those of FK level 0 may start at once;
* after each level a job that waits for every chunk of it (:func:`level_done`, RQ ``depends_on``
  with the list of their ids), which the next level's chunks wait for: one dependency each, not
  one per chunk of the level before;
* a final job (:func:`finish`) after the last level: the post-load steps, and the run's end.

A chunk job that raises is retried ``DISTRIBUTE_RETRIES`` times by RQ (``Retry``); after the last
attempt its failure callback fails the run with the reason and cancels the jobs still waiting,
leaving the run resumable (``restore_backup --resume RUN_ID``: the committed chunks are kept).
A work horse killed mid-chunk is retried by its worker at once; a worker lost with its work horse
is found by its chunk lock (:mod:`dbrestore.chunked.fanout`) and requeued. Once the first job has ended
no process holds the database's lock: the run's liveness follows from its RQ jobs instead
(:func:`dbrestore.runs.reap_dead_runs` asks :func:`dbrestore.chunked.fanout.run_alive`).
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import IO, Any, TypeGuard

from django.db import connections
from django.utils import timezone

from dbrestore import conf
from dbrestore.chunked import fanout
from dbrestore.chunked import restore as chunked
from dbrestore.conf import run_database
from dbrestore.exceptions import DbRestoreError, RestoreConfigError, RestoreQueueError, first_line
from dbrestore.models import RestoreRun
from dbrestore.plan.recorded import recorded_options, recorded_restore
from dbrestore.runs.lifecycle import RunRecorder, settle, tables_progress
from dbrestore.runs.locks import DatabaseLock
from dbrestore.runs.queue import get_queue
from dbrestore.runs.report import RestoreResult

logger = logging.getLogger(__name__)

_held: list[fanout.ChunkLock] = []  # the chunk lock of this process's last chunk (see run_chunk)


# The first job: prepare, then enqueue --------------------------------------------------------
def start(run: RestoreRun, *, lock: DatabaseLock) -> None:
    """Prepare ``run`` in its first job, holding the database's ``lock`` (checks, safety backup,
    emptying, the chunk plan: done once, recorded for a resume), then enqueue its chunks."""
    opts = recorded_options(run)
    result = RestoreResult(
        run_id=run.pk, source=run.source, database=opts.database, method="copy" if opts.uses_copy() else "orm"
    )
    recorder = RunRecorder(run, restore_database=opts.database, atomic=True, lock=lock)  # its own connection
    try:
        recorded = recorded_restore(run, opts)
        backup, plan = recorded.backup, recorded.plan
        RestoreRun.objects.using(run_database()).filter(pk=run.pk).update(source_format=backup.format)
        if plan is None:
            raise RestoreConfigError(
                f"--distribute loads JSON backups chunk by chunk; {run.source} is a PostgreSQL "
                "dump, which pg_restore loads (--jobs N runs it in parallel)"
            )
        levels = chunked.prepare_chunked_run(run, opts, backup, plan, result, recorder)
        recorder.write(tables=tables_progress(result), warnings=result.warnings, force=True)
        count = enqueue_levels(run.pk, levels)
    except BaseException as exc:
        fail_run(run.pk, str(exc) if isinstance(exc, DbRestoreError) else f"{type(exc).__name__}: {exc}")
        raise
    finally:
        recorder.close()
    logger.info("Restore #%s: %s chunks in %s FK levels enqueued on %r", run.pk, count, len(levels), conf.get("QUEUE"))


def _job_options(run_id: int) -> dict[str, Any]:
    from rq import Retry

    keep = int(conf.get("JOB_TIMEOUT"))  # statuses stay readable for as long as a job may run
    retries = int(conf.get("DISTRIBUTE_RETRIES"))
    return {"timeout": keep, "result_ttl": keep, "failure_ttl": keep, "retry": Retry(max=retries) if retries else None}


def enqueue_levels(run_id: int, levels: list[list[Any]]) -> int:
    """Enqueue the chunk jobs level by level, a barrier after each, and the final job; return
    the number of chunks. Every dependency is on a job of this enqueue (named with its tag):
    a dependency on a job id used before (``dbrestore-run-<id>``, the same id in another
    database's history) would also wake the dependents recorded under it back then."""
    from rq import Callback

    name = fanout.JobNames(run_id)
    chunks = [
        (number, level, chunk)
        for number, (level, chunk) in enumerate((level, chunk) for level, items in enumerate(levels) for chunk in items)
    ]
    fanout.remember_jobs(
        run_id,
        [
            *(name.chunk(number) for number, _, _ in chunks),
            *(name.level(level) for level in range(len(levels))),
            name.finish,
        ],
    )
    queue, options = get_queue(), _job_options(run_id)
    depends: str | list[str] | None = None  # the first level runs at once: the run is prepared
    try:
        for level in range(len(levels)):
            mine = [(number, chunk) for number, at, chunk in chunks if at == level]
            for number, chunk in mine:
                queue.enqueue_call(
                    run_chunk,
                    args=(run_id, number, chunk.as_dict()),
                    job_id=name.chunk(number),
                    depends_on=depends,
                    on_failure=Callback(chunk_failed),
                    **options,
                    description=f"dbrestore: restore #{run_id}: {describe(chunk)}",
                )
            depends = queue.enqueue_call(
                level_done,
                args=(run_id, level),
                job_id=name.level(level),
                **{**options, "retry": None},
                depends_on=[name.chunk(number) for number, _ in mine] or depends,
                description=f"dbrestore: restore #{run_id} FK level {level} loaded",
            ).id
        queue.enqueue_call(
            finish,
            args=(run_id,),
            job_id=name.finish,
            depends_on=depends,
            **options,
            on_failure=Callback(finish_failed),
            description=f"dbrestore: restore #{run_id} post-load steps",
        )
    except Exception as exc:  # Redis went away midway: nothing half-enqueued may run
        fanout.cancel_jobs(run_id)
        raise RestoreQueueError(
            f"could not enqueue the chunks of restore #{run_id} on RQ queue "
            f"{conf.get('QUEUE')!r}: {type(exc).__name__}: {exc}"
        ) from exc
    return len(chunks)


def describe(chunk: Any) -> str:
    """A chunk (or its ``as_dict()``) in one line for job descriptions and messages."""
    chunk = chunk if not isinstance(chunk, dict) else SimpleNamespace(**chunk)
    end = "the end" if chunk.end is None else f"byte {chunk.end}"
    return f"{chunk.table} chunk {chunk.index} (bytes {chunk.start} to {end})"


# The jobs ----------------------------------------------------------------------------------
def _load_run(run_id: int) -> RestoreRun | None:
    """The job's run, or None when this job is not one of the run's current jobs: left behind
    by an earlier enqueue of the run (RQ retries an abandoned job whenever it finds it), or of a
    run of the same id in another database."""
    from rq import get_current_job

    connections.close_all()  # a forked work horse must not share its parent's connections
    job = get_current_job()
    if job is not None and job.id not in fanout.run_job_ids(run_id):
        logger.warning("Job %s is not a job of restore #%s now; it does nothing", job.id, run_id)
        return None
    return RestoreRun.objects.using(run_database()).get(pk=run_id)


def _goes_on(run: RestoreRun | None) -> TypeGuard[RestoreRun]:
    return run is not None and run.status == RestoreRun.Status.RUNNING and not run.cancel_requested


def run_chunk(run_id: int, number: int, chunk: dict[str, Any]) -> str:
    """The RQ job of chunk ``number`` (``Chunk.as_dict()``): load it (a second load of a
    committed chunk does nothing)."""
    from rq import get_current_job

    run = _load_run(run_id)
    if not _goes_on(run):
        return "skipped"  # the run failed or is being cancelled: load nothing more
    for lock in _held:  # a worker without fork (SimpleWorker) runs the next chunk in this process
        lock.release()
    _held.clear()
    lock = fanout.ChunkLock(run.database, run_id, number)
    if not lock.acquire():
        logger.warning("Restore #%s: chunk %s is being loaded by another process; waiting for it", run_id, number)
        lock.wait()
    # Held until this process ends, so past the moment RQ records the job as finished: a started
    # job whose lock is free is then truly abandoned (see fanout).
    _held.append(lock)
    if get_current_job() is not None:
        fanout.mark_locked(get_current_job())
    _sweep(run)
    counts = chunked.load_chunk(run_id, chunk)
    chunked.refresh_run_counts(run_id)  # the sums of the done chunks' checkpoints: none counted twice
    return "loaded" if counts is not None else "done already"


def _sweep(run: RestoreRun) -> None:
    """Requeue the run's chunks abandoned by a dead worker (any job of the run looks)."""
    try:
        fanout.requeue_abandoned(run.pk, run.database)
    except Exception as exc:  # a look-around must not fail the chunk
        logger.warning("Restore #%s: could not look for abandoned chunks: %s", run.pk, exc)


def level_done(run_id: int, level: int) -> str:
    """The barrier after FK level ``level``: a cancel request ends the run here."""
    run = _load_run(run_id)
    if run is None:
        return "not this run's"
    if run.status == RestoreRun.Status.RUNNING and run.cancel_requested:
        end_cancelled(run_id)
        return "cancelled"
    _sweep(run)
    return "next level"


def finish(run_id: int) -> str:
    """The final job: the post-load steps (FK fill-in, constraint checks, sequences,
    verification), and the run's end; its final status."""
    run = _load_run(run_id)
    if run is None:
        return "not this run's"
    if run.status == RestoreRun.Status.RUNNING and run.cancel_requested:
        end_cancelled(run_id)
    elif run.status == RestoreRun.Status.RUNNING:
        chunked.finish_chunked_run(run_id)
    run.refresh_from_db()
    return run.status


# Failures --------------------------------------------------------------------------------
def chunk_failed(job, connection, exc_type, exc_value, traceback) -> None:
    """RQ's failure callback of a chunk job (each attempt, and an abandoned one): after the last
    attempt, the run fails with the reason."""
    run_id, number, chunk = job.args
    reason = first_line(exc_value) if str(exc_value) else "the worker running it died"
    if job.should_retry:
        logger.warning(
            "Restore #%s: chunk %s failed (%s); retried, %s attempts left", run_id, number, reason, job.retries_left
        )
        return
    attempts = 1 + int(conf.get("DISTRIBUTE_RETRIES"))
    fail_run(run_id, f"{describe(chunk)} failed {attempts} times: {exc_type.__name__}: {reason}")


def finish_failed(job, connection, exc_type, exc_value, traceback) -> None:
    if not job.should_retry:
        fail_run(job.args[0], f"the post-load steps failed: {exc_type.__name__}: {first_line(exc_value)}")


def fail_run(run_id: int, reason: str) -> bool:
    """Fail an active distributed run (once), cancel its waiting jobs, say how to resume."""
    return _end(run_id, RestoreRun.Status.FAILED, reason)


def end_cancelled(run_id: int) -> bool:
    """End a run whose cancel was asked for: the chunks not started are not loaded."""
    return _end(run_id, RestoreRun.Status.CANCELLED, f"restore #{run_id} was cancelled")


def _end(run_id: int, status: str, reason: str) -> bool:
    """End the run ``status`` with ``reason`` and what each table holds (done, partial N of M
    chunks, untouched: resumable); then cancel its jobs still waiting (after: a run with only
    cancelled jobs left, still active, would look dead to :func:`dbrestore.runs.reap_dead_runs`)."""
    using = run_database()
    run = RestoreRun.objects.using(using).filter(pk=run_id).first()
    if run is None or not run.is_active:
        fanout.cancel_jobs(run_id)
        return False
    tables = dict(run.tables)
    states = RestoreResult(run_id=run_id, source=run.source, database=run.database)
    try:
        chunked.note_chunk_states(run, states, tables)  # "resume it with: ... (table done; table partial: N of M)"
    except Exception as exc:  # the reason must be recorded all the same
        logger.warning("Could not read the checkpoints of restore #%s: %s", run_id, exc)
    errors = [*run.errors, reason, *(states.errors or [f"resume it with: manage.py restore_backup --resume {run_id}"])]
    updated = (
        RestoreRun.objects.using(using)
        .filter(pk=run_id, status__in=RestoreRun.ACTIVE_STATUSES)
        .update(
            status=status,
            finished_at=timezone.now(),
            current_table="",
            tables=tables,
            errors=errors[-conf.get("MAX_MESSAGES") :],
        )
    )
    fanout.cancel_jobs(run_id)
    if updated:
        logger.warning("Restore #%s %s: %s", run_id, status, reason)
    return bool(updated)


# Waiting (restore_backup --wait) --------------------------------------------------------------
def wait(run: RestoreRun, stream: IO[str], *, interval: float = 2.0, poll: float = 0.5) -> RestoreRun:
    """Follow ``run`` to its end, a progress line every ``interval`` seconds on ``stream``; dead
    workers' chunks are requeued and a run with no live job left is failed on the way."""
    last_line, shown = 0.0, None
    while True:
        run.refresh_from_db()
        if run.is_active:
            settle(run.database)  # fails a run nobody carries on any more (and requeues abandoned chunks)
            run.refresh_from_db()
        line = progress_line(run)
        if line != shown and (time.monotonic() - last_line >= interval or not run.is_active):
            stream.write(line + "\n")
            stream.flush()
            last_line, shown = time.monotonic(), line
        if not run.is_active:
            return run
        time.sleep(poll)


def progress_line(run: RestoreRun) -> str:
    of = f"/{run.rows_total}" if run.rows_total else ""
    elapsed = (timezone.now() - run.started_at).total_seconds() if run.started_at else 0
    speed = f", {run.rows_processed / elapsed:,.0f} rows/s" if elapsed > 0 and run.is_active else ""
    chunks = chunk_counts(run.pk) if run.options.get("distribute") else None
    done = f", chunks {chunks[0]}/{chunks[1]}" if chunks else ""
    return f"Restore #{run.pk}: {run.status}, {run.rows_processed}{of} rows ({run.percent:.1f}%){done}{speed}"


def chunk_counts(run_id: int) -> tuple[int, int] | None:
    """(chunk jobs finished, chunk jobs) of a distributed run, as RQ has them."""
    try:
        jobs = [job for job in fanout.fetch_jobs(run_id) if job is not None and fanout.chunk_number(job) is not None]
    except Exception:  # progress text only
        return None
    if not jobs:
        return None
    return sum(1 for job in jobs if fanout.status_of(job) == "finished"), len(jobs)
