"""Writing one table's rows: batched inserts and the fallback chain.

Every input row ends as exactly one of *inserted*, *skipped* (its primary key or a unique value
is already there) or *rejected* (written to the rejects file with the database's or the
converter's reason). Per batch:

0. rows whose FK points to a parent that is not there are rejected first (one query per FK
   column per batch; see :mod:`dbrestore.integrity`);
1. one multi-row ``INSERT ... ON CONFLICT DO NOTHING`` (bulk_create's ``ignore_conflicts``
   query, built from the values by :mod:`dbrestore.direct_insert`, the row count telling
   inserted from skipped; ``ON CONFLICT (pk) DO UPDATE`` in merge mode);
2. if the batch fails, it is split in halves, each retried under a savepoint, down to single
   rows: one bad row in 1,000 costs about 2*log2(1000) = 20 small statements, not 1,000;
3. a single row that still fails through the ORM is tried once more as a raw cursor
   ``INSERT ... ON CONFLICT DO NOTHING``;
4. a row that still fails is rejected with the database's message.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections, models, transaction
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery

from .convert import ConversionError
from .direct_insert import DirectInsert
from .rejects import RejectsFile
from .report import TableResult
from .row_converter import DeferredNaturalKey, RowConverter, build_instance
from .sources import PositionedRow
from .sources.base import batched

if TYPE_CHECKING:
    from .integrity import ForeignKeyEdge

logger = logging.getLogger(__name__)

__all__ = ["Inserter", "TableLoader", "batched"]


@dataclass
class PendingRow:
    """A converted row on its way in: field values in ``local_concrete_fields`` order, and the
    model instance the ORM path needs (built only when it is used)."""

    position: int
    row: dict[str, Any]
    values: list[Any]
    model: type[models.Model]
    _obj: models.Model | None = None

    @property
    def obj(self) -> models.Model:
        if self._obj is None:
            self._obj = build_instance(self.model, self.values)
        return self._obj


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

    def _query(self, objs: Sequence[models.Model], fields: list[models.Field]) -> InsertQuery:
        if self.merge and self.update_fields:
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
        if self.connection.vendor != "sqlite" or (self.merge and self.update_fields):
            return statements
        patched = []
        for sql, params in statements:
            head, returning, tail = sql.rpartition(" RETURNING ")
            patched.append(
                (f"{head} ON CONFLICT DO NOTHING RETURNING {tail}" if returning else f"{sql} ON CONFLICT DO NOTHING", params)
            )
        return patched

    @functools.cached_property
    def direct(self) -> DirectInsert | None:
        """The SQL builder that inserts converted values without model instances, or None where
        an instance could change a value on the way (see :mod:`dbrestore.direct_insert`)."""
        return DirectInsert.for_model(self.model, self.connection, merge=self.merge,
                                      update_fields=self.update_fields)

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
        inserted, pks = 0, [] if can_return else None
        with self.connection.cursor() as cursor:
            for chunk, fields in self._statement_groups(objs):
                compiler = self._query(chunk, fields).get_compiler(using=self.using)
                if can_return:
                    compiler.returning_fields = [self.pk]
                for sql, params in self._statements(compiler):
                    cursor.execute(sql, params)
                    if can_return:
                        rows = cursor.fetchall()
                        pks.extend(self.pk.to_python(row[0]) for row in rows)
                        inserted += len(rows)
                    else:
                        inserted += max(cursor.rowcount, 0)
        return inserted, pks

    def _statement_groups(self, objs: Sequence[models.Model]) -> Iterator[tuple[list[models.Model], list[models.Field]]]:
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
        columns = ", ".join(qn(f.column) for f in self.fields)
        placeholders = ", ".join(["%s"] * len(self.fields))
        params = [f.get_db_prep_save(getattr(obj, f.attname), connection=self.connection) for f in self.fields]
        table = qn(self.model._meta.db_table)
        if self.connection.vendor in ("sqlite", "postgresql"):
            sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT DO NOTHING"
        else:
            sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return max(cursor.rowcount, 0)


class TableLoader:
    """Loads one table's rows in batches through the fallback chain, counting every row.

    ``fk_checks``: FKs whose parents are already complete, checked per batch.
    ``settled_foreign_keys``: FKs whose parents are already complete, left to the database
    (the COPY path checks them as it goes, see :mod:`dbrestore.copyload`).
    ``nulled_fields``: FK fields loaded as NULL and filled in later (``--no-atomic`` only).
    ``log_skipped``: write rows skipped as duplicates to the rejects file too.
    ``side_by_side``: tables loading at the same time (``--jobs``), which share the memory budget.
    """

    def __init__(
        self,
        model: type[models.Model],
        *,
        using: str,
        batch_size: int,
        result: TableResult,
        rejects: RejectsFile,
        dry_run: bool = False,
        on_batch: Callable[[TableResult], None] | None = None,
        mode: str = "replace",
        fk_checks: Iterable[ForeignKeyEdge] = (),
        settled_foreign_keys: Iterable[ForeignKeyEdge] = (),
        nulled_fields: Iterable[models.Field] = (),
        log_skipped: bool = False,
        side_by_side: int = 1,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model = model
        self.using = using
        self.batch_size = batch_size
        self.result = result
        self.rejects = rejects
        self.dry_run = dry_run
        self.on_batch = on_batch or (lambda result: None)
        # Forward natural keys are filled in after the load in replace mode only: in append and
        # merge modes the row may be one that was already there.
        self.converter = RowConverter(model, using=using, defer_natural_keys=mode == "replace")
        self.inserter = Inserter(model, using, merge=mode == "merge")
        self.fk_checks = list(fk_checks)
        self.settled_foreign_keys = list(settled_foreign_keys)
        #: FKs the database checked for every row of this load (no orphan sweep needed for them).
        self.checked_foreign_keys: list[ForeignKeyEdge] = []
        self.nulled_indexes = [self.converter.fields.index(f) for f in nulled_fields]
        self.log_skipped = log_skipped and mode != "merge"
        self.side_by_side = side_by_side
        #: Rows loaded with NULL for a natural key not found yet: (position, row, pk, field, key).
        self.deferred_natural_keys: list[tuple[int, dict[str, Any], Any, models.Field, DeferredNaturalKey]] = []

    def load(self, rows: Iterable[PositionedRow]) -> TableResult:
        for batch in batched(rows, self.batch_size):
            pending = self._convert(batch)
            if self.dry_run:
                self.result.inserted += len(pending)
            else:
                pending = self._reject_missing_parents(pending)
                if pending:
                    self._write(pending)
            self._forget_queries()
            self.on_batch(self.result)
        return self.result

    def _forget_queries(self) -> None:
        """With DEBUG on, Django keeps the last 9,000 queries' SQL: megabytes per batch here."""
        connection = self.inserter.connection
        if connection.queries_logged:
            connection.queries_log.clear()

    def _convert(self, batch: list[PositionedRow]) -> list[PendingRow]:
        return list(self._converted(batch))

    def _converted(self, batch: Iterable[PositionedRow]) -> Iterator[PendingRow]:
        """The batch's rows converted; a row that cannot be is rejected here, with the reason."""
        for position, row in batch:
            self.result.total += 1
            try:
                values = self.converter.convert(row)
            except ConversionError as exc:
                self.reject(position, row, str(exc))
                continue
            if self.converter.deferrable_positions and not self._defer_natural_keys(position, row, values):
                continue
            for index in self.nulled_indexes:
                values[index] = None
            yield PendingRow(position, row, values, self.model)

    def _defer_natural_keys(self, position: int, row: dict[str, Any], values: list[Any]) -> bool:
        """NULL for natural keys not found yet, noted to be filled in after the load; False (the
        row rejected) when the row has no primary key to find it again by."""
        pk = self.converter.pk_of(values)
        for index in self.converter.deferrable_positions:
            value = values[index]
            if value.__class__ is not DeferredNaturalKey:
                continue
            if pk is None:
                self.reject(position, row, f"column {self.converter.fields[index].column!r}: {value.reason}")
                return False
            values[index] = None
            self.deferred_natural_keys.append((position, row, pk, self.converter.fields[index], value))
        return True

    def _reject_missing_parents(self, pending: list[PendingRow],
                                edges: Iterable[ForeignKeyEdge] | None = None) -> list[PendingRow]:
        """The rows whose parents (of ``edges``, by default ``fk_checks``) are there; the others
        are rejected."""
        from .integrity import existing_values

        for edge in self.fk_checks if edges is None else edges:
            index = self.converter.fields.index(edge.field)
            values = {p.values[index] for p in pending} - {None}
            if not values:
                continue
            missing = values - existing_values(edge, values, self.using)
            if not missing:
                continue
            kept = []
            for p in pending:
                value = p.values[index]
                if value is not None and value in missing:
                    self.reject(p.position, p.row, edge.describe(value))
                else:
                    kept.append(p)
            pending = kept
        return pending

    def _write(self, pending: list[PendingRow]) -> None:
        self._insert_halving(pending)

    def _insert_halving(self, pending: list[PendingRow]) -> None:
        """Steps 1-4 of the fallback chain (see the module docstring)."""
        try:
            with transaction.atomic(using=self.using):
                inserted, pks = self.inserter.insert_values([p.values for p in pending], returning_pks=self.log_skipped)
        except DatabaseError as exc:
            if is_fatal(exc, self.inserter.connection):
                raise
            if len(pending) == 1:
                self._write_one_raw(pending[0], exc)
                return
            logger.debug("%s: batch of %d failed (%s); splitting", self.model._meta.label, len(pending), exc)
            middle = len(pending) // 2
            self._insert_halving(pending[:middle])
            self._insert_halving(pending[middle:])
            return
        self._count(pending, inserted, pks)

    def _write_one_raw(self, item: PendingRow, orm_error: DatabaseError) -> None:
        try:
            with transaction.atomic(using=self.using):
                inserted = self.inserter.insert_raw(item.obj)
        except DatabaseError as exc:
            if is_fatal(exc, self.inserter.connection):
                raise
            self.reject(item.position, item.row, _database_message(exc))
            return
        logger.info("%s row %d: the ORM insert failed (%s), the raw insert worked",
                    self.model._meta.label, item.position, orm_error)
        self._count([item], inserted, None)

    def _count(self, pending: list[PendingRow], inserted: int, pks: list[Any] | None) -> None:
        self.result.inserted += inserted
        self.result.skipped += len(pending) - inserted
        if self.log_skipped and inserted < len(pending):
            for p in self._skipped_rows(pending, inserted, pks, self.converter.pk_of):
                self.rejects.write(
                    model=self.model._meta.label, table=self.model._meta.db_table, position=p.position, row=p.row,
                    reason="a row with this primary key or unique value is already there", kind="skipped",
                )

    @staticmethod
    def _skipped_rows(pending: list[PendingRow], inserted: int, pks: list[Any] | None,
                      pk_of: Callable[[list[Any]], Any]) -> list[PendingRow]:
        if pks is None:  # the database did not say which rows went in; a lone row it can
            return pending if inserted == 0 and len(pending) == 1 else []
        went_in = Counter(pks)
        skipped = []
        for p in pending:
            pk = pk_of(p.values)
            if went_in[pk] > 0:
                went_in[pk] -= 1
            else:
                skipped.append(p)
        return skipped

    def reject(self, position: int, row: dict[str, Any], reason: str) -> None:
        self.result.rejected += 1
        self.rejects.write(
            model=self.model._meta.label, table=self.model._meta.db_table, position=position, row=row, reason=reason
        )


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


def _database_message(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
