"""``restore_backup --select``: deleted objects brought back from a backup into a database that
has moved on since, on SQLite and PostgreSQL, with the sample generator's data."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError
from django.db import connection

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Customer, Order, OrderItem, Product, Tag

pytestmark = pytest.mark.django_db(transaction=True)


def _rows(model, keys) -> list[dict]:
    return list(model.objects.filter(pk__in=keys).order_by("pk").values())


def _customer_with_orders() -> Customer:
    return Customer.objects.filter(orders__items__isnull=False).distinct().order_by("pk").first()


@pytest.fixture
def backup(sample_backup, run_command, tmp_path):
    """The sample restored, then backed up with create_backup: the backup of that day."""
    run_command("restore_backup", sample_backup(rows=400), "--noinput", "--no-safety-backup")
    run_command("create_backup", "--output", tmp_path / "nightly")
    return tmp_path / "nightly"


def test_a_deleted_customer_comes_back_with_its_orders_and_nothing_else_changes(backup, run_command, tmp_path):
    customer = _customer_with_orders()
    orders = list(customer.orders.values_list("pk", flat=True))
    items = list(OrderItem.objects.filter(order__customer=customer).values_list("pk", flat=True))
    before = {
        Customer: _rows(Customer, [customer.pk]),
        Order: _rows(Order, orders),
        OrderItem: _rows(OrderItem, items),
    }
    pk = customer.pk
    customer.delete()  # its orders and their items cascade
    # The database moves on: a new customer with an order, and a change to a row not selected.
    other = Customer.objects.order_by("pk").first()
    other.notes = "changed after the backup"
    other.save()
    newcomer = Customer.objects.create(email="new@example.com", name="New", joined_at=other.joined_at)
    new_order = Order.objects.create(customer=newcomer, status="new", total="1.00", placed_at=other.joined_at)
    kept = {model: _rows(model, model.objects.values_list("pk", flat=True)) for model in (Customer, Order, OrderItem)}
    report = tmp_path / "report.json"

    out, _ = run_command(
        "restore_backup", backup, "--select", f"shop.Customer:pk={pk}", "--noinput", "--report-json", report
    )

    for model, rows in before.items():
        assert _rows(model, [row["id"] for row in rows]) == rows, model  # equal field by field
    for model, rows in kept.items():  # every row there before the undelete is as it was
        assert _rows(model, [row["id"] for row in rows]) == rows, model
    counts = {model: model.objects.count() for model in (Customer, Order, OrderItem)}
    assert counts == {model: len(kept[model]) + len(before[model]) for model in before}
    selection = json.loads(report.read_text())["selection"]["tables"]
    assert selection["shop.Customer"]["added"] == 1
    assert selection["shop.Order"]["added"] == len(orders)
    assert selection["shop.OrderItem"]["added"] == len(items)
    assert f"shop.OrderItem: {len(items)} added" in out
    run = RestoreRun.objects.latest("pk")
    assert run.status == "succeeded" and run.options["select"] == [f"shop.Customer:pk={pk}"]
    assert run.rows_inserted == 1 + len(orders) + len(items)
    # Sequences stay ahead of the restored keys: new rows still insert.
    assert Order.objects.create(customer=newcomer, status="new", total="2.00", placed_at=other.joined_at).pk > max(
        [new_order.pk, *orders]
    )


def test_a_tag_comes_back_with_its_many_to_many_rows(backup, run_command):
    tag = Tag.objects.filter(products__isnull=False).order_by("pk").first()
    products = sorted(tag.products.values_list("pk", flat=True))
    pk = tag.pk
    tag.delete()  # its product_tags rows cascade; the products stay
    assert Product.objects.filter(pk__in=products).count() == len(products)

    run_command("restore_backup", backup, "--select", f"shop.Tag:name={tag.name}", "--noinput")

    assert sorted(Tag.objects.get(pk=pk).products.values_list("pk", flat=True)) == products


def test_what_a_row_needs_comes_back_only_where_it_is_gone(backup, run_command):
    item = OrderItem.objects.select_related("order__customer").order_by("pk").first()
    customer = item.order.customer.pk
    Customer.objects.filter(pk=customer).delete()
    # --no-children: the item alone, with its order and customer (needed), not the other orders.
    run_command("restore_backup", backup, "--select", f"shop.OrderItem:pk={item.pk}", "--no-children", "--noinput")
    assert OrderItem.objects.filter(order=item.order_id).count() == 1
    assert Order.objects.filter(customer=customer).count() == 1
    assert Customer.objects.filter(pk=customer).exists()


def test_a_conflict_writes_nothing_unless_overwrite(backup, run_command):
    customer = _customer_with_orders()
    order_pks = list(customer.orders.values_list("pk", flat=True))
    Order.objects.filter(pk__in=order_pks[1:]).delete()
    Customer.objects.filter(pk=customer.pk).update(name="Renamed since the backup")
    orders_now = Order.objects.count()

    with pytest.raises(CommandError, match=r"conflict with the database, nothing was written.*name: 'Renamed"):
        run_command("restore_backup", backup, "--select", f"shop.Customer:pk={customer.pk}", "--noinput")
    assert Order.objects.count() == orders_now  # the orders that were gone are still gone
    assert RestoreRun.objects.latest("pk").status == "failed"

    run_command("restore_backup", backup, "--select", f"shop.Customer:pk={customer.pk}", "--noinput", "--overwrite")
    assert Customer.objects.get(pk=customer.pk).name != "Renamed since the backup"
    assert set(order_pks) <= set(Order.objects.values_list("pk", flat=True))


def test_a_unique_value_taken_since_the_backup_is_a_conflict(backup, run_command):
    customer = Customer.objects.order_by("pk").first()
    email, pk = customer.email, customer.pk
    customer.delete()
    Customer.objects.create(email=email, name="Took the address", joined_at=customer.joined_at)
    with pytest.raises(CommandError, match="refused by the database"):
        run_command("restore_backup", backup, "--select", f"shop.Customer:pk={pk}", "--noinput")
    assert not Customer.objects.filter(pk=pk).exists()
    assert not OrderItem.objects.filter(order__customer=pk).exists()


def test_a_dry_run_previews_and_writes_nothing(backup, run_command, tmp_path):
    customer = _customer_with_orders()
    orders, pk = customer.orders.count(), customer.pk
    customer.delete()
    report = tmp_path / "report.json"
    out, _ = run_command(
        "restore_backup",
        backup,
        "--select",
        f"shop.Customer:pk={pk}",
        "--dry-run",
        "--noinput",
        "--report-json",
        report,
    )
    assert not Customer.objects.filter(pk=pk).exists()
    assert json.loads(report.read_text())["selection"]["tables"]["shop.Order"]["added"] == orders
    assert "Checked (dry run)" in out


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ("shop.Nothing:pk=1", "'shop.Nothing' names no installed model"),
        ("shop.Customer:colour=red", "shop.Customer has no field 'colour'"),
        ("shop.Customer:name__icontains=a", "the lookup 'icontains' cannot be evaluated while the backup streams"),
        ("shop.Customer:pk=abc", "'abc' is not a value of id"),
        ("shop.Customer", "expected LABEL:FIELD=VALUE"),
        ("dbrestore.RestoreRun:pk=1", "the backup holds no rows of dbrestore.RestoreRun"),
        ("shop.Customer:pk=999999", "no row of the backup matches; nothing was restored"),
    ],
)
def test_bad_selections_get_one_line_and_write_nothing(backup, run_command, selection, message):
    runs = RestoreRun.objects.count()
    with pytest.raises(CommandError) as error:
        run_command("restore_backup", backup, "--select", selection, "--noinput")
    assert message in str(error.value) and len(str(error.value).splitlines()) == 1
    assert RestoreRun.objects.count() in (runs, runs + 1)  # refused before a run, or a failed run


def test_select_refuses_options_that_do_not_apply(backup, run_command):
    with pytest.raises(CommandError, match="--mode replace does not apply"):
        run_command("restore_backup", backup, "--select", "shop.Customer:pk=1", "--mode", "replace", "--noinput")
    with pytest.raises(CommandError, match="--overwrite, --select-depth and --no-children work with --select"):
        run_command("restore_backup", backup, "--overwrite", "--noinput")
    if connection.vendor == "postgresql":
        with pytest.raises(CommandError, match="in one transaction"):
            run_command("restore_backup", backup, "--select", "shop.Customer:pk=1", "--no-atomic", "--noinput")
