"""The value rule of issue 26, checked against its table in ``docs/modes.md`` ("Values: stored,
converted or rejected"): for each kind of column, hypothesis-generated values of each JSON kind must be
stored as given, stored as Django converts them, or rejected, as the table says; and end to end,
the issue's own examples (a list or an object in a text column, a fraction in an integer column
or a foreign key) are counted rejects with the reason, on both databases, by every path, and a
rejects file restored with ``--mode append`` gives the same reasons.

A short derandomised run is part of the suite; ``DBRESTORE_FUZZ_EXAMPLES=20000`` runs a long one.
"""

from __future__ import annotations

import decimal
import json
import os
import re
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbrestore.convert import converter_for
from restoreproject.fidelity.models import AllFields
from restoreproject.shop.models import Customer, Order, OrderItem
from tests.support.paths import ROOT

EXAMPLES = int(os.environ.get("DBRESTORE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=EXAMPLES <= 1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def readme_table() -> dict[tuple[str, str], str]:
    """(value kind, column kind) -> "stored", "converted" or "rejected", from the table in docs/modes.md."""
    text = (ROOT / "docs" / "modes.md").read_text()
    section = text[text.index("## Values: stored, converted or rejected") :]
    start = section.index("\n|") + 1
    lines = section[start : section.index("\n\n", start)].splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    table = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for column, cell in zip(header[1:], cells[1:], strict=True):
            table[cells[0], column] = cell.split()[0]
    return table


TABLE = readme_table()
#: The table's column kinds, and model fields of each.
COLUMNS = {
    "text": ["char", "text", "email", "slug", "url"],
    "integer, FK": ["small", "integer", "big", "positive", "last_order"],
    "float": ["ratio"],
    "decimal": ["amount"],
    "boolean": ["flag", "maybe"],
    "UUID": ["ident"],
    "datetime, date, time, duration": ["when", "day", "moment", "span"],
    "JSON": ["data"],
}
_fraction = st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer())
VALUES = {
    "string": st.text(max_size=30),
    "integer": st.integers(min_value=-(2**70), max_value=2**70),
    "whole float (`2.0`, `1e2`)": st.one_of(
        st.integers(-(2**60), 2**60).map(float),
        st.integers(-(10**6), 10**6).map(lambda n: decimal.Decimal(n).scaleb(1)),
    ),
    "float with a fraction (`1.5`)": st.one_of(_fraction, _fraction.map(lambda f: decimal.Decimal(repr(f)))),
    "boolean": st.booleans(),
    "list": st.lists(st.one_of(st.integers(), st.text(max_size=3)), max_size=3),
    "object": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
}
#: What a column cannot hold is rejected in any cell (docs/modes.md, "Values the database cannot hold").
LIMITS = (
    "longer than max_length",
    "not valid UTF-8",
    "NUL character",
    "Ensure this value",
    "decimal places",
    "digits before the decimal point",
    "outside the range",
    "beyond a float's range",
    "SQLite backend does not support timezone-aware",
)


def test_the_readme_table_covers_every_kind():
    assert {value for value, _ in TABLE} == set(VALUES)
    assert {column for _, column in TABLE} == set(COLUMNS)
    assert set(TABLE.values()) == {"stored", "converted", "rejected"}


def _field(name: str):
    model = Customer if name == "last_order" else AllFields
    return model._meta.get_field(name)


def _django(field, value):
    """What loaddata stores: a Decimal stands for a JSON number with a fraction or an exponent,
    which json.loads (loaddata) reads as a float."""
    target = field.target_field if field.is_relation else field
    if isinstance(value, decimal.Decimal):
        value = float(value)
    try:
        result = target.to_python(value)
    except ValidationError as exc:
        return ("refused", "; ".join(exc.messages))
    except Exception:
        return ("refused", None)
    if target.get_internal_type() in ("CharField", "TextField", "SlugField", "EmailField", "URLField"):
        result = target.get_prep_value(result)
    return ("ok", result)


def check(value_kind: str, column_kind: str, value) -> None:
    rule = TABLE[value_kind, column_kind]
    for name in COLUMNS[column_kind]:
        field = _field(name)
        try:
            got = ("ok", converter_for(field, connection.alias)(value))
        except (ValueError, TypeError, ArithmeticError) as exc:
            got = ("refused", str(exc))
        if got[0] == "refused" and any(limit in got[1] for limit in LIMITS):
            continue  # the column cannot hold it, whatever the cell
        if rule == "rejected":
            assert got[0] == "refused", (name, value, got)
        elif rule == "stored":  # as json.loads reads it: a Decimal (a JSON array's number) is a float
            as_read = float(value) if isinstance(value, decimal.Decimal) else value
            assert got == ("ok", as_read) and type(got[1]) is type(as_read), (name, value, got)
        else:  # converted: Django's value for the spelling, or a refusal (Django's, or of the rule)
            expected = _django(field, value)
            if got[0] == "ok" and field.get_internal_type() not in ("DateTimeField", "DurationField"):
                assert expected == got, (name, value, expected, got)  # never a value Django would not store
            elif got[0] == "refused" and expected[0] == "ok" and name not in ("when", "span"):
                assert expected[1] != value or type(expected[1]) is not type(value), (name, value, got)


@pytest.mark.django_db
@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("column_kind", list(COLUMNS))
@pytest.mark.parametrize("value_kind", list(VALUES))
def test_generated_values_follow_the_readme_table(value_kind, column_kind, data):
    check(value_kind, column_kind, data.draw(VALUES[value_kind]))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value, column, reason",
    [
        (["x"], "email", "a list in a text column"),
        ({"a": 1}, "name", "an object in a text column"),
        ({}, "notes", "an object in a text column"),
        (1.5, "last_order_id", "a number with a fraction where an integer is expected"),
        (decimal.Decimal("1.5"), "last_order_id", "a number with a fraction where an integer is expected"),
    ],
)
def test_the_issues_examples_are_refused_by_the_converter(value, column, reason):
    field = next(f for f in Customer._meta.concrete_fields if column in (f.name, f.attname))
    with pytest.raises(ValueError, match=re.escape(reason)):
        converter_for(field, connection.alias)(value)


