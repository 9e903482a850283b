"""Every row ends inserted, skipped or rejected with a reason; the counts add up."""

from __future__ import annotations

import json

import pytest
from django.core.management.base import CommandError

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Customer, Order, OrderItem, Product, Tag
from tests.support.backup_data import assert_table_matches, manifest, read_rejects
from tests.support.shop_rows import customer, write_jsonl

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("method", ["auto", "orm"])
@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "no-atomic"])
def test_every_row_is_accounted_for(bad_backup, run_command, tmp_path, atomic, method, vendor):
    report_path = tmp_path / "report.json"
    args = [bad_backup, "--noinput", "--batch-size", 4, "--report-json", report_path, "--method", method]
    with pytest.raises(CommandError) as info:
        run_command("restore_backup", *args, *([] if atomic else ["--no-atomic"]))
    assert info.value.returncode == 3
    report = json.loads(report_path.read_text())
    assert report["status"] == "partial"
    assert report["method"] == ("copy" if method == "auto" and vendor == "postgresql" else "orm")
    for label, table in report["tables"].items():
        assert table["inserted"] + table["skipped"] + table["rejected"] == table["total"], label

    customers = report["tables"]["shop.Customer"]
    assert customers["total"] == 14
    assert customers["skipped"] == 2  # the duplicate pk and the duplicate email
    assert customers["rejected"] == 8  # max_length is enforced on SQLite too
    assert sorted(Customer.objects.values_list("pk", flat=True)) == [1, 2, 10, 13]
    assert Customer.objects.get(pk=10).referred_by_id == 13
    assert Customer.objects.get(pk=2).last_order_id == 1

    assert report["tables"]["shop.Order"] == {
        **report["tables"]["shop.Order"],
        "total": 4,
        "inserted": 1,
        "rejected": 3,
    }
    assert list(Order.objects.values_list("pk", flat=True)) == [1]
    assert report["tables"]["shop.Product"]["rejected"] == 2
    assert list(Product.objects.values_list("pk", flat=True)) == [1]
    assert report["tables"]["shop.OrderItem"]["rejected"] == 2  # bad quantity, and the rejected product
    assert list(OrderItem.objects.values_list("pk", flat=True)) == [1]

    rejects = read_rejects(report["rejects_file"])
    assert len(rejects) == report["totals"]["rejected"]
    by_position = {(r["table"], r["position"]): r for r in rejects}
    assert "joined_at" in by_position[("shop_customer", 3)]["reason"]
    assert by_position[("shop_customer", 3)]["row"]["joined_at"] == "yesterday"
    assert "referred_by_id=999" in by_position[("shop_customer", 8)]["reason"]
    assert "last_order_id=77" in by_position[("shop_customer", 11)]["reason"]
    assert "external_id" in by_position[("shop_customer", 9)]["reason"]
    assert "referred_by_id=11" in by_position[("shop_customer", 14)]["reason"]
    assert "customer_id=999" in by_position[("shop_order", 2)]["reason"]
    assert "shop_customer" in by_position[("shop_order", 4)]["reason"]
    assert "quantity" in by_position[("shop_orderitem", 2)]["reason"]
    assert "longer than max_length 200" in by_position[("shop_customer", 5)]["reason"]
    assert all(set(r) >= {"model", "table", "position", "row", "reason"} for r in rejects)

    run = RestoreRun.objects.get(pk=report["run_id"])
    assert run.status == "partial" and run.rejects_file == report["rejects_file"]
    assert run.rows_rejected == report["totals"]["rejected"]


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "no-atomic"])
def test_batches_of_two_rows_give_the_same_report(bad_backup, run_command, tmp_path, settings, atomic):
    """Two-row COPY batches: bad rows land in the middle of the pipeline (a batch falling back
    while the next one is converted), yet every count and reject is the same as in one batch.
    The second restore replaces the first's rows (on SQLite with --no-atomic too: the FK cycle's
    tables are emptied in one transaction)."""
    reports = []
    for copy_batch_size in (5000, 2):
        settings.DBRESTORE = {**settings.DBRESTORE, "COPY_BATCH_SIZE": copy_batch_size}
        path = tmp_path / f"report{copy_batch_size}.json"
        with pytest.raises(CommandError):
            run_command(
                "restore_backup",
                bad_backup,
                "--noinput",
                "--batch-size",
                1,
                "--report-json",
                path,
                *([] if atomic else ["--no-atomic"]),
            )
        report = json.loads(path.read_text())
        rejects = sorted((r["table"], r["position"]) for r in read_rejects(report["rejects_file"]))
        reports.append((report["tables"], rejects, sorted(Customer.objects.values_list("pk", flat=True))))
    tables = {
        label: {k: t[k] for k in ("total", "inserted", "skipped", "rejected")} for label, t in reports[0][0].items()
    }
    assert {label: {k: t[k] for k in tables[label]} for label, t in reports[1][0].items()} == tables
    assert reports[1][1:] == reports[0][1:]
    assert tables["shop.Order"]["rejected"] == 3


def test_log_skipped(bad_backup, run_command, tmp_path):
    rejects_path = tmp_path / "rejects.jsonl"
    with pytest.raises(CommandError):
        run_command("restore_backup", bad_backup, "--noinput", "--log-skipped", "--rejects-file", rejects_path)
    skipped = [r for r in read_rejects(rejects_path) if r["kind"] == "skipped"]
    assert sorted((r["table"], r["position"]) for r in skipped) == [("shop_customer", 6), ("shop_customer", 7)]


