"""restore_benchmark's chunked methods and the figure to beat, on the same whole backup as ``default``:

* ``no_atomic``: ``--no-atomic`` (chunks of ``CHUNK_BYTES``, a checkpoint each, indexes set aside);
* ``no_atomic_1chunk``: the same with one chunk per table (a checkpoint per table): what the
  checkpoints of ``no_atomic`` cost;
* ``jobs2``: ``--no-atomic --jobs 2``;
* ``distribute2``: ``--no-atomic --distribute --wait`` with two real ``rqworker`` processes;
* ``pg_restore``: a ``pg_dump -Fc`` of the same tables (schema and data, made once from the
  database as ``default`` left it) restored by ``pg_restore`` into an empty database, which
  creates the tables, loads the data, then builds the indexes and constraints.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
from django.db import connection

from restoreproject.shop.benchmark import ROOT, database_url

CHUNKED = ("no_atomic", "no_atomic_1chunk", "jobs2", "distribute2", "pg_restore")
_FLAGS = {
    "no_atomic": ["--no-atomic"],
    "no_atomic_1chunk": ["--no-atomic", "--chunk-bytes", str(10**15)],
    "jobs2": ["--no-atomic", "--jobs", "2"],
    "distribute2": ["--no-atomic", "--distribute", "--wait"],
}


def command_for(method: str, files: dict[str, Path]) -> list[str]:
    """The chunked methods: restore_backup on the whole backup, as ``default`` does, plus flags."""
    if method == "pg_restore":
        return ["pg_restore", "--no-owner", "-d", pg_restore_url(), str(files["dump"])]
    return [
        sys.executable,
        str(ROOT / "manage.py"),
        "restore_backup",
        str(files["whole"]),
        "--noinput",
        *_FLAGS[method],
    ]


def pg_restore_url() -> str:
    return database_url(f"{connection.settings_dict['NAME']}_pgrestore")


def _admin(sql: str) -> None:
    subprocess.run(
        ["psql", database_url("postgres"), "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, capture_output=True
    )


@contextlib.contextmanager
def empty_database() -> Iterator[None]:
    """The empty database pg_restore restores into (dropped after)."""
    name = pg_restore_url().rsplit("/", 1)[1]
    _admin(f'DROP DATABASE IF EXISTS "{name}"')
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}"')


def make_dump(files: dict[str, Path], workdir: Path) -> Path:
    """Restore the whole backup the default way (not timed), then ``pg_dump -Fc`` its tables."""
    env = {**os.environ, "DATABASE_URL": database_url()}
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "restore_backup", str(files["whole"]), "--noinput", "-v", "0"],
        check=True,
        env=env,
        cwd=ROOT,
    )
    tables = [entry["table"] for entry in json.loads((files["whole"] / "manifest.json").read_text())["tables"]]
    dump = workdir / "tables.dump"
    subprocess.run(
        ["pg_dump", "-Fc", "-f", str(dump), *[f"--table={table}" for table in tables], database_url()],
        check=True,
        env=env,
    )
    return dump


def pg_restore_sections(dump: Path) -> dict[str, float]:
    """Seconds of pg_restore's three sections, run one after the other into an empty database."""
    seconds = {}
    with empty_database():
        for section in ("pre-data", "data", "post-data"):
            started = time.perf_counter()
            subprocess.run(
                ["pg_restore", "--no-owner", f"--section={section}", "-d", pg_restore_url(), str(dump)], check=True
            )
            seconds[section] = round(time.perf_counter() - started, 2)
    return seconds


PHASE = re.compile(r"^\s+\((?P<phase>.+): (?P<seconds>[0-9.]+)s\)$")


def restore_phases(argv: list[str]) -> dict[str, float]:
    """Seconds of each phase of a restore (``-v 3`` prints them), the tables' load as 'loading'."""
    env = {**os.environ, "DATABASE_URL": database_url()}
    done = subprocess.run([*argv, "-v", "3"], check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    out = done.stdout + done.stderr
    phases: dict[str, float] = {}
    for line in out.replace("\r", "\n").splitlines():
        found = PHASE.match(line)
        if found:
            name = re.sub(r"\d+", "N", found["phase"])
            phases[name] = round(phases.get(name, 0.0) + float(found["seconds"]), 2)
    return phases


@contextlib.contextmanager
def rq_workers(count: int, **env_vars: str) -> Iterator[list[psutil.Process]]:
    """``count`` real ``rqworker dbrestore`` processes on this database (with ``env_vars``), killed after."""
    env = {**os.environ, "DATABASE_URL": database_url(), "DBRESTORE_SYNC_JOBS": "0", **env_vars}
    processes = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "rqworker", "dbrestore"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        time.sleep(2.0)  # listening before the first job comes
        yield [psutil.Process(process.pid) for process in processes]
    finally:
        for process in processes:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(process.pid).children(recursive=True):
                    child.kill()
            process.kill()
            process.wait(timeout=10)


class PeakRSS:
    """The highest RSS of any one of these processes or their children, sampled every 50 ms."""

    def __init__(self, processes: list[psutil.Process]):
        self.processes, self.peak = processes, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for process in self.processes:
                with contextlib.suppress(psutil.Error):
                    for member in [process, *process.children(recursive=True)]:
                        with contextlib.suppress(psutil.Error):
                            self.peak = max(self.peak, member.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return self.peak / 1024 / 1024