# -- end to end


def _customer(pk: int, **changes) -> dict:
    return {
        "id": pk,
        "email": f"c{pk}@example.com",
        "name": f"c{pk}",
        "external_id": f"00000000-0000-0000-0000-{pk:012d}",
        "joined_at": "2020-01-01T00:00:00+00:00",
        "is_active": True,
        "notes": "",
        "referred_by_id": None,
        "last_order_id": None,
        **changes,
    }


ORDER = {
    "id": 1,
    "number": "10000000-0000-0000-0000-000000000001",
    "customer_id": 1,
    "placed_at": "2020-01-01T00:00:00+00:00",
    "status": "new",
    "total": "1.00",
    "gift_for_id": None,
}
MANGLED = [
    ("shop_customer", _customer(2, email=["x"]), "column 'email': a list in a text column"),
    ("shop_customer", _customer(3, name={"a": 1}), "column 'name': an object in a text column"),
    ("shop_customer", _customer(4, notes={}), "column 'notes': an object in a text column"),
    ("shop_customer", _customer(5, last_order_id=1.5), "column 'last_order_id': a number with a fraction"),
    (
        "shop_orderitem",
        {
            "id": 2,
            "order_id": 1,
            "product_id": 1,
            "quantity": 1.5,
            "unit_price": "1.00",
            "added_at": "2020-01-01T00:00:00+00:00",
            "is_gift": False,
        },
        "column 'quantity': a number with a fraction",
    ),
]