def test_strict_stops_and_rolls_back(bad_backup, run_command):
    Tag.objects.create(name="before")
    Customer.objects.create(**{k: v for k, v in customer(50).items() if not k.endswith("_id") and k != "id"})
    with pytest.raises(CommandError, match="more than 0 rows rejected"):
        run_command("restore_backup", bad_backup, "--noinput", "--strict")
    assert list(Customer.objects.values_list("email", flat=True)) == ["c50@example.com"]
    assert RestoreRun.objects.get().status == "failed"


def test_max_rejects_allows_up_to_n(bad_backup, run_command):
    with pytest.raises(CommandError) as info:
        run_command("restore_backup", bad_backup, "--noinput", "--max-rejects", 100)
    assert info.value.returncode == 3


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "no-atomic"])
def test_self_references_and_cycles_in_any_order(sample_backup, run_command, atomic):
    backup = sample_backup(rows=600)
    run_command("restore_backup", backup, "--noinput", "--batch-size", 25, *([] if atomic else ["--no-atomic"]))
    for entry in manifest(backup)["tables"]:
        assert_table_matches(backup, entry)


def test_schema_drift(tmp_path, run_command):
    folder = tmp_path / "drift"
    folder.mkdir()
    write_jsonl(
        folder / "shop_tag.jsonl",
        [{"id": 1, "name": "a", "colour": "red", "legacy": 1}, {"id": 2, "name": "b", "colour": None}],
    )
    row = customer(1)
    del row["email"], row["is_active"]  # email: NOT NULL without default; is_active has a default
    write_jsonl(folder / "shop_customer.jsonl", [row])
    with pytest.raises(CommandError) as info:
        out, _ = run_command("restore_backup", folder, "--noinput")
    assert info.value.returncode == 3
    assert Tag.objects.count() == 2
    run = RestoreRun.objects.get()
    assert any("colour, legacy" in w and "3 values dropped" in w for w in run.warnings)
    assert any("email" in w and "is_active" in w for w in run.warnings)
    assert run.tables["shop.Customer"]["rejected"] == 1
    reason = read_rejects(run.rejects_file)[0]["reason"]
    assert "email" in reason and "no default" in reason


def test_unknown_table_can_be_ignored(tmp_path, run_command):
    folder = tmp_path / "unknown"
    folder.mkdir()
    write_jsonl(folder / "shop_tag.jsonl", [{"id": 1, "name": "a"}])
    write_jsonl(folder / "legacy_stuff.jsonl", [{"id": 1}])
    with pytest.raises(CommandError, match="legacy_stuff"):
        run_command("restore_backup", folder, "--noinput")
    run_command("restore_backup", folder, "--noinput", "--ignore-unknown")
    assert Tag.objects.count() == 1
    assert any("legacy_stuff" in w for w in RestoreRun.objects.filter(status="succeeded").get().warnings)
    run_command("restore_backup", folder, "--noinput", "--exclude", "legacy_stuff")


def test_fixed_rejects_file_restores_with_append(bad_backup, run_command, tmp_path):
    rejects_path = tmp_path / "rejects.jsonl"
    with pytest.raises(CommandError):
        run_command("restore_backup", bad_backup, "--noinput", "--rejects-file", rejects_path)
    before = Customer.objects.count()
    fixed = []
    for record in read_rejects(rejects_path):
        if record["table"] == "shop_customer" and record["position"] == 3:  # the unparseable date
            record["row"]["joined_at"] = "2024-03-01T09:30:00Z"
            fixed.append(record)
    fixed_path = tmp_path / "fixed.jsonl"
    fixed_path.write_text("".join(json.dumps(record) + "\n" for record in fixed))
    run_command("restore_backup", fixed_path, "--noinput", "--mode", "append")
    assert Customer.objects.count() == before + 1
    assert Customer.objects.get(pk=3).joined_at.hour == 9


def test_a_duration_is_written_as_dumpdata_writes_it_in_backups_and_rejects_and_read_back(tmp_path, run_command):
    """Backups and the rejects file share one JSON encoder (DjangoJSONEncoder's ISO 8601
    durations), and a rejects file holding such a value restores it unchanged."""
    import datetime

    from django.core.serializers.json import DjangoJSONEncoder

    from dbrestore.backups.writer import dumps_row
    from dbrestore.load.rejects import dumps_record
    from restoreproject.fidelity.models import AllFields

    span = datetime.timedelta(days=-1, hours=2, seconds=3, microseconds=5)
    as_dumpdata = json.loads(json.dumps(span, cls=DjangoJSONEncoder))
    assert json.loads(dumps_row({"span": span}))["span"] == as_dumpdata
    record = {
        "kind": "rejected",
        "model": "fidelity.AllFields",
        "table": "fidelity_allfields",
        "position": 1,
        "row": {"id": 7, "span": span},
        "reason": "fixed by hand",
    }
    path = tmp_path / "fixed.jsonl"
    path.write_bytes(dumps_record(record) + b"\n")
    assert json.loads(path.read_text())["row"]["span"] == as_dumpdata
    run_command("restore_backup", path, "--noinput", "--mode", "append")
    assert AllFields.objects.get(pk=7).span == span
