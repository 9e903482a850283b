"""--distribute: a --no-atomic restore's chunks as RQ jobs, run by real rqworker processes
against the test database (PostgreSQL) and the local Redis."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from django.core.management.base import CommandError
from django.db import connection

from dbrestore.models import RestoreRun
from tests.support.backup_data import manifest
from tests.support.chunked_runs import clean_restore, table_checksums
from tests.support.paths import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

CHUNKS = {"CHUNK_BYTES": 8192}  # small chunks: several per table of the sample
WORKER_SETTINGS = {**CHUNKS, "DISTRIBUTE_RETRIES": 1, "PROGRESS_INTERVAL": 0.0}
DISTRIBUTE = ("--noinput", "--no-atomic", "--distribute", "--no-safety-backup")


@pytest.fixture
def workers(subprocess_env, tmp_path):
    """``start(n)``: n real ``rqworker dbrestore`` processes (killed at the end of the test)."""
    started: list[subprocess.Popen] = []

    def start(count: int = 2, *extra: str) -> list[subprocess.Popen]:
        env = subprocess_env(DBRESTORE_SYNC_JOBS="0", DBRESTORE_SETTINGS_JSON=json.dumps(WORKER_SETTINGS))
        new = [
            subprocess.Popen(
                [sys.executable, "manage.py", "rqworker", "dbrestore", *extra],
                cwd=ROOT,
                env=env,
                stdout=(tmp_path / f"worker-{len(started) + i}.log").open("w"),
                stderr=subprocess.STDOUT,
            )
            for i in range(count)
        ]
        started.extend(new)
        return new

    yield start
    for process in started:
        kill_tree(process.pid)
        process.wait(timeout=10)


def kill_tree(pid: int) -> None:
    """SIGKILL a worker and its work horse (which runs in a process group of its own)."""
    try:
        parent = psutil.Process(pid)
        children = parent.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for process in [*children, parent]:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


@pytest.fixture
def chunk_settings(settings):
    settings.DBRESTORE = {**settings.DBRESTORE, **WORKER_SETTINGS}


def queue_distributed(run_command, backup: Path) -> RestoreRun:
    out, _ = run_command("restore_backup", backup, *DISTRIBUTE)
    return RestoreRun.objects.get(pk=int(out.strip().splitlines()[-1]))


def wait_for(run: RestoreRun, timeout: float = 60) -> RestoreRun:
    """The run at its end, looked at as ``--wait`` and ``restore_status`` look (which requeues
    the chunks of dead workers and fails a run nobody carries on)."""
    from dbrestore.runs.lifecycle import settle

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        settle(run.database)
        run.refresh_from_db()
        if not run.is_active:
            return run
        time.sleep(0.2)
    raise AssertionError(f"restore #{run.pk} still {run.status} after {timeout}s: {run.errors}")


def rq_job(job_id: str):
    from rq.job import Job

    from dbrestore.runs.queue import get_queue

    return Job.fetch(job_id, connection=get_queue().connection)


def prepared(run: RestoreRun, timeout: float = 60) -> None:
    """Wait until the run's first job (the plan, emptying, enqueueing) has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rq_job(run.job_id).get_status(refresh=True) == "finished":
            return
        time.sleep(0.05)
    raise AssertionError(f"the first job of restore #{run.pk} did not end")


def outcome(run: RestoreRun) -> str:
    """What a run that did not succeed says: errors, counts, the first rejects."""
    rejects = Path(run.rejects_file).read_text()[:2000] if run.rejects_file else ""
    return f"{run.status}: {run.errors} {run.tables} {rejects}"


def assert_counts_add_up(run: RestoreRun, backup: Path) -> None:
    """Every row of the backup counted once: per table and in all."""
    expected = {entry["model"]: entry["rows"] for entry in manifest(backup)["tables"]}
    tables = {label: table for label, table in run.tables.items() if label in expected}
    assert {label: table["inserted"] for label, table in tables.items()} == expected
    assert run.rows_inserted == run.rows_processed == sum(expected.values())
    assert run.rows_rejected == run.rows_skipped == 0


