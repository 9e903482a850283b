"""Backup values -> values the model fields accept, exactly as ``loaddata`` would store them.

The rule: a value that ``field.to_python`` accepts is stored as Django would store it (after
``get_prep_value``: a naive datetime is read in the default time zone); a value it refuses is a
rejected row with Django's message. Each converter is ``field.to_python`` behind a fast path
for the shapes backups hold (an ``int`` for an integer field, an ISO string that
``fromisoformat`` parses, which is also what Django's parsers try first); tests check the
converters against ``field.to_python`` with generated strings. On top of Django, values the
target database would refuse or change are rejected here, with the reason: integers outside
the column's range, decimals beyond ``max_digits``/``decimal_places``, datetimes that leave
the representable range in UTC, text that is not valid UTF-8, NUL characters where PostgreSQL
cannot store them, JSON nested too deeply to write.

Whole rows (a table's key layouts, natural keys, the compiled per-row functions) are
:mod:`dbrestore.convert.row_converter`.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections, models

from dbrestore.convert.base import VALUE_ERRORS, ConversionError, Converter, checked, django_converter
from dbrestore.convert.fields import value_field
from dbrestore.convert.moments import date_converter, datetime_converter, duration_converter
from dbrestore.convert.numbers import decimal_converter, float_converter, integer_converter
from dbrestore.convert.rule import (
    BOOLEAN,
    INTEGER_TYPES,
    TEXT_TYPES,
    UUID,
    column_kind,
    converts_as_django,
    overrides,
    refusal,
)
from dbrestore.convert.text import MAX_JSON_DEPTH, binary_converter, ip_converter, json_value, text_converter

__all__ = [
    "VALUE_ERRORS",
    "MAX_JSON_DEPTH",
    "ConversionError",
    "Converter",
    "column_kind",
    "converter_for",
    "converts_as_django",
    "refusal",
]


def converter_for(field: models.Field, using: str | None = None) -> Converter:
    """The function that turns a backup value into this field's Python value (None passes),
    for the database ``using`` (its integer ranges, what it can store)."""
    connection = connections[using or DEFAULT_DB_ALIAS]
    vendor = connection.vendor
    target = value_field(field)
    internal = target.get_internal_type()
    if not converts_as_django(target):
        # Its own to_python decides what a value means; Django's (inherited) is held to the value rule.
        own = django_converter(target) if overrides(target, "to_python") else checked(column_kind(target), target)
        if internal == "JSONField":  # JSON as json.loads (loaddata) reads it, then the field's own
            return lambda value: own(json_value(value))
        return own
    if internal in INTEGER_TYPES:
        return integer_converter(target, connection)
    if internal in TEXT_TYPES:
        return text_converter(target, vendor)
    if internal == "DateTimeField":
        return datetime_converter(target, vendor)
    if internal == "DateField":
        return date_converter(target)
    if internal == "DecimalField" and isinstance(target, models.DecimalField):
        return decimal_converter(target)
    if internal == "FloatField":
        return float_converter(target)
    if internal == "DurationField":
        return duration_converter(target, connection)
    if internal == "GenericIPAddressField":
        return ip_converter(target, vendor)
    if internal == "BinaryField":
        return binary_converter(target)
    if internal == "JSONField":
        return json_value
    if internal == "UUIDField":
        return checked(UUID, target)
    if internal == "BooleanField":
        convert = checked(BOOLEAN, target)
        convert.identity_type = bool  # type: ignore[attr-defined]  # set on the function, read by _identity_type
        return convert
    return django_converter(target)  # booleans, UUIDs, times and any custom field: Django's own
