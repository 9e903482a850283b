"""One table compared, batch by batch, in flat memory: backup rows converted as the restore
converts them, the database's rows fetched for the same primary keys, compared value by value.

Two ways, both one query per batch of backup rows:

* **by ranges** (integer and UUID primary keys, a backup in primary-key order as ``create_backup``
  and ``dumpdata`` write it): the database's rows of the batch's key range, in key order, merged
  with the batch. A database row that the batch lacks is one the backup does not hold (removed
  under replace), found with its key; so are the rows after the backup's last key.
* **by keys** (any other backup): the database's rows whose keys the batch holds. The rows the
  backup lacks are counted (the table's rows minus those matched), without samples.

A backup found out of order while read by ranges is compared again by keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.db import models, transaction

from dbrestore.compare.reading import ReadAhead
from dbrestore.compare.report import ChangedRow, RejectedRow, TableDiff, same
from dbrestore.compare.unkeyed import owners_rows, stored_by_unique, unique_positions
from dbrestore.convert import ConversionError
from dbrestore.convert.row_converter import DeferredNaturalKey, RowConverter
from dbrestore.convert.rule import INTEGER_TYPES
from dbrestore.plan.build import PlannedTable
from dbrestore.sources import PositionedRow
from dbrestore.sources.base import batched

#: Backup rows compared per database query.
BATCH_ROWS = 5_000
#: A range query reads at most this many batches of database rows at once (a sparse backup's
#: range holds more: they are streamed).
READ_AHEAD = 4
#: Primary key types whose order is the same in Python and in the database (ranges are exact).
_RANGED = INTEGER_TYPES | {"UUIDField"}

#: An FK from a model outside the backup into this table: (that model, the FK).
Watcher = tuple[type[models.Model], models.ForeignKey[Any, Any]]


def differing(names: list[str], stored: tuple, values: list[Any]) -> dict[str, tuple[Any, Any]]:
    """The fields whose stored value differs from the value the restore would store, as
    ``{name: (old, new)}``: the one test of "the same row" that the diff and the undelete's preview
    share. A natural key not found yet is no difference (nothing can be told)."""
    if tuple(values) == stored:
        return {}
    return {
        names[i]: (old, new)
        for i, (old, new) in enumerate(zip(stored, values, strict=True))
        if new.__class__ is not DeferredNaturalKey and not same(old, new)
    }


def stored_by_keys(converter: RowConverter, keys: list[Any], *, using: str) -> dict[Any, tuple]:
    """The database's rows with these primary keys (any number: queried in batches), as the ORM
    reads them, by key."""
    manager = converter.model._base_manager.using(using)
    names = [f.attname for f in converter.fields]
    pk_index = converter.pk_index
    found: dict[Any, tuple] = {}
    for start in range(0, len(keys), BATCH_ROWS):
        rows = manager.filter(pk__in=keys[start : start + BATCH_ROWS]).values_list(*names)
        with transaction.atomic(using=using):  # a read: its locks last as long as this batch
            for stored in rows.iterator(chunk_size=BATCH_ROWS):
                found[stored[pk_index] if pk_index is not None else converter.pk_of(list(stored))] = stored
    return found


class OutOfOrder(Exception):
    """The backup's rows are not in ascending primary-key order: compared by keys instead."""


