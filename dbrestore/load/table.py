"""One table's load through the ORM: read -> convert -> check parents -> write, batch by batch.

The pieces are composed, each in its room: :class:`~dbrestore.convert.row_converter.RowConverter`
(values as loaddata stores them), :class:`~dbrestore.integrity.ParentCheck` (rows whose parent
is missing), :class:`~dbrestore.load.insert.FallbackChain` (the INSERTs), and the table's
:class:`~dbrestore.load.ledger.Ledger`, where every row is counted once. The COPY path
(:mod:`dbrestore.load.copy`) uses the same pieces with its own writer.

Between batches the loader asks ``should_stop`` whether to go on (a cancelled run, another
table's failure with ``--jobs``): control never comes back through the progress listeners,
which ``on_batch`` only informs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import models

from dbrestore.convert import ConversionError
from dbrestore.convert.row_converter import ByNaturalKey, DeferredNaturalKey, RowConverter
from dbrestore.exceptions import RestoreCancelled
from dbrestore.integrity import ForeignKeyEdge, ParentCheck
from dbrestore.load.insert import FallbackChain, Inserter
from dbrestore.load.ledger import Ledger
from dbrestore.load.rejects import RejectsFile
from dbrestore.load.rows import PendingRow
from dbrestore.runs.report import TableResult
from dbrestore.sources import PositionedRow
from dbrestore.sources.base import batched


class StopCheck(Protocol):
    """The reason to stop, or None to go on; asked at its own pace unless ``force``."""

    def __call__(self, force: bool = False) -> str | None: ...


def never_stop(force: bool = False) -> str | None:
    """The watch of a load nobody can cancel (no RestoreRun behind it)."""
    return None


@dataclass(frozen=True)
class TableLoad:
    """What one table's load is told: the one argument of :class:`TableLoader` and
    :class:`~dbrestore.load.copy.CopyTableLoader`.

    ``fk_checks``: FKs whose parents are already complete, checked per batch.
    ``settled_foreign_keys``: FKs whose parents are already complete, left to the database
    (the COPY path checks them as it goes, see :mod:`dbrestore.load.copy`).
    ``nulled_fields``: FK fields loaded as NULL and filled in later (``--no-atomic`` only).
    ``log_skipped``: write rows skipped as duplicates to the rejects file too.
    ``side_by_side``: tables loading at the same time (``--jobs``), which share the memory budget.
    ``should_stop``: asked before each batch; a reason stops the load with RestoreCancelled.
    """

    model: type[models.Model]
    using: str
    batch_size: int
    result: TableResult
    rejects: RejectsFile
    mode: str = "replace"
    dry_run: bool = False
    on_batch: Callable[[TableResult], None] | None = None
    fk_checks: Sequence[ForeignKeyEdge] = ()
    settled_foreign_keys: Sequence[ForeignKeyEdge] = ()
    nulled_fields: Sequence[models.Field] = ()
    log_skipped: bool = False
    side_by_side: int = 1
    should_stop: StopCheck = never_stop


class TableLoader:
    """Loads one table's rows in batches through the fallback chain, counting every row."""

    def __init__(self, load: TableLoad):
        if load.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        model, using = load.model, load.using
        self.model = model
        self.using = using
        self.batch_size = load.batch_size
        self.result = load.result
        self.rejects = load.rejects
        self.dry_run = load.dry_run
        self.on_batch = load.on_batch or (lambda result: None)
        self.should_stop = load.should_stop
        # Forward natural keys are filled in after the load in replace and merge modes (a merged
        # row takes the fixture's values, as loaddata's save does); in append mode the row may be
        # one that was already there, and kept.
        self.converter = RowConverter(model, using=using, defer_natural_keys=load.mode in ("replace", "merge"))
        self.inserter = Inserter(model, using, merge=load.mode == "merge")
        self.ledger = Ledger(
            model._meta.label,
            model._meta.db_table,
            load.result,
            load.rejects,
            log_skipped=load.log_skipped and load.mode != "merge",
        )
        self.chain = FallbackChain(self.inserter, self.ledger, batch_size=load.batch_size)
        self.parents = ParentCheck(self.converter.fields, using, self.ledger)
        self.fk_checks = list(load.fk_checks)
        self.settled_foreign_keys = list(load.settled_foreign_keys)
        #: FKs the database checked for every row of this load (no orphan sweep needed for them).
        self.checked_foreign_keys: list[ForeignKeyEdge] = []
        self.nulled_indexes = [self.converter.fields.index(f) for f in load.nulled_fields]
        self.side_by_side = load.side_by_side
        #: Rows loaded with NULL for a natural key not found yet: (position, row, pk, field, key).
        self.deferred_natural_keys: list[tuple[int, dict[str, Any], Any, models.Field, DeferredNaturalKey]] = []

    def load(
        self, rows: Iterable[PositionedRow], write: Callable[[list[PendingRow]], None] | None = None
    ) -> TableResult:
        """Load ``rows``; ``write`` (default: the fallback chain) takes each batch once its
        parents are checked."""
        write = write or self.chain.write
        for batch in batched(rows, self.batch_size):
            self.stop_if_asked()
            pending = self.convert(batch)
            if self.dry_run:
                self.ledger.passed(len(pending))
            else:
                pending = self.parents.keep_present(pending, self.fk_checks)
                if pending:
                    write(pending)
            self.batch_done()
        return self.result

    def stop_if_asked(self) -> None:
        reason = self.should_stop()
        if reason:
            raise RestoreCancelled(reason)

    def batch_done(self) -> None:
        """After a batch is settled: forget its queries, tell the listeners."""
        self.forget_queries()
        self.on_batch(self.result)

    def forget_queries(self) -> None:
        """With DEBUG on, Django keeps the last 9,000 queries' SQL: megabytes per batch here."""
        connection = self.inserter.connection
        if connection.queries_logged:
            connection.queries_log.clear()

    def convert(self, batch: list[PositionedRow]) -> list[PendingRow]:
        """The batch's rows converted; a row that cannot be is rejected here, with the reason.
        In one loop where no natural key or nulled FK needs a look at each row (a generator step
        per row was a fifth of the time around the conversion)."""
        if self.converter.deferrable_positions or self.nulled_indexes or self.converter.identifies_by_natural_key:
            return list(self._converted(batch))
        convert, model, ledger = self.converter.convert, self.model, self.ledger
        pending: list[PendingRow] = []
        append = pending.append
        ledger.read(len(batch))
        for position, row in batch:
            try:
                values = convert(row)
            except ConversionError as exc:
                ledger.reject(position, row, str(exc))
                continue
            append(PendingRow(position, row, values, model))
        return pending

    def _converted(self, batch: Iterable[PositionedRow]) -> Iterator[PendingRow]:
        """:meth:`convert` row by row: natural keys deferred, rows without a primary key
        identified by their natural key, FK columns nulled."""
        ledger, converter = self.ledger, self.converter
        for position, row in batch:
            ledger.read()
            try:
                values = converter.convert(row)
                deferred = converter.take_deferred(values)
                natural_key = converter.identify(values) if converter.identifies_by_natural_key else None
            except ConversionError as exc:
                ledger.reject(position, row, str(exc))
                continue
            if deferred and not self._defer(position, row, values, deferred, natural_key):
                continue
            for index in self.nulled_indexes:
                values[index] = None
            yield PendingRow(position, row, values, self.model)

    def _defer(
        self,
        position: int,
        row: dict[str, Any],
        values: list[Any],
        deferred: list[tuple[int, DeferredNaturalKey]],
        natural_key: tuple | None,
    ) -> bool:
        """Note the natural keys not found yet, to fill in after the load, against the row's
        primary key, or its own natural key when the database numbers it (loaddata finds such
        an object again the same way); False (the row rejected) when it has neither."""
        pk = self.converter.pk_of(values)
        if pk is None and natural_key is not None:
            pk = ByNaturalKey(natural_key)
        if pk is None:
            index, marker = deferred[0]
            self.ledger.reject(position, row, f"column {self.converter.fields[index].column!r}: {marker.reason}")
            return False
        for index, marker in deferred:
            self.deferred_natural_keys.append((position, row, pk, self.converter.fields[index], marker))
        return True
