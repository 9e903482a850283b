"""Background restores through real Redis and a real rqworker process."""

from __future__ import annotations

import json

import pytest

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Customer, Tag
from tests.support.backup_data import assert_table_matches, manifest
from tests.support.processes import run_worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_async_restore_runs_in_a_real_worker(redis_queue, sample_backup, run_command, subprocess_env):
    backup = sample_backup(rows=300)
    out, _ = run_command("restore_backup", backup, "--async", "--noinput")
    run_id = int(out.strip().splitlines()[-1])  # the run id alone on the last line
    run = RestoreRun.objects.get(pk=run_id)
    assert run.status == "queued" and run.job_id
    assert redis_queue.count == 1

    status, _ = run_command("restore_status", run_id, "--json")
    assert json.loads(status)["status"] == "queued"

    worker = run_worker(subprocess_env())
    assert worker.returncode == 0, worker.stderr
    run.refresh_from_db()
    assert run.status == "succeeded", run.errors
    for entry in manifest(backup)["tables"]:
        assert_table_matches(backup, entry)
    status, _ = run_command("restore_status", run_id)
    assert f"Restore #{run_id}" in status and "succeeded" in status


def test_second_restore_refused_while_one_is_queued(redis_queue, sample_backup, run_command):
    from django.core.management.base import CommandError

    backup = sample_backup(rows=50)
    out, _ = run_command("restore_backup", backup, "--async", "--noinput")
    first = out.strip().splitlines()[-1]
    with pytest.raises(CommandError, match=f"restore #{first} of .* is already queued"):
        run_command("restore_backup", backup, "--noinput")
    with pytest.raises(CommandError, match=f"restore #{first}"):
        run_command("restore_backup", backup, "--async", "--noinput")


def test_cancel_a_queued_restore(redis_queue, sample_backup, run_command, subprocess_env):
    from dbrestore.jobs import cancel_restore

    Tag.objects.create(name="kept")
    out, _ = run_command("restore_backup", sample_backup(rows=50), "--async", "--noinput")
    run = RestoreRun.objects.get(pk=int(out.strip().splitlines()[-1]))
    assert cancel_restore(run) == "cancelled"
    worker = run_worker(subprocess_env())
    assert worker.returncode == 0
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert list(Tag.objects.values_list("name", flat=True)) == ["kept"] and not Customer.objects.exists()


def test_sync_jobs_setting_runs_without_redis(sample_backup, run_command):
    out, _ = run_command("restore_backup", sample_backup(rows=50), "--async", "--noinput")
    assert RestoreRun.objects.get(pk=int(out.strip().splitlines()[-1])).status == "succeeded"
