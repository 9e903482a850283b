"""Real processes killed while a chunked run has its indexes set aside, then resumed: the same
rows (create_backup checksums per table) and the same schema (pg_indexes, pg_constraint) as a
clean restore."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import psutil
import pytest
from django.db import connection

from dbrestore.models import RestoreRun
from tests.support.chunked_runs import (
    ROOT,
    SMALL_TABLES_TOO,
    clean_restore,
    schema,
    set_aside_now,
    share_done,
    start,
    table_checksums,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

SETTINGS = {**SMALL_TABLES_TOO, "PROGRESS_INTERVAL": 0.0, "CHUNK_BYTES": 8192, "DISTRIBUTE_RETRIES": 1}


@pytest.fixture(autouse=True)
def chunk_settings(settings):
    settings.DBRESTORE = {**settings.DBRESTORE, **SETTINGS}


@pytest.fixture
def env(subprocess_env):
    return subprocess_env(DBRESTORE_SETTINGS_JSON=json.dumps(SETTINGS), DBRESTORE_SYNC_JOBS="0")


def _sessions_gone() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("right_after", [True, False], ids=["resume-right-after", "resume-once-sessions-end"])
def test_sigkill_at_40_percent_with_indexes_set_aside_then_resume(
    sample_backup, run_command, env, tmp_path, right_after
):
    before = schema()
    backup = sample_backup(rows=3000)
    clean = clean_restore(run_command, backup, tmp_path / "clean")

    args = ["restore_backup", backup, "--noinput", "--no-atomic", "--no-safety-backup"]
    process = start([*args, "--method", "orm", "--batch-size", "20"], env, tmp_path / "restore.log")
    run = wait_until(share_done(0.4), "40% of the rows loaded", process=process)
    assert set_aside_now(run.pk)["indexes"] and schema() != before  # loading without them
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    if not right_after:
        wait_until(_sessions_gone, "the killed process's sessions to end")

    run_command("restore_backup", "--resume", run.pk, "--noinput")  # waits LOCK_WAIT for a dying session
    run = RestoreRun.objects.get(pk=run.pk)
    assert run.status == "succeeded", run.errors
    assert any("the restoring process died" in error for error in run.errors) or run.errors == []
    assert schema() == before and set_aside_now(run.pk) == {}
    assert table_checksums(run_command, tmp_path / "resumed") == clean


def test_a_second_live_restore_is_still_refused(sample_backup, run_command, env, tmp_path, settings):
    from django.core.management.base import CommandError

    backup = sample_backup(rows=3000)
    args = ["restore_backup", backup, "--noinput", "--no-atomic", "--no-safety-backup"]
    process = start([*args, "--method", "orm", "--batch-size", "20"], env, tmp_path / "restore.log")
    try:
        run = wait_until(share_done(0.1), "10% of the rows loaded", process=process)
        with pytest.raises(CommandError, match=f"restore #{run.pk} of .* is already running"):
            run_command("restore_backup", backup, "--noinput", "--no-atomic")
        with pytest.raises(CommandError, match=f"restore #{run.pk} of .* is already running"):
            run_command("restore_backup", "--resume", run.pk, "--noinput")  # alive: LOCK_WAIT, then refused
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    wait_until(_sessions_gone, "the killed process's sessions to end")
    run_command("restore_indexes", run.pk)


def _kill_tree(pid: int) -> None:
    try:
        parent = psutil.Process(pid)
        family = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for process in family:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def workers(env, tmp_path, redis_queue):
    started: list[subprocess.Popen] = []

    def begin(count: int, *extra: str) -> None:
        for _ in range(count):
            log = (tmp_path / f"worker-{len(started)}.log").open("w")
            started.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "rqworker", "dbrestore", *extra],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=log,
                )
            )

    yield begin
    for process in started:
        _kill_tree(process.pid)
        process.wait(timeout=10)


def _worker_blocked_in_a_chunk(run: RestoreRun) -> int | None:
    """The pid of a worker loading a chunk of ``run`` that waits on a table lock."""
    from rq.job import Job
    from rq.worker import Worker

    from dbrestore.chunked import fanout
    from dbrestore.runs.queue import get_queue

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid())"
        )
        if not cursor.fetchone()[0]:
            return None
    redis = get_queue().connection
    for job_id in fanout.run_job_ids(run.pk):
        if not job_id.rsplit("-", 1)[-1][1:].isdigit():
            continue  # a level's end or the finish
        job = Job.fetch(job_id, connection=redis)
        if job.get_status() == "started" and job.worker_name and job.get_meta(refresh=True).get("chunk_lock_for"):
            worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + job.worker_name, connection=redis)
            if worker is not None:
                return worker.pid
    return None


def test_a_distributed_worker_killed_mid_chunk_with_indexes_set_aside(sample_backup, run_command, workers, tmp_path):
    from rq.job import Job

    from dbrestore.runs.lifecycle import settle
    from dbrestore.runs.queue import get_queue

    before = schema()
    backup = sample_backup(rows=1000)
    clean = clean_restore(run_command, backup, tmp_path / "clean")

    out, _ = run_command("restore_backup", backup, "--noinput", "--no-atomic", "--distribute", "--no-safety-backup")
    run = RestoreRun.objects.get(pk=int(out.strip().splitlines()[-1]))
    workers(1, "--max-jobs", "1")  # the first job: the plan, the tables emptied, the indexes set aside
    first = Job.fetch(run.job_id, connection=get_queue().connection)
    wait_until(lambda: first.get_status(refresh=True) == "finished", "the run prepared")
    assert set_aside_now(run.pk)["indexes"] and schema() != before
    with connection.cursor() as cursor:  # the chunks of the customers wait on this lock: a worker is mid-chunk
        cursor.execute("BEGIN")
        try:
            cursor.execute('LOCK TABLE "shop_customer" IN SHARE MODE')
            workers(2)
            _kill_tree(wait_until(lambda: _worker_blocked_in_a_chunk(run), "a worker mid-chunk"))
        finally:
            cursor.execute("ROLLBACK")

    def ended() -> RestoreRun | None:
        settle(run.database)  # as --wait and restore_status look: a dead worker's chunk is requeued
        run.refresh_from_db()
        return None if run.is_active else run

    wait_until(ended, "the distributed run to end", timeout=120)
    assert run.status == "succeeded", run.errors
    assert schema() == before and set_aside_now(run.pk) == {}
    assert table_checksums(run_command, tmp_path / "distributed") == clean
