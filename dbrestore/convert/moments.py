"""Converters of points and spans of time: datetimes (read in ``TIME_ZONE`` when naive, as
Django does), dates, durations."""

from __future__ import annotations

import datetime
import decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.duration import duration_microseconds

from dbrestore.convert.base import Converter, checked, django_converter
from dbrestore.convert.rule import DATETIME, DURATION, refusal


def datetime_converter(field: models.Field, vendor: str) -> Converter:
    """Django's parsing; then, as ``get_prep_value`` does, a naive value under ``USE_TZ`` is read in
    the default time zone (``TIME_ZONE``), not UTC. With ``USE_TZ = False`` values stay as
    written, and SQLite refuses aware ones as Django's backend does."""
    slow = checked(DATETIME, field)
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


def date_converter(field: models.Field) -> Converter:
    slow = django_converter(field)
    fromisoformat = datetime.date.fromisoformat

    def convert(value: Any) -> datetime.date:
        if value.__class__ is str:
            try:
                return fromisoformat(value)  # what Django's parse_date tries first
            except ValueError:
                pass
        return slow(value)

    return convert


def duration_converter(field: models.Field, connection) -> Converter:
    """Django's parsing, or microseconds; where the database stores a duration as 64-bit
    microseconds (SQLite), one beyond that range is refused (it was an OverflowError)."""
    parse = checked(DURATION, field)
    if connection.features.has_native_duration_field:
        slow = parse
    else:

        def slow(value: Any) -> datetime.timedelta:
            return _within_bigint(parse(value))

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
