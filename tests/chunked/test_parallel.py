"""--jobs N for JSON backups: the tables of one FK level load side by side, with the same outcome."""

from __future__ import annotations

import json
import logging

import pytest
from django.core.management.base import CommandError

from dbrestore.chunked.levels import load_levels
from dbrestore.models import RestoreRun
from restoreproject.shop.models import Category, Customer, Order, OrderItem, Product, Tag
from tests.support.backup_data import assert_table_matches, manifest

pytestmark = pytest.mark.django_db(transaction=True)


def test_levels_follow_the_foreign_keys():
    parents = {Product: [Category], Order: [Customer], OrderItem: [Order, Product]}
    levels = load_levels([Category, Tag, Customer, Product, Order, OrderItem], parents)
    assert levels == [[Category, Tag, Customer], [Product, Order], [OrderItem]]


@pytest.mark.postgres
def test_jobs_restore_the_same_rows(sample_backup, run_command, tmp_path, caplog):
    backup = sample_backup(rows=800)
    report = tmp_path / "report.json"
    with caplog.at_level(logging.INFO, logger="dbrestore"):
        run_command(
            "restore_backup",
            backup,
            "--noinput",
            "--no-atomic",
            "--jobs",
            2,
            "--batch-size",
            40,
            "--report-json",
            report,
        )
    assert json.loads(report.read_text())["status"] == "succeeded"
    for entry in manifest(backup)["tables"]:
        assert_table_matches(backup, entry)
    side_by_side = [r.getMessage() for r in caplog.records if "side by side" in r.getMessage()]
    assert any("," in message for message in side_by_side), side_by_side  # some level had several tables


@pytest.mark.postgres
def test_jobs_account_for_every_row_as_one_job_does(bad_backup, run_command, tmp_path):
    counts = {}
    for jobs in (1, 2):
        path = tmp_path / f"report{jobs}.json"
        with pytest.raises(CommandError) as info:
            run_command(
                "restore_backup",
                bad_backup,
                "--noinput",
                "--no-atomic",
                "--jobs",
                jobs,
                "--batch-size",
                3,
                "--report-json",
                path,
            )
        assert info.value.returncode == 3
        report = json.loads(path.read_text())
        counts[jobs] = {
            label: (t["total"], t["inserted"], t["skipped"], t["rejected"]) for label, t in report["tables"].items()
        }
        assert sorted(Customer.objects.values_list("pk", flat=True)) == [1, 2, 10, 13]
    assert counts[2] == counts[1]


@pytest.mark.postgres
def test_a_failing_table_stops_the_parallel_load(sample_backup, run_command):
    backup = sample_backup(rows=400)
    data = backup / "shop_customer.jsonl"
    data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 2])
    with pytest.raises(CommandError, match="shop_customer.jsonl"):
        run_command("restore_backup", backup, "--noinput", "--no-atomic", "--jobs", 2, "--skip-checksum")
    run = RestoreRun.objects.get()
    assert run.status == "failed"
    assert any(error.startswith("shop.OrderItem: ") for error in run.errors)  # what each table holds
    assert not OrderItem.objects.exists()  # its level never started


def test_jobs_need_postgres_and_no_atomic(sample_backup, run_command, vendor):
    backup = sample_backup(rows=50)
    expected = "cannot share one transaction: add --no-atomic" if vendor == "postgresql" else "PostgreSQL only"
    with pytest.raises(CommandError, match=expected):
        run_command("restore_backup", backup, "--noinput", "--jobs", 2)
    assert RestoreRun.objects.get().status == "failed"
