"""Real processes against the test database: ``manage.py`` commands and ``rqworker`` started,
waited for, SIGKILLed (with their database sessions), their children found."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

from tests.support.paths import ROOT


def start(args: list, env: dict, **kwargs) -> subprocess.Popen:
    """``manage.py ARGS`` in a process of its own, its output captured as text."""
    return subprocess.Popen(
        [sys.executable, "manage.py", *map(str, args)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def start_restore(backup: Path, env: dict, *flags) -> subprocess.Popen:
    """``restore_backup BACKUP --noinput --batch-size 50 [FLAGS]`` in a process of its own."""
    return start(["restore_backup", backup, "--noinput", "--batch-size", "50", *flags], env)


def wait_for(
    condition, what: str, timeout: float = 60, process: subprocess.Popen | None = None, interval: float = 0.05
):
    """``condition()``'s first true value; fails after ``timeout`` seconds, or at once when
    ``process`` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {process.communicate()}")
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def killed(process: subprocess.Popen) -> None:
    """SIGKILL ``process`` and wait until its database sessions are gone too: a COPY and COMMIT
    it had sent before dying may still be committing on the server."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    if connection.vendor == "postgresql":
        wait_for(lambda: not other_sessions(), "the killed process's database sessions to end")


def other_sessions() -> int:
    """Client sessions on the test database besides this test's own (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return cursor.fetchone()[0]


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def run_worker(env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    """A real ``rqworker --burst`` process: runs what is queued, then exits."""
    return subprocess.run(
        [sys.executable, "manage.py", "rqworker", "dbrestore", "--burst"],
        cwd=ROOT,
        env={**env, "DBRESTORE_SYNC_JOBS": "0"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
