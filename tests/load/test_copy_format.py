"""The COPY path copies a datetime's backup text as it is when it is plain ISO 8601 with an
offset: PostgreSQL reads the same instant from it as from the datetime the converter makes."""

from __future__ import annotations

import pytest
from django.db import connection

from dbrestore.convert import converter_for
from dbrestore.load.copy_text import ISO_WITH_OFFSET
from restoreproject.shop.models import OrderItem

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

COPIED = [
    "2024-01-01T00:00:07+00:00",
    "2024-01-01T00:00:07Z",
    "2024-06-30T23:59:59.123Z",
    "2024-03-31T02:30:00.999999+02:00",
    "0001-01-01T05:30:00+05:30",
    "9999-12-30T23:59:59.500000-00:00",
    "2024-02-29T12:00:00-09:30",
    "1883-11-18T12:03:58.000001+00:00",
]
CONVERTED = [
    "2024-01-01T00:00:07",
    "2024-01-01 00:00:07+00:00",
    "20240101T000007Z",
    "2024-01-01T00:00:07.1234567Z",
    "2024-01-01T00:00:07+0000",
    "2024-01-01T00:00:07.12Z",
    "٢٠٢٤-01-01T00:00:07Z",
    "2024-01-01T00:00Z",
    "2024-01-01T00:00:07.5Z",
]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns"])
def test_texts_copied_as_they_are_mean_what_the_converter_reads(zone, settings):
    convert = converter_for(OrderItem._meta.get_field("added_at"), connection.alias)
    assert all(ISO_WITH_OFFSET(text) for text in COPIED)
    assert not any(ISO_WITH_OFFSET(text) for text in CONVERTED)
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL TIME ZONE '{zone}'")
        for text in COPIED:
            cursor.execute("SELECT %s::text::timestamptz = %s", [text, convert(text)])
            assert cursor.fetchone()[0], (text, convert(text))
