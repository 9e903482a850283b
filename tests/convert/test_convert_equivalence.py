"""The fast converters of :mod:`dbrestore.convert` against Django's own ``field.to_python`` (plus
``get_prep_value``'s time zone rule), on hypothesis-generated values per field type.

What Django accepts must come out equal; what it refuses with a ValidationError must be refused
with Django's message. The only differences allowed are the documented extra refusals (a value
the column cannot hold: beyond its range, max_length, decimal places; text that is not UTF-8),
the value rule's refusals (``convert.refusal``: where Django's conversion would lose information
or invent a spelling, a fraction cut off, a container's repr; issue 26: these cases asserted
Django's mangled value before, they assert the reject now), and extensions where Django fails
with a TypeError instead of a message (epoch seconds for a datetime, microseconds for a duration).

A short derandomised run is part of the suite; ``DBRESTORE_FUZZ_EXAMPLES=20000`` runs a long one.
"""

from __future__ import annotations

import datetime
import decimal
import os

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbrestore.convert import column_kind, converter_for, refusal
from restoreproject.fidelity.models import AllFields

EXAMPLES = int(os.environ.get("DBRESTORE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=EXAMPLES <= 1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _reference(field, value):
    """What loaddata stores: ("ok", value) or ("refused", message), or ("crash",) for errors
    Django does not turn into a message."""
    try:
        result = field.to_python(value)
    except ValidationError as exc:
        return ("refused", "; ".join(exc.messages))
    except Exception:
        return ("crash",)
    if isinstance(result, datetime.datetime) and field.get_internal_type() == "DateTimeField":
        from django.conf import settings as django_settings

        if django_settings.USE_TZ and timezone.is_naive(result):
            result = timezone.make_aware(result, timezone.get_default_timezone())
    if field.get_internal_type() in ("FilePathField", "CharField", "TextField", "SlugField", "EmailField", "URLField"):
        result = field.get_prep_value(result)  # FilePathField: str() there, not in to_python
    if field.get_internal_type() == "GenericIPAddressField":
        result = field.get_prep_value(result) or None
    if field.get_internal_type() == "BinaryField" and result is not None:
        result = bytes(result)
    return ("ok", result)


def _ours(field, value):
    convert = converter_for(field, connection.alias)
    try:
        return ("ok", convert(value))
    except (ValueError, TypeError, ArithmeticError, OverflowError, RecursionError) as exc:
        return ("refused", str(exc))


def _same(field, value, *, allowed_refusals: tuple[str, ...] = (), extensions: bool = False) -> None:
    expected, got = _reference(field, value), _ours(field, value)
    rule = refusal(column_kind(field), value)
    if rule is not None:  # the value rule refuses what Django would store changed (or refuses itself)
        assert got == ("refused", rule), (value, expected, got)
        return
    if expected[0] == "crash":
        assert extensions or got[0] == "refused", (value, got)
        return
    if expected[0] == "refused":
        assert got == expected, value
        return
    if got[0] == "refused":
        assert any(reason in got[1] for reason in allowed_refusals), (value, expected, got)
        return
    assert got == expected, value
    if isinstance(expected[1], datetime.datetime):
        assert got[1].utcoffset() == expected[1].utcoffset(), value  # same instant, same zone


def field(name: str):
    return AllFields._meta.get_field(name)


DIGITS = "0123456789"
_datetime_text = st.text(alphabet=DIGITS + "-:T .Z+W,", max_size=32)
_aware = st.datetimes(
    timezones=st.sampled_from(
        [
            datetime.UTC,
            datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
            datetime.timezone(datetime.timedelta(hours=-9, minutes=-30)),
        ]
    )
)
_datetime_strings = st.one_of(
    _datetime_text,
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat(sep=" ", timespec="minutes")),
    st.datetimes().map(lambda d: d.strftime("%Y%m%dT%H%M%S")),
    st.datetimes().map(lambda d: f"{d.year:04d}-{d.month}-{d.day} {d.hour}:{d.minute}"),
    _aware.map(lambda d: d.isoformat()),
    st.dates().map(str),
)
RANGE = ("outside the range", "Ensure this value")


@pytest.fixture(
    params=[("Asia/Kolkata", True), ("Asia/Kolkata", False), ("UTC", True)], ids=["kolkata", "no-tz", "utc"]
)
def zone(request, settings):
    settings.TIME_ZONE, settings.USE_TZ = request.param


@pytest.mark.django_db
@FUZZ
@given(value=_datetime_strings)
def test_datetimes(zone, value):
    aware_refused = "SQLite backend does not support timezone-aware datetimes"
    _same(field("when"), value, allowed_refusals=(*RANGE, aware_refused))


@pytest.mark.django_db
@FUZZ
@given(
    value=st.one_of(
        st.text(alphabet=DIGITS + "-W", max_size=12),
        st.dates().map(str),
        st.dates().map(lambda d: d.strftime("%Y%m%d")),
        st.dates().map(lambda d: f"{d.year:04d}-{d.month}-{d.day}"),
        st.datetimes(),
    )
)
def test_dates(zone, value):
    _same(field("day"), value)


@pytest.mark.django_db
@FUZZ
@given(
    value=st.one_of(
        st.text(alphabet=DIGITS + ":.+Z", max_size=20),
        st.times().map(str),
        st.times().map(lambda t: t.strftime("%H%M%S")),
        st.times(),
    )
)
def test_times(value):
    _same(field("moment"), value)


@pytest.mark.django_db
@FUZZ
@given(
    value=st.one_of(st.text(alphabet=DIGITS + " :.-PDTHMS,day", max_size=24), st.timedeltas().map(str), st.timedeltas())
)
def test_durations(value):
    _same(field("span"), value, allowed_refusals=("outside the range of durations",))  # SQLite: 64-bit microseconds


@pytest.mark.django_db
@FUZZ
@given(
    value=st.one_of(
        st.integers(),
        st.text(alphabet=DIGITS + " -+_.e", max_size=24),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.decimals(allow_nan=False, allow_infinity=False),
    )
)
@pytest.mark.parametrize("name", ["small", "integer", "big", "positive", "positive_small", "positive_big"])
def test_integers(name, value):
    _same(field(name), value, allowed_refusals=RANGE)


@pytest.mark.django_db
@FUZZ
@given(
    value=st.one_of(
        st.floats(),
        st.integers(),
        st.text(alphabet=DIGITS + " -+_.eE", max_size=24),
        st.sampled_from(["nan", "inf", "-Infinity", "1e400"]),
        st.booleans(),
        st.decimals(allow_nan=False, allow_infinity=False),
    )
)
def test_floats(value):
    expected, got = _reference(field("ratio"), value), _ours(field("ratio"), value)
    if expected[0] == "ok" and expected[1] != expected[1]:  # NaN
        assert got[0] == "ok" and got[1] != got[1]
    else:
        _same(field("ratio"), value)


@pytest.mark.django_db
@FUZZ
@given(value=st.one_of(st.decimals(), st.floats(), st.integers(), st.text(alphabet=DIGITS + " -+.eE_", max_size=20)))
def test_decimals(value):
    _same(field("amount"), value, allowed_refusals=("decimal places", "digits before the decimal point"))


@pytest.mark.django_db
@FUZZ
@given(
    value=st.one_of(
        st.booleans(),
        st.integers(-2, 2),
        st.sampled_from(["t", "f", "True", "False", "1", "0", "yes", "true", "", "on"]),
        st.text(max_size=5),
    )
)
@pytest.mark.parametrize("name", ["flag", "maybe"])
def test_booleans(name, value):
    _same(field(name), value)


@pytest.mark.django_db
@FUZZ
@given(
    value=st.one_of(
        st.uuids().map(str),
        st.uuids().map(lambda u: u.hex),
        st.uuids().map(lambda u: f"{{{u}}}"),
        st.uuids().map(lambda u: u.urn),
        st.uuids().map(lambda u: str(u).upper()),
        st.uuids(),
        st.integers(min_value=0, max_value=2**128 - 1),
        st.text(alphabet="0123456789abcdef-{}", max_size=40),
    )
)
def test_uuids(value):
    _same(field("ident"), value)


@pytest.mark.django_db
@FUZZ
@given(
    value=st.one_of(
        st.ip_addresses().map(str),
        st.ip_addresses(v=6).map(lambda a: a.exploded),
        st.text(alphabet="0123456789abcdef:.", max_size=40),
        st.just(""),
    )
)
def test_ip_addresses(value):
    # The field's validators, which loaddata never runs: an address Django's to_python passes
    # unchecked ("1.2") failed on PostgreSQL's inet with a traceback, and SQLite stored it.
    _same(field("ip"), value, allowed_refusals=("longer than max_length", "Enter a valid IPv4 or IPv6 address"))


@pytest.mark.django_db
@FUZZ
@given(
    value=st.one_of(
        st.text(),
        st.integers(),
        st.floats(allow_nan=False),
        st.booleans(),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )
)
@pytest.mark.parametrize("name", ["char", "text", "slug", "email", "url", "path"])
def test_text(name, value):
    refusals = ("longer than max_length", "not valid UTF-8", "NUL character")
    _same(field(name), value, allowed_refusals=refusals)


@pytest.mark.django_db
@FUZZ
@given(
    value=st.one_of(
        st.binary().map(lambda b: __import__("base64").b64encode(b).decode()),
        st.binary(),
        st.text(alphabet="ABCDabcd0123+/= ", max_size=16),
    )
)
def test_binary(value):
    expected, got = _reference(field("blob"), value), _ours(field("blob"), value)
    if expected[0] == "ok":
        assert got == expected, value
    else:
        assert got[0] == "refused", value


@pytest.mark.django_db
def test_a_naive_datetime_is_read_in_the_default_time_zone(settings):
    settings.TIME_ZONE, settings.USE_TZ = "Asia/Kolkata", True
    value = converter_for(field("when"), connection.alias)("2021-03-04T05:06:07")
    assert value.utcoffset() == datetime.timedelta(hours=5, minutes=30)
    assert value.astimezone(datetime.UTC).isoformat() == "2021-03-03T23:36:07+00:00"


@pytest.mark.django_db
def test_decimal_limits():
    convert = converter_for(field("amount"), connection.alias)
    assert convert("12345678.90") == decimal.Decimal("12345678.90")
    assert convert("1.500") == decimal.Decimal("1.500")  # no value lost
    for value, reason in [
        ("123456789.00", "8 digits before"),
        ("1.005", "2 decimal places"),
        ("1e20", "digits before"),
    ]:
        with pytest.raises(ValueError, match=reason):
            convert(value)
