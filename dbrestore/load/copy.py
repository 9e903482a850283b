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
import dataclasses
import functools
import logging
import sys
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, models
from psycopg._copy_base import TextFormatter  # psycopg's own COPY formatter (version pinned)
from psycopg.adapt import Transformer

from dbrestore import conf
from dbrestore.convert import ConversionError
from dbrestore.convert.fields import column_of
from dbrestore.convert.row_converter import RowConverter
from dbrestore.integrity import ForeignKeyEdge, checked_as_copied
from dbrestore.load.copy_text import ISO_WITH_OFFSET, copy_adapter
from dbrestore.load.forked import ordered_map
from dbrestore.load.insert import is_fatal
from dbrestore.load.rows import PendingRow
from dbrestore.load.table import TableLoad, TableLoader
from dbrestore.runs.report import TableResult
from dbrestore.sources import PositionedRow
from dbrestore.sources.base import BlockSource, batched

logger = logging.getLogger(__name__)
#: Bytes of JSON Lines per ``COPY_BATCH_SIZE`` rows, for the blocks prepared in forked processes
#: (one COPY each): 500 kB by default, about 3,800 rows of the benchmark's 130 bytes.
BLOCK_BYTES_PER_ROW = 100


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

    def __init__(self, load: TableLoad):
        copy_batch_size = max(load.batch_size, int(conf.get("COPY_BATCH_SIZE")) // load.side_by_side)
        self.table = TableLoader(dataclasses.replace(load, batch_size=copy_batch_size))
        self.table.chain.batch_size = load.batch_size  # the fallback writes --batch-size batches
        self.model = load.model
        self.ledger = self.table.ledger
        self.chain = self.table.chain
        self.connection = self.table.inserter.connection
        qn = self.connection.ops.quote_name
        fields = self.converter.fields
        self.copy_sql = (
            f"COPY {qn(self.model._meta.db_table)} ({', '.join(qn(column_of(f)) for f in fields)}) FROM STDIN"
        )
        self.adapters = [
            (index, adapter) for index, f in enumerate(fields) if (adapter := copy_adapter(f, self.connection))
        ]
        #: Datetime columns whose backup text, when it is plain ISO 8601 with an offset, is copied
        #: as it is (see ISO_WITH_OFFSET): Django's own DateTimeField only (a subclass may change
        #: the value), and only where one key can feed the field.
        self.iso_texts = [
            (index, f.attname)
            for index, f in enumerate(fields)
            if type(f) is models.DateTimeField and f.name == f.attname == f.column
        ]
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

    def load(self, rows: Iterable[PositionedRow], blocks: BlockSource | None = None, processes: int = 1) -> TableResult:
        """Load ``rows``; with ``blocks`` (the same rows, as blocks of JSON Lines) and
        ``processes`` > 1, prepared by that many forked processes (:mod:`.forked`)."""
        if self.table.dry_run or self.converter.may_query_database:
            # Batch by batch: converted (queries included), parents checked, then copied.
            return self.table.load(rows, write=self._copy_batch)
        if blocks is not None and processes > 1:
            return self._pipeline(self._prepared_in_processes(blocks, processes))
        return self._pipeline(self._prepared_here(rows))

    def prepare(self, rows: Iterable[PositionedRow]) -> PreparedBatch:
        """Convert and format a batch for COPY, counting nothing: this may run in another process."""
        convert = self.converter.convert
        pk_index = self.converter.pk_index
        nulled = self.table.nulled_indexes
        keyed: list[tuple[list[Any], dict[str, Any]]] = []
        rejected: list[tuple[int, dict[str, Any], str]] = []
        numbered: list[tuple[int, dict[str, Any], list[Any]]] = []
        read = 0
        for position, row in rows:
            read += 1
            try:
                values = convert(row)
            except ConversionError as exc:
                rejected.append((position, row, str(exc)))
                continue
            for index in nulled:
                values[index] = None
            if pk_index is not None and values[pk_index] is None:
                numbered.append((position, row, values))
            else:
                keyed.append((values, row))
        return PreparedBatch(read, self._copy_text(keyed), len(keyed), rejected, numbered)

    def _prepared_here(self, rows: Iterable[PositionedRow]) -> Generator[tuple[PreparedBatch, Callable], None, None]:
        for batch in batched(rows, self.table.batch_size):
            self.table.stop_if_asked()
            yield self.prepare(batch), lambda batch=batch: batch

    def _prepared_in_processes(
        self, blocks: BlockSource, processes: int
    ) -> Generator[tuple[PreparedBatch, Callable], None, None]:
        """Blocks of the file prepared in forked processes, in order (a block that failed there is
        prepared again here, raising what it raises without them)."""
        _ = self._formatter  # built before the fork, for the children to use
        logger.info("%s: rows converted in %d forked processes", self.model._meta.label, processes)
        converter = self.converter

        def prepare_block(block: bytes, first_line: int) -> tuple[PreparedBatch, tuple[set, set, int]]:
            dropped = converter.dropped_values
            prepared = self.prepare(blocks.rows(first_line, block))
            drift = (converter.unknown_columns, converter.missing_columns, converter.dropped_values - dropped)
            converter.dropped_values = dropped  # counted once, where the result arrives
            return prepared, drift

        block_bytes = int(conf.get("COPY_BATCH_SIZE")) * BLOCK_BYTES_PER_ROW
        sized = ((block, first_line) for first_line, block in blocks.blocks(block_bytes))
        with contextlib.closing(ordered_map(prepare_block, sized, processes, 2 * block_bytes)) as results:
            for block, first_line, result in results:
                self.table.stop_if_asked()
                prepared, (unknown, missing, dropped) = result or prepare_block(block, first_line)
                converter.unknown_columns |= unknown
                converter.missing_columns |= missing
                converter.dropped_values += dropped
                yield prepared, functools.partial(blocks.rows, first_line, block)

    def _pipeline(
        self, batches: Generator[tuple[PreparedBatch, Callable[[], Iterable[PositionedRow]]], None, None]
    ) -> TableResult:
        """COPY batch N in a second thread while batch N+1 is prepared (see the module docstring).

        ``batches``: each batch prepared, with how to read its rows again (for the ORM chain,
        should its COPY fail). The connection belongs to the COPY thread while a batch is in
        flight; this thread touches it again only once that batch is done.
        """
        in_flight: tuple[Future, PreparedBatch, Callable] | None = None
        in_transaction = self.connection.in_atomic_block
        with (
            checked_as_copied(self.connection, self.model, self.table.settled_foreign_keys) as checked,
            contextlib.closing(batches),
            _quick_thread_switches(),
            ThreadPoolExecutor(1, thread_name_prefix="dbrestore-copy") as copier,
        ):
            try:
                for prepared, rows_again in batches:
                    self._record(prepared)
                    if in_flight is not None:
                        finishing, in_flight = in_flight, None  # counted once, even if _finish raises
                        self._finish(*finishing)
                    in_flight = (copier.submit(self._copy_data, prepared.data, in_transaction), prepared, rows_again)
            except BaseException:
                if in_flight is not None:
                    self._count_if_copied(*in_flight)
                raise
            if in_flight is not None:
                self._finish(*in_flight)
        self.checked_foreign_keys = checked
        return self.table.result

    def _record(self, prepared: PreparedBatch) -> None:
        """Count a prepared batch's rows as read, and reject the ones that could not be converted."""
        self.ledger.read(prepared.read)
        for position, row, reason in prepared.rejected:
            self.ledger.reject(position, row, reason)

    def _count_if_copied(self, copying: Future, prepared: PreparedBatch, rows_again: Callable) -> None:
        """After a failure mid-load, count the batch in flight if its COPY went in (with
        ``--no-atomic`` it committed by itself), so that the run's counts do not lag the table."""
        with contextlib.suppress(Exception):
            if copying.result() is None and prepared.copied:
                self.ledger.copied(prepared.copied)

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

    def _copy_text(self, rows: list[tuple[list[Any], dict[str, Any]]]) -> bytes | DatabaseError:
        """``(values, row)`` pairs as COPY text (the values adapted in place), formatted before
        the COPY thread only has to send them; or the error that stopped it (a value psycopg
        cannot adapt: the batch takes the ORM path)."""
        formatter = self._formatter
        write_row = formatter.write_row
        try:
            with self.connection.wrap_database_errors:
                if self.adapters or self.iso_texts:
                    adapt = self._adapt
                    chunks = [data for values, row in rows if (data := write_row(adapt(values, row)))]
                else:
                    chunks = [data for values, _ in rows if (data := write_row(values))]
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

    def _finish(
        self, copying: Future, prepared: PreparedBatch, rows_again: Callable[[], Iterable[PositionedRow]]
    ) -> None:
        """Wait for a batch's COPY in the COPY thread, then settle the batch."""
        numbered = [PendingRow(position, row, values, self.model) for position, row, values in prepared.numbered]
        self._settle(prepared.copied, copying.result(), lambda: self._keyed_again(prepared, rows_again), numbered)
        self.table.batch_done()

    def _keyed_again(
        self, prepared: PreparedBatch, rows_again: Callable[[], Iterable[PositionedRow]]
    ) -> list[PendingRow]:
        """The rows of a prepared batch that went to the COPY, converted again for the ORM chain
        (the COPY failed): every row but the ones rejected or numbered, which convert as before."""
        apart = {position for position, *_ in prepared.rejected} | {position for position, *_ in prepared.numbered}
        converter = self.converter
        dropped = converter.dropped_values
        pending = []
        for position, row in rows_again():
            if position not in apart:
                values = converter.convert(row)
                for index in self.table.nulled_indexes:
                    values[index] = None
                pending.append(PendingRow(position, row, values, self.model))
        converter.dropped_values = dropped  # counted when the batch was prepared
        return pending

    def _settle(
        self,
        copied: int,
        error: DatabaseError | None,
        keyed: Callable[[], list[PendingRow]],
        numbered: list[PendingRow],
    ) -> None:
        """Count a batch's copied rows, or send them through the ORM chain if the COPY failed
        (after rejecting the rows whose parent is missing, the likely cause); the rows without a
        primary key go through the ORM chain too, since the database numbers them."""
        settled = self.table.settled_foreign_keys
        if error is None:
            if copied:
                self.ledger.copied(copied)
        else:
            logger.debug(
                "%s: COPY of %d rows failed (%s); the ORM path takes this batch", self.model._meta.label, copied, error
            )
            self.chain.write(self.table.parents.keep_present(keyed(), settled))
        if numbered:
            self.chain.write(self.table.parents.keep_present(numbered, settled))

    def _copy_batch(self, pending: list[PendingRow]) -> None:
        """COPY an already converted batch in this thread (the path without the pipeline), then
        settle it as the pipeline does."""
        keyed, numbered = self._split_by_key(pending)
        data = self._copy_text([(list(p.values), p.row) for p in keyed])  # the ORM chain may need p.values yet
        self._settle(len(keyed), self._copy_data(data, self.connection.in_atomic_block), lambda: keyed, numbered)

    def _adapt(self, values: list[Any], row: dict[str, Any]) -> list[Any]:
        """``values`` as COPY writes them, changed in place (they are used for nothing else)."""
        for index, adapter in self.adapters:
            values[index] = adapter(values[index])
        for index, key in self.iso_texts:
            text = row.get(key)
            if text.__class__ is str and values[index] is not None and ISO_WITH_OFFSET(text):
                values[index] = text
        return values


@dataclass
class PreparedBatch:
    """A batch made ready for COPY, here or in a forked process (:mod:`.forked`): what the
    restoring process needs to count it, copy it, and take it through the ORM chain instead."""

    read: int  # rows read: each ends inserted, skipped or rejected
    data: bytes | DatabaseError  # the keyed rows as COPY text, or the error that stopped formatting them
    copied: int  # rows in ``data``
    rejected: list[tuple[int, dict[str, Any], str]]  # (position, row, reason): rows that cannot be converted
    numbered: list[tuple[int, dict[str, Any], list[Any]]]  # (position, row, values): no primary key given


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
