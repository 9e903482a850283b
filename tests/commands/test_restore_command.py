"""restore_backup end to end: the rows, the report, the history, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from django.core.management.base import CommandError
from django.db import connection

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Category, Customer, Order, OrderItem, Product, Tag
from tests.support.backup_data import assert_table_matches, manifest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "fmt", [{}, {"compress": True}, {"data_format": "json"}, {"data_format": "json", "compress": True}]
)
def test_restore_matches_backup_field_by_field(sample_backup, run_command, fmt):
    backup = sample_backup(rows=400, **fmt)
    out, _ = run_command("restore_backup", backup, "--noinput", "--batch-size", 37)
    for entry in manifest(backup)["tables"]:
        assert_table_matches(backup, entry)
    assert "TOTAL" in out and "succeeded" in out


def test_relations_survive(sample_backup, run_command):
    backup = sample_backup(rows=500)
    run_command("restore_backup", backup, "--noinput")
    assert Customer.objects.filter(referred_by__isnull=False).exists()
    assert Category.objects.filter(parent__isnull=False).exists()
    product = Product.objects.prefetch_related("tags").first()
    assert product.tags.count() == 2
    assert OrderItem.objects.filter(order__customer__isnull=False).count() == OrderItem.objects.count()
    forward = Customer.objects.filter(referred_by_id__gt=models_pk("id")).count()
    assert forward > 0, "the sample must contain self references to later rows"


def models_pk(name):
    from django.db.models import F

    return F(name)


def test_replace_empties_first_and_sequences_reset(sample_backup, run_command):
    Tag.objects.create(name="stale-tag-not-in-backup")
    backup = sample_backup(rows=200)
    run_command("restore_backup", backup, "--noinput")
    assert not Tag.objects.filter(name="stale-tag-not-in-backup").exists()
    before = Tag.objects.count()
    new = Tag.objects.create(name="after-restore")  # would collide with a restored id if sequences lagged
    assert new.pk > max(Tag.objects.exclude(pk=new.pk).values_list("pk", flat=True))
    assert Tag.objects.count() == before + 1
    Order.objects.create(customer=Customer.objects.first(), placed_at="2024-02-02T00:00:00Z", total="1.00")


def test_run_is_recorded_and_json_report(sample_backup, run_command, tmp_path):
    backup = sample_backup(rows=300)
    report_path = tmp_path / "report.json"
    run_command("restore_backup", backup, "--noinput", "--report-json", report_path)
    report = json.loads(report_path.read_text())
    expected = {entry["model"]: entry["rows"] for entry in manifest(backup)["tables"]}
    assert report["status"] == "succeeded"
    assert {label: t["total"] for label, t in report["tables"].items()} == expected
    for table in report["tables"].values():
        assert table["inserted"] + table["skipped"] + table["rejected"] == table["total"]
    assert report["duration_s"] > 0 and report["rows_per_s"] > 0
    run = RestoreRun.objects.get(pk=report["run_id"])
    assert run.status == RestoreRun.Status.SUCCEEDED
    assert run.rows_inserted == sum(expected.values())
    assert run.finished_at and run.started_at and run.source == str(backup)
    assert run.tables["shop.OrderItem"]["inserted"] == expected["shop.OrderItem"]
    assert run.options["batch_size"] == 1000


def test_history_survives_a_restore(sample_backup, run_command):
    backup = sample_backup(rows=100)
    run_command("restore_backup", backup, "--noinput")
    run_command("restore_backup", backup, "--noinput")
    assert RestoreRun.objects.filter(status="succeeded").count() == 2


def test_dry_run_writes_nothing(sample_backup, run_command):
    backup = sample_backup(rows=200)
    Tag.objects.create(name="keep-me")
    out, _ = run_command("restore_backup", backup, "--dry-run")
    assert list(Tag.objects.values_list("name", flat=True)) == ["keep-me"]
    assert Customer.objects.count() == 0
    assert "dry run" in out


def test_only_and_exclude(sample_backup, run_command):
    backup = sample_backup(rows=200)
    run_command("restore_backup", backup, "--noinput", "--only", "shop.Tag,shop_category")
    assert Tag.objects.exists() and Category.objects.exists() and not Customer.objects.exists()
    run_command("restore_backup", backup, "--noinput", "--exclude", "shop.OrderItem")
    assert Customer.objects.exists() and not OrderItem.objects.exists()


def test_plain_directory_of_table_files(tmp_path, run_command):
    """The old tool's layout: backups/<timestamp>/<table>.json, table names in any spelling."""
    folder = tmp_path / "2024-05-01T10-00-00"
    folder.mkdir()
    (folder / "tags.json").write_text(json.dumps([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]))
    (folder / "Category.json").write_text(json.dumps([{"id": 5, "name": "root", "parent_id": None}]))
    (folder / "shop_customer.jsonl").write_text(
        json.dumps(
            {
                "id": 3,
                "email": "x@example.com",
                "name": "X",
                "external_id": "6f1c5f9e-9bde-4a3f-8f51-3c7e3c1f0a11",
                "joined_at": "2024-05-01T10:00:00",
                "birth_date": None,
                "is_active": "True",
                "notes": "",
                "referred_by": None,
                "avatar": "AAEC",
            }
        )
        + "\n"
    )
    run_command("restore_backup", folder, "--noinput")
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["a", "b"]
    customer = Customer.objects.get()
    assert customer.joined_at.tzinfo is not None and customer.is_active
    assert bytes(customer.avatar) == b"\x00\x01\x02"


def test_progress_lines_when_not_a_terminal(sample_backup, run_command):
    backup = sample_backup(rows=300)
    _, err = run_command("restore_backup", backup, "--noinput", "-v", "2")
    assert "shop.OrderItem:" in err and "inserted" in err


@pytest.mark.postgres
def test_restore_on_postgres_is_one_transaction(sample_backup, run_command):
    backup = sample_backup(rows=100)
    run_command("restore_backup", backup, "--noinput")
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT last_value FROM shop_orderitem_id_seq")
        assert cursor.fetchone()[0] == OrderItem.objects.order_by("-pk").first().pk


@pytest.mark.postgres
@pytest.mark.parametrize("method", ["copy", "orm"])
def test_both_methods_restore_the_same_rows(sample_backup, run_command, tmp_path, method):
    backup = sample_backup(rows=600)
    report = tmp_path / "report.json"
    run_command("restore_backup", backup, "--noinput", "--method", method, "--report-json", report, "--batch-size", 50)
    assert json.loads(report.read_text())["method"] == method
    for entry in manifest(backup)["tables"]:
        assert_table_matches(backup, entry)


def test_copy_needs_postgres_and_replace(sample_backup, run_command, vendor):
    backup = sample_backup(rows=50)
    expected = "replace mode" if vendor == "postgresql" else "--method copy needs PostgreSQL"
    with pytest.raises(CommandError, match=expected):
        run_command("restore_backup", backup, "--noinput", "--method", "copy", "--mode", "append")
