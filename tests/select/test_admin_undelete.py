"""The admin's "Restore objects" page: preview as a tree, confirm, the run recorded with its selection."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dbrestore.models import RestoreRun
from restoreproject.shop.models import Customer, Order

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def nightly(sample_backup, run_command, backup_dir):
    run_command("restore_backup", sample_backup(rows=300), "--noinput", "--no-safety-backup")
    run_command("create_backup", "--output", backup_dir / "nightly")
    return "nightly"


def test_preview_then_restore_a_deleted_customer(admin_client, nightly, admin_user):
    customer = Customer.objects.filter(orders__isnull=False).order_by("pk").first()
    pk, orders = customer.pk, customer.orders.count()
    customer.delete()
    url = reverse("admin:dbrestore_restorerun_undelete")
    form = {"backup": nightly, "model": "shop.Customer", "lookup": f"pk={pk}", "children": "on"}

    page = admin_client.post(url, {**form, "check": "Preview"}).content.decode()
    assert not Customer.objects.filter(pk=pk).exists()  # a preview writes nothing
    assert "<h3>Selected</h3>" in page and "<h3>Belongs to them</h3>" in page
    assert f"<strong>shop.Order</strong>:\n            {orders} to add" in page
    assert 'id="confirm-undelete"' in page

    response = admin_client.post(url, {**form, "confirm": "Restore these rows"})
    run = RestoreRun.objects.latest("pk")
    assert response.status_code == 302 and response.url == reverse(
        "admin:dbrestore_restorerun_progress_page", args=[run.pk]
    )
    assert run.status == "succeeded" and run.options["select"] == [f"shop.Customer:pk={pk}"]
    assert run.requested_by == admin_user.get_username() and run.source.endswith("nightly")
    assert Customer.objects.filter(pk=pk).exists() and Order.objects.filter(customer=pk).count() == orders
    history = admin_client.get(reverse("admin:dbrestore_restorerun_changelist")).content.decode()
    assert f"shop.Customer:pk={pk}" in history


def test_a_conflict_is_shown_and_cannot_be_confirmed(admin_client, nightly):
    customer = Customer.objects.order_by("pk").first()
    Customer.objects.filter(pk=customer.pk).update(name="Renamed")
    form = {"backup": nightly, "model": "shop.Customer", "lookup": f"pk={customer.pk}", "check": "Preview"}
    page = admin_client.post(reverse("admin:dbrestore_restorerun_undelete"), form).content.decode()
    assert "conflict, pk" in page and "name: &#x27;Renamed&#x27;" in page
    assert 'id="confirm-undelete"' not in page


def test_a_bad_lookup_is_a_form_error(admin_client, nightly):
    form = {"backup": nightly, "model": "shop.Customer", "lookup": "colour=red", "check": "Preview"}
    page = admin_client.post(reverse("admin:dbrestore_restorerun_undelete"), form).content.decode()
    assert "shop.Customer has no field &#x27;colour&#x27;" in page
