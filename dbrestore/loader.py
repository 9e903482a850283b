"""Writing one table's rows: batched inserts and the fallback chain.

Every input row ends as exactly one of *inserted*, *skipped* (its primary key or a unique value
is already there) or *rejected* (written to the rejects file with the database's or the
converter's reason). Per batch:

1. one multi-row ``INSERT ... ON CONFLICT DO NOTHING`` (bulk_create's ``ignore_conflicts``
   query, executed through its compiler so that the row count tells inserted from skipped);
2. if the batch fails, it is split in halves, each retried under a savepoint, down to single
   rows: one bad row in 1,000 costs about 2*log2(1000) = 20 small statements, not 1,000;
3. a single row that still fails through the ORM is tried once more as a raw cursor
   ``INSERT ... ON CONFLICT DO NOTHING``;
4. a row that still fails is rejected with the database's message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connections, models, transaction
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery

from .convert import ConversionError, RowConverter
from .rejects import RejectsFile
from .report import TableResult
from .sources import PositionedRow

logger = logging.getLogger(__name__)


@dataclass
class PendingRow:
    position: int
    row: dict[str, Any]
    obj: models.Model


class Inserter:
    """INSERTs of model instances that ignore conflicts and report how many rows went in."""

    def __init__(self, model: type[models.Model], using: str):
        self.model = model
        self.using = using
        self.connection = connections[using]
        self.fields = list(model._meta.concrete_fields)

    def insert(self, objs: list[models.Model]) -> int:
        """Insert ``objs`` as bulk_create(ignore_conflicts=True) would; return rows inserted."""
        query = InsertQuery(self.model, on_conflict=OnConflict.IGNORE)
        query.insert_values(self.fields, objs, raw=True)
        compiler = query.get_compiler(using=self.using)
        inserted = 0
        with self.connection.cursor() as cursor:
            for sql, params in compiler.as_sql():
                cursor.execute(sql, params)
                inserted += max(cursor.rowcount, 0)
        return inserted

    def insert_raw(self, obj: models.Model) -> int:
        """The last resort for one row: a hand-written INSERT with values prepared per field."""
        qn = self.connection.ops.quote_name
        columns = ", ".join(qn(f.column) for f in self.fields)
        placeholders = ", ".join(["%s"] * len(self.fields))
        params = [f.get_db_prep_save(getattr(obj, f.attname), connection=self.connection) for f in self.fields]
        table = qn(self.model._meta.db_table)
        if self.connection.vendor == "sqlite":
            sql = f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({placeholders})"
        elif self.connection.vendor == "postgresql":
            sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) ON CONFLICT DO NOTHING"
        else:
            sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return max(cursor.rowcount, 0)


def batched(rows: Iterable[PositionedRow], size: int) -> Iterator[list[PositionedRow]]:
    batch: list[PositionedRow] = []
    for item in rows:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class TableLoader:
    """Loads one table's rows in batches through the fallback chain, counting every row."""

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
        self.converter = RowConverter(model)
        self.inserter = Inserter(model, using)

    def load(self, rows: Iterable[PositionedRow]) -> TableResult:
        for batch in batched(rows, self.batch_size):
            pending = self._convert(batch)
            if pending and not self.dry_run:
                self._write(pending)
            elif self.dry_run:
                self.result.inserted += len(pending)
            self._forget_queries()
            self.on_batch(self.result)
        return self.result

    def _forget_queries(self) -> None:
        """With DEBUG on, Django keeps the last 9,000 queries' SQL: megabytes per batch here."""
        connection = self.inserter.connection
        if connection.queries_logged:
            connection.queries_log.clear()

    def _convert(self, batch: list[PositionedRow]) -> list[PendingRow]:
        pending = []
        for position, row in batch:
            self.result.total += 1
            try:
                pending.append(PendingRow(position, row, self.converter.instance(row)))
            except ConversionError as exc:
                self.reject(position, row, str(exc))
        return pending

    def _write(self, pending: list[PendingRow]) -> None:
        try:
            with transaction.atomic(using=self.using):
                inserted = self.inserter.insert([p.obj for p in pending])
        except DatabaseError as exc:
            if len(pending) == 1:
                self._write_one_raw(pending[0], exc)
                return
            logger.debug("%s: batch of %d failed (%s); splitting", self.model._meta.label, len(pending), exc)
            middle = len(pending) // 2
            self._write(pending[:middle])
            self._write(pending[middle:])
            return
        self._count(len(pending), inserted)

    def _write_one_raw(self, item: PendingRow, orm_error: DatabaseError) -> None:
        try:
            with transaction.atomic(using=self.using):
                inserted = self.inserter.insert_raw(item.obj)
        except DatabaseError as exc:
            self.reject(item.position, item.row, _database_message(exc))
            return
        logger.info("%s row %d: the ORM insert failed (%s), the raw insert worked", self.model._meta.label, item.position, orm_error)
        self._count(1, inserted)

    def _count(self, attempted: int, inserted: int) -> None:
        self.result.inserted += inserted
        self.result.skipped += attempted - inserted

    def reject(self, position: int, row: dict[str, Any], reason: str) -> None:
        self.result.rejected += 1
        self.rejects.write(
            model=self.model._meta.label, table=self.model._meta.db_table, position=position, row=row, reason=reason
        )


def _database_message(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
