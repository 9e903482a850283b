"""The admin's "Compare with the database" step: the confirmation page links it, it shows the
diff per table with samples, and leads to the same confirmation; the restore form's layout."""

from __future__ import annotations

import shutil
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from dbrestore.models import RestoreRun
from restoreproject.shop.models import OrderItem
from tests.support.diff_changes import ADDED_COUNT, DELETED, UPDATED, checksums

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def nightly(changed, backup_dir):
    shutil.copytree(changed.backup, backup_dir / "nightly")
    return "nightly"


OPTIONS = {"mode": "replace", "atomic": "True", "distribute": "False", "only": "", "exclude": "", "batch_size": ""}


def test_the_confirmation_page_offers_the_comparison_with_the_same_options(operator, nightly):
    page = operator.post(reverse("admin:dbrestore_restorerun_restore"), {"backup": nightly, "mode": "replace"})
    text = page.content.decode()
    assert page.status_code == 200
    compare_at = text.index("Compare with the database")
    assert compare_at < text.index("Yes, start the restore")  # before the confirm button
    assert f'action="{reverse("admin:dbrestore_restorerun_compare")}"' in text
    assert 'name="backup" value="nightly"' in text and 'name="mode" value="replace"' in text


def test_the_compare_page_shows_counts_per_table_with_samples_and_leads_to_the_confirmation(
    operator, nightly, tmp_path, changed
):
    before, runs = checksums(tmp_path / "before"), RestoreRun.objects.count()
    url = reverse("admin:dbrestore_restorerun_compare") + "?" + urlencode({"backup": nightly, **OPTIONS})
    page = operator.get(url)
    text = page.content.decode()
    assert page.status_code == 200
    row = text[text.index('id="diff-shoporderitem"') :].split("</tr>")[0]
    cells = [cell.split("</td>")[0] for cell in row.split("<td>")[2:]]
    assert cells == [str(len(DELETED)), str(len(UPDATED)), str(ADDED_COUNT), "158", "0"]
    assert "<details><summary>shop.OrderItem</summary>" in row
    assert f"pk {UPDATED[0]}: quantity: {1000 + UPDATED[0]} -&gt; " in row
    assert f"removed, e.g. pk {', '.join(map(str, changed.added))}" in row
    assert 'action="' + reverse("admin:dbrestore_restorerun_confirm") + '"' in text
    assert 'name="backup" value="nightly"' in text and "Yes, start the restore" in text
    assert checksums(tmp_path / "after") == before
    assert RestoreRun.objects.count() == runs

    started = operator.post(reverse("admin:dbrestore_restorerun_confirm"), {"backup": nightly, **OPTIONS})
    assert started.status_code == 302
    assert RestoreRun.objects.latest("pk").status == "succeeded"
    assert OrderItem.objects.filter(pk__in=DELETED).count() == len(DELETED)


def test_the_compare_page_says_why_a_backup_cannot_be_compared(operator, backup_dir):
    (backup_dir / "broken.jsonl").write_text('{"id": 1}\n')
    url = reverse("admin:dbrestore_restorerun_compare") + "?" + urlencode({"backup": "broken.jsonl", **OPTIONS})
    page = operator.get(url, follow=True)
    assert "matches no installed model" in page.content.decode()


def test_comparing_needs_the_restore_permission(client, nightly):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_restorerun"))
    client.force_login(user)
    url = reverse("admin:dbrestore_restorerun_compare") + "?" + urlencode({"backup": nightly, **OPTIONS})
    assert client.get(url).status_code == 403


def test_the_restore_form_is_laid_out_as_the_admins_forms(operator):
    text = operator.get(reverse("admin:dbrestore_restorerun_restore")).content.decode()
    assert text.count('<fieldset class="module aligned">') == 3
    for heading in ("Backup", "What to restore", "How"):
        assert f'<h2 class="fieldset-heading">{heading}</h2>' in text
    for name in ("backup", "upload", "mode", "only", "exclude", "atomic", "distribute", "batch_size"):
        assert f'<div class="help" id="id_{name}_helptext">' in text, name
    checkbox = text[text.index("field-atomic") :]
    assert checkbox.index('type="checkbox"') < checkbox.index('class="vCheckboxLabel"')
