"""Faults with real processes: killed CLIs and workers, terminated sessions, full disks, two
restores at once. After each: the database as it was (atomic) or described table by table
(``--no-atomic``), the run's status right at the next look, and a new restore can start at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management.base import CommandError
from django.db import connection

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Customer, Tag
from tests.support.backup_data import manifest, table_counts
from tests.support.paths import ROOT
from tests.support.processes import children, killed, start, start_restore, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def loading(process: subprocess.Popen | None = None, *, rows: int = 1) -> RestoreRun:
    """The run once it is loading rows. Progress of an atomic SQLite restore only shows at its
    end (one writer), so there: once its transaction has begun (the journal file is there)."""
    if connection.vendor == "sqlite":
        journal = Path(f"{connection.settings_dict['NAME']}-journal")
        run = wait_for(
            lambda: journal.exists() and RestoreRun.objects.filter(status="running").first(),
            "a restore's transaction",
            process=process,
        )
        time.sleep(0.05)  # the ORM path loads 10,000 rows in about 0.3 s on SQLite
        return run
    return wait_for(
        lambda: RestoreRun.objects.filter(status="running", rows_processed__gte=rows).first(),
        "rows loaded",
        process=process,
    )


def status_now(run_command, run: RestoreRun) -> dict:
    out, _ = run_command("restore_status", run.pk, "--json")
    return json.loads(out)


def assert_new_restore_starts(run_command, backup: Path) -> None:
    run_command("restore_backup", backup, "--noinput", "--no-safety-backup")
    latest = RestoreRun.objects.order_by("-pk").first()
    assert latest.status == "succeeded", latest.errors
    assert Customer.objects.count() == manifest_rows(backup, "shop.Customer")


def manifest_rows(backup: Path, model: str) -> int:
    return next(t["rows"] for t in manifest(backup)["tables"] if t["model"] == model)


@pytest.fixture
def before():
    Tag.objects.create(name="there-before")
    return table_counts()


@pytest.fixture
def backup(sample_backup):
    return sample_backup(rows=3000, name="faults")


@pytest.fixture
def big_backup(sample_backup):
    return sample_backup(rows=10000, name="big")


@pytest.fixture
def long_backup(sample_backup):
    """Long enough on the COPY path (5,000-row COPYs) that a kill after the first commits lands
    before the last table is loaded."""
    return sample_backup(rows=30000, name="long")


@pytest.fixture
def small_backup(sample_backup):
    return sample_backup(rows=50, name="small")


# -- killed processes --------------------------------------------------------------------------


def test_sigkill_of_the_cli_rolls_back_and_frees_the_database(
    big_backup, small_backup, subprocess_env, run_command, before
):
    process = start_restore(big_backup, subprocess_env())
    run = loading(process)
    killed(process)
    assert table_counts() == before
    data = status_now(run_command, run)  # the lock went with the process: seen at the next look
    assert data["status"] == "failed" and data["final"]
    assert "the restoring process died (its database lock was released)" in data["errors"]
    assert "rolled back: the database is as it was before the restore" in data["errors"]
    assert_new_restore_starts(run_command, small_backup)


@pytest.mark.parametrize("method", ["orm", "auto"])
def test_sigkill_of_a_no_atomic_cli_says_what_each_table_holds(
    long_backup, small_backup, subprocess_env, run_command, method
):
    backup = long_backup
    process = start_restore(backup, subprocess_env(), "--no-atomic", "--method", method)
    # Progress is written at every batch, so it shows on both databases as it is made.
    run = wait_for(
        lambda: RestoreRun.objects.filter(status="running", rows_inserted__gte=400).first(),
        "400 rows committed",
        process=process,
    )
    killed(process)
    counts = table_counts()
    out, _ = run_command("restore_status", run.pk)  # the run is failed at this look
    run.refresh_from_db()
    # Its counts are those of its done chunks: exactly what the tables hold (the chunk in flight
    # rolled back, and is not counted).
    for label, table in run.tables.items():
        assert table["inserted"] == counts[label], (label, table, counts[label])
    assert run.rows_inserted == sum(counts[label] for label in run.tables)
    assert "failed" in out.splitlines()[0]
    run.refresh_from_db()
    expected = {t["model"]: t["rows"] for t in manifest(backup)["tables"]}
    for label, table in run.tables.items():
        assert table["rows_now"] == counts[label]
        assert table["expected"] == expected[label]
        assert table["complete"] == (counts[label] == expected[label]), (label, table)
        state = "complete" if table["complete"] else "incomplete"
        assert f"{label}: {counts[label]} rows now, {expected[label]} expected, {state}" in run.errors
        assert f"now {counts[label]} rows of {expected[label]} expected, {state}" in out
    assert not all(table["complete"] for table in run.tables.values())
    assert_new_restore_starts(run_command, small_backup)


@pytest.mark.parametrize("victims", ["horse", "worker and horse"])
def test_sigkill_of_an_rqworker_mid_restore(
    redis_queue, big_backup, small_backup, subprocess_env, run_command, before, victims
):
    out, _ = run_command("restore_backup", big_backup, "--async", "--noinput", "--batch-size", "20", "--method", "orm")
    run = RestoreRun.objects.get(pk=int(out.strip().splitlines()[-1]))
    worker = start(["rqworker", "dbrestore"], subprocess_env(DBRESTORE_SYNC_JOBS="0"))
    try:
        loading(worker)
        horses = children(worker.pid)
        assert horses, "no work horse"
        for pid in horses:  # the work horse runs in a process group of its own
            os.kill(pid, signal.SIGKILL)
        if victims == "horse":
            # The worker lives on and moves the job to the failed registry; the run fails by its lock.
            wait_for(lambda: redis_queue.failed_job_registry.count, "the job in the failed registry")
    finally:
        worker.send_signal(signal.SIGKILL)  # the worker too, as when its machine dies
        worker.wait(timeout=30)
    wait_for(lambda: table_counts() == before, "the killed transaction to roll back", timeout=10)
    # The horse is not this test's child: it cannot be waited for, only seen gone within a moment.
    data = wait_for(lambda: (d := status_now(run_command, run))["final"] and d, "the run to be final", timeout=5)
    assert data["status"] == "failed", data
    assert "the restoring process died (its database lock was released)" in data["errors"]
    assert_new_restore_starts(run_command, small_backup)


@pytest.mark.postgres
def test_terminated_lock_session_stops_the_restore(backup, small_backup, subprocess_env, run_command, before):
    """Without its lock a restore could run beside another one: it stops, rolled back."""
    process = start_restore(backup, subprocess_env())
    run = loading(process)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        assert cursor.fetchall(), "no lock session to end"
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1 and "Traceback" not in err
    assert "lost the restore lock of database 'default'" in err
    assert table_counts() == before
    run.refresh_from_db()
    assert run.status == "failed" and any("lost the restore lock" in e for e in run.errors)
    assert_new_restore_starts(run_command, small_backup)


@pytest.mark.postgres
def test_terminated_restore_connection_frees_the_database(backup, small_backup, subprocess_env, run_command, before):
    process = start_restore(backup, subprocess_env())
    run = loading(process)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
        )
        assert cursor.fetchall()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1 and "the database stopped the restore" in err and "Traceback" not in err
    assert table_counts() == before
    assert status_now(run_command, run)["status"] == "failed"
    assert_new_restore_starts(run_command, small_backup)


# -- a lock held, not a clock ------------------------------------------------------------------


@pytest.mark.postgres
def test_a_restore_waiting_on_a_table_lock_stays_running(backup, small_backup, subprocess_env, run_command):
    """No progress (and no heartbeat) for a long time is not death: the lock says it lives."""
    import psycopg

    settings = connection.settings_dict
    blocker = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname=settings["NAME"]
    )
    blocker.execute("LOCK TABLE shop_customer IN ACCESS EXCLUSIVE MODE")
    process = start_restore(small_backup, subprocess_env())
    try:
        run = wait_for(
            lambda: RestoreRun.objects.filter(status="running").first(), "a running restore", process=process
        )
        with connection.cursor() as cursor:
            wait_for(
                lambda: (
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                    or cursor.fetchone()[0]
                ),
                "the restore to wait on the table lock",
            )
        RestoreRun.objects.filter(pk=run.pk).update(heartbeat_at=run.created_at.replace(year=2000))
        assert status_now(run_command, run)["status"] == "running"
        with pytest.raises(CommandError, match=f"restore #{run.pk} of .* is already running"):
            run_command("restore_backup", backup, "--noinput")
    finally:
        blocker.rollback()
        blocker.close()
    process.communicate(timeout=60)
    assert process.returncode == 0
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_a_restore_waiting_on_the_sqlite_write_lock_stays_running(backup, small_backup, subprocess_env, run_command):
    """SQLite: a --no-atomic restore blocked between two chunks (each a transaction) by another writer."""
    import sqlite3

    if connection.vendor != "sqlite":
        pytest.skip("the PostgreSQL case waits on a table lock (above)")
    process = start_restore(
        backup, subprocess_env(), "--no-atomic", "--method", "orm", "--batch-size", "20", "--chunk-bytes", "300"
    )
    run = wait_for(
        lambda: RestoreRun.objects.filter(status="running", rows_inserted__gte=100).first(),
        "rows committed",
        process=process,
    )
    other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None, timeout=30)
    try:
        other.execute("BEGIN IMMEDIATE")  # between two of the restore's chunks
        inserted = other.execute("SELECT rows_inserted FROM dbrestore_restorerun WHERE id = ?", [run.pk]).fetchone()
        time.sleep(1.0)
        assert process.poll() is None
        assert (
            other.execute("SELECT rows_inserted FROM dbrestore_restorerun WHERE id = ?", [run.pk]).fetchone()
            == inserted
        )  # it waits
        other.execute("UPDATE dbrestore_restorerun SET heartbeat_at = '2000-01-01 00:00:00' WHERE id = ?", [run.pk])
        other.execute("COMMIT")
        other.execute("BEGIN IMMEDIATE")
        assert status_now(run_command, run)["status"] == "running"
        with pytest.raises(CommandError, match=f"restore #{run.pk} of .* is already running"):
            run_command("restore_backup", small_backup, "--noinput")
    finally:
        other.rollback() if other.in_transaction else None
        other.close()
    process.communicate(timeout=60)
    assert process.returncode == 0
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_status_follows_the_lock_not_the_clock(small_backup, run_command):
    """A run whose heartbeat is a day old stays running while its lock is held, and fails the
    moment the lock is free."""
    import datetime

    from dbrestore.runs.locks import lock_for

    old = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    run = RestoreRun.objects.create(
        source="/backups/x", status="running", heartbeat_at=old, started_at=old, tables={}, options={"atomic": True}
    )
    holder = lock_for("default")  # the holding process, as far as the lock can tell
    assert holder.acquire()
    try:
        assert status_now(run_command, run)["status"] == "running"
        with pytest.raises(CommandError, match=f"restore #{run.pk} of /backups/x is already running"):
            run_command("restore_backup", small_backup, "--noinput")
    finally:
        holder.release()
    assert status_now(run_command, run)["status"] == "failed"
    assert_new_restore_starts(run_command, small_backup)


class Blocker:
    """Another session holding a write lock, so that a restore started meanwhile waits on it."""

    def __enter__(self):
        if connection.vendor == "sqlite":
            import sqlite3

            self.session = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
            self.session.execute("BEGIN IMMEDIATE")
        else:
            import psycopg

            settings = connection.settings_dict
            self.session = psycopg.connect(
                host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname=settings["NAME"]
            )
            self.session.execute("LOCK TABLE shop_customer IN ACCESS EXCLUSIVE MODE")
        return self

    def __exit__(self, *exc_info):
        self.session.rollback()
        self.session.close()


def test_two_restores_started_at_once_the_second_is_refused_every_time(small_backup, subprocess_env):
    """The one that takes the lock first waits on a write lock held by another session, so
    that it surely still runs when the other asks; the other is refused, whichever it is."""
    env = subprocess_env()
    for round_ in range(1, 4):
        with Blocker():
            pair = [start_restore(small_backup, env), start_restore(small_backup, env)]
            refused = wait_for(lambda pair=pair: next((p for p in pair if p.poll() is not None), None), "a refusal")
            err = refused.communicate()[1]
            assert refused.returncode == 1, err
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
            assert "is already running against database 'default'" in err or "holds the lock of database" in err, err
            winner = pair[1] if refused is pair[0] else pair[0]
            assert winner.poll() is None, winner.communicate()
        _, err = winner.communicate(timeout=120)
        assert winner.returncode == 0, err
        # The refused one made no run; the other ran to its end.
        assert RestoreRun.objects.count() == round_
        assert RestoreRun.objects.order_by("-pk").first().status == "succeeded"
    assert Customer.objects.count() == manifest_rows(small_backup, "shop.Customer")


# -- full disks --------------------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs (unmounted after the test)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs: {done.stderr}")
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path) -> None:
    with open(mount / "filler", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError:
            pass


def test_full_disk_for_the_safety_backup(small_backup, run_command, full_disk, settings):
    run_command("restore_backup", small_backup, "--noinput", "--no-safety-backup")
    before = table_counts()
    fill(full_disk)
    settings.DBRESTORE = {**settings.DBRESTORE, "BACKUP_DIR": str(full_disk)}
    with pytest.raises(CommandError) as error:
        run_command("restore_backup", small_backup, "--noinput")
    message = str(error.value)
    assert len(message.splitlines()) == 1 and "No space left on device" in message, message
    assert table_counts() == before
    run = RestoreRun.objects.order_by("-pk").first()
    assert run.status == "failed" and any("No space left on device" in e for e in run.errors)
    assert_new_restore_starts(run_command, small_backup)


def test_full_disk_for_the_rejects_file(small_backup, run_command, full_disk, tmp_path, before):
    fill(full_disk)
    folder = tmp_path / "with-rejects"
    folder.mkdir()
    rows = [{"id": pk, "name": f"t{pk}"} for pk in range(1, 200)] + [{"id": 500, "name": None}]
    (folder / "shop_tag.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    rejects = full_disk / "rejects.jsonl"
    with pytest.raises(CommandError) as error:
        run_command("restore_backup", folder, "--noinput", "--rejects-file", rejects, "--no-safety-backup")
    message = str(error.value)
    assert len(message.splitlines()) == 1 and "the rejects file cannot be written" in message, message
    assert str(rejects) in message and "shop_tag row 200" in message
    assert table_counts() == before  # 199 good rows were in, uncommitted: rolled back
    run = RestoreRun.objects.order_by("-pk").first()
    assert run.status == "failed" and "rolled back: the database is as it was before the restore" in run.errors
    assert_new_restore_starts(run_command, small_backup)


# -- the queue ---------------------------------------------------------------------------------


def test_failed_enqueue_leaves_no_queued_run(small_backup, run_command, subprocess_env):
    done = subprocess.run(
        [sys.executable, "manage.py", "restore_backup", small_backup, "--async", "--noinput"],
        cwd=ROOT,
        env=subprocess_env(DBRESTORE_SYNC_JOBS="0", REDIS_URL="redis://127.0.0.1:1/0"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "could not enqueue restore #" in done.stderr, done.stderr
    run = RestoreRun.objects.get()
    assert run.status == "failed" and "ConnectionError" in run.errors[-1]
    assert_new_restore_starts(run_command, small_backup)


def test_unknown_queue_is_refused_before_any_run(redis_queue, small_backup, run_command, settings):
    settings.DBRESTORE = {**settings.DBRESTORE, "QUEUE": "no-such-queue"}
    with pytest.raises(CommandError, match="DBRESTORE\\['QUEUE'\\] is 'no-such-queue', which is not in RQ_QUEUES"):
        run_command("restore_backup", small_backup, "--async", "--noinput")
    assert not RestoreRun.objects.exists()
    assert_new_restore_starts(run_command, small_backup)


def test_queued_run_whose_job_was_deleted_is_failed(redis_queue, small_backup, run_command):
    from rq.job import Job

    out, _ = run_command("restore_backup", small_backup, "--async", "--noinput")
    run = RestoreRun.objects.get(pk=int(out.strip().splitlines()[-1]))
    Job.fetch(run.job_id, connection=redis_queue.connection).delete()  # as the RQ dashboard does
    data = status_now(run_command, run)
    assert data["status"] == "failed"
    assert f"its RQ job {run.job_id} is gone (not on the queue); the restore never started" in data["errors"]
    assert_new_restore_starts(run_command, small_backup)


def test_running_job_deleted_stops_its_run(redis_queue, long_backup, small_backup, subprocess_env, run_command, before):
    from rq.job import Job

    out, _ = run_command("restore_backup", long_backup, "--async", "--noinput", "--batch-size", "20", "--method", "orm")
    run = RestoreRun.objects.get(pk=int(out.strip().splitlines()[-1]))
    worker = start(["rqworker", "dbrestore", "--burst"], subprocess_env(DBRESTORE_SYNC_JOBS="0"))
    try:
        loading(worker)
        Job.fetch(run.job_id, connection=redis_queue.connection).delete()
        worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    run.refresh_from_db()
    assert run.status == "cancelled", run.errors
    assert f"restore #{run.pk} stopped: its RQ job {run.job_id} was deleted" in run.errors
    assert table_counts() == before
    assert_new_restore_starts(run_command, small_backup)


# -- what a failed --no-atomic restore left -------------------------------------------------------


@pytest.mark.parametrize("method", ["orm", "auto"])
def test_no_atomic_failure_in_process_says_what_each_table_holds(tmp_path, run_command, method, settings):
    """The counts recorded match the table, on the COPY path too. Chunks of about 50 bytes (three
    rows): the first commits, the one with the bad line rolls back."""
    settings.DBRESTORE = {**settings.DBRESTORE, "COPY_BATCH_SIZE": 2}
    folder = tmp_path / "breaks"
    folder.mkdir()
    (folder / "shop_category.jsonl").write_text(json.dumps({"id": 1, "name": "root", "parent_id": None}) + "\n")
    good = "".join(json.dumps({"id": pk, "name": f"t{pk}"}) + "\n" for pk in range(1, 6))
    (folder / "shop_tag.jsonl").write_text(good + '{"id": 6, "name": \n')
    with pytest.raises(CommandError) as error:
        run_command(
            "restore_backup",
            folder,
            "--noinput",
            "--no-atomic",
            "--batch-size",
            "2",
            "--method",
            method,
            "--no-safety-backup",
            "--chunk-bytes",
            "50",
        )
    assert len(str(error.value).splitlines()) == 1
    run = RestoreRun.objects.get()
    assert run.status == "failed"
    tags = Tag.objects.count()
    assert 0 < tags < 6
    assert run.tables["shop.Tag"]["rows_now"] == tags and run.tables["shop.Tag"]["complete"] is False
    assert run.tables["shop.Tag"]["inserted"] == tags  # recorded = committed
    assert run.tables["shop.Category"]["rows_now"] == 1 and run.tables["shop.Category"]["complete"] is True
    assert f"shop.Tag: {tags} rows now, expected unknown, incomplete" in run.errors
    assert "shop.Category: 1 rows now, expected unknown, complete" in run.errors
    out, _ = run_command("restore_status", run.pk)
    assert f"now {tags} rows of ? expected, incomplete" in out


def test_admin_run_page_shows_a_dead_run_and_its_post_button_fails_it(admin_client):
    """A run left ``running`` by a killed process, its lock free: the page (a GET) only says so;
    the page's POST button fails it and counts what each table holds."""
    from django.urls import reverse

    Tag.objects.bulk_create([Tag(name=f"t{pk}") for pk in range(7)])
    run = RestoreRun.objects.create(
        source="/backups/x",
        status="running",
        mode="replace",
        options={"atomic": False},
        tables={
            "shop.Tag": {
                "table": "shop_tag",
                "expected": 10,
                "total": 5,
                "inserted": 5,
                "skipped": 0,
                "rejected": 0,
                "seconds": 1.0,
                "rows_per_s": 5.0,
                "position": 0,
                "finished": False,
            }
        },
    )
    page_url = reverse("admin:dbrestore_restorerun_change", args=[run.pk])
    page = admin_client.get(page_url).content.decode()
    run.refresh_from_db()
    assert run.status == "running"  # a GET writes nothing
    assert "This restore seems to have stopped: the restoring process died" in page
    progress = admin_client.get(reverse("admin:dbrestore_restorerun_progress", args=[run.pk])).json()
    assert progress["status"] == "running" and "the restoring process died" in progress["seems_dead"]
    response = admin_client.post(reverse("admin:dbrestore_restorerun_settle", args=[run.pk]), follow=True)
    page = response.content.decode()
    run.refresh_from_db()
    assert run.status == "failed" and f"Restore #{run.pk} is failed." in page
    assert "the restoring process died (its database lock was released)" in page
    assert "<td>7 of 10</td><td>incomplete</td>" in page
    assert "shop.Tag: 7 rows now, 10 expected, incomplete" in page
