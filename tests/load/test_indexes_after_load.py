"""Indexes after the load, the default on PostgreSQL in replace mode: the same rows, rejects and
schema as with --keep-indexes, FKs to outside tables left alone, and a failure undoes it all."""

from __future__ import annotations

import json

import psycopg
import pytest
from django.core.management.base import CommandError
from django.db import connection

from dbrestore import service
from dbrestore.models import RestoreRun
from dbrestore.runs.progress import BaseListener
from restoreproject.shop.models import Customer, Order, OrderItem
from tests.support.backup_data import assert_table_matches, manifest
from tests.support.chunked_runs import schema

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def every_table_is_big(monkeypatch):
    """The sample tables are small: set aside every table's indexes, as for big ones."""
    from dbrestore.load import indexes as postload

    monkeypatch.setattr(postload, "MIN_ROWS", 0)


@pytest.mark.postgres
def test_rows_indexes_and_constraints_come_back(sample_backup, run_command, tmp_path):
    before = schema()
    assert any("_fk_" in name for _, name, _, _ in before["constraints"])
    backup = sample_backup(rows=600)
    report = tmp_path / "report.json"
    run_command("restore_backup", backup, "--noinput", "--report-json", report)
    assert json.loads(report.read_text())["status"] == "succeeded"
    for entry in manifest(backup)["tables"]:
        assert_table_matches(backup, entry)
    assert schema() == before
    assert RestoreRun.objects.get().options["indexes_after_load"] is True


@pytest.mark.postgres
@pytest.mark.parametrize("method", ["copy", "orm"])
def test_orphans_are_still_rejects(bad_backup, run_command, tmp_path, method):
    reports = {}
    for flags in (["--keep-indexes"], []):
        path = tmp_path / f"report{len(flags)}.json"
        with pytest.raises(CommandError) as info:
            run_command("restore_backup", bad_backup, "--noinput", "--method", method, "--report-json", path, *flags)
        assert info.value.returncode == 3
        reports[not flags] = json.loads(path.read_text())
        assert sorted(Customer.objects.values_list("pk", flat=True)) == [1, 2, 10, 13]
    counts = {
        key: {label: (t["inserted"], t["skipped"], t["rejected"]) for label, t in report["tables"].items()}
        for key, report in reports.items()
    }
    assert counts[True] == counts[False]
    rejects = [json.loads(line) for line in open(reports[True]["rejects_file"])]
    assert any("customer_id=999" in r["reason"] for r in rejects)
    assert all(validated for *_, validated in schema()["constraints"])


@pytest.mark.postgres
def test_a_failed_restore_leaves_rows_and_schema_as_they_were(sample_backup, run_command):
    run_command("restore_backup", sample_backup(rows=200, name="first"), "--noinput")
    before_rows, before_schema = OrderItem.objects.count(), schema()
    backup = sample_backup(rows=400, name="second")
    data = backup / "shop_orderitem.jsonl"
    data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 2])
    with pytest.raises(CommandError, match="shop_orderitem.jsonl"):
        run_command("restore_backup", backup, "--noinput", "--skip-checksum")
    assert OrderItem.objects.count() == before_rows
    assert schema() == before_schema
    assert RestoreRun.objects.latest("pk").status == "failed"
    assert RestoreRun.objects.latest("pk").options["indexes_after_load"] is True


class SchemaDuringLoad(BaseListener):
    """What the restore's own connection sees as each table starts loading, and whether another
    session can read the orders table then (its ACCESS EXCLUSIVE lock would stop it)."""

    def __init__(self):
        self.foreign_keys: dict[str, list[str]] = {}
        self.orders_readable: list[bool] = []

    def table_started(self, table):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY 1",
                [table.table],
            )
            self.foreign_keys[table.label] = [definition for (definition,) in cursor.fetchall()]
        if table.label == "shop.OrderItem":
            self.orders_readable.append(_readable_elsewhere(Order._meta.db_table))


