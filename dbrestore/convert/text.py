"""Converters of text and text-like values: text (length, UTF-8, NUL), IP addresses, binary,
JSON (as ``json.loads`` reads it)."""

from __future__ import annotations

import base64
import decimal
import math
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from dbrestore.convert.base import Converter, django_converter
from dbrestore.convert.rule import IP, TEXT, refusal


def text_converter(field: models.Field, vendor: str) -> Converter:
    """``str(value)`` as Django's CharField does, the column's length enforced here (SQLite
    ignores varchar lengths), text that is not valid UTF-8 refused, and NUL refused on
    PostgreSQL only (SQLite stores it, as loaddata does)."""
    max_length = field.max_length
    refuse_nul = vendor == "postgresql"

    def convert(value: Any) -> str:
        if value.__class__ is str:
            text = value
        elif isinstance(value, decimal.Decimal):
            number = float(value)  # JSON numbers: what json.loads (loaddata) would have made
            if math.isinf(number) and value.is_finite():
                raise ValueError("a number beyond a float's range")
            text = str(number)
        else:
            reason = refusal(TEXT, value)
            if reason is not None:
                raise ValueError(reason)
            text = str(value)
        if max_length is not None and len(text) > max_length:
            raise ValueError(f"{len(text)} characters, longer than max_length {max_length}")
        if not text.isascii():
            check_utf8(text)
        if refuse_nul and "\x00" in text:
            raise ValueError("text with a NUL character, which PostgreSQL cannot store")
        return text

    return convert


def check_utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid UTF-8 text: {exc.reason} at character {exc.start}") from None


def ip_converter(field: models.Field, vendor: str) -> Converter:
    """Django's cleaning (IPv6 normalised) and its backends' ``"" -> NULL``; then the field's
    validators, which loaddata never runs: Django's ``to_python`` passes any text without a
    colon (``"true"``), which PostgreSQL's inet adapter refused with a traceback and SQLite
    stored. Only text is an address (a number or a boolean would be spelt by ``str()``)."""
    slow = django_converter(field)
    text = text_converter(field, vendor)
    validators = field.validators

    def convert(value: Any) -> str | None:
        reason = refusal(IP, value)
        if reason is not None:
            raise ValueError(reason)
        cleaned = field.get_prep_value(slow(value))
        if not cleaned:
            return None
        for validate in validators:
            try:
                validate(cleaned)
            except ValidationError as exc:
                raise ValueError("; ".join(exc.messages)) from None
        return text(cleaned)

    return convert


def binary_converter(field: models.Field) -> Converter:
    def convert(value: Any) -> bytes:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, str):
            if value.startswith("\\x"):  # PostgreSQL's bytea text form (never valid base64)
                return bytes.fromhex(value[2:])
            return base64.b64decode(value.encode("ascii"))  # as Django's BinaryField.to_python
        if isinstance(value, list):
            return bytes(value)
        raise ValueError("not base64 binary")

    return convert


#: Deeper JSON is a rejected row: create_backup writes rows with orjson, which stops at 255 levels
#: (and the driver's json.dumps would exhaust Python's stack not far beyond).
MAX_JSON_DEPTH = 254


def json_value(value: Any, depth: int = 0) -> Any:
    """JSON as ``json.loads`` (loaddata) reads it: integers exact, every other number a float
    (ijson gives exact Decimals; ``1e100`` is a float, not an integer).

    NUL characters in strings and keys are refused on every database, since PostgreSQL's jsonb
    cannot store ``\\u0000``: the same backup gives the same result on SQLite and PostgreSQL.
    """
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("JSON text with a NUL character (\\u0000), which PostgreSQL cannot store")
        if not value.isascii():
            check_utf8(value)
        return value
    if isinstance(value, decimal.Decimal):
        number = float(value)
        if math.isinf(number) and value.is_finite():
            raise ValueError(f"the number {str(value)[:20]} is beyond a float's range (json.loads would read infinity)")
        return number
    if isinstance(value, dict):
        converted = {}
        for key, item in value.items():  # loops, not comprehensions: one stack frame per level
            converted[json_value(key, depth) if isinstance(key, str) else key] = json_value(item, depth + 1)
        return converted
    if isinstance(value, list):
        items = []
        for item in value:
            items.append(json_value(item, depth + 1))
        return items
    return value
