"""All or nothing on PostgreSQL: a restore killed midway leaves the database as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from dbrestore.models import RestoreRun
from dbrestore.runs.lifecycle import active_run
from restoreproject.shop.models import Customer, OrderItem, Tag
from tests.support.paths import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def start_restore(backup: Path, tmp_path: Path) -> subprocess.Popen:
    """restore_backup in a process of its own, against this test database."""
    settings = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}",
        "DBRESTORE_BACKUP_DIR": str(tmp_path / "backups"),
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "restore_backup", str(backup), "--noinput", "--batch-size", "50"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_progress(process: subprocess.Popen, timeout: float = 60) -> RestoreRun:
    """Wait until the restore reports loaded rows; read through this test's own connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = RestoreRun.objects.filter(status="running", rows_processed__gt=0).first()
        if run is not None:
            return run
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("the restore never reported progress")


@pytest.fixture
def before():
    Tag.objects.create(name="there-before")
    return ["there-before"]


@pytest.fixture
def big_backup(sample_backup):
    return sample_backup(rows=40000)


def test_connection_killed_midway_rolls_back(big_backup, tmp_path, before):
    process = start_restore(big_backup, tmp_path)
    run = wait_for_progress(process)  # progress is visible from another connection mid-transaction
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
        )
        assert cursor.fetchall(), "no restore transaction to kill"
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "the database stopped the restore" in err and "Traceback" not in err
    assert list(Tag.objects.values_list("name", flat=True)) == before
    assert not Customer.objects.exists() and not OrderItem.objects.exists()
    run.refresh_from_db()
    assert run.status == "failed"
    # psycopg words it "terminating connection due to administrator command" or, when the
    # socket goes first, "server closed the connection unexpectedly": either way, the reason.
    assert any("the database stopped the restore" in e and "connection" in e for e in run.errors), run.errors
    assert "rolled back: the database is as it was before the restore" in run.errors


def test_killed_process_rolls_back_and_is_noticed(big_backup, tmp_path, before):
    process = start_restore(big_backup, tmp_path)
    run = wait_for_progress(process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert list(Tag.objects.values_list("name", flat=True)) == before
    assert not Customer.objects.exists()
    # Its database lock went with the process: the next look at the database fails the run.
    assert active_run("default") is None
    run.refresh_from_db()
    assert run.status == "failed" and "the restoring process died (its database lock was released)" in run.errors


def test_a_second_restore_is_refused_while_one_runs(big_backup, tmp_path, run_command):
    from django.core.management.base import CommandError

    process = start_restore(big_backup, tmp_path)
    run = wait_for_progress(process)
    try:
        with pytest.raises(CommandError, match=f"restore #{run.pk} of .* is already running"):
            run_command("restore_backup", big_backup, "--noinput")
    finally:
        process.communicate(timeout=120)
    assert process.returncode == 0


def test_cancel_a_running_restore_rolls_it_back(big_backup, tmp_path, before):
    from dbrestore.jobs import cancel_restore

    process = start_restore(big_backup, tmp_path)
    run = wait_for_progress(process)
    assert cancel_restore(run) == "stopping"
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1 and "ended cancelled" in err
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert list(Tag.objects.values_list("name", flat=True)) == before and not Customer.objects.exists()
