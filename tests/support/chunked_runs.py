"""What the chunked tests (``tests/chunked/``) share: the schema and the table checksums to
compare with a clean restore, real restore processes to kill, and waiting for them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

from dbrestore.models import RestoreRun
from tests.support.backup_data import manifest
from tests.support.paths import ROOT

SMALL_TABLES_TOO = {"SET_ASIDE_MIN_ROWS": 0}  # the sample's tables are small: set aside as for big ones


def schema() -> dict[str, list]:
    """Every index (pg_indexes) and constraint (pg_constraint) of the demo app's tables."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename LIKE 'shop_%%' ORDER BY 1")
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
            "WHERE conrelid::regclass::text LIKE 'shop_%%' ORDER BY 1, 2"
        )
        constraints = cursor.fetchall()
    return {"indexes": indexes, "constraints": constraints}


def table_checksums(run_command, path: Path) -> dict[str, tuple[int, str]]:
    """``create_backup`` of the database now: rows and sha256 per table."""
    run_command("create_backup", "--output", path, "--no-compress")
    return {entry["table"]: (entry["rows"], entry["sha256"]) for entry in manifest(path)["tables"]}


def clean_restore(run_command, backup: Path, path: Path) -> dict[str, tuple[int, str]]:
    """The checksums of ``backup`` restored the plain way (atomic); the database emptied again."""
    run_command("restore_backup", backup, "--noinput", "--no-safety-backup")
    checksums = table_checksums(run_command, path)
    run_command("flush", "--noinput")
    return checksums


def start(args: list, env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *map(str, args)],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def wait_until(condition, what: str, timeout: float = 60, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended ({process.returncode}) before {what}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def share_done(share: float):
    """A condition: the running run once it has loaded ``share`` of its rows (its record)."""

    def condition() -> RestoreRun | None:
        run = RestoreRun.objects.filter(status="running").first()
        if run is not None and run.rows_total and run.rows_processed >= share * run.rows_total:
            return run
        return None

    return condition


def set_aside_now(run_id: int) -> dict:
    return (RestoreRun.objects.get(pk=run_id).checkpoint or {}).get("set_aside") or {}
