"""What RQ holds for a ``--distribute`` run: its jobs, whether they are alive, and a chunk lock
that says whether a started chunk still has a live process behind it.

No RestoreRun is written here (:mod:`dbrestore.chunked.distribute` does that), so :mod:`dbrestore.runs.lifecycle`
can ask :func:`run_alive` when it judges whether a run is dead.

Why a chunk lock: RQ finds a job whose whole worker died (host lost, worker and work horse
SIGKILLed) only when its execution's heartbeat expires (``job_monitoring_interval`` + 60 s, 90 s
with django-rq's worker) and a live worker runs its maintenance (every 10 minutes by default).
Each chunk job holds a PostgreSQL session advisory lock (run id, chunk number) on a connection
of its own, which the server drops the moment that process dies; a started chunk job whose lock
is free is abandoned, and :func:`requeue_abandoned` hands it to RQ's own abandoned-job handling
(``StartedJobRegistry.cleanup``: the failure callback, then a retry or the FailedJobRegistry) at
once instead of minutes later.
"""

from __future__ import annotations

import contextlib
import logging
import secrets

from dbrestore import conf
from dbrestore.runs.locks import AdvisoryLock
from dbrestore.runs.queue import get_queue

logger = logging.getLogger(__name__)

DEAD = ("failed", "canceled", "stopped")
ENDED = ("finished", *DEAD)
# Any other status (queued, started, scheduled, ready_to_enqueue between a parent's end and its
# dependents' enqueue, ...) is a job on its way; "deferred" waits for another job.


class JobNames:
    """``dbrestore-run-<id>-<tag>-<kind>``: ``c<N>`` a chunk, ``level<N>`` a level's end,
    ``finish``; the tag (new at each enqueue) keeps them apart from an earlier enqueue's."""

    def __init__(self, run_id: int):
        self.prefix = f"dbrestore-run-{run_id}-{secrets.token_hex(3)}"
        self.finish = f"{self.prefix}-finish"

    def chunk(self, number: int) -> str:
        return f"{self.prefix}-c{number}"

    def level(self, number: int) -> str:
        return f"{self.prefix}-level{number}"


def _jobs_key(run_id: int) -> str:
    return f"dbrestore:distributed:{run_id}:jobs"


def remember_jobs(run_id: int, job_ids: list[str]) -> None:
    """Record the run's job ids (kept as long as a job may run) before any is enqueued."""
    connection = get_queue().connection
    with connection.pipeline() as pipe:
        pipe.delete(_jobs_key(run_id))
        pipe.rpush(_jobs_key(run_id), *job_ids)
        pipe.expire(_jobs_key(run_id), int(conf.get("JOB_TIMEOUT")) * 2)
        pipe.execute()


def run_job_ids(run_id: int) -> list[str]:
    return [item.decode() for item in get_queue().connection.lrange(_jobs_key(run_id), 0, -1)]


def fetch_jobs(run_id: int) -> list:
    """The run's RQ jobs (None for a job RQ no longer has)."""
    from rq.job import Job

    return Job.fetch_many(run_job_ids(run_id), connection=get_queue().connection)


def status_of(job) -> str | None:
    if job is None:
        return None
    status = job.get_status(refresh=False)
    return getattr(status, "value", status)


def chunk_number(job) -> int | None:
    """The chunk number of a chunk job (None for the other jobs of a run)."""
    prefix = job.id.rsplit("-", 1)[-1]
    return int(prefix[1:]) if prefix.startswith("c") and prefix[1:].isdigit() else None


class ChunkLock(AdvisoryLock):
    """The advisory lock (run id, chunk number) a chunk job holds while it loads its chunk."""

    def __init__(self, database: str, run_id: int, chunk: int):
        super().__init__(database, keys=(run_id, chunk))

    def wait(self) -> None:
        """Block until the lock is ours (another process runs this chunk: wait for it to end)."""
        assert self._connection is not None  # opened by acquire(), which came first
        with self._connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", self.keys)
        self.held = True


def mark_locked(job) -> None:
    """Note on the RQ job that this attempt holds its chunk lock (from here on, a free lock
    means a dead process)."""
    job.meta["chunk_lock_for"] = _attempt(job)
    job.save_meta()


def _attempt(job) -> str:
    """This attempt's start as RQ stored it (the work horse's own ``job.started_at`` is set again
    after that, in memory only)."""
    return (job.connection.hget(job.key, "started_at") or b"").decode()


def _abandoned(job, database: str, run_id: int) -> bool:
    """A started chunk job whose attempt took its lock, and whose lock is free now."""
    number = chunk_number(job)
    if number is None or not job.started_at or job.get_meta(refresh=True).get("chunk_lock_for") != _attempt(job):
        return False  # not a chunk, or not yet locked: RQ's own heartbeat check covers that moment
    if ChunkLock(database, run_id, number).busy() is not False:
        return False
    return status_of(job.__class__.fetch(job.id, connection=job.connection)) == "started"


def requeue_abandoned(run_id: int, database: str, jobs: list | None = None) -> list[str]:
    """Hand the run's abandoned chunk jobs to RQ's abandoned-job handling now; their ids."""
    jobs = fetch_jobs(run_id) if jobs is None else jobs
    dead = [job for job in jobs if status_of(job) == "started" and _abandoned(job, database, run_id)]
    if not dead:
        return []
    registry = get_queue().started_job_registry
    with registry.connection.pipeline() as pipe:
        for job in dead:
            keys = [execution.composite_key for execution in job.get_executions()]
            if keys:  # score 0: expired, so cleanup() takes it as RQ takes a job whose worker died
                pipe.zadd(registry.key, dict.fromkeys(keys, 0), xx=True)
        pipe.execute()
    for job in dead:
        logger.warning("Restore #%s: job %s was started by a worker that is gone; handed back to RQ", run_id, job.id)
    registry.cleanup()
    return [job.id for job in dead]


def run_alive(run_id: int, database: str) -> tuple[bool, str]:
    """Whether RQ still has work that will carry the run on (abandoned chunks requeued first),
    and when not, why: the reason a dead run is failed with."""
    import redis

    try:
        requeue_abandoned(run_id, database)
        jobs = fetch_jobs(run_id)
    except redis.exceptions.RedisError as exc:  # no false alarms when Redis cannot be asked
        logger.warning("Could not ask Redis about restore #%s: %s", run_id, exc)
        return True, ""
    statuses = [status_of(job) for job in jobs]
    if not jobs:
        return False, "its RQ jobs are gone"
    if any(status not in (*ENDED, "deferred", None) for status in statuses):
        return True, ""
    failed = [job for job, status in zip(jobs, statuses, strict=True) if status in DEAD]
    if failed:
        return False, f"its RQ job {failed[0].id} is {status_of(failed[0])}: {failure_reason(failed[0])}"
    if "deferred" in statuses:
        return True, ""  # a parent just finished and is enqueueing it
    return False, "its RQ jobs ended without finishing the run"


def failure_reason(job) -> str:
    """The last line of a failed job's traceback (what the chunk died of)."""
    text = ""
    with contextlib.suppress(Exception):
        result = job.latest_result()
        text = (result.exc_string or "") if result is not None else ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no reason recorded"


def cancel_jobs(run_id: int) -> int:
    """Cancel the run's jobs still waiting (queued, deferred, scheduled); how many."""
    cancelled = 0
    for job in fetch_jobs(run_id):
        if status_of(job) in ("queued", "deferred", "scheduled"):
            with contextlib.suppress(Exception):
                job.cancel()
                cancelled += 1
    return cancelled
