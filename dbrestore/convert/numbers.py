"""Converters of numbers: integers within the column's range, floats, decimals that fit
``max_digits`` and ``decimal_places`` exactly."""

from __future__ import annotations

import decimal
from typing import Any

from django.db import models

from dbrestore.convert.base import Converter, checked
from dbrestore.convert.rule import DECIMAL, FLOAT, INTEGER


def integer_converter(field: models.Field, connection) -> Converter:
    """Django's ``int()`` (a fraction refused, see :func:`refusal`), then the column's range on
    this database (SQLite's is 64-bit)."""
    slow = checked(INTEGER, field)
    low, high = connection.ops.integer_field_range(field.get_internal_type())

    def convert(value: Any) -> int:
        number = value if value.__class__ is int else slow(value)
        if low is not None and number < low:
            raise ValueError(f"Ensure this value is greater than or equal to {low}.")
        if high is not None and number > high:
            raise ValueError(f"Ensure this value is less than or equal to {high}.")
        return number

    convert.bounds = (low, high)  # type: ignore[attr-defined]  # read by _compile
    return convert


def float_converter(field: models.Field) -> Converter:
    slow = checked(FLOAT, field)

    def convert(value: Any) -> float:
        if value.__class__ is float:
            return value
        return slow(value)

    convert.identity_type = float  # type: ignore[attr-defined]  # set on the function, read by _identity_type
    return convert


def decimal_converter(field: models.DecimalField) -> Converter:
    """Django's parsing; then a value the column would round or overflow is refused (PostgreSQL
    rounds extra decimal places silently, SQLite stores any number). One ``quantize`` tells
    both: it signals Inexact when digits beyond ``decimal_places`` are not zeros, and
    InvalidOperation when the result needs more than ``max_digits``."""
    slow = checked(DECIMAL, field)
    Decimal = decimal.Decimal
    places, max_digits = field.decimal_places, field.max_digits
    if places is None or max_digits is None:
        return slow
    quantum = Decimal(1).scaleb(-places)
    exact = decimal.Context(prec=max_digits, traps=[decimal.Inexact, decimal.InvalidOperation])
    whole_digits = max_digits - places

    def require_fit(number: decimal.Decimal) -> None:
        try:
            number.quantize(quantum, context=exact)
        except decimal.Inexact:
            raise ValueError(f"Ensure that there are no more than {places} decimal places.") from None
        except decimal.InvalidOperation:
            raise ValueError(
                f"Ensure that there are no more than {whole_digits} digits before the decimal point."
            ) from None

    def convert(value: Any) -> decimal.Decimal:
        if value.__class__ is str:
            try:
                number = Decimal(value)  # what Django does with a string
            except decimal.InvalidOperation:
                number = slow(value)  # raises, with Django's message
            if not number.is_finite():
                number = slow(value)
            dot = value.find(".")
            if (
                (len(value) <= whole_digits if dot < 0 else dot <= whole_digits and len(value) - dot - 1 <= places)
                and "e" not in value
                and "E" not in value
            ):
                return number  # the text shows it fits: no quantize needed (most backup values)
        elif value.__class__ is Decimal and value.is_finite():
            number = value
        else:
            number = slow(value)
            if value.__class__ is float and number.is_finite():
                require_fit(Decimal(repr(value)))  # Django rounds a float to max_digits first: judge what was written
        require_fit(number)
        return number

    return convert
