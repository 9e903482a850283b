"""Reading a selection's rows from the backup: each row picked once, converted as the restore
would store it, with why it comes back (:class:`Collection`); which rows to read is
:mod:`dbrestore.select.graph`'s.

Foreign keys written as natural keys (``dumpdata --natural-foreign``) are followed: a key the
database no longer holds is looked for in the backup (one pass over the parent's table for all
the keys wanted at that point), the rows that named it are picked once it is found, and a
nullable one is filled in before anything is written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.db import models

from dbrestore.convert import ConversionError
from dbrestore.convert.fields import target_model
from dbrestore.convert.row_converter import (
    DeferredNaturalKey,
    NaturalKeyNotFound,
    RowConverter,
    build_instance,
)
from dbrestore.plan.build import Plan, PlannedTable

Model = type[models.Model]
#: A test on one backup row, given its converter and the row: whether the row is wanted, and why.
RowTest = Callable[[RowConverter, dict[str, Any]], str | None]


@dataclass
class Picked:
    """A backup row the selection brings back: its values as the restore would store them."""

    values: list[Any]
    why: str  # "selected", "belongs to shop.Customer 42", "needed by shop.Order 7"
    position: Any


@dataclass
class Collection:
    """What a selection brings back, by model, in the plan's load order (parents first)."""

    plan: Plan
    rows: dict[Model, dict[Any, Picked]] = field(default_factory=lambda: defaultdict(dict))
    #: Rows the walk needed but could not read or find: (label, where, reason).
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    passes: int = 0  # tables read, all levels together

    def picked(self) -> list[tuple[PlannedTable, dict[Any, Picked]]]:
        return [(table, self.rows[table.model]) for table in self.plan.tables if self.rows.get(table.model)]

    @property
    def total(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


class ThroughPair(NamedTuple):
    """The key of an auto-created many-to-many row the backup holds without its own id (a dumpdata
    fixture's M2M list): the two rows it links. The database numbers it when it is added."""

    source: Any
    target: Any

    def __repr__(self) -> str:  # in the preview's samples: the two keys it links
        return f"({self.source!r}, {self.target!r})"


@dataclass
class Waiting:
    """A wanted row that names, by natural key, a row neither the database nor the walk has yet."""

    model: Model
    position: Any
    row: dict[str, Any]
    why: str
    missing: NaturalKeyNotFound
    joins_frontier: bool  # a row the walk's test wanted (not one found for a natural key)


class Walk:
    def __init__(self, plan: Plan, using: str):
        self.plan = plan
        self.using = using
        self.tables = {table.model: table for table in plan.tables}
        self.converters: dict[Model, RowConverter] = {}
        self.found = Collection(plan)
        #: Picked rows of models with natural keys, by their natural key and by primary key.
        self.by_natural_key: dict[Model, dict[tuple, models.Model]] = defaultdict(dict)
        self.natural_keys: dict[Model, dict[Any, tuple]] = defaultdict(dict)
        #: Natural keys to look for in the backup (key -> the row that needs it), those looked for.
        self.wanted: dict[Model, dict[tuple, str]] = defaultdict(dict)
        self.searched: set[tuple[Model, tuple]] = set()
        self.waiting: list[Waiting] = []
        #: Nullable natural-key FKs of picked rows, filled in once the walk has found their rows.
        self.deferred: list[tuple[Model, Any, int, models.ForeignKey, DeferredNaturalKey]] = []

    def converter(self, model: Model) -> RowConverter:
        if model not in self.converters:
            self.converters[model] = RowConverter(
                model, using=self.using, defer_natural_keys=True, known_natural_keys=self.by_natural_key
            )
        return self.converters[model]

    def read(self, model: Model, test: RowTest) -> list[Any]:
        """One pass over ``model``'s table: the rows ``test`` wants are picked; their keys returned
        (with those of ``model`` that natural keys found in the backup let in)."""
        table = self.tables.get(model)
        if table is None:
            return []
        self.found.passes += 1
        converter, new = self.converter(model), []
        for position, row in table.data.rows():
            why = test(converter, row)
            if why is not None:
                pk = self.take(model, position, row, why)
                if pk is not None:
                    new.append(pk)
        new.extend(self.follow_natural_keys().get(model, []))
        return new

    def take(self, model: Model, position: Any, row: dict[str, Any], why: str, *, joins_frontier: bool = True) -> Any:
        """Pick one wanted row; its primary key, or None when it was picked already, waits for a
        natural key or cannot be converted (a problem)."""
        converter, table = self.converter(model), self.tables[model]
        where = f"{table.data.origin} row {position}"
        try:
            values = converter.convert(row)
        except ConversionError as exc:
            if isinstance(exc.__cause__, NaturalKeyNotFound):
                self._want(exc.__cause__.model, exc.__cause__.key, f"{table.label} {where}")
                self.waiting.append(Waiting(model, position, row, why, exc.__cause__, joins_frontier))
            else:
                self.found.problems.append((table.label, where, str(exc)))
            return None
        pk = converter.pk_of(values)
        if pk is None and model._meta.auto_created:  # a dumpdata M2M row: the pair is its identity
            pk = ThroughPair(*(v for f, v in zip(converter.fields, values, strict=True) if not f.primary_key))
        elif pk is None:
            reason = "the row has no primary key (a --natural-primary backup?): --select restores rows by primary key"
            self.found.problems.append((table.label, where, reason))
            return None
        if pk in self.found.rows[model]:
            return None
        for index, deferred in converter.take_deferred(values):
            fk = converter.fields[index]
            assert isinstance(fk, models.ForeignKey)  # only natural-key FKs are deferred
            self.deferred.append((model, pk, index, fk, deferred))
            self._want(target_model(fk), tuple(deferred.key), f"{table.label} {pk}")
        self._pick(model, pk, Picked(values, why, position))
        return pk

    def _want(self, model: Model, key: tuple, needed_by: str) -> None:
        if (model, key) not in self.searched:
            self.wanted[model].setdefault(key, needed_by)

    def _pick(self, model: Model, pk: Any, picked: Picked) -> None:
        self.found.rows[model][pk] = picked
        key = self.natural_key_of(model, picked.values)
        if key is not None:
            self.natural_keys[model][pk] = key
            self.by_natural_key[model][key] = build_instance(model, picked.values)

    def natural_key_of(self, model: Model, values: list[Any]) -> tuple | None:
        """The row's natural key by the model's own ``natural_key()``; None for a model without
        one, or a row it cannot be made for."""
        if not hasattr(model, "natural_key"):
            return None
        obj: Any = build_instance(model, [None if isinstance(v, DeferredNaturalKey) else v for v in values])
        obj._state.db = self.using
        try:
            return tuple(obj.natural_key())
        except Exception:  # the project's method, on a row that may lack what it reads
            return None

    def follow_natural_keys(self) -> dict[Model, list[Any]]:
        """Look in the backup for the natural keys wanted, and pick the rows that waited for them,
        until nothing more comes in; the keys of the rows picked that join the frontier, by model."""
        picked: dict[Model, list[Any]] = defaultdict(list)
        progress = True
        while progress:
            progress = False
            wanted, self.wanted = self.wanted, defaultdict(dict)
            for model, keys in wanted.items():
                progress = bool(self._search(model, keys)) or progress
            waiting, self.waiting = self.waiting, []
            for row in waiting:
                pk = self.take(row.model, row.position, row.row, row.why, joins_frontier=row.joins_frontier)
                if pk is not None:
                    progress = True
                    if row.joins_frontier:
                        picked[row.model].append(pk)
            progress = progress or bool(self.wanted)
        return picked

    def _search(self, model: Model, keys: dict[tuple, str]) -> list[Any]:
        """One pass over ``model``'s table for the rows with these natural keys."""
        keys = {key: why for key, why in keys.items() if key not in self.by_natural_key[model]}
        self.searched.update((model, key) for key in keys)
        table = self.tables.get(model)
        if not keys or table is None or not hasattr(model, "natural_key"):
            return []
        self.found.passes += 1
        converter, new = self.converter(model), []
        for position, row in table.data.rows():
            if row.__class__ is not dict:
                continue
            key = self.natural_key_of(model, converter.convert_leniently(row))
            if key in keys:
                pk = self.take(model, position, row, f"needed by {keys[key]}", joins_frontier=False)
                if pk is not None:
                    new.append(pk)
        return new

    def finish(self) -> None:
        """Fill in the deferred natural keys; rows still waiting, or keys found nowhere, are problems."""
        self.follow_natural_keys()
        for model, pk, index, fk, deferred in self.deferred:
            known = self.by_natural_key[target_model(fk)].get(tuple(deferred.key))
            if known is None:
                label = self.tables[model].label
                self.found.problems.append((label, f"pk {pk!r}", _found_nowhere(target_model(fk), deferred.key)))
            else:
                self.found.rows[model][pk].values[index] = getattr(known, fk.target_field.attname)
        for row in self.waiting:
            table = self.tables[row.model]
            where = f"{table.data.origin} row {row.position}"
            self.found.problems.append((table.label, where, _found_nowhere(row.missing.model, row.missing.key)))


def _found_nowhere(model: Model, key: Iterable[Any]) -> str:
    label = model._meta.label
    return f"it needs the {label} with natural key {list(key)!r}, which neither the database nor the backup holds"
