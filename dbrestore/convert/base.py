"""What every converter shares: the error a bad value raises, and Django's ``to_python`` with and
without the value rule in front of it."""

from __future__ import annotations

import decimal
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from dbrestore.convert.rule import refusal

Converter = Callable[[Any], Any]

#: The errors a converter (or Django's ``to_python``) may raise for a bad value.
VALUE_ERRORS = (ValueError, TypeError, ArithmeticError, OverflowError, RecursionError, UnicodeError)


class ConversionError(ValueError):
    """A backup value that the field cannot take; the row is rejected with this reason."""

    column: str | None  # None: a row its reader could not read (unreadable)
    value: Any

    def __init__(self, column: str, value: Any, reason: str):
        self.column = column
        self.value = value
        super().__init__(f"column {column!r}: {reason} (value {_short_repr(value)})")

    @classmethod
    def unreadable(cls, reason: str) -> ConversionError:
        """A row its reader could not read as written (a :class:`~dbrestore.sources.base.UnreadableRow`)."""
        error = cls.__new__(cls)
        error.column, error.value = None, None
        ValueError.__init__(error, reason)
        return error


def _short_repr(value: Any) -> str:
    try:
        text = str(value) if isinstance(value, decimal.Decimal) else repr(value)  # a JSON number, as written
    except RecursionError:
        return f"a {type(value).__name__} nested too deeply to show"
    return text if len(text) <= 80 else text[:77] + "..."


def django_converter(field: models.Field) -> Converter:
    """``field.to_python``, with its ValidationError turned into the ValueError converters raise."""
    to_python = field.to_python

    def convert(value: Any) -> Any:
        try:
            return to_python(value)
        except ValidationError as exc:
            raise ValueError("; ".join(exc.messages)) from exc

    return convert


def checked(kind: str, field: models.Field) -> Converter:
    """:func:`django_converter` behind :func:`refusal`: the slow path of every converter."""
    slow = django_converter(field)

    def convert(value: Any) -> Any:
        reason = refusal(kind, value)
        if reason is not None:
            raise ValueError(reason)
        return slow(value)

    return convert
