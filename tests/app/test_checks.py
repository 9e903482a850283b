"""The system checks of settings.DBRESTORE, as ``manage.py check`` shows them."""

from __future__ import annotations

import io

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError


def messages(settings, **dbrestore) -> dict[str, str]:
    settings.DBRESTORE = dbrestore
    return {message.id: message for message in run_checks() if message.id.startswith("dbrestore.")}


def test_the_demo_settings_pass(settings, backup_dir):
    assert messages(settings, BACKUP_DIR=str(backup_dir)) == {}
    out = io.StringIO()
    call_command("check", stdout=out)
    assert "no issues" in out.getvalue()


def test_dbrestore_not_a_dict(settings):
    settings.DBRESTORE = [("BATCH_SIZE", 10)]
    (error,) = [m for m in run_checks() if m.id.startswith("dbrestore.")]
    assert error.id == "dbrestore.E001" and "must be a dict, not list" in error.msg and error.hint


@pytest.mark.parametrize("value", [-1, 0, "500", 2.5, True, None])
@pytest.mark.parametrize("key", ["BATCH_SIZE", "COPY_BATCH_SIZE"])
def test_batch_sizes_must_be_positive_integers(settings, backup_dir, key, value):
    found = messages(settings, BACKUP_DIR=str(backup_dir), **{key: value})
    assert set(found) == {"dbrestore.E002"}
    assert key in found["dbrestore.E002"].msg and repr(value) in found["dbrestore.E002"].msg
    assert "default" in found["dbrestore.E002"].hint


@pytest.mark.parametrize("value", [0, -3, "5", 1.5])
def test_safety_backup_keep(settings, backup_dir, value):
    found = messages(settings, BACKUP_DIR=str(backup_dir), SAFETY_BACKUP_KEEP=value)
    assert set(found) == {"dbrestore.E006"} and "SAFETY_BACKUP_KEEP" in found["dbrestore.E006"].msg
    assert messages(settings, BACKUP_DIR=str(backup_dir), SAFETY_BACKUP_KEEP=None) == {}


@pytest.mark.parametrize(
    "key, value",
    [
        ("CONVERT_PROCESSES", -1),
        ("CONVERT_PROCESSES", "2"),
        ("CONVERT_PROCESSES", 1.5),
        ("CONVERT_MIN_ROWS", None),
        ("CONVERT_MIN_ROWS", -5),
        ("CONVERT_MIN_ROWS", True),
    ],
)
def test_conversion_settings(settings, backup_dir, key, value):
    found = messages(settings, BACKUP_DIR=str(backup_dir), **{key: value})
    assert set(found) == {"dbrestore.E007"} and key in found["dbrestore.E007"].msg
    assert messages(settings, BACKUP_DIR=str(backup_dir), CONVERT_PROCESSES=None, CONVERT_MIN_ROWS=0) == {}
    assert messages(settings, BACKUP_DIR=str(backup_dir), CONVERT_PROCESSES=0) == {}


def test_check_command_fails_on_an_error(settings, backup_dir):
    settings.DBRESTORE = {"BACKUP_DIR": str(backup_dir), "BATCH_SIZE": -1}
    with pytest.raises(SystemCheckError, match=r"dbrestore\.E002.*BATCH_SIZE.*positive integer"):
        call_command("check", stdout=io.StringIO(), stderr=io.StringIO())


def test_queue_must_be_in_rq_queues(settings, backup_dir):
    found = messages(settings, BACKUP_DIR=str(backup_dir), QUEUE="nosuchqueue", SYNC_JOBS=False)
    assert set(found) == {"dbrestore.E003"}
    assert "'nosuchqueue'" in found["dbrestore.E003"].msg and "RQ_QUEUES" in found["dbrestore.E003"].hint
    # jobs that run in-process need no queue
    assert messages(settings, BACKUP_DIR=str(backup_dir), QUEUE="nosuchqueue", SYNC_JOBS=True) == {}


def test_run_database_must_be_configured(settings, backup_dir):
    found = messages(settings, BACKUP_DIR=str(backup_dir), RUN_DATABASE="history")
    assert set(found) == {"dbrestore.E004"}
    assert "'history'" in found["dbrestore.E004"].msg and "default" in found["dbrestore.E004"].hint


def test_unknown_key_names_the_closest_known_one(settings, backup_dir):
    found = messages(settings, BACKUP_DIR=str(backup_dir), BATCHSIZE=500)
    assert set(found) == {"dbrestore.W001"}
    assert "'BATCHSIZE'" in found["dbrestore.W001"].msg and found["dbrestore.W001"].hint == "Did you mean 'BATCH_SIZE'?"
    found = messages(settings, BACKUP_DIR=str(backup_dir), ZZZ=1)
    assert "Known keys:" in found["dbrestore.W001"].hint


def test_backup_dir_relative_or_not_writable(settings, tmp_path):
    found = messages(settings, BACKUP_DIR="backups")
    assert set(found) == {"dbrestore.W002"}
    assert str(settings.BASE_DIR / "backups") in found["dbrestore.W002"].msg
    assert "absolute" in found["dbrestore.W002"].hint

    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    found = messages(settings, BACKUP_DIR=str(a_file / "backups"))
    assert set(found) == {"dbrestore.W003"} and "cannot be written" in found["dbrestore.W003"].msg
    assert found["dbrestore.W003"].hint
    found = messages(settings, BACKUP_DIR=42)
    assert set(found) == {"dbrestore.E005"}


def test_default_backup_dir_is_absolute_under_base_dir(settings):
    from dbrestore import conf

    settings.DBRESTORE = {}
    assert conf.backup_dir() == (settings.BASE_DIR / "backups").resolve()
    settings.DBRESTORE = {"BACKUP_DIR": "elsewhere/b"}
    assert conf.backup_dir() == (settings.BASE_DIR / "elsewhere" / "b").resolve()
