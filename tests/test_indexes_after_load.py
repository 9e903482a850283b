"""--indexes-after-load: the same rows, rejects and schema as without it, and a failure undoes it."""

from __future__ import annotations

import json

import pytest
from django.core.management.base import CommandError
from django.db import connection

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Customer, OrderItem
from tests.backup_data import assert_table_matches, manifest
from tests.test_row_accounting import bad_backup  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def schema() -> dict[str, list[str]]:
    """Every index and constraint definition of the demo app's tables."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename LIKE 'shop_%%' ORDER BY 1")
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
            "WHERE conrelid::regclass::text LIKE 'shop_%%' ORDER BY 1, 2"
        )
        constraints = cursor.fetchall()
    return {"indexes": indexes, "constraints": constraints}


@pytest.mark.postgres
def test_rows_indexes_and_constraints_come_back(sample_backup, run_command, tmp_path):
    before = schema()
    assert any("_fk_" in name for _, name, _, _ in before["constraints"])
    backup = sample_backup(rows=600)
    report = tmp_path / "report.json"
    run_command("restore_backup", backup, "--noinput", "--indexes-after-load", "--report-json", report)
    assert json.loads(report.read_text())["status"] == "succeeded"
    for entry in manifest(backup)["tables"]:
        assert_table_matches(backup, entry)
    assert schema() == before
    assert RestoreRun.objects.get().options["indexes_after_load"] is True


@pytest.mark.postgres
@pytest.mark.parametrize("method", ["copy", "orm"])
def test_orphans_are_still_rejects(bad_backup, run_command, tmp_path, method):  # noqa: F811
    reports = {}
    for flags in ([], ["--indexes-after-load"]):
        path = tmp_path / f"report{len(flags)}.json"
        with pytest.raises(CommandError) as info:
            run_command("restore_backup", bad_backup, "--noinput", "--method", method, "--report-json", path, *flags)
        assert info.value.returncode == 3
        reports[bool(flags)] = json.loads(path.read_text())
        assert sorted(Customer.objects.values_list("pk", flat=True)) == [1, 2, 10, 13]
    counts = {key: {label: (t["inserted"], t["skipped"], t["rejected"]) for label, t in report["tables"].items()}
              for key, report in reports.items()}
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
        run_command("restore_backup", backup, "--noinput", "--skip-checksum", "--indexes-after-load")
    assert OrderItem.objects.count() == before_rows
    assert schema() == before_schema
    assert RestoreRun.objects.latest("pk").status == "failed"


def test_refused_where_it_cannot_keep_its_guarantees(sample_backup, run_command, vendor):
    backup = sample_backup(rows=50)
    if vendor == "postgresql":
        with pytest.raises(CommandError, match="replace mode, in one transaction"):
            run_command("restore_backup", backup, "--noinput", "--indexes-after-load", "--no-atomic")
        with pytest.raises(CommandError, match="replace mode, in one transaction"):
            run_command("restore_backup", backup, "--noinput", "--indexes-after-load", "--mode", "append")
    else:
        with pytest.raises(CommandError, match="--indexes-after-load needs PostgreSQL"):
            run_command("restore_backup", backup, "--noinput", "--indexes-after-load")
