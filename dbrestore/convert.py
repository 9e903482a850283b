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
:mod:`dbrestore.row_converter`.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import math
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.utils import timezone
from django.utils.duration import duration_microseconds

Converter = Callable[[Any], Any]

#: The errors a converter (or Django's ``to_python``) may raise for a bad value.
VALUE_ERRORS = (ValueError, TypeError, ArithmeticError, OverflowError, RecursionError, UnicodeError)


class ConversionError(ValueError):
    """A backup value that the field cannot take; the row is rejected with this reason."""

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


def _django(field: models.Field) -> Converter:
    """``field.to_python``, with its ValidationError turned into the ValueError converters raise."""
    to_python = field.to_python

    def convert(value: Any) -> Any:
        try:
            return to_python(value)
        except ValidationError as exc:
            raise ValueError("; ".join(exc.messages)) from exc

    return convert


#: The column kinds of the value rule (README, "Values: stored, converted or rejected").
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


def _checked(kind: str, field: models.Field) -> Converter:
    """:func:`_django` behind :func:`refusal`: the slow path of every converter."""
    slow = _django(field)

    def convert(value: Any) -> Any:
        reason = refusal(kind, value)
        if reason is not None:
            raise ValueError(reason)
        return slow(value)

    return convert


def _datetime_converter(field: models.Field, vendor: str) -> Converter:
    """Django's parsing; then, as ``get_prep_value`` does, a naive value under ``USE_TZ`` is read in
    the default time zone (``TIME_ZONE``), not UTC. With ``USE_TZ = False`` values stay as
    written, and SQLite refuses aware ones as Django's backend does."""
    slow = _checked(DATETIME, field)
    fromisoformat = datetime.datetime.fromisoformat
    use_tz = settings.USE_TZ
    zone = timezone.get_default_timezone() if use_tz else None
    utc = datetime.UTC

    def convert(value: Any) -> datetime.datetime:
        if value.__class__ is str:
            try:
                parsed = fromisoformat(value)  # what Django's parse_datetime tries first
            except ValueError:
                parsed = slow(value)
        elif isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
            # Seconds since the epoch: not a Django spelling (to_python fails with a TypeError).
            try:
                moment = datetime.datetime.fromtimestamp(float(value), tz=utc)
            except (OSError, OverflowError, ValueError):  # OSError: beyond the platform's time_t
                raise ValueError(
                    "outside the range of datetimes the database can store (years 1 to 9999 in UTC)"
                ) from None
            return moment if use_tz else timezone.make_naive(moment, timezone.get_default_timezone())
        else:
            parsed = slow(value)
        if parsed.tzinfo is None:
            if use_tz:
                parsed = parsed.replace(tzinfo=zone)
        elif not use_tz and vendor == "sqlite":
            raise ValueError("SQLite backend does not support timezone-aware datetimes when USE_TZ is False.")
        if parsed.year in (1, 9999) and parsed.tzinfo is not None:
            try:
                parsed.astimezone(utc)
            except OverflowError:
                raise ValueError(
                    "outside the range of datetimes the database can store (years 1 to 9999 in UTC)"
                ) from None
        return parsed

    return convert


def _date_converter(field: models.Field) -> Converter:
    slow = _django(field)
    fromisoformat = datetime.date.fromisoformat

    def convert(value: Any) -> datetime.date:
        if value.__class__ is str:
            try:
                return fromisoformat(value)  # what Django's parse_date tries first
            except ValueError:
                pass
        return slow(value)

    return convert


def _duration_converter(field: models.Field, connection) -> Converter:
    """Django's parsing, or microseconds; where the database stores a duration as 64-bit
    microseconds (SQLite), one beyond that range is refused (it was an OverflowError)."""
    checked = _checked(DURATION, field)
    if connection.features.has_native_duration_field:
        slow = checked
    else:

        def slow(value: Any) -> datetime.timedelta:
            return _within_bigint(checked(value))

    def convert(value: Any) -> datetime.timedelta:
        if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
            # Microseconds, as dbrestore's backups write them (not a Django spelling).
            reason = refusal(DURATION, value)
            if reason is not None:
                raise ValueError(reason)
            duration = datetime.timedelta(microseconds=int(value))
            return duration if connection.features.has_native_duration_field else _within_bigint(duration)
        return slow(value)

    return convert


def _within_bigint(duration: datetime.timedelta) -> datetime.timedelta:
    if not -(2**63) <= duration_microseconds(duration) < 2**63:
        raise ValueError("outside the range of durations the database can store (64-bit microseconds)")
    return duration


def _integer_converter(field: models.Field, connection) -> Converter:
    """Django's ``int()`` (a fraction refused, see :func:`refusal`), then the column's range on
    this database (SQLite's is 64-bit)."""
    slow = _checked(INTEGER, field)
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


def _float_converter(field: models.Field) -> Converter:
    slow = _checked(FLOAT, field)

    def convert(value: Any) -> float:
        if value.__class__ is float:
            return value
        return slow(value)

    convert.identity_type = float  # type: ignore[attr-defined]
    return convert


