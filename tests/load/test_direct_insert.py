"""The ORM path's INSERT built from converted values (:mod:`dbrestore.load.direct`) stores
exactly what the insert through model instances and Django's compiler stores: the same rows of
Django's odd field types (text, FileField's None, IPv6, timezones, decimals, JSON, bytes, UUIDs,
durations), inserted both ways into the same table and read back; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest
from django.db import connection, transaction
from django.utils import timezone

from dbrestore.convert.row_converter import RowConverter, build_instance
from dbrestore.load.insert import Inserter
from restoreproject.fidelity.models import AllFields, Counter, Pizzeria
from restoreproject.shop.models import Customer, OrderItem

pytestmark = pytest.mark.django_db(transaction=True)

KOLKATA = datetime.timezone(datetime.timedelta(hours=5, minutes=30))

ALL_FIELDS_ROWS = [
    {
        "id": 1,
        "created": "2024-01-02T03:04:05",
        "note": "naive, read in TIME_ZONE",
        "char": "é",
        "text": "",
        "slug": "a-b",
        "email": "a@b.c",
        "url": "https://x.y/",
        "path": "/tmp/p",
        "upload": None,
        "ip": "::ffff:1.2.3.4",
        "flag": True,
        "maybe": None,
        "small": -32768,
        "integer": 2**31 - 1,
        "big": -(2**63),
        "positive": 0,
        "positive_small": 32767,
        "positive_big": 2**63 - 1,
        "ratio": 1e-300,
        "amount": "12345678.90",
        "day": "0001-01-01",
        "moment": "23:59:59.999999",
        "when": "2024-06-30T23:59:59.5+05:30",
        "span": 86400000001,
        "ident": "12345678-1234-5678-1234-567812345678",
        "blob": "AAEC/w==",
        "data": {"a": [1, 2.5, None, {"b": "ü"}]},
    },
    {
        "id": 2,
        "created": None,
        "note": "",
        "char": "",
        "text": "x" * 5000,
        "slug": "",
        "email": "",
        "url": "",
        "path": "",
        "upload": "files/a.txt",
        "ip": "2001:0db8:0000:0000:0000:0000:0000:0001",
        "flag": False,
        "maybe": False,
        "small": None,
        "integer": None,
        "big": None,
        "positive": None,
        "positive_small": None,
        "positive_big": None,
        "ratio": None,
        "amount": "-0.01",
        "day": None,
        "moment": None,
        "when": "9999-12-30T23:59:59+00:00",
        "span": None,
        "ident": None,
        "blob": None,
        "data": None,
    },
    {
        "id": 3,
        "created": "2024-03-31T02:30:00Z",
        "note": "n",
        "char": "'; DROP TABLE x; --",
        "text": "\\N\t\n",
        "slug": "s",
        "email": "e@x.io",
        "url": "ftp://h/",
        "path": "/tmp",
        "upload": "",
        "ip": None,
        "flag": True,
        "maybe": True,
        "small": 0,
        "integer": -1,
        "big": 1,
        "positive": 7,
        "positive_small": 0,
        "positive_big": 0,
        "ratio": -0.0,
        "amount": "0",
        "day": "2024-02-29",
        "moment": "00:00",
        "when": "2000-01-01T00:00:00",
        "span": 0,
        "ident": str(uuid.UUID(int=0)),
        "blob": "",
        "data": ["list", "at", "top"],
    },
]


def _stored(model) -> list[tuple]:
    names = [f.attname for f in model._meta.concrete_fields]
    return list(model.objects.order_by("pk").values_list(*names))


def _both_ways(model, values_rows, *, returning_pks=False, merge=False):
    """Insert the rows through instances, read them back, empty the table, insert them from
    values, read them back: (stored via instances, stored via values, both results)."""
    inserter = Inserter(model, connection.alias, merge=merge)
    assert inserter.direct is not None, f"{model._meta.label} takes the instance path"
    with transaction.atomic():
        via_instances = inserter.insert(
            [build_instance(model, list(v)) for v in values_rows], returning_pks=returning_pks
        )
    before = _stored(model)
    with connection.cursor() as cursor:  # its own table only (a multi-table child's delete cascades up)
        cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)}")
    with transaction.atomic():
        via_values = Inserter(model, connection.alias, merge=merge).insert_values(
            [list(v) for v in values_rows], returning_pks=returning_pks
        )
    return before, _stored(model), via_instances, via_values


@pytest.mark.parametrize("use_tz", [True, False], ids=["use-tz", "no-tz"])
def test_odd_field_types_are_stored_the_same(settings, use_tz):
    settings.TIME_ZONE, settings.USE_TZ = "Asia/Kolkata", use_tz
    converter = RowConverter(AllFields, using=connection.alias)
    rows = [dict(row) for row in ALL_FIELDS_ROWS]
    if not use_tz and connection.vendor == "sqlite":  # SQLite refuses aware datetimes then, both ways
        for row in rows:
            for key in ("when", "created"):
                if row[key]:
                    row[key] = row[key].replace("Z", "").replace("+05:30", "").replace("+00:00", "")
    values = [converter.convert(row) for row in rows]
    before, after, via_instances, via_values = _both_ways(AllFields, values, returning_pks=True)
    assert len(before) == 3
    assert after == before
    assert via_values == via_instances == (3, [1, 2, 3])
    assert before[0][AllFields._meta.concrete_fields.index(AllFields._meta.get_field("upload"))] == ""  # None -> ""


def test_conflicts_merge_and_database_numbered_rows(settings):
    """Skipped duplicates are counted and left out of the returned keys, merge mode updates, and
    rows without a primary key are numbered by the database, the same both ways."""
    when = timezone.now().replace(microsecond=0)
    Customer.objects.create(id=5, email="old@x.io", name="old", joined_at=when, external_id=uuid.UUID(int=1))
    rows = [
        [5, "new@x.io", "new", uuid.UUID(int=5), when, None, True, "", None, None, None],
        [
            6,
            "six@x.io",
            "six",
            uuid.UUID(int=6),
            when.astimezone(KOLKATA),
            datetime.date(2020, 1, 1),
            False,
            "notes",
            None,
            b"\x00\xff",
            None,
        ],
    ]
    fields = [f.attname for f in Customer._meta.local_concrete_fields]
    assert len(fields) == len(rows[0])
    for merge in (False, True):
        Customer.objects.all().delete()
        Customer.objects.create(id=5, email="old@x.io", name="old", joined_at=when, external_id=uuid.UUID(int=1))
        inserter = Inserter(Customer, connection.alias, merge=merge)
        with transaction.atomic():
            inserted, pks = inserter.insert([build_instance(Customer, list(r)) for r in rows], returning_pks=not merge)
        expected = _stored(Customer)
        Customer.objects.all().delete()
        Customer.objects.create(id=5, email="old@x.io", name="old", joined_at=when, external_id=uuid.UUID(int=1))
        with transaction.atomic():
            assert Inserter(Customer, connection.alias, merge=merge).insert_values(
                [list(r) for r in rows], returning_pks=not merge
            ) == (inserted, pks)
        assert _stored(Customer) == expected
        assert (inserted, pks) == ((2, None) if merge else (1, [6]))
    assert Customer.objects.get(id=5).name == "new"  # merge mode updated it

    Counter.objects.all().delete()
    before, after, via_instances, via_values = _both_ways(Counter, [[None, 3], [None, 2**63 - 1], [9, 0]])
    assert [row[1:] for row in after] == [row[1:] for row in before] and len(after) == 3
    assert via_values == via_instances == (3, None)


def test_multi_table_child_and_a_large_batch():
    """A multi-table child writes its own table's columns; a batch of 2,500 rows takes one
    statement on PostgreSQL (UNNEST) and several under SQLite's parameter limit."""
    from restoreproject.fidelity.models import Place, Restaurant
    from restoreproject.shop.models import Category, Order, Product

    Place.objects.bulk_create([Place(id=i, name=f"p{i}") for i in (1, 2)])
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(Restaurant._meta.db_table)
        cursor.execute(f"INSERT INTO {table} (place_ptr_id, serves_pizza) VALUES (1, %s), (2, %s)", [True, False])
    before, after, via_instances, via_values = _both_ways(Pizzeria, [[1, "gas"], [2, ""]])
    assert after == before and len(after) == 2 and via_values == via_instances == (2, None)

    customer = Customer.objects.create(email="c@x.io", name="c", joined_at=timezone.now())
    order = Order.objects.create(customer=customer, placed_at=timezone.now(), total=decimal.Decimal("1.00"))
    product = Product.objects.create(sku="s", name="p", price=1, category=Category.objects.create(name="c"))
    converter = RowConverter(OrderItem, using=connection.alias)
    items = [
        converter.convert(
            {
                "id": i,
                "order_id": order.id,
                "product_id": product.id,
                "quantity": i % 7 + 1,
                "unit_price": f"{i % 1000}.{i % 100:02d}",
                "is_gift": i % 2 == 0,
                "added_at": "2024-05-05T05:05:05.123456Z",
            }
        )
        for i in range(1, 2501)
    ]
    before, after, via_instances, via_values = _both_ways(OrderItem, items)
    assert len(after) == 2500 and after == before and via_values == via_instances == (2500, None)


def test_values_passed_through_are_what_get_db_prep_save_returns():
    """Where get_db_prep_save is skipped (or replaced by psycopg's IntN wrapper), its result is
    the same value of the same type, for every field of every installed model."""
    import functools

    from django.apps import apps

    from dbrestore.load.direct import _compile, _pass_through

    samples = {int: [0, -1, 7, 2**31 - 1], str: ["", "x", "é\t\\N"], bool: [True, False]}
    checked = 0
    for model in apps.get_models():
        for field in model._meta.local_concrete_fields:
            through = _pass_through(field, connection)
            if through is None:
                continue
            prepare = _compile([functools.partial(field.get_db_prep_save, connection=connection)], [through], None)
            for value in [*samples[through[0]], None]:
                expected = field.get_db_prep_save(value, connection=connection)
                got = prepare([value])[0]
                assert (type(got), got) == (type(expected), expected), (model, field, value)
                checked += 1
    assert checked > 100
