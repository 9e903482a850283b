"""``--select LABEL:LOOKUP``: which rows of a backup a selection picks, told while it streams.

A lookup is ``FIELD=VALUE`` or ``FIELD__in=V1,V2,...`` on a concrete field of the model (``pk``
names the primary key; a foreign key by its name or its column, ``customer`` or ``customer_id``).
Values are read as the field reads them (``to_python``), so ``pk=42`` matches a backup's
``"42"`` and ``42`` alike, and a value the field cannot read is refused before anything is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models

from dbrestore.convert.fields import column_of
from dbrestore.exceptions import RestoreConfigError

LOOKUPS = ("exact", "in")
HELP = (
    'LABEL:FIELD=VALUE or LABEL:FIELD__in=V1,V2 (e.g. "shop.Customer:pk=42", '
    '"auth.User:username=ann"); FIELD is a concrete field of the model, pk for its primary key'
)


@dataclass(frozen=True)
class Selection:
    """The rows of ``model`` whose ``field`` holds one of ``values`` (read as the field reads them)."""

    text: str
    model: type[models.Model]
    field: models.Field
    values: frozenset[Any]

    @property
    def label(self) -> str:
        return self.model._meta.label

    def keys(self) -> tuple[str, ...]:
        """The names a backup row may give the field's value under."""
        return tuple(dict.fromkeys((self.field.name, self.field.attname, column_of(self.field))))


def parse_selection(text: str) -> Selection:
    """``LABEL:LOOKUP`` made a :class:`Selection`, or a one-line :class:`RestoreConfigError`
    naming what is wrong (no such model, no such field, a lookup the stream cannot evaluate)."""
    label, colon, lookup = text.partition(":")
    if not colon or "=" not in lookup:
        raise RestoreConfigError(f"--select {text!r}: expected {HELP}")
    model = _model(label.strip(), text)
    path, _, raw = lookup.partition("=")
    name, _, kind = path.strip().partition("__")
    kind = kind or "exact"
    if kind not in LOOKUPS:
        raise RestoreConfigError(
            f"--select {text!r}: the lookup {kind!r} cannot be evaluated while the backup streams "
            f"(supported: FIELD=VALUE, FIELD__in=V1,V2)"
        )
    field = _field(model, name, text)
    raws = [item.strip() for item in raw.split(",")] if kind == "in" else [raw.strip()]
    values = frozenset(read_value(field, item, text) for item in raws if item != "")
    if not values:
        raise RestoreConfigError(f"--select {text!r}: no value given")
    return Selection(text, model, field, values)


def read_value(field: models.Field, raw: Any, text: str = "") -> Any:
    """``raw`` read as ``field`` reads it (a foreign key: as its target's primary key)."""
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    try:
        return target.to_python(raw)
    except (ValidationError, ValueError, TypeError) as exc:
        message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
        raise RestoreConfigError(f"--select {text!r}: {raw!r} is not a value of {field.name}: {message}") from exc


def _model(label: str, text: str) -> type[models.Model]:
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        raise RestoreConfigError(f"--select {text!r}: {label!r} names no installed model (app_label.Model)") from None


def _field(model: type[models.Model], name: str, text: str) -> models.Field:
    if name == "pk":
        pk = model._meta.pk
        assert pk is not None
        return pk
    for field in model._meta.concrete_fields:
        if name in (field.name, field.attname):
            return field
    names = ", ".join(f.name for f in model._meta.concrete_fields)
    raise RestoreConfigError(f"--select {text!r}: {model._meta.label} has no field {name!r} (fields: {names})")
