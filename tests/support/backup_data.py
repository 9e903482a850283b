"""Reading a backup, a rejects file and the shop's tables back in the tests, independently of
dbrestore's own readers and converters."""

from __future__ import annotations

import base64
import datetime
import decimal
import gzip
import json
import uuid
from pathlib import Path
from typing import Any

from django.apps import apps


def manifest(directory: Path) -> dict:
    return json.loads((directory / "manifest.json").read_text())


def read_rows(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as stream:
        if ".jsonl" in path.suffixes:
            return [json.loads(line) for line in stream if line.strip()]
        return json.load(stream)


def read_rejects(path: str | Path) -> list[dict]:
    """The records of a rejects file (JSON Lines)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def expected_value(field, value: Any) -> Any:
    """What the database must hold for a backup value, computed by plain Python."""
    if value is None:
        return None
    kind = (field.target_field if field.is_relation else field).get_internal_type()
    if kind == "DateTimeField":
        return datetime.datetime.fromisoformat(value)
    if kind == "DateField":
        return datetime.date.fromisoformat(value)
    if kind == "DecimalField":
        return decimal.Decimal(value)
    if kind == "UUIDField":
        return uuid.UUID(value)
    if kind == "BinaryField":
        return base64.b64decode(value)
    return value


def db_value(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


def assert_table_matches(directory: Path, entry: dict, using: str = "default") -> int:
    """Every row of the backup's table is in the database with equal values, and nothing else."""
    model = apps.get_model(entry["model"])
    fields = model._meta.concrete_fields
    rows = read_rows(directory / entry["file"])
    stored = {
        obj[model._meta.pk.attname]: obj
        for obj in model._default_manager.using(using).values(*[f.attname for f in fields])
    }
    assert len(stored) == len(rows), f"{entry['model']}: {len(stored)} rows in the database, {len(rows)} in the backup"
    for row in rows:
        obj = stored[row[model._meta.pk.attname]]
        for f in fields:
            assert db_value(obj[f.attname]) == expected_value(f, row[f.attname]), (
                f"{entry['model']} pk={row['id']} {f.attname}: {obj[f.attname]!r} != {row[f.attname]!r}"
            )
    return len(rows)


def shop_counts() -> dict[str, int]:
    """Rows of the sample's main tables now."""
    from restoreproject.shop.models import Customer, Order, OrderItem, Tag

    return {
        "customers": Customer.objects.count(),
        "orders": Order.objects.count(),
        "items": OrderItem.objects.count(),
        "tags": Tag.objects.count(),
    }


def table_counts() -> dict[str, int]:
    """Rows of every table of the shop app now (M2M tables too), by model label."""
    models = apps.get_app_config("shop").get_models(include_auto_created=True)
    return {model._meta.label: model._base_manager.count() for model in models}