@pytest.mark.postgres
def test_two_workers_restore_what_a_clean_restore_does(
    redis_queue, chunk_settings, sample_backup, run_command, workers, tmp_path
):
    backup = sample_backup(rows=600)
    clean = clean_restore(run_command, backup, tmp_path / "clean")

    processes = workers(2)
    out, err = run_command("restore_backup", backup, *DISTRIBUTE, "--wait")  # returns once the run has ended
    run = RestoreRun.objects.get(pk=int(out.strip().splitlines()[1]))
    assert run.status == "succeeded", outcome(run)
    assert f"Restored {run.rows_inserted} rows (0 skipped, 0 rejected): run #{run.pk} succeeded" in out
    assert f"Restore #{run.pk}: succeeded, {run.rows_processed}/{run.rows_total} rows (100.0%)" in err
    assert table_checksums(run_command, tmp_path / "distributed") == clean
    assert_counts_add_up(run, backup)
    from dbrestore.chunked.distribute import chunk_counts

    done, total = chunk_counts(run.pk)
    assert done == total > len(manifest(backup)["tables"])  # tables were split
    hosts = {rq_job(job_id).worker_name for job_id in _chunk_job_ids(run)}
    assert len(hosts) == 2 and all(process.poll() is None for process in processes)  # both took chunks


def _chunk_job_ids(run: RestoreRun) -> list[str]:
    from dbrestore.chunked import fanout

    return [job_id for job_id in fanout.run_job_ids(run.pk) if job_id.rsplit("-", 1)[-1][1:].isdigit()]


@pytest.mark.postgres
def test_a_worker_killed_mid_chunk_has_its_chunk_run_again(
    redis_queue, chunk_settings, sample_backup, run_command, workers, tmp_path
):
    backup = sample_backup(rows=600)
    clean = clean_restore(run_command, backup, tmp_path / "clean")

    run = queue_distributed(run_command, backup)
    workers(1, "--max-jobs", "1")  # the first job only: the plan is made, the tables emptied, no chunk runs
    prepared(run)
    last = manifest(backup)["tables"][-1]
    with connection.cursor() as cursor:  # the chunks of that table wait on this lock: a worker is mid-chunk
        cursor.execute("BEGIN")
        try:
            cursor.execute(f'LOCK TABLE "{last["table"]}" IN SHARE MODE')
            workers(2)
            victim, job_id = _worker_blocked_in(run, last["model"])
            kill_tree(victim)
        finally:
            cursor.execute("ROLLBACK")
    run = wait_for(run)
    assert run.status == "succeeded", outcome(run)
    killed = rq_job(job_id)  # found abandoned, run again by the other worker
    assert killed.get_status() == "finished" and killed.retries_left == WORKER_SETTINGS["DISTRIBUTE_RETRIES"] - 1
    assert table_checksums(run_command, tmp_path / "distributed") == clean
    assert_counts_add_up(run, backup)


def _worker_blocked_in(run: RestoreRun, table: str, timeout: float = 60) -> tuple[int, str]:
    """A worker whose chunk of ``table`` (a model label) waits on a lock: its pid, the job's id."""
    from rq.worker import Worker

    from dbrestore.runs.queue import get_queue

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job_id in _chunk_job_ids(run):
            job = rq_job(job_id)
            if job.get_status() == "started" and table in (job.description or "") and job.worker_name:
                worker = Worker.find_by_key(
                    Worker.redis_worker_namespace_prefix + job.worker_name, connection=get_queue().connection
                )
                if worker is not None and _waiting_on_lock():
                    return worker.pid, job_id
        time.sleep(0.05)
    raise AssertionError(f"no chunk of {table} got to wait on the lock")


