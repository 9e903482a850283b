"""The whole admin flow in a real headless Chromium: login -> Restore -> confirm -> progress
page reaching "succeeded", with a real rqworker process doing the work."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connections

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Customer
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
OUTPUT = ROOT / "test-output"


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium; tests/services.sh does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # Connections the ORM opened while Playwright's loop ran belong to that context.
            connections.close_all()


@pytest.fixture
def web_server(subprocess_env, backup_dir):
    """``manage.py runserver`` in a process of its own, on this test database."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**subprocess_env(), "DBRESTORE_SYNC_JOBS": "0", "DBRESTORE_BACKUP_DIR": str(backup_dir), "DJANGO_DEBUG": "1"}
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/admin/login/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_restore_from_the_admin_in_a_browser(browser, web_server, redis_queue, sample_backup, backup_dir, subprocess_env):
    shutil.copytree(sample_backup(rows=2000), backup_dir / "nightly")
    User.objects.create_superuser("admin", "admin@example.com", "secret-pw")
    page = browser.new_page(viewport={"width": 1280, "height": 1000})

    page.goto(f"{web_server}/admin/login/?next=/admin/dbrestore/restorerun/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    page.click("text=Restore a backup")

    page.select_option("#id_backup", "nightly")
    page.click("input[name=check]")
    page.wait_for_selector("text=Yes, start the restore")
    assert "shop.OrderItem" in page.inner_text("#preview-tables")
    page.click("input[name=start]")

    page.wait_for_url("**/progress/")
    run = RestoreRun.objects.get()
    assert run.status == "queued"
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "dbrestore", "--burst"], cwd=ROOT,
        env={**subprocess_env(), "DBRESTORE_SYNC_JOBS": "0"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        page.wait_for_function("document.getElementById('status').textContent === 'succeeded'", timeout=90_000)
    finally:
        output, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, output
    assert "100" in page.inner_text("#summary") and "shop.OrderItem" in page.inner_text("#tables")
    assert Customer.objects.count() == 200
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "restore-progress-succeeded.png"), full_page=True)
