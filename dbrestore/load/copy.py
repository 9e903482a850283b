"""The COPY fast path on PostgreSQL (``--method copy``, the default there in replace mode).

Each batch is streamed into the table with psycopg 3's ``COPY ... FROM STDIN`` under a
savepoint: no model instances, no per-row SQL. Replace mode starts from empty tables, so a batch
rarely fails; when one does (a duplicate key, a NOT NULL or CHECK violation...), the savepoint is
rolled back and that batch alone goes through the ORM path's fallback chain
(:class:`~dbrestore.load.insert.FallbackChain`), so rejects, skipped rows, counts and atomicity are the
same as with ``--method orm``, and an FK orphan is rejected with the same reason.

The load is a two-stage pipeline: this thread reads, converts and formats (as COPY text) the
next batch while a second thread sends the previous one and waits for the server to store,
index and check it. In one transaction (the default) the FK checks would otherwise all wait for
its end (Django's FKs are ``DEFERRABLE INITIALLY DEFERRED``: a trigger per row, about two thirds
of the server's work for a table with two FKs) and run there while this process sits idle; the
FKs whose parents are already loaded are made ``IMMEDIATE`` for the table's load, so the server
checks each COPY as it ends, while the next batch is being prepared here. Those FKs need no
orphan sweep afterwards either. With ``--no-atomic`` each COPY is a transaction of its own, so
its FK checks run as it commits; a COPY that fails on an orphan finds it in the fallback, where
the batch's parents are looked up. Converting stays before the COPY, outside the pipeline, only
when it may query the database (natural keys), which a connection busy with a COPY cannot.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.db import DatabaseError, models
from psycopg._copy_base import TextFormatter  # psycopg's own COPY formatter (version pinned)
from psycopg.adapt import Transformer

from .. import conf
from ..integrity import ForeignKeyEdge, checked_as_copied
from ..report import TableResult
from ..row_converter import RowConverter
from ..sources import PositionedRow
from ..sources.base import batched
from .insert import is_fatal
from .rows import PendingRow
from .table import TableLoader

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


class CopyTableLoader:
    """One table's batches in through COPY, falling back to the ORM chain per batch.

    Composed, not derived: a :class:`~dbrestore.load.table.TableLoader` (built with the same
    arguments) converts the rows, checks parents, counts in its ledger and holds the fallback
    chain; this class adds the COPY writer and the two-stage pipeline of the module docstring,
    so that the server stores and checks one batch while this process prepares the next. A COPY
    covers ``COPY_BATCH_SIZE`` rows (shared out between tables loading side by side; at least
    ``--batch-size``); one that fails is retried through the ORM chain in ``--batch-size``
    batches. When converting may query the database, each batch is converted first, then
    copied, one after the other.
    """

    def __init__(self, model: type[models.Model], *, batch_size: int, side_by_side: int = 1, **kwargs: Any):
        copy_batch_size = max(batch_size, int(conf.get("COPY_BATCH_SIZE")) // side_by_side)
        self.table = TableLoader(model, batch_size=copy_batch_size, side_by_side=side_by_side, **kwargs)
        self.table.chain.batch_size = batch_size  # the fallback writes --batch-size batches
        self.model = model
        self.ledger = self.table.ledger
        self.chain = self.table.chain
        self.connection = self.table.inserter.connection
        qn = self.connection.ops.quote_name
        fields = self.converter.fields
        self.copy_sql = (
            f"COPY {qn(self.model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) FROM STDIN"
        )
        self.adapters = [(index, adapter) for index, f in enumerate(fields) if (adapter := _copy_adapter(f))]
        #: Datetime columns whose backup text, when it is plain ISO 8601 with an offset, is copied
        #: as it is (see _ISO_WITH_OFFSET): Django's own DateTimeField only (a subclass may change
        #: the value), and only where one key can feed the field.
        self.iso_texts = [(index, f.attname) for index, f in enumerate(fields)
                          if type(f) is models.DateTimeField and f.name == f.attname == f.column]
        #: FKs the database checked for every row of this load (no orphan sweep needed for them).
        self.checked_foreign_keys: list[ForeignKeyEdge] = []

    @property
    def converter(self) -> RowConverter:
        return self.table.converter

    @property
    def deferred_natural_keys(self) -> list:
        """As :attr:`TableLoader.deferred_natural_keys <dbrestore.load.table.TableLoader>`."""
        return self.table.deferred_natural_keys

    @property
    def result(self) -> TableResult:
        return self.table.result

    def load(self, rows: Iterable[PositionedRow]) -> TableResult:
        if self.table.dry_run or self.converter.may_query_database:
            # Batch by batch: converted (queries included), parents checked, then copied.
            return self.table.load(rows, write=self._copy_batch)
        return self._load_pipelined(rows)

    def _load_pipelined(self, rows: Iterable[PositionedRow]) -> TableResult:
        """Convert batch N+1 here while a second thread COPYs batch N (see the module docstring).

        The connection belongs to the COPY thread while a batch is in flight; this thread
        touches it again only once that batch is done (its fallback, its rows without a key).
        """
        table = self.table
        in_flight: tuple[Future, list[PendingRow], list[PendingRow]] | None = None
        in_transaction = self.connection.in_atomic_block
        with (
            checked_as_copied(self.connection, self.model, table.settled_foreign_keys) as checked,
            _quick_thread_switches(),
            ThreadPoolExecutor(1, thread_name_prefix="dbrestore-copy") as copier,
        ):
            try:
                for batch in batched(rows, table.batch_size):
                    table.stop_if_asked()
                    keyed, numbered = self._split_by_key(table.convert(batch))
                    data = self._format(keyed)
                    if in_flight is not None:
                        finishing, in_flight = in_flight, None  # counted once, even if _finish raises
                        self._finish(*finishing)
                    in_flight = (copier.submit(self._copy_data, data, in_transaction), keyed, numbered)
            except BaseException:
                if in_flight is not None:
                    self._count_if_copied(*in_flight)
                raise
            if in_flight is not None:
                self._finish(*in_flight)
        self.checked_foreign_keys = checked
        return table.result

    def _count_if_copied(self, copying: Future, copied: list[PendingRow], numbered: list[PendingRow]) -> None:
        """After a failure mid-load, count the batch in flight if its COPY went in (with
        ``--no-atomic`` it committed by itself), so that the run's counts do not lag the table."""
        with contextlib.suppress(Exception):
            if copying.result() is None and copied:
                self.ledger.written(copied, len(copied), None)

    def _split_by_key(self, pending: list[PendingRow]) -> tuple[list[PendingRow], list[PendingRow]]:
        """(rows with a primary key, for the COPY; rows the database must number, for the ORM)."""
        index = self.converter.pk_index
        if index is None:  # a composite primary key: always given
            return pending, []
        keyed = [p for p in pending if p.values[index] is not None]
        if len(keyed) == len(pending):
            return keyed, []
        return keyed, [p for p in pending if p.values[index] is None]

    @functools.cached_property
    def _formatter(self) -> TextFormatter:
        connection = self.connection
        connection.ensure_connection()
        return TextFormatter(Transformer(connection.connection))

    def _format(self, pending: list[PendingRow]) -> bytes | DatabaseError:
        """The rows as COPY text, formatted in this thread so that the COPY thread only has to
        send them; or the error that stopped it (a value psycopg cannot adapt: the batch takes
        the ORM path)."""
        formatter = self._formatter
        try:
            with self.connection.wrap_database_errors:
                if self.adapters or self.iso_texts:
                    adapt = self._adapt
                    chunks = [data for p in pending if (data := formatter.write_row(adapt(p.values, p.row)))]
                else:
                    chunks = [data for p in pending if (data := formatter.write_row(p.values))]
        except DatabaseError as exc:
            formatter.end()
            return exc
        chunks.append(formatter.end())
        return b"".join(chunks)

    def _copy_data(self, data: bytes | DatabaseError, in_transaction: bool) -> DatabaseError | None:
        """COPY the formatted rows, under a savepoint of their own in a transaction (a COPY of
        its own commits by itself otherwise); return the error that stopped it, if any.

        Runs in the COPY thread (or in this one, without the pipeline), on the psycopg
        connection under Django's: Django's connection objects belong to one thread, and its
        savepoint helpers cannot be used from another.
        """
        if isinstance(data, DatabaseError) or not data:
            return data or None
        connection = self.connection
        with connection.wrap_database_errors, connection.connection.cursor() as cursor:
            if in_transaction:
                cursor.execute("SAVEPOINT dbrestore_copy")
            try:
                with connection.wrap_database_errors, cursor.copy(self.copy_sql) as copy:
                    copy.write(data)
            except DatabaseError as exc:
                if is_fatal(exc, connection):
                    raise
                if in_transaction:
                    cursor.execute("ROLLBACK TO SAVEPOINT dbrestore_copy")
                return exc
            if in_transaction:
                cursor.execute("RELEASE SAVEPOINT dbrestore_copy")
        return None

    def _finish(self, copying: Future, copied: list[PendingRow], numbered: list[PendingRow]) -> None:
        """Wait for a batch's COPY in the COPY thread, then settle the batch."""
        self._settle(copied, numbered, copying.result())
        self.table.batch_done()

    def _settle(self, copied: list[PendingRow], numbered: list[PendingRow], error: DatabaseError | None) -> None:
        """Count a batch's copied rows, or send them through the ORM chain if the COPY failed
        (after rejecting the rows whose parent is missing, the likely cause); the rows without a
        primary key go through the ORM chain too, since the database numbers them."""
        settled = self.table.settled_foreign_keys
        if error is None:
            if copied:
                self.ledger.written(copied, len(copied), None)
        else:
            logger.debug("%s: COPY of %d rows failed (%s); the ORM path takes this batch",
                         self.model._meta.label, len(copied), error)
            self.chain.write(self.table.parents.keep_present(copied, settled))
        if numbered:
            self.chain.write(self.table.parents.keep_present(numbered, settled))

    def _copy_batch(self, pending: list[PendingRow]) -> None:
        """COPY an already converted batch in this thread (the path without the pipeline), then
        settle it as the pipeline does."""
        keyed, numbered = self._split_by_key(pending)
        error = self._copy_data(self._format(keyed), self.connection.in_atomic_block)
        self._settle(keyed, numbered, error)

    def _adapt(self, values: list[Any], row: dict[str, Any]) -> list[Any]:
        values = list(values)
        for index, adapter in self.adapters:
            values[index] = adapter(values[index])
        for index, key in self.iso_texts:
            text = row.get(key)
            if text.__class__ is str and values[index] is not None and _ISO_WITH_OFFSET(text):
                values[index] = text
        return values


