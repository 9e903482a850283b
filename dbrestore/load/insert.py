"""Writing rows through the ORM: batched inserts and the fallback chain.

Per batch (the rows whose parents are missing were rejected before, see
:class:`dbrestore.integrity.ParentCheck`):

1. one multi-row ``INSERT ... ON CONFLICT DO NOTHING`` (bulk_create's ``ignore_conflicts``
   query, built from the values by :mod:`dbrestore.load.direct`, the row count telling
   inserted from skipped; ``ON CONFLICT (pk) DO UPDATE`` in merge mode);
2. if the batch fails, it is split in halves, each retried under a savepoint, down to single
   rows: one bad row in 1,000 costs about 2*log2(1000) = 20 small statements, not 1,000;
3. a single row that still fails through the ORM is tried once more as a raw cursor
   ``INSERT ... ON CONFLICT DO NOTHING``;
4. a row that still fails is rejected with the database's message.

What became of each row is recorded in the table's :class:`~dbrestore.load.ledger.Ledger`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections, models, transaction
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery

from dbrestore.convert.fields import column_of
from dbrestore.convert.row_converter import build_instance
from dbrestore.exceptions import first_line
from dbrestore.load.direct import DirectInsert
from dbrestore.load.ledger import Ledger
from dbrestore.load.rows import PendingRow
from dbrestore.sources.base import batched

logger = logging.getLogger(__name__)


class Inserter:
    """Multi-row INSERTs of model instances that report which rows went in.

    ``merge=True`` turns a primary-key conflict into an update of the existing row.
    """

    def __init__(self, model: type[models.Model], using: str, *, merge: bool = False):
        self.model = model
        self.using = using
        self.connection = connections[using]
        self.fields = list(model._meta.local_concrete_fields)  # a multi-table child's own table
        self.pk = model._meta.pk
        self.merge = merge
        self.update_fields = [f for f in self.fields if not f.primary_key]

    def _query(self, objs: list[models.Model], fields: list[models.Field]) -> InsertQuery:
        if self.merge and self.update_fields and self.pk in fields:  # rows without a key: see DirectInsert._sql
            query = InsertQuery(
                self.model, on_conflict=OnConflict.UPDATE, update_fields=self.update_fields, unique_fields=[self.pk]
            )
        elif self.connection.vendor == "sqlite":
            query = InsertQuery(self.model)  # see _statements(): no "INSERT OR IGNORE"
        else:
            query = InsertQuery(self.model, on_conflict=OnConflict.IGNORE)
        query.insert_values(fields, objs, raw=True)
        return query

    def _statements(self, compiler) -> list[tuple[str, Any]]:
        """The compiled INSERTs. On SQLite, Django's ignore_conflicts writes ``INSERT OR IGNORE``,
        which also swallows NOT NULL and CHECK violations (rows lost as "skipped"); the upsert
        clause ``ON CONFLICT DO NOTHING`` ignores only uniqueness conflicts, as on PostgreSQL."""
        statements = compiler.as_sql()
        if self.connection.vendor != "sqlite" or " DO UPDATE " in statements[0][0]:
            return statements
        patched = []
        for sql, params in statements:
            head, returning, tail = sql.rpartition(" RETURNING ")
            patched.append(
                (
                    f"{head} ON CONFLICT DO NOTHING RETURNING {tail}" if returning else f"{sql} ON CONFLICT DO NOTHING",
                    params,
                )
            )
        return patched

    @functools.cached_property
    def direct(self) -> DirectInsert | None:
        """The SQL builder that inserts converted values without model instances, or None where
        an instance could change a value on the way (see :mod:`dbrestore.load.direct`)."""
        return DirectInsert.for_model(self.model, self.connection, merge=self.merge, update_fields=self.update_fields)

    def insert_values(self, rows: Sequence[list[Any]], *, returning_pks: bool = False) -> tuple[int, list[Any] | None]:
        """:meth:`insert` for rows of converted values, without model instances where it can."""
        if self.direct is None:
            return self.insert([build_instance(self.model, values) for values in rows], returning_pks=returning_pks)
        can_return = returning_pks and self.connection.features.can_return_rows_from_bulk_insert
        return self.direct.execute(rows, returning=can_return, rows_per_statement=self._rows_per_statement)

    def insert(self, objs: Sequence[models.Model], *, returning_pks: bool = False) -> tuple[int, list[Any] | None]:
        """Insert ``objs`` as bulk_create(ignore_conflicts=True) would.

        Returns the number of rows inserted (or updated, in merge mode) and, when asked and the
        database can say (PostgreSQL, SQLite), the primary keys of those rows.
        """
        can_return = returning_pks and self.connection.features.can_return_rows_from_bulk_insert
        inserted = 0
        pks: list[Any] | None = [] if can_return else None
        with self.connection.cursor() as cursor:
            for chunk, fields in self._statement_groups(objs):
                compiler = self._query(chunk, fields).get_compiler(using=self.using)
                if can_return:
                    compiler.returning_fields = [self.pk]
                for sql, params in self._statements(compiler):
                    cursor.execute(sql, params)
                    if pks is not None:  # can_return
                        rows = cursor.fetchall()
                        pks.extend(self.pk.to_python(row[0]) for row in rows)
                        inserted += len(rows)
                    else:
                        inserted += max(cursor.rowcount, 0)
        return inserted, pks

    def _statement_groups(
        self, objs: Sequence[models.Model]
    ) -> Iterator[tuple[list[models.Model], list[models.Field]]]:
        """Chunks that fit one statement, with the columns to write: rows without a primary key
        (natural primary keys) leave it out, so that the database numbers them."""
        size = self._rows_per_statement
        with_pk = [obj for obj in objs if obj.pk is not None]
        without_pk = [obj for obj in objs if obj.pk is None]
        for chunk in batched(with_pk, size):
            yield chunk, self.fields
        for chunk in batched(without_pk, size):
            yield chunk, [f for f in self.fields if f is not self.pk]

    @functools.cached_property
    def _rows_per_statement(self) -> int:
        return self.rows_per_statement()

    def rows_per_statement(self) -> int:
        """Rows that fit one INSERT under the database's limit on bound parameters."""
        if self.connection.vendor == "sqlite":
            import sqlite3

            self.connection.ensure_connection()
            limit = self.connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        else:
            limit = 65535  # PostgreSQL's wire protocol
        return max(1, limit // max(1, len(self.fields)))

    def insert_raw(self, obj: models.Model) -> int:
        """The last resort for one row: a hand-written INSERT with values prepared per field."""
        qn = self.connection.ops.quote_name
        fields = [f for f in self.fields if f is not self.pk or obj.pk is not None]  # numbered by the database
        columns = ", ".join(qn(column_of(f)) for f in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        params = [f.get_db_prep_save(getattr(obj, f.attname), connection=self.connection) for f in fields]
        table = qn(self.model._meta.db_table)
        if self.connection.vendor in ("sqlite", "postgresql"):
            sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT DO NOTHING"
        else:
            sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return max(cursor.rowcount, 0)


class FallbackChain:
    """Steps 1-4 of the module docstring for one table's rows, recorded in ``ledger``."""

    def __init__(self, inserter: Inserter, ledger: Ledger, *, batch_size: int):
        self.inserter = inserter
        self.ledger = ledger
        self.batch_size = batch_size
        self.using = inserter.using

    def write(self, pending: list[PendingRow]) -> None:
        """Write rows in batches of ``batch_size`` (the COPY path hands over bigger ones)."""
        if len(pending) <= self.batch_size:
            self._insert_halving(pending)
            return
        for batch in batched(pending, self.batch_size):
            self._insert_halving(batch)

    def _insert_halving(self, pending: list[PendingRow]) -> None:
        try:
            with transaction.atomic(using=self.using):
                inserted, pks = self.inserter.insert_values(
                    [p.values for p in pending], returning_pks=self.ledger.log_skipped
                )
        except DatabaseError as exc:
            if is_fatal(exc, self.inserter.connection):
                raise
            if len(pending) == 1:
                self._write_one_raw(pending[0], exc)
                return
            logger.debug("%s: batch of %d failed (%s); splitting", self.ledger.label, len(pending), exc)
            middle = len(pending) // 2
            self._insert_halving(pending[:middle])
            self._insert_halving(pending[middle:])
            return
        self.ledger.written(pending, inserted, pks)

    def _write_one_raw(self, item: PendingRow, orm_error: DatabaseError) -> None:
        try:
            with transaction.atomic(using=self.using):
                inserted = self.inserter.insert_raw(item.obj)
        except DatabaseError as exc:
            if is_fatal(exc, self.inserter.connection):
                raise
            self.ledger.reject(item.position, item.row, first_line(exc))
            return
        logger.info(
            "%s row %d: the ORM insert failed (%s), the raw insert worked", self.ledger.label, item.position, orm_error
        )
        self.ledger.written([item], inserted, None)


def is_fatal(exc: DatabaseError, connection) -> bool:
    """An error no row caused: a lost or killed connection, an operator's cancel, a full disk.

    Splitting the batch would only turn it into a rejected row per input row; it stops the
    restore instead. On PostgreSQL every OperationalError is of that kind (SQLSTATE classes 08,
    53, 57, 58); SQLite raises OperationalError for row-level trouble too, so only a lock or
    I/O error counts there.
    """
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    if connection.vendor != "sqlite":
        return True
    message = str(exc).lower()
    return "locked" in message or "disk" in message or "readonly" in message
