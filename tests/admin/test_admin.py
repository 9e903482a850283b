"""The admin: who may see and do what, the Restore -> confirm -> progress flow, uploads."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Customer, Tag

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run():
    return RestoreRun.objects.create(source="/nowhere", status="succeeded")


@pytest.fixture
def staff(client):
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    return client


def urls(run):
    return {
        ("GET", reverse("admin:dbrestore_restorerun_changelist")),
        ("GET", reverse("admin:dbrestore_restorerun_change", args=[run.pk])),
        ("GET", reverse("admin:dbrestore_restorerun_restore")),
        ("POST", reverse("admin:dbrestore_restorerun_restore")),
        ("POST", reverse("admin:dbrestore_restorerun_confirm")),
        ("GET", reverse("admin:dbrestore_restorerun_progress_page", args=[run.pk])),
        ("GET", reverse("admin:dbrestore_restorerun_progress", args=[run.pk])),
        ("POST", reverse("admin:dbrestore_restorerun_cancel", args=[run.pk])),
    }


def test_anonymous_is_sent_to_login(client, run):
    for method, url in urls(run):
        response = getattr(client, method.lower())(url)
        assert response.status_code == 302 and "/login/" in response["Location"], (method, url)


def test_staff_without_permission_is_refused(staff, run):
    for method, url in urls(run):
        response = getattr(staff, method.lower())(url)
        assert response.status_code == 403, (method, url, response.status_code)


def test_permitted_user(operator, run):
    expected = {"GET": 200, "POST": None}
    for method, url in urls(run):
        response = getattr(operator, method.lower())(url)
        assert response.status_code in (200, 302), (method, url, response.status_code)
        if method == "GET":
            assert response.status_code == expected["GET"]
    assert RestoreRun.objects.count() == 1  # nothing started by those empty POSTs


def test_state_changing_views_refuse_get(operator, run):
    for name, args in (("confirm", []), ("cancel", [run.pk])):
        assert operator.get(reverse(f"admin:dbrestore_restorerun_{name}", args=args)).status_code == 405


def test_changelist_has_the_restore_button_only_with_permission(operator, run):
    page = operator.get(reverse("admin:dbrestore_restorerun_changelist")).content.decode()
    assert reverse("admin:dbrestore_restorerun_restore") in page
    assert "succeeded" in page


def test_the_demo_admin_links_the_rq_dashboard_for_who_may_open_it(staff, client):
    page = staff.get(reverse("admin:index")).content.decode()
    assert "dbrestore demo" in page and reverse("django_rq:home") not in page  # staff without the permission
    user = User.objects.get(username="staff")
    user.user_permissions.add(Permission.objects.get(codename="run_restore"))
    assert reverse("django_rq:home") in client.get(reverse("admin:index")).content.decode()
    client.logout()
    assert reverse("django_rq:home") not in client.get(reverse("admin:login")).content.decode()


def test_restore_flow_from_backup_dir(operator, sample_backup, backup_dir):
    import shutil

    shutil.copytree(sample_backup(rows=200), backup_dir / "nightly")
    Tag.objects.create(name="old")
    page = operator.get(reverse("admin:dbrestore_restorerun_restore")).content.decode()
    assert "nightly" in page and "tables" in page

    confirm = operator.post(
        reverse("admin:dbrestore_restorerun_restore"), {"backup": "nightly", "mode": "replace", "atomic": "on"}
    )
    text = confirm.content.decode()
    assert confirm.status_code == 200 and "Yes, start the restore" in text
    assert "shop.Tag" in text and "emptied" in text
    assert Tag.objects.filter(name="old").exists()  # nothing changed yet

    started = operator.post(
        reverse("admin:dbrestore_restorerun_confirm"),
        {
            "backup": "nightly",
            "mode": "replace",
            "atomic": "on",
            "only": "",
            "exclude": "",
            "batch_size": "",
        },
    )
    run = RestoreRun.objects.latest("pk")
    assert started.status_code == 302
    assert started["Location"] == reverse("admin:dbrestore_restorerun_progress_page", args=[run.pk])
    assert run.status == "succeeded" and run.requested_by == "operator"  # SYNC_JOBS in the SQLite/test setup
    assert not Tag.objects.filter(name="old").exists() and Customer.objects.exists()
    assert LogEntry.objects.filter(object_id=str(run.pk), change_message__contains="Started restore").exists()

    data = json.loads(operator.get(reverse("admin:dbrestore_restorerun_progress", args=[run.pk])).content)
    assert data["status"] == "succeeded" and data["final"] and data["percent"] == 100.0
    assert data["rows_done"] == data["rows_total"] > 0 and "shop.OrderItem" in data["tables"]


def test_confirm_refuses_a_path_instead_of_a_backup_name(operator, backup_dir):
    response = operator.post(reverse("admin:dbrestore_restorerun_confirm"), {"backup": "/etc", "mode": "replace"})
    assert response.status_code == 302
    assert RestoreRun.objects.count() == 0


def test_upload_of_a_bad_file_gets_a_clear_message(operator):
    bad = SimpleUploadedFile("notes.txt", b"hello")
    response = operator.post(reverse("admin:dbrestore_restorerun_restore"), {"upload": bad, "mode": "replace"})
    assert "Not an accepted backup file" in response.content.decode()
    broken = SimpleUploadedFile("shop_tag.json", b'[{"id": 1, "name": ')
    response = operator.post(reverse("admin:dbrestore_restorerun_restore"), {"upload": broken, "mode": "replace"})
    text = response.content.decode()
    assert "shop_tag.json" in text and "truncated" in text
    assert RestoreRun.objects.count() == 0


def test_upload_is_saved_under_a_generated_name(operator, backup_dir, settings):
    upload = SimpleUploadedFile("../../shop_tag.json", json.dumps([{"id": 1, "name": "up"}]).encode())
    response = operator.post(reverse("admin:dbrestore_restorerun_restore"), {"upload": upload, "mode": "replace"})
    assert "Yes, start the restore" in response.content.decode()
    saved = [p for p in backup_dir.rglob("*") if p.is_file()]
    assert len(saved) == 1 and saved[0].parent.parent == backup_dir
    assert saved[0].parent.name.startswith("upload-") and ".." not in str(saved[0])


def test_upload_size_limit(operator, settings):
    settings.DBRESTORE = {**settings.DBRESTORE, "MAX_UPLOAD_SIZE": 10}
    upload = SimpleUploadedFile("shop_tag.json", b'[{"id": 1, "name": "long enough"}]')
    response = operator.post(reverse("admin:dbrestore_restorerun_restore"), {"upload": upload, "mode": "replace"})
    assert "uploads are limited to" in response.content.decode()


@pytest.mark.parametrize("allowed_by_settings", [False, True])
def test_zip_uploads_are_refused_with_a_reason(operator, backup_dir, settings, allowed_by_settings):
    import io
    import zipfile

    if allowed_by_settings:  # even where a project lists .zip, no reader takes it
        settings.DBRESTORE = {**settings.DBRESTORE, "UPLOAD_EXTENSIONS": [".json", ".zip"]}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("shop_tag.json", json.dumps([{"id": 1, "name": "zipped"}]))
    upload = SimpleUploadedFile("backup.zip", buffer.getvalue())
    response = operator.post(reverse("admin:dbrestore_restorerun_restore"), {"upload": upload, "mode": "replace"})
    text = response.content.decode()
    assert "Zip archives are not read" in text and "Yes, start the restore" not in text
    assert not any(backup_dir.rglob("*.zip")) and RestoreRun.objects.count() == 0 and not Tag.objects.exists()


def test_the_command_and_the_admin_resolve_a_backup_by_the_same_rules(
    operator, sample_backup, backup_dir, run_command, tmp_path
):
    """discovery.resolve_source serves both: a name in BACKUP_DIR (``safety/<name>`` included)
    resolves to the same backup; a path is the command's alone."""
    import shutil

    shutil.copytree(sample_backup(rows=100, name="night"), backup_dir / "safety" / "safety-run1-2024-01-01")
    name = "safety/safety-run1-2024-01-01"
    run_command("restore_backup", name, "--noinput", "--no-safety-backup")
    by_command = RestoreRun.objects.latest("pk")
    operator.post(
        reverse("admin:dbrestore_restorerun_confirm"),
        {
            "backup": name,
            "mode": "replace",
            "atomic": "on",
            "only": "",
            "exclude": "",
            "batch_size": "",
        },
    )
    by_admin = RestoreRun.objects.latest("pk")
    assert by_admin.pk != by_command.pk and by_admin.source == by_command.source == str(backup_dir / name)
    assert by_command.status == by_admin.status == "succeeded"
    elsewhere = tmp_path / "night"
    run_command("restore_backup", elsewhere, "--noinput", "--no-safety-backup")
    assert RestoreRun.objects.latest("pk").source == str(elsewhere)
    operator.post(reverse("admin:dbrestore_restorerun_confirm"), {"backup": str(elsewhere), "mode": "replace"})
    assert RestoreRun.objects.latest("pk").source == str(elsewhere)  # no run from the admin
    assert RestoreRun.objects.count() == 3
