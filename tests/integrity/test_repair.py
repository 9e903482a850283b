"""Repairing foreign keys after a load (:mod:`dbrestore.integrity.repair`).

Its two private ways of filling in FKs loaded as NULL are tested here on purpose, one by one: a
restore takes bulk_update only on a database without ``UPDATE ... FROM``, which neither test
database is (PostgreSQL, SQLite 3.33+), so no restore in the suite reaches that one."""

from __future__ import annotations

import pytest
from django.utils import timezone

from dbrestore.integrity import edges, repair
from restoreproject.shop.models import Customer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("fill_in", ["_fill_in", "_fill_in_with_bulk_update"])
def test_cycle_fk_fill_in_sets_only_columns_still_null(fill_in):
    """Both ways of filling in --no-atomic's NULL-loaded FKs (UPDATE ... FROM (VALUES ...), and
    bulk_update where the database has no UPDATE ... FROM) leave a non-NULL column alone."""
    first, second, third = (
        Customer.objects.create(email=f"f{n}@example.com", name=f"F {n}", joined_at=timezone.now()) for n in range(3)
    )
    Customer.objects.filter(pk=third.pk).update(referred_by=first)
    edge = edges.ForeignKeyEdge(Customer, Customer._meta.get_field("referred_by"), Customer)
    items = [(second.pk, {edge: first.pk}), (third.pk, {edge: second.pk})]
    getattr(repair, fill_in)(Customer, Customer.objects.using("default"), (edge,), items)
    assert Customer.objects.get(pk=second.pk).referred_by_id == first.pk
    assert Customer.objects.get(pk=third.pk).referred_by_id == first.pk  # was not NULL: kept
