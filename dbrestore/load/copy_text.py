"""How values become COPY text: a field's own preparation where it has one, the wrappers psycopg
needs for Django's JSON and binary fields, and datetime text copied as it is when it is exact."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from dbrestore.convert import converts_as_django


def copy_adapter(field, connection) -> Callable[[Any], Any] | None:
    """How a Python value becomes what psycopg's COPY writes for this column (None: as it is):
    a field class of a project or a third-party app prepares it with its own ``get_db_prep_save``,
    as the ORM would; Django's own need at most a wrapper psycopg understands."""
    if not converts_as_django(field):
        prepare = field.get_db_prep_save
        return lambda value: None if value is None else prepare(value, connection=connection)
    kind = field.get_internal_type()
    if kind == "JSONField":
        from psycopg.types.json import Jsonb

        dumps = (lambda value: json.dumps(value, cls=field.encoder)) if field.encoder else json.dumps
        return lambda value: None if value is None else Jsonb(value, dumps=dumps)
    if kind == "BinaryField":
        return lambda value: None if value is None else bytes(value)
    return None


#: A datetime written as ISO 8601 with its offset (or Z) and 0, 3 or 6 decimals, as
#: create_backup and dumpdata write them. The converter has parsed it (``fromisoformat``) and
#: checked its range; PostgreSQL reads the same instant from this text as from the datetime
#: psycopg would format (tests/load/test_copy_format.py), so COPY takes the text: formatting a
#: datetime costs psycopg 0.9 us, the check 0.25 us. Naive text is never copied as it is: it
#: is read in TIME_ZONE by the converter, in the session's zone by the server.
ISO_WITH_OFFSET = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{3}|\.\d{6})?(?:Z|[+-]\d\d:\d\d)", re.ASCII
).fullmatch
