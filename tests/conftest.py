"""Shared fixtures. The suite runs once on SQLite and once on PostgreSQL (tests/run.sh)."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from dbrestore.sources.readers import loads_line

ROOT = Path(__file__).resolve().parent.parent
REALAPPS_SETTINGS = "restoreproject.settings_realapps"


def pytest_ignore_collect(collection_path, config):
    """``tests/realapps/`` runs alone under its own settings (``--ds {REALAPPS_SETTINGS}``, see
    ``tests/run.sh``): left out of the main suite, which that pass leaves out in turn."""
    try:
        parts = collection_path.resolve().relative_to(ROOT / "tests").parts
    except ValueError:
        return None
    if not parts:
        return None
    realapps_pass = os.environ.get("DJANGO_SETTINGS_MODULE") == REALAPPS_SETTINGS
    if parts[0] == "realapps":
        return None if realapps_pass else True
    if realapps_pass and (collection_path.is_dir() or collection_path.name.startswith("test_")):
        return True
    return None


def pytest_collection_modifyitems(config, items):
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL; runs in the PostgreSQL pass of tests/run.sh")
    is_pg = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
    for item in items:
        if "postgres" in item.keywords and not is_pg:
            item.add_marker(skip_pg)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """A chunked run that a test stopped or killed leaves its indexes set aside, on purpose (as
    it would for a user: see dbrestore.chunked.aside); put them back before the database is
    flushed, so that the next test finds the schema whole."""
    marker = item.get_closest_marker("django_db")
    if connection.vendor == "postgresql" and marker is not None and marker.kwargs.get("transaction"):
        from dbrestore.chunked import aside
        from dbrestore.models import RestoreRun

        with item._request.getfixturevalue("django_db_blocker").unblock():
            try:
                for run in RestoreRun.objects.filter(checkpoint__has_key=aside.KEY):
                    aside.put_back_now(run)
            except Exception as exc:  # the test's own outcome stands; say why the next may fail
                print(f"could not put back the indexes set aside by a test's restore: {exc}")
    yield


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path):
    """Every test gets its own BACKUP_DIR (rejects files and safety backups land there), and
    background restores run in-process unless a test asks for the real queue (``redis_queue``)."""
    directory = tmp_path / "backups"
    directory.mkdir()
    settings.DBRESTORE = {
        **settings.DBRESTORE,
        "BACKUP_DIR": str(directory),
        "PROGRESS_INTERVAL": 0.0,
        "SYNC_JOBS": True,
    }
    return directory


@pytest.fixture
def run_command():
    """Run a management command; return (stdout, stderr)."""

    def run(name: str, *args, **options):
        out, err = io.StringIO(), io.StringIO()
        call_command(name, *[str(a) for a in args], stdout=out, stderr=err, **options)
        return out.getvalue(), err.getvalue()

    return run


@pytest.fixture
def sample_backup(tmp_path, run_command):
    """A factory for sample backups: ``sample_backup(rows=300, **make_sample_backup options)``."""

    def make(rows: int = 300, name: str = "sample", **options) -> Path:
        output = tmp_path / name
        flags = []
        if options.get("compress"):
            flags.append("--compress")
        if options.get("data_format"):
            flags += ["--data-format", options["data_format"]]
        run_command("make_sample_backup", "--rows", rows, "--output", output, *flags)
        return output

    return make


@pytest.fixture
def loaded(sample_backup, run_command):
    """The database holding a 300-row sample; returns its counts (``backup_data.shop_counts``)."""
    from tests.backup_data import shop_counts

    run_command("restore_backup", sample_backup(rows=300), "--noinput", "--no-safety-backup")
    return shop_counts()


@pytest.fixture
def vendor():
    return connection.vendor


@pytest.fixture
def subprocess_env(tmp_path):
    """Environment for a manage.py subprocess that uses this test database."""
    settings_dict = connection.settings_dict

    def make(**extra) -> dict:
        if connection.vendor == "sqlite":
            url = f"sqlite:///{settings_dict['NAME']}"
        else:
            url = f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}/{settings_dict['NAME']}"
        return {**os.environ, "DATABASE_URL": url, "DBRESTORE_BACKUP_DIR": str(tmp_path / "backups"), **extra}

    return make


@pytest.fixture
def redis_queue(settings):
    """The real RQ queue of dbrestore on the local Redis, emptied; background jobs go through it.

    Fails (never skips) when Redis cannot be reached and CI is set.
    """
    import redis

    settings.DBRESTORE = {**settings.DBRESTORE, "SYNC_JOBS": False}
    from dbrestore.runs.queue import get_queue

    queue = get_queue()
    try:
        queue.connection.ping()
    except redis.exceptions.ConnectionError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {os.environ.get('REDIS_URL')}: {exc}")
        pytest.skip(f"Redis is not reachable: {exc}")
    queue.empty()
    return queue


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


@pytest.fixture(scope="session")
def moto_server():
    """A real moto S3 server process on 127.0.0.1 (a free port), for the whole session; its
    endpoint URL. Fails (never skips) when it cannot start and CI is set."""
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    binary = Path(sys.executable).parent / "moto_server"
    url = f"http://127.0.0.1:{port}"
    try:
        process = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    except OSError as exc:
        process, problem = None, f"cannot start {binary}: {exc}"
    else:
        problem = f"moto_server did not answer on {url} within 30 s"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                problem = None
                break
            except OSError:
                time.sleep(0.2)
    if problem:
        if process is not None:
            process.kill()
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    yield url
    process.terminate()
    process.wait(timeout=10)


GPG_RECIPIENT = "dbrestore-test@example.invalid"


@pytest.fixture(scope="session")
def gpg_home(tmp_path_factory) -> Iterator[Path]:
    """A throwaway GnuPG keyring holding one key (``GPG_RECIPIENT``) without passphrase."""
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", GPG_RECIPIENT, "default", "default", "never"],
        env={**os.environ, "GNUPGHOME": str(home)},
        check=True,
        capture_output=True,
    )
    yield home
    # gpg starts an agent per keyring; it would outlive the suite.
    subprocess.run(
        ["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": str(home)}, check=False, capture_output=True
    )


@pytest.fixture
def keyring(gpg_home, monkeypatch):
    """gpg (and so dbrestore) uses the throwaway keyring."""
    monkeypatch.setenv("GNUPGHOME", str(gpg_home))
    return gpg_home


@pytest.fixture
def restore_outcome(tmp_path):
    """Run ``restore_backup PATH --noinput --no-safety-backup [ARGS]`` as a user would, and give
    what the user sees: ``(exit status, message, JSON report, rejects file's records)`` (each
    call its own report and rejects file)."""
    calls = itertools.count(1)

    def run(path, *args: str) -> tuple[int, str, dict, list[dict]]:
        n = next(calls)
        report, rejects = tmp_path / f"report-{n}.json", tmp_path / f"rejects-{n}.jsonl"
        try:
            call_command(
                "restore_backup",
                str(path),
                "--noinput",
                "--no-safety-backup",
                "--report-json",
                str(report),
                "--rejects-file",
                str(rejects),
                *args,
                stdout=io.StringIO(),
                stderr=io.StringIO(),
            )
            status, message = 0, ""
        except CommandError as exc:
            status, message = exc.returncode, str(exc)
        reported = json.loads(report.read_text()) if report.exists() else {}
        rejected = [loads_line(line) for line in rejects.read_bytes().splitlines()] if rejects.exists() else []
        return status, message, reported, rejected

    return run
