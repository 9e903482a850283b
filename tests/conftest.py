"""Fixtures shared by the whole suite, and what decides which tests run. The suite runs once on
SQLite and once on PostgreSQL (tests/run.sh). A folder's own fixtures live in its own conftest.py
(``tests/files/conftest.py``: S3 and GPG); plain helpers that are not fixtures live in
``tests/support/``."""

from __future__ import annotations

import io
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections

from dbrestore.sources.readers import loads_line
from tests.support.backup_data import shop_counts
from tests.support.paths import ROOT
from tests.support.shop_rows import customer, order, write_jsonl

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


@pytest.fixture
def bad_backup(tmp_path) -> Path:
    """A directory backup (JSON Lines) of the shop whose every kind of bad row is rejected with its
    reason: unparseable values, NULLs, too long, duplicates, unique violations, orphans, FK cycles."""
    folder = tmp_path / "bad"
    folder.mkdir()
    write_jsonl(
        folder / "shop_customer.jsonl",
        [
            customer(1),
            customer(2, referred_by_id=1, last_order_id=1),
            customer(3, joined_at="yesterday"),  # unparseable date
            customer(4, name=None),  # NULL in NOT NULL
            customer(5, name="x" * 300),  # too long for varchar(200)
            customer(1, email="dup@example.com"),  # duplicate pk inside the backup
            customer(7, email="c2@example.com"),  # unique violation
            customer(8, referred_by_id=999),  # FK to a missing parent (self reference)
            customer(9, external_id="not-a-uuid"),  # wrong type for a UUID column
            customer(10, referred_by_id=13),  # forward self reference: fine
            customer(11, last_order_id=77),  # FK cycle to a missing order
            customer(12, is_active="perhaps"),  # wrong type for a boolean
            customer(13),
            customer(14, referred_by_id=11),  # its parent is rejected: so is it
        ],
    )
    write_jsonl(
        folder / "shop_order.jsonl",
        [
            order(1, 1),
            order(2, 999),  # FK to a missing parent
            order(3, 1, total="abc"),  # wrong type for a decimal
            order(4, 8),  # its customer is rejected: so is it
        ],
    )
    write_jsonl(folder / "shop_category.jsonl", [{"id": 1, "name": "root", "parent_id": None}])
    write_jsonl(
        folder / "shop_product.jsonl",
        [
            {
                "id": 1,
                "sku": "A",
                "name": "a",
                "price": "1.00",
                "category_id": 1,
                "attributes": {"k": [1, 2]},
                "released_on": None,
            },
            {
                "id": 2,
                "sku": "B",
                "name": "b",
                "price": "1.00",
                "category_id": 1,
                "attributes": None,
                "released_on": None,
            },
            {
                "id": 3,
                "sku": "C",
                "name": "c",
                "price": "1.00",
                "category_id": 1,
                "attributes": {},
                "released_on": "2024-13-45",
            },
        ],
    )
    write_jsonl(
        folder / "shop_orderitem.jsonl",
        [
            {
                "id": 1,
                "order_id": 1,
                "product_id": 1,
                "quantity": 2,
                "unit_price": "1.50",
                "added_at": "2024-03-02T00:00:00Z",
                "is_gift": False,
            },
            {
                "id": 2,
                "order_id": 1,
                "product_id": 1,
                "quantity": "many",
                "unit_price": "1.50",
                "added_at": "2024-03-02T00:00:00Z",
                "is_gift": False,
            },
            {
                "id": 3,
                "order_id": 1,
                "product_id": 2,
                "quantity": 1,
                "unit_price": "1.50",
                "added_at": "2024-03-02T00:00:00Z",
                "is_gift": False,
            },
        ],
    )
    return folder


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser():
    """Debian's headless Chromium through Playwright (missing: a failure under CI, else a skip)."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium; tests/services.sh does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
            # Connections the ORM opened while Playwright's loop ran belong to that context.
            connections.close_all()


@pytest.fixture
def operator(client):
    """The test client logged in as a staff user who may run restores and see runs (no superuser)."""
    from django.contrib.auth.models import Permission, User

    user = User.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="run_restore"), Permission.objects.get(codename="view_restorerun")
    )
    client.force_login(user)
    return client


@pytest.fixture
def admin_page(browser):
    """``admin_page(server, next_path, height=1000)``: a browser page logged into the admin of the
    server at ``server`` as a new superuser, at ``next_path``."""
    from django.contrib.auth.models import User

    def open_page(server: str, next_path: str, height: int = 1000):
        User.objects.create_superuser("admin", "admin@example.com", "secret-pw")
        page = browser.new_page(viewport={"width": 1280, "height": height})
        page.goto(f"{server}/admin/login/?next={next_path}")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "secret-pw")
        page.click("input[type=submit]")
        return page

    return open_page


@pytest.fixture
def web_server_at(subprocess_env, backup_dir):
    """Start ``manage.py runserver`` on this test database in a process of its own, with extra
    environment variables (``web_server_at(DBRESTORE_SYNC_JOBS="0")``); returns its URL. Stopped
    at the end of the test."""
    servers = []

    def start(**extra_env: str) -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {**subprocess_env(), "DBRESTORE_BACKUP_DIR": str(backup_dir), "DJANGO_DEBUG": "1", **extra_env}
        servers.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/admin/login/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        return url

    yield start
    for server in servers:
        server.terminate()
        server.wait(timeout=10)