def write_backup(directory: Path, suffix: str, extra: list[tuple[str, dict, str]]) -> Path:
    tables = {
        "shop_category": [{"id": 1, "name": "c", "parent_id": None}],
        "shop_product": [
            {"id": 1, "sku": "p", "name": "p", "price": "1.00", "category_id": 1, "attributes": {}, "released_on": None}
        ],
        "shop_customer": [_customer(1)],
        "shop_order": [ORDER],
        "shop_orderitem": [
            {
                "id": 1,
                "order_id": 1,
                "product_id": 1,
                "quantity": 2,
                "unit_price": "1.00",
                "added_at": "2020-01-01T00:00:00+00:00",
                "is_gift": False,
            }
        ],
    }
    for table, row, _ in extra:
        tables[table].append(row)
    directory.mkdir(parents=True, exist_ok=True)
    for table, rows in tables.items():
        text = "".join(json.dumps(row) + "\n" for row in rows) if suffix == "jsonl" else json.dumps(rows)
        (directory / f"{table}.{suffix}").write_text(text)
    return directory


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("method", ["orm", "default", "forked"])
@pytest.mark.parametrize("suffix", ["jsonl", "json"])
def test_mangled_values_are_counted_rejects_and_come_back_with_the_same_reasons(
    tmp_path, suffix, method, vendor, settings, restore_outcome
):
    if method == "forked":
        if vendor != "postgresql" or suffix != "jsonl":
            pytest.skip("forked conversion: JSON Lines on PostgreSQL")
        settings.DBRESTORE = {**settings.DBRESTORE, "CONVERT_PROCESSES": 2, "CONVERT_MIN_ROWS": 0, "COPY_BATCH_SIZE": 2}
    args = ["--method", "orm"] if method == "orm" else []
    status, message, report, rejects = restore_outcome(write_backup(tmp_path / "in", suffix, MANGLED), *args)
    assert status == 3, message
    assert sorted(Customer.objects.values_list("id", flat=True)) == [1]
    assert list(OrderItem.objects.values_list("id", "quantity")) == [(1, 2)]
    assert Customer.objects.get().last_order_id is None
    assert report["tables"]["shop.Customer"]["rejected"] == 4 and report["tables"]["shop.OrderItem"]["rejected"] == 1
    for table in report["tables"].values():
        assert table["inserted"] + table["skipped"] + table["rejected"] == table["total"]
    reasons = sorted(record["reason"] for record in rejects)
    for _, _, reason in MANGLED:
        assert sum(reason in got for got in reasons) == 1, (reason, reasons)
    assert any(record["row"].get("last_order_id") == 1.5 for record in rejects)  # written back as read

    # The rejects file taken back in: the same rows, the same reasons.
    again = tmp_path / "again.jsonl"
    again.write_bytes(b"".join(json.dumps(record).encode() + b"\n" for record in rejects))
    status, message, report, second = restore_outcome(again, "--mode", "append")
    assert status == 3, message
    assert sorted(record["reason"] for record in second) == reasons
    assert sorted(Customer.objects.values_list("id", flat=True)) == [1]


@pytest.mark.django_db(transaction=True)
def test_spellings_django_reads_are_still_converted(tmp_path, restore_outcome):
    """Only the spelling changes: 5 into a text column as "5", "5" into an integer column, "t" as
    True, a whole float as an integer, an ISO date with its offset."""
    rows = [
        {
            "id": 1,
            "char": 5,
            "integer": "5",
            "flag": "t",
            "big": 2.0,
            "positive": decimal.Decimal("3"),
            "when": "2020-01-02T03:04:05+02:00",
            "text": True,
            "ratio": 3,
        }
    ]
    path = tmp_path / "fidelity_allfields.jsonl"
    path.write_text("".join(json.dumps(row, default=int) + "\n" for row in rows))
    status, message, _, rejects = restore_outcome(path)
    assert status == 0, (message, rejects)
    row = AllFields.objects.get()
    assert (row.char, row.integer, row.flag, row.big, row.positive, row.text, row.ratio) == (
        "5",
        5,
        True,
        2,
        3,
        "True",
        3.0,
    )
    assert row.when.isoformat().startswith("2020-01-02T01:04:05")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "value, reason",
    [
        (2, "value must be either True or False"),
        ("true", "value must be either True or False"),
        (0.5, "value must be either True or False"),
    ],
)
def test_a_boolean_from_anything_but_its_spellings_is_rejected(tmp_path, value, reason, restore_outcome):
    path = tmp_path / "fidelity_allfields.jsonl"
    path.write_text(json.dumps({"id": 1, "flag": value}) + "\n" + json.dumps({"id": 2, "flag": 1}) + "\n")
    status, _, _, rejects = restore_outcome(path)
    assert status == 3 and [r["position"] for r in rejects] == [1] and reason in rejects[0]["reason"]
    assert list(AllFields.objects.values_list("id", "flag")) == [(2, True)]


def test_the_order_fixture_is_valid():
    assert Order._meta.get_field("total").decimal_places == 2


@pytest.mark.django_db(transaction=True)
def test_an_ip_address_django_would_not_check_is_rejected(tmp_path, restore_outcome):
    """Found by fuzz_restore: Django's to_python passes text without a colon unchecked, so
    "true" went to PostgreSQL's inet adapter (a ValueError traceback) or into SQLite as it was."""
    path = tmp_path / "fidelity_allfields.jsonl"
    path.write_text(
        "".join(
            json.dumps(row) + "\n"
            for row in [{"id": 1, "ip": "true"}, {"id": 2, "ip": 2.0}, {"id": 3, "ip": "10.0.0.1"}]
        )
    )
    status, message, _, rejects = restore_outcome(path)
    assert status == 3, message
    assert [(r["position"], r["reason"].split(": ", 1)[1][:34]) for r in rejects] == [
        (1, "Enter a valid IPv4 or IPv6 address"),
        (2, "a number in an IP address column ("),
    ]
    assert list(AllFields.objects.values_list("id", "ip")) == [(3, "10.0.0.1")]