#: A datetime written as ISO 8601 with its offset (or Z) and 0, 3 or 6 decimals, as
#: create_backup and dumpdata write them. The converter has parsed it (``fromisoformat``) and
#: checked its range; PostgreSQL reads the same instant from this text as from the datetime
#: psycopg would format (tests/test_copy_format.py), so COPY takes the text: formatting a
#: datetime costs psycopg 0.9 us, the check 0.25 us. Naive text is never copied as it is: it
#: is read in TIME_ZONE by the converter, in the session's zone by the server.
_ISO_WITH_OFFSET = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{3}|\.\d{6})?(?:Z|[+-]\d\d:\d\d)",
                             re.ASCII).fullmatch


_switch_lock = threading.Lock()
_switch_users = 0
_switch_interval_before = 0.005


@contextlib.contextmanager
def _quick_thread_switches(interval: float = 0.0002) -> Iterator[None]:
    """Let the COPY thread have the GIL soon after each wait on the server.

    A thread that wakes up (its round trip to the server done) waits for the thread holding the
    GIL to let go, after 5 ms by default: several times per batch, with the server idle each time.
    0.2 ms instead: 1M rows of the benchmark in 14.4 s instead of 15.6 s.
    """
    global _switch_users, _switch_interval_before
    with _switch_lock:  # --jobs: tables load side by side, each with its pipeline
        if _switch_users == 0:
            _switch_interval_before = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_interval_before, interval))
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_interval_before)
