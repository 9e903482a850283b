"""replace, merge and append; replace's refusal to orphan rows outside the backup."""

from __future__ import annotations

import json

import pytest
from django.core.management.base import CommandError

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Category, Customer, Order, OrderItem, Tag
from tests.support.backup_data import assert_table_matches, manifest, read_rejects, read_rows

pytestmark = pytest.mark.django_db(transaction=True)


def report(run_command, tmp_path, *args) -> dict:
    path = tmp_path / "report.json"
    run_command("restore_backup", *args, "--noinput", "--report-json", path)
    return json.loads(path.read_text())


def test_merge_twice_gives_the_same_database(sample_backup, run_command, tmp_path):
    backup = sample_backup(rows=400)
    first = report(run_command, tmp_path, backup, "--mode", "merge")
    Tag.objects.filter(pk=1).update(name="renamed-locally")
    Tag.objects.create(id=999, name="only-here")
    second = report(run_command, tmp_path, backup, "--mode", "merge")
    assert first["status"] == second["status"] == "succeeded"
    for entry in manifest(backup)["tables"]:
        if entry["model"] != "shop.Tag":
            assert_table_matches(backup, entry)
    assert Tag.objects.get(pk=1).name != "renamed-locally"  # updated from the backup
    assert Tag.objects.filter(pk=999).exists()  # merge keeps rows the backup does not have
    assert second["totals"]["rejected"] == 0


def test_append_keeps_existing_rows_and_counts_conflicts(sample_backup, run_command, tmp_path):
    backup = sample_backup(rows=300)
    report(run_command, tmp_path, backup)
    Tag.objects.filter(pk=1).update(name="kept")
    again = report(run_command, tmp_path, backup, "--mode", "append")
    assert again["status"] == "succeeded"
    assert again["totals"]["inserted"] == 0 and again["totals"]["skipped"] == again["totals"]["total"]
    assert Tag.objects.get(pk=1).name == "kept"


def test_append_without_atomic_leaves_existing_rows_foreign_keys_alone(sample_backup, run_command, tmp_path):
    """--no-atomic loads cycle FKs as NULL and fills them in afterwards, only where the row's
    FK columns are all still NULL: a row that was already there keeps its own values."""
    backup = sample_backup(rows=600)
    report(run_command, tmp_path, backup)
    linked = next(r for r in read_rows(backup / "shop_customer.jsonl") if r["last_order_id"] and r["referred_by_id"])
    other = Customer.objects.exclude(pk__in=[linked["id"], linked["referred_by_id"]]).first()
    Customer.objects.filter(pk=linked["id"]).update(last_order=None, referred_by=other)
    again = report(run_command, tmp_path, backup, "--mode", "append", "--no-atomic")
    assert again["status"] == "succeeded"
    mine = Customer.objects.get(pk=linked["id"])
    assert (mine.last_order_id, mine.referred_by_id) == (None, other.pk)


def test_replace_without_atomic_twice_over_an_fk_cycle(sample_backup, run_command, tmp_path):
    """Customer and Order point at each other: emptying them table by table, each DELETE its own
    transaction, failed on SQLite after the first tables were already emptied."""
    backup = sample_backup(rows=600)
    for _ in range(2):
        assert report(run_command, tmp_path, backup, "--no-atomic")["status"] == "succeeded"
    for entry in manifest(backup)["tables"]:
        assert_table_matches(backup, entry)


def test_replace_keeps_outside_rows_the_backup_brings_back(sample_backup, run_command, tmp_path):
    """Orders lie outside a restore of customers alone: they are kept, since every customer
    they point to comes back (as loaddata keeps them); nothing outside is emptied."""
    backup = sample_backup(rows=300)
    run_command("restore_backup", backup, "--noinput")
    orders = sorted(Order.objects.values_list("pk", "customer_id"))
    run_command("restore_backup", backup, "--noinput", "--only", "shop.Customer")
    assert sorted(Order.objects.values_list("pk", "customer_id")) == orders
    assert RestoreRun.objects.latest("pk").status == "succeeded"
    assert Customer.objects.count() == len(read_rows(backup / "shop_customer.jsonl"))


def test_replace_refuses_outside_rows_left_pointing_nowhere(sample_backup, run_command, tmp_path, vendor):
    """A backup that lacks customers that orders point to: refused after the load, in its
    transaction, each relation named once with its count and an example; nothing changed."""
    backup = sample_backup(rows=300)
    run_command("restore_backup", backup, "--noinput")
    before = sorted(Customer.objects.values_list("pk", "name"))
    customers = read_rows(backup / "shop_customer.jsonl")
    kept = [{**row, "referred_by_id": None} for row in customers[: len(customers) // 2]]
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "shop_customer.jsonl").write_text("\n".join(json.dumps(row) for row in kept))
    gone = {row["id"] for row in customers} - {row["id"] for row in kept}
    dangling = Order.objects.filter(customer_id__in=gone)
    with pytest.raises(CommandError) as info:
        run_command("restore_backup", folder, "--noinput")
    message = str(info.value)
    assert message.count("shop.Order.customer -> shop.Customer") == 1, message
    assert (
        f"({dangling.count()} rows pointing nowhere, e.g. pk {min(dangling.values_list('pk', flat=True))})" in message
    )
    assert "--cascade" in message
    assert sorted(Customer.objects.values_list("pk", "name")) == before  # rolled back
    assert RestoreRun.objects.latest("pk").status == "failed"

    # Chunk by chunk commits would leave the orders pointing nowhere between two commits: refused first.
    with pytest.raises(CommandError) as info:
        run_command("restore_backup", backup, "--noinput", "--only", "shop.Customer", "--no-atomic")
    assert "--no-atomic commits the emptied tables" in str(info.value)
    assert str(info.value).count("shop.Order.customer -> shop.Customer") == 1
    assert sorted(Customer.objects.values_list("pk", "name")) == before


def test_replace_with_cascade_empties_the_outside_tables(sample_backup, run_command, tmp_path):
    backup = sample_backup(rows=300)
    run_command("restore_backup", backup, "--noinput")
    with pytest.raises(CommandError) as info:
        run_command("restore_backup", backup, "--noinput", "--only", "shop.Customer", "--cascade")
    assert info.value.returncode == 3  # customers whose last order was emptied are rejected
    run = RestoreRun.objects.latest("pk")
    assert Order.objects.count() == 0 and OrderItem.objects.count() == 0
    assert Customer.objects.count() == run.rows_inserted
    assert run.rows_rejected == with_last_order(backup) + referred_by_rejected(run)
    assert any("--cascade: also emptied" in w and "shop.OrderItem" in w for w in run.warnings)


def with_last_order(backup) -> int:
    rows = read_rows(backup / "shop_customer.jsonl")
    return sum(1 for row in rows if row["last_order_id"] is not None)


def test_replace_of_a_parent_alone_when_no_child_rows(tmp_path, run_command):
    folder = tmp_path / "categories"
    folder.mkdir()
    (folder / "shop_category.json").write_text(json.dumps([{"id": 1, "name": "a", "parent_id": None}]))
    run_command("restore_backup", folder, "--noinput")
    assert list(Category.objects.values_list("name", flat=True)) == ["a"]
    assert RestoreRun.objects.get().status == "succeeded"


def referred_by_rejected(run) -> int:
    """Customers referred by a rejected customer are rejected too."""
    return sum(1 for r in read_rejects(run.rejects_file) if "referred_by_id" in r["reason"])