class TableComparison:
    """Compares one planned table with its database table into ``diff``. ``removes``: the restore
    deletes the database rows the backup lacks (replace). ``watchers``: outside FKs into this
    table, whose rows pointing to a removed row are counted in ``pointing``."""

    def __init__(
        self,
        planned: PlannedTable,
        diff: TableDiff,
        *,
        using: str,
        mode: str,
        watchers: Iterable[Watcher] = (),
        batch_rows: int = BATCH_ROWS,
    ):
        self.planned = planned
        self.model = model = planned.model
        self.diff = diff
        self.using = using
        self.removes = mode == "replace"
        self.merges = mode == "merge"
        #: Rows whose primary key an earlier row of their batch has: compared once.
        self.repeated = 0
        self.batch_rows = batch_rows
        self.converter = RowConverter(model, using=using, defer_natural_keys=mode in ("replace", "merge"))
        self.names = [f.attname for f in self.converter.fields]
        self.manager = model._base_manager.using(using)
        pk = model._meta.pk
        self.ranged = pk.concrete and self.converter.pk_index is not None and pk.get_internal_type() in _RANGED
        #: Rows without a key are found by this unique set of columns where the rows stay (merge, append).
        self.unique = None if self.removes else unique_positions(model, self.names)
        self.matched_unkeyed = 0
        self.watchers = list(watchers)
        #: Per watcher: [rows pointing to removed rows, an example pk of them].
        self.pointing: dict[Watcher, list[Any]] = {watcher: [0, None] for watcher in self.watchers}
        self._removed_keys: list[Any] = []

    def run(self) -> TableDiff:
        if self.ranged:
            try:
                self._by_ranges()
                return self._noted()
            except OutOfOrder:
                self._start_again()
        self._by_keys()
        return self._noted()

    def _noted(self) -> TableDiff:
        given = owners_rows(self.planned, self.converter, self.using) if self.merges else None
        if given is not None:  # a fixture's lists, set exactly: what its owners hold beyond them goes
            self.diff.removed = max(0, given - self.matched_unkeyed)
            if self.diff.removed:
                self.diff.notes.append(
                    "a merge sets each object's list exactly: removed rows are counted, without samples"
                )
        if self.repeated:
            self.diff.notes.append(
                f"{self.repeated} rows repeat the primary key of a row before them: compared once "
                f"(the restore {'updates the row again' if self.merges else 'skips them'})"
            )
        return self.diff

    def _start_again(self) -> None:
        d = self.diff
        d.added = d.changed = d.removed = d.unchanged = d.rejected = 0
        d.added_pks, d.changed_rows, d.removed_pks, d.rejected_rows = [], [], [], []
        self.pointing = {watcher: [0, None] for watcher in self.watchers}
        self._removed_keys = []
        self.repeated = self.matched_unkeyed = 0

    # -- the two ways -------------------------------------------------------------------------

    def _by_ranges(self) -> None:
        """Batch after batch, the database's rows of the batch's key range are read while the
        next batch is read and converted (:class:`ReadAhead`), then merged with it."""
        low = None  # the last key of the batch before: this batch's range starts after it
        pending: tuple[dict[Any, list[Any]], Any, Callable[[], list[tuple]]] | None = None
        with ReadAhead(self.using) as ahead:
            for batch in batched(self.planned.data.rows(), self.batch_rows):
                keyed = self._converted(batch)
                if not keyed:
                    continue
                keys = list(keyed)
                if any(a >= b for a, b in zip(keys, keys[1:], strict=False)) or (low is not None and keys[0] <= low):
                    raise OutOfOrder
                stored = ahead.submit(self._range, low, keys[-1])
                if pending is not None:
                    self._merge(*pending)
                pending, low = (keyed, keys[-1], stored), keys[-1]
            if pending is not None:
                self._merge(*pending)
        rest = self.manager.all() if low is None else self.manager.filter(pk__gt=low)
        self._flush_removed()
        if self.removes:
            self._removed_after(rest, low)

    def _range(self, low: Any, high: Any) -> list[tuple]:
        """The database's rows with keys after ``low`` up to ``high``, in key order: at most
        ``READ_AHEAD`` batches of them (:meth:`_merge` reads on from the last one)."""
        rows = self.manager.filter(pk__lte=high)
        if low is not None:
            rows = rows.filter(pk__gt=low)
        return list(rows.order_by("pk").values_list(*self.names)[: self.batch_rows * READ_AHEAD])

    def _merge(self, keyed: dict[Any, list[Any]], high: Any, stored: Callable[[], list[tuple]]) -> None:
        pk_index = self.converter.pk_index
        assert pk_index is not None  # (ranged: a single-column key)
        rows = stored()
        self._merge_rows(keyed, rows)
        if len(rows) == self.batch_rows * READ_AHEAD:  # a sparse backup: the rest of its range, streamed
            rest = self.manager.filter(pk__gt=rows[-1][pk_index], pk__lte=high).order_by("pk")
            with transaction.atomic(using=self.using):  # a read: its locks last as long as this batch
                self._merge_rows(keyed, self._stored(rest))
        self._added(keyed)

    def _merge_rows(self, keyed: dict[Any, list[Any]], rows: Iterable[tuple]) -> None:
        pk_index = self.converter.pk_index
        assert pk_index is not None
        for stored in rows:
            values = keyed.pop(stored[pk_index], None)
            if values is None:
                self._removed(stored[pk_index])
            else:
                self._compare(values, stored)

    def _by_keys(self) -> None:
        matched = 0
        rows_before = self.manager.count()
        for batch in batched(self.planned.data.rows(), self.batch_rows):
            keyed = self._converted(batch)
            if not keyed:
                continue
            for key, stored in stored_by_keys(self.converter, list(keyed), using=self.using).items():
                values = keyed.pop(key, None)
                if values is not None:
                    matched += 1
                    self._compare(values, stored)
            self._added(keyed)
        if self.removes:
            self.diff.removed = max(0, rows_before - matched)
            if self.diff.removed:
                self.diff.notes.append(
                    "the backup's rows are not in primary-key order: removed rows are counted, without samples"
                    + (" nor the outside rows pointing to them" if self.watchers else "")
                )

    # -- the steps ----------------------------------------------------------------------------

    def _stored(self, rows: models.QuerySet) -> Iterator[tuple]:
        """The database's rows, as the ORM reads them (each field's own ``from_db_value``)."""
        return rows.values_list(*self.names).iterator(chunk_size=self.batch_rows)

    def _converted(self, batch: list[PositionedRow]) -> dict[Any, list[Any]]:
        """The batch's rows converted as the restore converts them, by primary key, in the
        backup's order; a row the restore would reject is counted and sampled here, with the
        reason; a row without a key (the database numbers it) is added."""
        converter, diff = self.converter, self.diff
        convert, pk_of = converter.convert, converter.pk_of
        identify = converter.identify if converter.identifies_by_natural_key else None
        keyed: dict[Any, list[Any]] = {}
        unkeyed: list[list[Any]] = []
        for position, row in batch:
            try:
                values = convert(row)
                if identify is not None:
                    identify(values)
            except ConversionError as exc:
                diff.rejected += 1
                diff.sample(diff.rejected_rows, RejectedRow(position, self._raw_pk(row), str(exc)))
                continue
            key = pk_of(values)
            if key is None or (isinstance(key, tuple) and None in key):
                if self.unique is None:
                    diff.added += 1
                else:
                    unkeyed.append(values)
                continue
            if key in keyed:  # the restore keeps the first (merge: the last) of rows with one key
                self.repeated += 1
                if not self.merges:
                    continue
            keyed[key] = values
        if unkeyed:
            self._match_unkeyed(unkeyed)
        return keyed

    def _match_unkeyed(self, rows: list[list[Any]]) -> None:
        """Rows without a key, compared with the database's row holding their unique values
        (the key aside), or added."""
        assert self.unique is not None and self.converter.pk_index is not None
        pk_index, positions = self.converter.pk_index, self.unique
        found = stored_by_unique(self.manager, self.names, positions, rows)
        for values in rows:
            stored = found.pop(tuple(values[i] for i in positions), None)
            if stored is None:
                self.diff.added += 1
                continue
            values[pk_index] = stored[pk_index]
            self.matched_unkeyed += 1
            self._compare(values, stored)

    def _raw_pk(self, row: dict[str, Any]) -> Any:
        pk = self.model._meta.pk
        for name in (pk.attname, pk.name, "pk", "id"):
            if name in row:
                return row[name]
        return None

    def _compare(self, values: list[Any], stored: tuple) -> None:
        diff = self.diff
        fields = differing(self.names, stored, values)
        if not fields:
            diff.unchanged += 1
            return
        diff.changed += 1
        diff.sample(diff.changed_rows, ChangedRow(self.converter.pk_of(values), fields))

    def _added(self, keyed: dict[Any, list[Any]]) -> None:
        diff = self.diff
        diff.added += len(keyed)
        for key in keyed:
            if len(diff.added_pks) >= diff.samples_wanted:
                break
            diff.added_pks.append(key)

    def _removed(self, key: Any) -> None:
        if not self.removes:
            return
        diff = self.diff
        diff.removed += 1
        diff.sample(diff.removed_pks, key)
        if self.watchers:
            self._removed_keys.append(key)
            if len(self._removed_keys) >= self.batch_rows:
                self._flush_removed()

    def _flush_removed(self) -> None:
        """Count the outside rows that point to the removed rows noted so far."""
        keys, self._removed_keys = self._removed_keys, []
        if keys:
            for watcher in self.watchers:
                self._point(watcher, {f"{watcher[1].attname}__in": keys})

    def _removed_after(self, rest: models.QuerySet, low: Any) -> None:
        """The database rows after the backup's last key: none of them is in the backup."""
        diff = self.diff
        diff.removed += rest.count()
        wanted = diff.samples_wanted - len(diff.removed_pks)
        if wanted > 0:
            diff.removed_pks.extend(rest.order_by("pk").values_list("pk", flat=True)[:wanted])
        for watcher in self.watchers:
            column = watcher[1].attname
            self._point(watcher, {f"{column}__isnull": False} if low is None else {f"{column}__gt": low})

    def _point(self, watcher: Watcher, lookup: dict[str, Any]) -> None:
        model, _ = watcher
        rows = model._base_manager.using(self.using).filter(**lookup)
        count = rows.count()
        if count:
            tally = self.pointing[watcher]
            tally[0] += count
            if tally[1] is None:
                tally[1] = rows.order_by("pk").values_list("pk", flat=True).first()
