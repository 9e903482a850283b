"""The value rule: which backup values a column stores, stores converted, or rejects (docs/modes.md,
"Values: stored, converted or rejected"), decided here only; and what kind of column a field is.

Django's ``to_python`` calls ``str()`` and ``int()``: a list in a text column would be stored as
its Python repr, a fraction in an integer column cut off. Where the conversion would lose
information or invent a spelling, :func:`refusal` gives the reason the row is rejected with;
where only the spelling changes, Django's conversion is followed. The converters of
:mod:`dbrestore.convert` ask it on every path.
"""

from __future__ import annotations

import decimal
import math
from typing import Any

from django.db import models

from dbrestore.convert.fields import value_field

#: The column kinds of the value rule (docs/modes.md, "Values: stored, converted or rejected").
TEXT, INTEGER, FLOAT, DECIMAL, BOOLEAN, UUID, DURATION, DATETIME, IP, OTHER = (
    "text",
    "integer",
    "float",
    "decimal",
    "boolean",
    "uuid",
    "duration",
    "datetime",
    "IP address",
    "other",
)
_FLOAT_EXACT = 2**53  # integers up to this size are exact in a float (a double)
_INFINITIES = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


def _json_kind(value: Any) -> str:
    return "an object" if isinstance(value, dict) else "a list"


def _kind_of_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return _json_kind(value)
    return {bool: "a boolean", int: "an integer", str: "a string"}.get(type(value), "a number")


def refusal(kind: str, value: Any) -> str | None:
    """The value rule, decided here only: why storing ``value`` in a column of ``kind`` would lose
    information or invent a spelling (the row is rejected with that reason), or None when
    Django's conversion keeps the value and at most changes its spelling (then Django's
    ``to_python`` converts it, or refuses it with its own message).

    Every converter asks it for a value that is not already of its column's own type (the
    compiled row functions skip the call for those), on every path: ORM INSERT, COPY, forked
    conversion, the per-row fallback, a rejects file taken back in.
    """
    if kind == IP and not isinstance(value, str):
        return f"{_kind_of_value(value)} in an IP address column (Django would store its str())"
    if isinstance(value, (dict, list)):
        if kind == TEXT:
            return f"{_json_kind(value)} in a text column (Django would store its Python repr)"
        if kind in (INTEGER, FLOAT, DECIMAL, DURATION, UUID, BOOLEAN, DATETIME):
            return f"{_json_kind(value)} in a {kind} column"  # a nullable boolean's Django takes [] as NULL
        return None  # Django refuses it with its message (dates, times...), or takes it (binary bytes)
    if isinstance(value, bool):
        if kind == UUID:
            return "a boolean in a UUID column (Django would make a UUID of it)"
        return None  # a boolean column's own; 1/0 in a number column, "True"/"False" in a text one
    if kind in (INTEGER, DURATION) and isinstance(value, (float, decimal.Decimal)):
        if not _is_whole(value):
            what = "an integer" if kind == INTEGER else "a whole number of microseconds"
            return f"a number with a fraction where {what} is expected (it would be cut off)"
        return None
    if kind == FLOAT:
        if value.__class__ is int and not -_FLOAT_EXACT <= value <= _FLOAT_EXACT:
            try:
                if int(float(value)) == value:
                    return None
            except OverflowError:
                pass
            return "an integer a float column cannot hold exactly (it would be rounded)"
        if isinstance(value, (decimal.Decimal, str)) and _beyond_float(value):
            return "a number beyond a float's range (it would be stored as infinity)"
    return None


def _is_whole(number: float | decimal.Decimal) -> bool:
    try:
        return number == number.to_integral_value() if isinstance(number, decimal.Decimal) else number.is_integer()
    except (ArithmeticError, ValueError):
        return False  # NaN


def _beyond_float(value: decimal.Decimal | str) -> bool:
    """A finite number (not a spelling of infinity) that a float reads as infinity."""
    if isinstance(value, str):
        if value.strip().lower().replace("_", "") in _INFINITIES:
            return False
        try:
            return math.isinf(float(value))
        except (ValueError, OverflowError):
            return False
    return value.is_finite() and math.isinf(float(value))


TEXT_TYPES = {
    "CharField",
    "TextField",
    "EmailField",
    "SlugField",
    "URLField",
    "FilePathField",
    "FileField",
    "ImageField",
}
INTEGER_TYPES = {
    "AutoField",
    "BigAutoField",
    "SmallAutoField",
    "IntegerField",
    "BigIntegerField",
    "SmallIntegerField",
    "PositiveIntegerField",
    "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
}


#: The methods through which a field class turns a backup value into what the database stores.
_VALUE_METHODS = ("to_python", "get_prep_value", "get_db_prep_value", "get_db_prep_save")


def converts_as_django(field: models.Field) -> bool:
    """Whether ``field`` (an FK: its target) turns values into database values as the Django
    field class it derives from does: that class itself, or a subclass overriding none of
    :data:`_VALUE_METHODS`. The fast converters here and the COPY path's adapters are written
    for Django's own classes; any other field (a JSON field of a CMS, an encrypted or money
    field, an enum) is converted by its own ``to_python`` and written through its own
    ``get_db_prep_save``, as loaddata and the ORM would."""
    target = value_field(field)
    return not any(overrides(target, name) for name in _VALUE_METHODS)


def overrides(field: models.Field, method: str) -> bool:
    """Whether ``field``'s class has its own ``method``, not that of the Django class it derives from."""
    kind = type(field)
    django_class = next((k for k in kind.__mro__ if k.__module__.startswith("django.")), models.Field)
    return getattr(kind, method) is not getattr(django_class, method)


def column_kind(field: models.Field) -> str:
    """The column kind of ``field`` in the value rule (:func:`refusal`): a foreign key's is its
    target's."""
    internal = value_field(field).get_internal_type()
    if internal in TEXT_TYPES:
        return TEXT
    if internal in INTEGER_TYPES:
        return INTEGER
    return {
        "FloatField": FLOAT,
        "DecimalField": DECIMAL,
        "BooleanField": BOOLEAN,
        "UUIDField": UUID,
        "DurationField": DURATION,
        "DateTimeField": DATETIME,
        "GenericIPAddressField": IP,
        "JSONField": "json",
    }.get(internal, OTHER)