def _readable_elsewhere(table: str) -> bool:
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        dbname=settings["NAME"],
        autocommit=True,
    ) as other:
        other.execute("SET lock_timeout = '300ms'")
        try:
            other.execute(f"SELECT count(*) FROM {table}").fetchone()
        except psycopg.errors.LockNotAvailable:
            return False
    return True


@pytest.mark.postgres
def test_by_default_fks_between_restored_tables_go_during_the_load(sample_backup, run_command):
    backup = sample_backup(rows=300)
    watcher = SchemaDuringLoad()
    service.restore(backup, listeners=[watcher])
    assert watcher.foreign_keys["shop.OrderItem"] == []
    assert len(OrderItem.objects.all()) == manifest_rows(backup, "shop.OrderItem")
    kept = SchemaDuringLoad()
    service.restore(backup, listeners=[kept], indexes_after_load=False)
    assert len(kept.foreign_keys["shop.OrderItem"]) == 2
    assert RestoreRun.objects.latest("pk").options["indexes_after_load"] is False


@pytest.mark.postgres
def test_small_tables_keep_their_indexes_and_fks(sample_backup, monkeypatch):
    from dbrestore.load import indexes as postload

    backup = sample_backup(rows=300)
    monkeypatch.setattr(postload, "MIN_ROWS", manifest_rows(backup, "shop.OrderItem") + 1)
    watcher = SchemaDuringLoad()
    result = service.restore(backup, listeners=[watcher])
    assert result.status == "succeeded"
    assert len(watcher.foreign_keys["shop.OrderItem"]) == 2
    assert len(watcher.foreign_keys["shop.Order"]) == 2  # to Customer, both small
    assert OrderItem.objects.count() == manifest_rows(backup, "shop.OrderItem")


@pytest.mark.postgres
def test_fks_to_tables_outside_the_restore_stay_and_lock_nothing(sample_backup, run_command, tmp_path):
    backup = sample_backup(rows=300)
    run_command("restore_backup", backup, "--noinput")
    fks_before = schema()["constraints"]
    watcher = SchemaDuringLoad()
    result = service.restore(backup, listeners=[watcher], only=["shop.OrderItem"])
    assert result.status == "succeeded"
    assert len(watcher.foreign_keys["shop.OrderItem"]) == 2  # to Order and Product, both outside
    assert watcher.orders_readable == [True]
    assert schema()["constraints"] == fks_before


@pytest.mark.postgres
def test_an_orphan_into_an_outside_table_is_still_a_reject(sample_backup, run_command, tmp_path):
    backup = sample_backup(rows=300)
    run_command("restore_backup", backup, "--noinput")
    data = backup / "shop_orderitem.jsonl"
    lines = data.read_text().splitlines()
    row = json.loads(lines[0])
    row["order_id"] = 987654
    data.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")
    result = service.restore(backup, only=["shop.OrderItem"], skip_checksum=True)
    assert result.status == "partial"
    assert result.tables["shop.OrderItem"].rejected == 1
    assert not OrderItem.objects.filter(order_id=987654).exists()
    assert OrderItem.objects.count() == len(lines) - 1


def manifest_rows(backup, label: str) -> int:
    return next(entry["rows"] for entry in manifest(backup)["tables"] if entry["model"] == label)


def test_refused_where_it_cannot_keep_its_guarantees(sample_backup, run_command, vendor):
    backup = sample_backup(rows=50)
    run_command("restore_backup", backup, "--noinput", "--no-atomic")  # chunked runs set aside too (PostgreSQL)
    assert RestoreRun.objects.latest("pk").options["indexes_after_load"] is (vendor == "postgresql")
    if vendor == "postgresql":
        with pytest.raises(CommandError, match="replace mode in one transaction"):
            run_command("restore_backup", backup, "--noinput", "--indexes-after-load", "--mode", "append")
    else:
        with pytest.raises(CommandError, match="--indexes-after-load needs PostgreSQL"):
            run_command("restore_backup", backup, "--noinput", "--indexes-after-load")
