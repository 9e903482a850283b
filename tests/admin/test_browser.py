"""The whole admin flow in a real headless Chromium: login -> Restore -> confirm -> progress
page reaching "succeeded", with a real rqworker process doing the work."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Customer
from tests.support.paths import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

OUTPUT = ROOT / "test-output"


@pytest.fixture
def web_server(web_server_at):
    """The admin on this test database; its restores go to RQ, for a real rqworker."""
    return web_server_at(DBRESTORE_SYNC_JOBS="0")


def test_restore_from_the_admin_in_a_browser(
    admin_page, web_server, redis_queue, sample_backup, backup_dir, subprocess_env
):
    shutil.copytree(sample_backup(rows=2000), backup_dir / "nightly")
    page = admin_page(web_server, "/admin/dbrestore/restorerun/")
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
        [sys.executable, "manage.py", "rqworker", "dbrestore", "--burst"],
        cwd=ROOT,
        env={**subprocess_env(), "DBRESTORE_SYNC_JOBS": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
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
    assert page.get_attribute("#run-link", "href").endswith(f"/admin/dbrestore/restorerun/{run.pk}/change/")
    page.click("#run-link")  # the done page links to the run's record
    page.wait_for_url(f"**/restorerun/{run.pk}/change/")
    assert "Row counts match for every table." in page.inner_text("#verification-summary")


def no_overlap(page, first: str, second: str) -> bool:
    return page.evaluate(
        """([a, b]) => { const r = document.querySelector(a).getBoundingClientRect();
                         const s = document.querySelector(b).getBoundingClientRect();
                         return r.right <= s.left || s.right <= r.left || r.bottom <= s.top || s.bottom <= r.top; }""",
        [first, second],
    )


def test_admin_pages_as_people_expect_them(admin_page, web_server, sample_backup, backup_dir, run_command, tmp_path):
    """Issue 13.7, each point in the browser, with screenshots in test-output/."""
    from django.core.management.base import CommandError

    from restoreproject.shop.models import Tag

    long_home = tmp_path / "srv" / "backups" / "production-cluster-eu-west" / "nightly-full-database-dumps"
    long_home.mkdir(parents=True)
    long_source = long_home / "2026-11-30T02-00-00Z-complete-database-backup-before-migration"
    shutil.copytree(sample_backup(rows=300), long_source)
    run_command("restore_backup", long_source, "--noinput")
    good = RestoreRun.objects.latest("pk")

    # A restore that fails after 500 rows went in, inside one transaction: nothing of it remains.
    Tag.objects.all().delete()
    Tag.objects.bulk_create([Tag(name=f"kept-{i}") for i in range(3)])
    rows = [f'{{"id": {i}, "name": "tag-{i}"}}' for i in range(1, 501)] + ['{"id": 501, "name": "' + "x" * 60 + '"}']
    (tmp_path / "shop_tag.jsonl").write_text("\n".join(rows) + "\n")
    with pytest.raises(CommandError):
        run_command(
            "restore_backup",
            tmp_path / "shop_tag.jsonl",
            "--noinput",
            "--strict",
            "--batch-size",
            100,
            "--method",
            "orm",
        )  # batches of 100 go in before the bad row, then all roll back
    failed = RestoreRun.objects.latest("pk")
    assert failed.status == "failed" and failed.tables["shop.Tag"]["inserted"] == 500
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["kept-0", "kept-1", "kept-2"]

    OUTPUT.mkdir(exist_ok=True)
    page = admin_page(web_server, "/admin/dbrestore/restorerun/", height=900)

    # History at 1280 px: Duration, Rows and Rows/s on screen despite the long source; times with seconds.
    page.wait_for_selector("#result_list")
    for column in ["duration", "rows", "speed"]:
        assert page.evaluate(
            """(c) => { const th = document.querySelector("#result_list th.column-" + c).getBoundingClientRect();
                        const box = document.querySelector("#changelist .results").getBoundingClientRect();
                        return th.right <= Math.min(box.right, window.innerWidth); }""",
            column,
        ), column
    started = page.inner_text(f"#result_list tr:has(a[href*='/{good.pk}/change/']) td.field-started")
    assert len(started.split(":")) == 3, started  # HH:MM:SS
    long_cell = f"#result_list tr:has(a[href*='/{good.pk}/change/']) .dbrestore-source"
    assert page.get_attribute(long_cell, "title") == str(long_source)
    assert page.inner_text(long_cell).startswith("…")
    page.screenshot(path=str(OUTPUT / "history-1280.png"))

    # The run page: buttons clear of the title, options and verification as tables, seconds.
    page.goto(f"{web_server}/admin/dbrestore/restorerun/{good.pk}/change/")
    assert no_overlap(page, "ul.object-tools", "#content h2")
    options = page.inner_text(".dbrestore-options")
    assert "batch size" in options and "{" not in options
    assert "shop.OrderItem" in page.inner_text("#verification") and "{'" not in page.inner_text("#content")
    finished = page.inner_text(".field-finished .readonly")
    assert len(finished.split(":")) == 3 and finished.endswith("UTC"), finished
    page.screenshot(path=str(OUTPUT / "run-page.png"), full_page=True)

    # The failed, rolled-back run: what the database holds, no green and no "500 inserted".
    page.goto(f"{web_server}/admin/dbrestore/restorerun/{failed.pk}/change/")
    assert "Rolled back" in page.inner_text("#rolled-back")
    row = page.inner_text("#run-tables tbody tr")
    assert "0 (500 rolled back)" in row and row.split("\t")[5].strip() == "3", row  # in the table now
    page.screenshot(path=str(OUTPUT / "run-rolled-back.png"), full_page=True)
    page.goto(f"{web_server}/admin/dbrestore/restorerun/{failed.pk}/progress/")
    # The status is in the page as served; the summary comes with the first poll.
    page.wait_for_function(
        "document.getElementById('status').textContent === 'failed'"
        " && document.getElementById('summary').textContent !== ''"
    )
    summary = page.inner_text("#summary")
    assert "0 inserted (500 rolled back)" in summary and "500 inserted" not in summary.replace("(500 rolled", "")
    grey = "rgb(158, 158, 158)"
    assert page.evaluate("getComputedStyle(document.getElementById('overall-bar')).backgroundColor") == grey
    assert (
        page.evaluate("getComputedStyle(document.querySelector('#tables .dbrestore-bar div')).backgroundColor") == grey
    )
    cells = page.inner_text("#tables tbody tr").split("\t")
    assert cells[0].strip() == "shop.Tag" and cells[6].strip() == "3"
    assert page.is_visible("#run-link")
    page.screenshot(path=str(OUTPUT / "progress-rolled-back.png"), full_page=True)

    # The Restore page: one line of help for each mode.
    page.goto(f"{web_server}/admin/dbrestore/restorerun/restore/")
    modes = page.inner_text("#id_mode")
    for text in [
        "replace: empty the restored tables first",
        "merge: insert new rows and update existing ones",
        "append: insert new rows only",
    ]:
        assert text in modes
    page.screenshot(path=str(OUTPUT / "restore-page.png"))
