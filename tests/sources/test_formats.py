"""The other JSON inputs: one object keyed by table, and Django dumpdata fixtures."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command

from restoreproject.shop.models import Category, Customer, Tag
from tests.support.backup_data import manifest, read_rows

pytestmark = pytest.mark.django_db(transaction=True)


def dumpdata(*labels: str, **options) -> list[dict]:
    out = io.StringIO()
    call_command("dumpdata", *labels, stdout=out, **options)
    return json.loads(out.getvalue())


def wipe(*labels: str) -> None:
    from django.apps import apps

    for label in labels:
        apps.get_model(label)._base_manager.all().delete()


def test_one_object_keyed_by_table(sample_backup, tmp_path, run_command):
    backup = sample_backup(rows=300)
    tables = {t["table"]: read_rows(backup / t["file"]) for t in manifest(backup)["tables"]}
    document = {"shop_orderitem": tables["shop_orderitem"], "metadata": {"exported_by": "old tool"}}
    document.update({name: rows for name, rows in reversed(tables.items()) if name != "shop_orderitem"})
    path = tmp_path / "everything.json"
    path.write_text(json.dumps(document))
    out, _ = run_command("restore_backup", path, "--noinput")
    assert Customer.objects.count() == len(tables["shop_customer"])
    assert "shop.OrderItem" in out and "succeeded" in out


def test_keyed_object_errors(tmp_path, run_command):
    from django.core.management.base import CommandError

    path = tmp_path / "broken.json"
    path.write_text('{"shop_tag": [{"id": 1, "name": "a"}')
    with pytest.raises(CommandError, match="broken.json"):
        run_command("restore_backup", path, "--noinput")


@pytest.mark.parametrize(
    "fmt, opener",
    [
        ("json", None),
        ("jsonl", None),
        ("json.gz", gzip.open),
        ("jsonl.bz2", bz2.open),
        ("json.xz", lzma.open),
    ],
)
def test_dumpdata_restores_like_loaddata(sample_backup, tmp_path, run_command, fmt, opener):
    run_command("restore_backup", sample_backup(rows=300), "--noinput")
    fixture = tmp_path / f"fixture.{fmt}"
    call_command("dumpdata", "shop", output=str(fixture), format=fmt.split(".")[0], stdout=io.StringIO())
    if opener and fixture.read_bytes()[:3] not in (b"\x1f\x8b\x08", b"BZh", b"\xfd7z"):
        raw = fixture.read_bytes()
        with opener(fixture, "wb") as stream:
            stream.write(raw)
    expected = dumpdata("shop")

    wipe("shop.OrderItem", "shop.Order", "shop.Customer", "shop.Product", "shop.Category", "shop.Tag")
    call_command("loaddata", str(fixture), stdout=io.StringIO())
    assert dumpdata("shop") == expected

    wipe("shop.OrderItem", "shop.Order", "shop.Customer", "shop.Product", "shop.Category", "shop.Tag")
    run_command("restore_backup", fixture, "--noinput")
    assert dumpdata("shop") == expected


def test_dumpdata_with_natural_keys(tmp_path, run_command):
    editors = Group.objects.create(name="editors")
    editors.permissions.add(Permission.objects.get(codename="view_restorerun"))
    alice = User.objects.create_user("alice", password="pw")
    alice.groups.add(editors)
    alice.user_permissions.add(Permission.objects.get(codename="run_restore"))
    User.objects.create_user("bob", password="pw")
    fixture = tmp_path / "users.json"
    call_command(
        "dumpdata",
        "auth.group",
        "auth.user",
        natural_foreign=True,
        natural_primary=True,
        output=str(fixture),
        stdout=io.StringIO(),
    )
    expected = dumpdata("auth.group", "auth.user", natural_foreign=True, natural_primary=True)
    assert "pk" not in json.loads(fixture.read_text())[0]

    run_command("restore_backup", fixture, "--noinput")
    assert dumpdata("auth.group", "auth.user", natural_foreign=True, natural_primary=True) == expected
    alice = User.objects.get(username="alice")
    assert alice.has_perm("dbrestore.run_restore") and alice.has_perm("dbrestore.view_restorerun")


def test_natural_key_to_a_missing_parent_is_a_reject(tmp_path, run_command):
    from django.core.management.base import CommandError

    fixture = tmp_path / "users.json"
    fixture.write_text(
        json.dumps(
            [
                {
                    "model": "auth.user",
                    "fields": {
                        "username": "carol",
                        "password": "x",
                        "is_superuser": False,
                        "is_staff": False,
                        "is_active": True,
                        "first_name": "",
                        "last_name": "",
                        "email": "",
                        "date_joined": "2024-01-01T00:00:00Z",
                        "last_login": None,
                        "groups": [["no-such-group"]],
                        "user_permissions": [],
                    },
                },
            ]
        )
    )
    with pytest.raises(CommandError) as info:
        run_command("restore_backup", fixture, "--noinput")
    assert info.value.returncode == 3
    assert User.objects.filter(username="carol").exists()


def test_only_conversions_that_may_query_wait_for_the_copy():
    """The COPY path converts rows while the COPY is open (the overlap that makes it fast), except
    where converting may query the database, which a connection in the middle of a COPY cannot."""
    from dbrestore.convert.row_converter import RowConverter
    from restoreproject.shop.models import OrderItem

    assert not RowConverter(OrderItem, using="default").may_query_database  # fields without defaults
    assert not RowConverter(Customer, using="default").may_query_database  # uuid4, dict defaults
    assert RowConverter(Permission, using="default").may_query_database  # a natural-key parent


def test_formats_are_told_by_content(tmp_path, run_command):
    """A dumpdata fixture, a keyed object and a table file, whatever their names."""
    (tmp_path / "shop_category.json").write_text(json.dumps([{"model": "shop.tag", "pk": 7, "fields": {"name": "x"}}]))
    run_command("restore_backup", tmp_path / "shop_category.json", "--noinput")
    assert list(Tag.objects.values_list("pk", flat=True)) == [7] and not Category.objects.exists()
