"""Safety backups live apart from the backups to restore: in BACKUP_DIR/safety/, listed with
--list --all, found by --rollback from any directory, pruned to SAFETY_BACKUP_KEEP."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Customer, Tag
from tests.support.paths import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def names(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()[1:]]


def test_safety_backups_are_not_candidates(sample_backup, run_command, backup_dir):
    shutil.copytree(sample_backup(rows=100), backup_dir / "nightly")
    run_command("restore_backup", "nightly", "--noinput")  # into empty tables: nothing to back up
    assert RestoreRun.objects.get().safety_backup == ""
    for _ in range(3):
        run_command("restore_backup", "nightly", "--noinput")
    runs = list(RestoreRun.objects.order_by("pk"))[1:]
    assert all(run.safety_backup.startswith(str(backup_dir / "safety") + "/") for run in runs)

    out, _ = run_command("restore_backup", "--list")
    assert names(out) == ["nightly"]  # not 4 entries, 3 of them safety backups
    out, _ = run_command("restore_backup", "--list", "--all")
    listed = names(out)
    assert listed[0] == "safety/" + runs[-1].safety_backup.rsplit("/", 1)[1]  # newest first
    assert sorted(listed) == sorted(["nightly", *("safety/" + r.safety_backup.rsplit("/", 1)[1] for r in runs)])

    run_command("restore_backup", "--latest", "--noinput")
    assert RestoreRun.objects.latest("pk").source == str(backup_dir / "nightly")

    from dbrestore.admin.forms import RestoreForm

    choices = [value for value, _ in RestoreForm().fields["backup"].choices if value]
    assert choices == ["nightly"]


def test_rollback_from_another_directory(sample_backup, run_command, backup_dir, subprocess_env, tmp_path):
    run_command("restore_backup", sample_backup(rows=100), "--noinput", "--no-safety-backup")
    Tag.objects.create(name="made-by-hand")
    before = sorted(Tag.objects.values_list("name", flat=True))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copytree(sample_backup(rows=200, name="other"), elsewhere / "other")
    env = subprocess_env()
    # relative source and rejects file, run from a folder that is not the project's
    first = subprocess.run(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "restore_backup",
            "other",
            "--noinput",
            "--rejects-file",
            "rej.jsonl",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stderr
    run = RestoreRun.objects.latest("pk")
    assert run.source == str(elsewhere / "other")
    assert run.safety_backup.startswith(str(backup_dir / "safety"))
    assert run.options["rejects_file"] == str(elsewhere / "rej.jsonl")
    assert "made-by-hand" not in Tag.objects.values_list("name", flat=True)

    rolled = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "restore_backup", "--rollback", str(run.pk), "--noinput"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
    )
    assert rolled.returncode == 0, rolled.stderr
    assert sorted(Tag.objects.values_list("name", flat=True)) == before
    assert Customer.objects.count() == 10


def test_retention_keeps_the_newest(sample_backup, run_command, backup_dir, settings):
    settings.DBRESTORE = {**settings.DBRESTORE, "SAFETY_BACKUP_KEEP": 2}
    backup = sample_backup(rows=100)
    run_command("restore_backup", backup, "--noinput")  # into empty tables: no safety backup
    for _ in range(4):
        run_command("restore_backup", backup, "--noinput")
    runs = list(RestoreRun.objects.order_by("pk"))[1:]
    kept = sorted(p.name for p in (backup_dir / "safety").iterdir())
    assert kept == sorted(r.safety_backup.rsplit("/", 1)[1] for r in runs[-2:])
    # the last one still rolls back; a pruned one says it is gone
    run_command("restore_backup", "--rollback", runs[-1].pk, "--noinput")
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=f"the safety backup of run #{runs[0].pk} is gone"):
        run_command("restore_backup", "--rollback", runs[0].pk, "--noinput")


def test_the_python_api_stores_absolute_paths(sample_backup, tmp_path, monkeypatch):
    from dbrestore import restore

    sample_backup(rows=100, name="here")
    monkeypatch.chdir(tmp_path)
    restore("here", safety_backup=False)  # rows in the tables, so the next restore backs them up
    result = restore("here", rejects_file="out/rejects.jsonl")
    run = RestoreRun.objects.get(pk=result.run_id)
    assert run.source == str(tmp_path / "here") and run.options["rejects_file"] == str(
        tmp_path / "out" / "rejects.jsonl"
    )
    assert run.safety_backup.startswith("/")