def _decimal_converter(field: models.DecimalField) -> Converter:
    """Django's parsing; then a value the column would round or overflow is refused (PostgreSQL
    rounds extra decimal places silently, SQLite stores any number). One ``quantize`` tells
    both: it signals Inexact when digits beyond ``decimal_places`` are not zeros, and
    InvalidOperation when the result needs more than ``max_digits``."""
    slow = _checked(DECIMAL, field)
    Decimal = decimal.Decimal
    places, max_digits = field.decimal_places, field.max_digits
    if places is None or max_digits is None:
        return slow
    quantum = Decimal(1).scaleb(-places)
    exact = decimal.Context(prec=max_digits, traps=[decimal.Inexact, decimal.InvalidOperation])
    whole_digits = max_digits - places

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
                # Django rounds a float to max_digits first: judge the digits the backup wrote.
                try:
                    Decimal(repr(value)).quantize(quantum, context=exact)
                except decimal.Inexact:
                    raise ValueError(f"Ensure that there are no more than {places} decimal places.") from None
                except decimal.InvalidOperation:
                    raise ValueError(
                        f"Ensure that there are no more than {whole_digits} digits before the decimal point."
                    ) from None
        try:
            number.quantize(quantum, context=exact)
        except decimal.Inexact:
            raise ValueError(f"Ensure that there are no more than {places} decimal places.") from None
        except decimal.InvalidOperation:
            raise ValueError(
                f"Ensure that there are no more than {whole_digits} digits before the decimal point."
            ) from None
        return number

    return convert


def _text_converter(field: models.Field, vendor: str) -> Converter:
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
            _check_utf8(text)
        if refuse_nul and "\x00" in text:
            raise ValueError("text with a NUL character, which PostgreSQL cannot store")
        return text

    return convert


def _check_utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not valid UTF-8 text: {exc.reason} at character {exc.start}") from None


def _ip_converter(field: models.Field, vendor: str) -> Converter:
    """Django's cleaning (IPv6 normalised) and its backends' ``"" -> NULL``; then the field's
    validators, which loaddata never runs: Django's ``to_python`` passes any text without a
    colon (``"true"``), which PostgreSQL's inet adapter refused with a traceback and SQLite
    stored. Only text is an address (a number or a boolean would be spelt by ``str()``)."""
    slow = _django(field)
    text = _text_converter(field, vendor)
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


def _binary_converter(field: models.Field) -> Converter:
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


def _json_value(value: Any, depth: int = 0) -> Any:
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
            _check_utf8(value)
        return value
    if isinstance(value, decimal.Decimal):
        number = float(value)
        if math.isinf(number) and value.is_finite():
            raise ValueError(f"the number {str(value)[:20]} is beyond a float's range (json.loads would read infinity)")
        return number
    if isinstance(value, dict):
        converted = {}
        for key, item in value.items():  # loops, not comprehensions: one stack frame per level
            converted[_json_value(key, depth) if isinstance(key, str) else key] = _json_value(item, depth + 1)
        return converted
    if isinstance(value, list):
        items = []
        for item in value:
            items.append(_json_value(item, depth + 1))
        return items
    return value


_TEXT_TYPES = {
    "CharField",
    "TextField",
    "EmailField",
    "SlugField",
    "URLField",
    "FilePathField",
    "FileField",
    "ImageField",
}
_INTEGER_TYPES = {
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
    target = field.target_field if field.is_relation else field
    return not any(_overrides(target, name) for name in _VALUE_METHODS)


def _overrides(field: models.Field, method: str) -> bool:
    """Whether ``field``'s class has its own ``method``, not that of the Django class it derives from."""
    kind = type(field)
    django_class = next((k for k in kind.__mro__ if k.__module__.startswith("django.")), models.Field)
    return getattr(kind, method) is not getattr(django_class, method)


def column_kind(field: models.Field) -> str:
    """The column kind of ``field`` in the value rule (:func:`refusal`): a foreign key's is its
    target's."""
    internal = (field.target_field if field.is_relation else field).get_internal_type()
    if internal in _TEXT_TYPES:
        return TEXT
    if internal in _INTEGER_TYPES:
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


def converter_for(field: models.Field, using: str | None = None) -> Converter:
    """The function that turns a backup value into this field's Python value (None passes),
    for the database ``using`` (its integer ranges, what it can store)."""
    connection = connections[using or DEFAULT_DB_ALIAS]
    vendor = connection.vendor
    target = field.target_field if field.is_relation else field
    internal = target.get_internal_type()
    if not converts_as_django(target):
        # Its own to_python decides what a value means; Django's (inherited) is held to the value rule.
        own = _django(target) if _overrides(target, "to_python") else _checked(column_kind(target), target)
        if internal == "JSONField":  # JSON as json.loads (loaddata) reads it, then the field's own
            return lambda value: own(_json_value(value))
        return own
    if internal in _INTEGER_TYPES:
        return _integer_converter(target, connection)
    if internal in _TEXT_TYPES:
        return _text_converter(target, vendor)
    if internal == "DateTimeField":
        return _datetime_converter(target, vendor)
    if internal == "DateField":
        return _date_converter(target)
    if internal == "DecimalField":
        return _decimal_converter(target)
    if internal == "FloatField":
        return _float_converter(target)
    if internal == "DurationField":
        return _duration_converter(target, connection)
    if internal == "GenericIPAddressField":
        return _ip_converter(target, vendor)
    if internal == "BinaryField":
        return _binary_converter(target)
    if internal == "JSONField":
        return _json_value
    if internal == "UUIDField":
        return _checked(UUID, target)
    if internal == "BooleanField":
        convert = _checked(BOOLEAN, target)
        convert.identity_type = bool  # type: ignore[attr-defined]
        return convert
    return _django(target)  # booleans, UUIDs, times and any custom field: Django's own
