"""Fixtures of the diff's tests: a restored sample, then known changes made through the ORM."""

from __future__ import annotations

import datetime
import hashlib
import json
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from dbrestore.backups.writer import create_backup

#: Rows of the sample's OrderItem table the tests change (the sample holds 168 of them).
UPDATED = [2, 5, 9, 14, 20, 33, 41]
DELETED = [3, 50, 100]
SPELLED = 60  # saved again with the same values spelled otherwise
ADDED_COUNT = 2
BACKUP_SPELLED = 70  # spelled otherwise in the backup


def respelled(row: dict) -> dict:
    """The same decimal with a trailing zero, the same moment at +05:30."""
    moment = datetime.datetime.fromisoformat(row["added_at"])
    return {
        "unit_price": f"{Decimal(row['unit_price']):f}0",
        "added_at": moment.astimezone(datetime.timezone(datetime.timedelta(hours=5, minutes=30))).isoformat(),
    }


@dataclass
class Changed:
    backup: Path
    added: list[int]  # the primary keys of the rows added through the ORM


def rewrite_row(backup: Path, file: str, pk: int, change) -> None:
    """Change one row of a JSON Lines data file of ``backup`` (``change(row)`` gives the new
    values), and its manifest entry's sha256 (a backup edited on purpose, not a damaged one)."""
    path = backup / file
    lines = path.read_text().splitlines()
    for index, line in enumerate(lines):
        row = json.loads(line)
        if row.get("id") == pk:
            lines[index] = json.dumps({**row, **change(row)})
    path.write_text("\n".join(lines) + "\n")
    manifest = json.loads((backup / "manifest.json").read_text())
    for entry in manifest["tables"]:
        if entry["file"] == file:
            entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (backup / "manifest.json").write_text(json.dumps(manifest, indent=2))


@pytest.fixture
def kolkata(settings):
    """A half-hour offset time zone: naive datetimes are read in it, not in UTC."""
    settings.TIME_ZONE = "Asia/Kolkata"


@pytest.fixture
def changed(kolkata, sample_backup, run_command) -> Changed:
    """The 300-row sample restored, then through the ORM: 7 OrderItems updated, 3 deleted, 2
    added, one saved again with its values spelled otherwise (and, in the backup, another one's
    decimal and datetime spelled otherwise)."""
    from restoreproject.shop.models import OrderItem

    backup = sample_backup(rows=300)
    rewrite_row(backup, "shop_orderitem.jsonl", BACKUP_SPELLED, respelled)
    run_command("restore_backup", backup, "--noinput", "--no-safety-backup")
    for pk in UPDATED:
        OrderItem.objects.filter(pk=pk).update(quantity=1000 + pk)
    OrderItem.objects.filter(pk__in=DELETED).delete()
    spelled = OrderItem.objects.get(pk=SPELLED)
    spelled.unit_price = Decimal(f"{spelled.unit_price:f}0")  # 12.30 -> 12.300: the same number
    spelled.added_at = spelled.added_at.astimezone(zoneinfo.ZoneInfo("America/St_Johns"))  # the same moment
    spelled.save()
    template = OrderItem.objects.get(pk=1)
    added = []
    for n in range(ADDED_COUNT):
        template.pk = None
        template.added_at = datetime.datetime(2025, 1, 1, n, tzinfo=datetime.UTC)
        template.save()
        added.append(template.pk)
    return Changed(backup, added)


def checksums(directory: Path) -> dict[str, str]:
    """Each table's sha256 in a fresh ``create_backup`` of the database."""
    create_backup(directory, compress=False)
    manifest = json.loads((directory / "manifest.json").read_text())
    return {entry["model"]: entry["sha256"] for entry in manifest["tables"]}


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser():
    """Headless Chromium through Playwright (as tests/test_browser.py drives it)."""
    import os

    from django.db import connections

    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium; tests/services.sh does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            yield chromium
        finally:
            chromium.close()
            connections.close_all()  # the ORM's connections opened while Playwright's loop ran


@pytest.fixture
def admin_server(subprocess_env, backup_dir):
    """``manage.py runserver`` on this test database, in a process of its own; its URL."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.conftest import ROOT

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**subprocess_env(), "DBRESTORE_BACKUP_DIR": str(backup_dir), "DJANGO_DEBUG": "1"}
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
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
