"""The compare step in a real browser: the restore form, the confirmation, the comparison with
its samples opened, then the restore started from it."""

from __future__ import annotations

import shutil

import pytest

from dbrestore.models import RestoreRun
from tests.support.diff_changes import DELETED, UPDATED
from tests.support.paths import ROOT

pytestmark = pytest.mark.django_db(transaction=True)
OUTPUT = ROOT / "test-output"


def test_compare_before_confirming_in_a_browser(admin_page, admin_server, changed, backup_dir):
    shutil.copytree(changed.backup, backup_dir / "nightly")
    page = admin_page(admin_server, "/admin/dbrestore/restorerun/restore/")

    page.wait_for_selector("#restore-form")
    assert page.locator("#restore-form fieldset.module.aligned").count() == 3
    help_box, field_box = page.locator("#id_atomic_helptext").bounding_box(), page.locator("#id_atomic").bounding_box()
    assert help_box["y"] > field_box["y"]  # the help under its field
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "restore-form.png"), full_page=True)
    page.select_option("#id_backup", "nightly")
    page.click("input[name=check]")

    page.wait_for_selector("text=Yes, start the restore")
    compare_box, start_box = (
        page.locator("input[name=compare]").bounding_box(),
        page.locator("input[name=start]").bounding_box(),
    )
    assert compare_box["y"] < start_box["y"]  # the comparison comes before the confirm button
    page.screenshot(path=str(OUTPUT / "restore-confirm.png"), full_page=True)
    page.click("input[name=compare]")
    page.wait_for_selector("#diff-tables")
    cells = page.locator("#diff-shoporderitem td").all_inner_texts()
    assert cells[1:5] == [str(len(DELETED)), str(len(UPDATED)), "2", "158"]
    assert not page.locator("#diff-shoporderitem .dbrestore-samples").is_visible()
    page.click("#diff-shoporderitem summary")
    samples = page.inner_text("#diff-shoporderitem .dbrestore-samples")
    assert f"pk {UPDATED[0]}: quantity: {1000 + UPDATED[0]} -> " in samples
    page.screenshot(path=str(OUTPUT / "restore-compare.png"), full_page=True)

    runs = RestoreRun.objects.count()
    page.click("input[name=start]")
    page.wait_for_url("**/progress/")
    assert RestoreRun.objects.count() == runs + 1
