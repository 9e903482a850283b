"""Every row of every model, as dumpdata serializes it, and a readable diff of two of them.

Each model's objects are keyed by pk, except the models a fixture leaves the pk out of (the
database numbers them; ``--natural-primary``): those are keyed by natural key, their pk left
out. Foreign keys and M2M values are written by natural key where the target has one (the
numbers the two databases gave may differ; what they point at may not); M2M lists are sorted
(compared as sets). Content types, permissions and auto-created M2M tables are compared too
(the M2M tables through their owners' lists); dbrestore's own run history is not (loaddata
writes none)."""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.core import serializers

SKIPPED_APPS = {"dbrestore"}  # RestoreRun / RestoreChunk: the restore's own record of itself

Snapshot = dict[str, dict[Any, dict]]


def models_without_pk(objects: list[dict]) -> set[str]:
    return {obj["model"].lower() for obj in objects if "pk" not in obj}


def random_defaults(objects: list[dict]) -> dict[str, set[str]]:
    """Per model, the fields some object of the fixture leaves out and whose default is a
    callable (Wagtail's ``translation_key = uuid.uuid4``): each load draws a new value, so they
    are compared as set or NULL only."""
    masked: dict[str, set[str]] = {}
    for obj in objects:
        model = apps.get_model(obj["model"])
        for field in model._meta.concrete_fields:
            if field.name not in obj["fields"] and field.has_default() and callable(field.default):
                masked.setdefault(field.model._meta.label_lower, set()).add(field.name)
    return masked


def take(numbered: set[str], masked: dict[str, set[str]] | None = None) -> Snapshot:
    snapshot: Snapshot = {}
    for model in apps.get_models():
        meta = model._meta
        if meta.proxy or not meta.managed or meta.app_label in SKIPPED_APPS:
            continue
        m2m = {field.name for field in meta.many_to_many}
        instances = list(model._base_manager.order_by("pk"))
        dumped = json.loads(serializers.serialize("json", instances, use_natural_foreign_keys=True))
        rows: dict[Any, dict] = {}
        by_natural_key = meta.label_lower in numbered and hasattr(model, "natural_key")
        for instance, obj in zip(instances, dumped, strict=True):
            fields = obj["fields"]
            for name in m2m & fields.keys():
                fields[name] = sorted(fields[name], key=json.dumps)
            for name in (masked or {}).get(meta.label_lower, set()) & fields.keys():
                fields[name] = None if fields[name] is None else "(a default drawn at load time)"
            if by_natural_key:
                key: Any = ("natural key", *instance.natural_key())
            else:
                key = obj["pk"]
            while key in rows:  # two rows under one natural key: both shown
                key = (*key, "again") if isinstance(key, tuple) else (key, "again")
            rows[key] = fields
        snapshot[meta.label_lower] = rows
    return snapshot


def differences(expected: Snapshot, got: Snapshot, limit: int = 12) -> list[str]:
    """``model key: what differs`` lines, loaddata's database (expected) against the restore's."""
    lines = []
    for label in sorted(expected.keys() | got.keys()):
        want, have = expected.get(label, {}), got.get(label, {})
        for key in sorted(want.keys() | have.keys(), key=repr):
            if key not in have:
                lines.append(f"{label} {key!r}: missing; loaddata has {_short(want[key])}")
            elif key not in want:
                lines.append(f"{label} {key!r}: not in loaddata's database; the restore has {_short(have[key])}")
            else:
                for field in sorted(want[key].keys() | have[key].keys()):
                    if want[key].get(field) != have[key].get(field):
                        lines.append(
                            f"{label} {key!r} {field}: loaddata {_short(want[key].get(field))}, "
                            f"restore {_short(have[key].get(field))}"
                        )
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more differences"]
    return lines


def _short(value: Any, width: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."
