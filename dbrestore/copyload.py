"""The COPY fast path on PostgreSQL (``--method copy``, the default there in replace mode).

Each batch is streamed into the table with psycopg 3's ``COPY ... FROM STDIN`` under a
savepoint: no model instances, no per-row SQL. Replace mode starts from empty tables, so a batch
rarely fails; when one does (a duplicate key, a NOT NULL or CHECK violation...), the savepoint is
rolled back and that batch alone goes through the ORM path's fallback chain
(:class:`~dbrestore.loader.TableLoader`), so rejects, skipped rows, counts and atomicity are the
same as with ``--method orm``. Parent checks and the orphan sweep run exactly as on that path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, transaction

from .loader import PendingRow, TableLoader, is_fatal

logger = logging.getLogger(__name__)


def _copy_adapter(field) -> Callable[[Any], Any] | None:
    """How a Python value becomes what psycopg's COPY writes for this column (None: as it is)."""
    kind = field.get_internal_type()
    if kind == "JSONField":
        from psycopg.types.json import Jsonb

        dumps = (lambda value: json.dumps(value, cls=field.encoder)) if field.encoder else json.dumps
        return lambda value: None if value is None else Jsonb(value, dumps=dumps)
    if kind == "BinaryField":
        return lambda value: None if value is None else bytes(value)
    return None


class CopyTableLoader(TableLoader):
    """TableLoader whose batches go in through COPY, falling back to the ORM chain per batch."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        connection = self.inserter.connection
        qn = connection.ops.quote_name
        fields = self.converter.fields
        self.copy_sql = (
            f"COPY {qn(self.model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) FROM STDIN"
        )
        self.adapters = [(index, adapter) for index, f in enumerate(fields) if (adapter := _copy_adapter(f))]
        self.batches_copied = 0
        self.batches_fallen_back = 0

    def _write(self, pending: list[PendingRow]) -> None:
        if any(p.values[self.converter.pk_index] is None for p in pending):
            super()._write(pending)  # rows the database must number: the ORM path knows how
            return
        connection = self.inserter.connection
        try:
            with transaction.atomic(using=self.using):
                connection.ensure_connection()
                with connection.wrap_database_errors, connection.connection.cursor() as cursor:
                    with cursor.copy(self.copy_sql) as copy:
                        for p in pending:
                            copy.write_row(self._adapt(p.values))
        except DatabaseError as exc:
            if is_fatal(exc, connection):
                raise
            self.batches_fallen_back += 1
            logger.debug("%s: COPY of %d rows failed (%s); the ORM path takes this batch",
                         self.model._meta.label, len(pending), exc)
            super()._write(pending)
            return
        self.batches_copied += 1
        self._count(pending, len(pending), None)

    def _adapt(self, values: list[Any]) -> list[Any]:
        if not self.adapters:
            return values
        values = list(values)
        for index, adapter in self.adapters:
            values[index] = adapter(values[index])
        return values
