"""How a value becomes JSON, for every file dbrestore writes rows to: backups and the rejects file.

orjson writes str, numbers, bools, None, dict, list, datetime, date, time and UUID natively;
:func:`encode_value` is its fallback for the rest, spelt as dumpdata's ``DjangoJSONEncoder``
spells them (a Decimal as its string, a duration in ISO 8601, ``P1DT02H03M04.500000S``), so that
both files read back through the same converters (:mod:`dbrestore.convert`) as loaddata reads a
fixture. Binary values are base64, as Django's serializers write a ``BinaryField``.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import uuid
from typing import Any

from django.utils.duration import duration_iso_string
from django.utils.functional import Promise


def encode_value(value: Any) -> Any:
    """orjson's ``default``: the JSON form of a value orjson does not write itself."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime.timedelta):
        return duration_iso_string(value)
    if isinstance(value, (uuid.UUID, Promise)):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