def _waiting_on_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # inside the test's transaction: not its first look
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid())"
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_a_chunk_that_always_fails_fails_the_run_after_its_retries(
    redis_queue, chunk_settings, sample_backup, run_command, workers
):
    backup = sample_backup(rows=300)
    run = queue_distributed(run_command, backup)
    workers(1, "--max-jobs", "1")
    prepared(run)
    entry = manifest(backup)["tables"][-1]
    (backup / entry["file"]).rename(backup / f"{entry['file']}.gone")  # this worker no longer reaches it
    workers(2)
    run = wait_for(run)
    assert run.status == "failed"
    assert any(
        f"failed {1 + WORKER_SETTINGS['DISTRIBUTE_RETRIES']} times" in error and entry["file"] in error
        for error in run.errors
    ), run.errors
    assert any(f"--resume {run.pk}" in error for error in run.errors)
    from dbrestore.chunked import fanout

    deadline = time.monotonic() + 30  # a chunk failing beside it may have been requeued: it does nothing
    while fanout.run_alive(run.pk, run.database)[0] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not fanout.run_alive(run.pk, run.database)[0]  # nothing left on the queue
    run.refresh_from_db()
    assert run.status == "failed"
    (backup / f"{entry['file']}.gone").rename(backup / entry["file"])
    run_command("restore_backup", "--resume", run.pk, "--noinput")  # in this process: the committed chunks kept
    run.refresh_from_db()
    assert run.status == "succeeded", outcome(run)
    assert_counts_add_up(run, backup)


def test_distribute_needs_no_atomic_and_postgres(sample_backup, run_command, vendor, settings):
    settings.DBRESTORE = {**settings.DBRESTORE, "SYNC_JOBS": False}
    backup = sample_backup(rows=20)
    with pytest.raises(CommandError, match="--distribute .* cannot share one transaction: add --no-atomic"):
        run_command("restore_backup", backup, "--noinput", "--distribute")
    if vendor != "postgresql":
        with pytest.raises(CommandError, match="--distribute needs PostgreSQL"):
            run_command("restore_backup", backup, "--noinput", "--no-atomic", "--distribute")
    with pytest.raises(CommandError, match="--wait waits for a queued restore"):
        run_command("restore_backup", backup, "--noinput", "--wait")
    assert not RestoreRun.objects.exists()


def test_admin_form_refuses_distribute_in_one_transaction():
    from dbrestore.admin.forms import RestoreForm

    form = RestoreForm({"backup": "", "mode": "replace", "atomic": "on", "distribute": "on"})
    assert not form.is_valid()
    assert "untick" in " ".join(form.non_field_errors())


@pytest.mark.postgres
def test_cancel_stops_a_distributed_run_between_chunks_and_resume_goes_on(
    redis_queue, chunk_settings, sample_backup, run_command, workers
):
    from dbrestore.jobs import cancel_restore

    backup = sample_backup(rows=300)
    run = queue_distributed(run_command, backup)
    workers(1, "--max-jobs", "1")
    prepared(run)
    assert cancel_restore(run) == "stopping"
    workers(1)
    run = wait_for(run)
    assert run.status == "cancelled" and run.rows_inserted == 0
    assert any(f"--resume {run.pk}" in error and "untouched" in error for error in run.errors), run.errors
    run_command("restore_backup", "--resume", run.pk, "--distribute")  # as the admin's Resume button: over the workers
    run = wait_for(run)
    assert run.status == "succeeded", outcome(run)
    assert_counts_add_up(run, backup)


@pytest.mark.postgres
def test_the_admin_starts_a_distributed_restore(
    redis_queue, chunk_settings, admin_client, sample_backup, backup_dir, workers
):
    import shutil

    from django.urls import reverse

    backup = shutil.copytree(sample_backup(rows=100), backup_dir / "nightly")
    options = {"backup": "nightly", "mode": "replace", "distribute": "on"}
    confirm = admin_client.post(reverse("admin:dbrestore_restorerun_restore"), options)
    assert "chunk by chunk in the RQ workers" in confirm.content.decode()
    admin_client.post(
        reverse("admin:dbrestore_restorerun_confirm"), {**options, "only": "", "exclude": "", "batch_size": ""}
    )
    run = RestoreRun.objects.latest("pk")
    assert run.status == "queued" and run.options["distribute"] and not run.options["atomic"]
    workers(2)
    run = wait_for(run)
    assert run.status == "succeeded", outcome(run)
    assert_counts_add_up(run, backup)
