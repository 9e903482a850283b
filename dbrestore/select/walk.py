"""The rows a selection brings back, found in the backup by walking the apps registry's graph.

Down from the selected rows to what Django's delete would have removed with them (the deletion
``Collector``'s walk: ``on_delete=CASCADE`` children, auto-created M2M rows, ``GenericRelation``
rows, multi-table-inheritance children and parents), then up to what every picked row needs (its
foreign keys and MTI parents), read from the backup only where the database no longer holds it.

Foreign keys written as natural keys (``dumpdata --natural-foreign``) are followed too: a key
the database no longer holds is looked for in the backup (one pass over the parent's table for
all the keys wanted at that point), and a row that points at a picked row by its natural key
belongs to it as one that points by primary key does.

Each pass reads only the tables it needs, one table once per level of the graph, and keeps only
the picked rows and the keys of the frontier: memory follows the selection, not the backup.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.contrib.contenttypes.fields import GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models

from dbrestore.convert import ConversionError
from dbrestore.convert.fields import column_of, target_model
from dbrestore.convert.row_converter import (
    DeferredNaturalKey,
    NaturalKeyNotFound,
    RowConverter,
    build_instance,
)
from dbrestore.exceptions import RestoreConfigError
from dbrestore.plan.build import Plan, PlannedTable
from dbrestore.select.lookups import Selection

logger = logging.getLogger(__name__)

Model = type[models.Model]
#: A test on one backup row, given its converter and the row: whether the row is wanted, and why.
RowTest = Callable[[RowConverter, dict[str, Any]], str | None]
QUERY_CHUNK = 500


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
        try:
            values = converter.convert(row)
        except ConversionError as exc:
            if isinstance(exc.__cause__, NaturalKeyNotFound):
                missing = exc.__cause__
                if (missing.model, missing.key) not in self.searched:
                    where = f"{table.label} {table.data.origin} row {position}"
                    self.wanted[missing.model].setdefault(missing.key, where)
                self.waiting.append(Waiting(model, position, row, why, missing, joins_frontier))
            else:
                self.found.problems.append((table.label, f"{table.data.origin} row {position}", str(exc)))
            return None
        pk = converter.pk_of(values)
        if pk is None and model._meta.auto_created:  # a dumpdata M2M row: the pair is its identity
            pk = ThroughPair(*(v for f, v in zip(converter.fields, values, strict=True) if not f.primary_key))
        elif pk is None:
            reason = "the row has no primary key (a --natural-primary backup?): --select restores rows by primary key"
            self.found.problems.append((table.label, f"{table.data.origin} row {position}", reason))
            return None
        picked = self.found.rows[model]
        if pk in picked:
            return None
        for index, deferred in converter.take_deferred(values):
            fk = converter.fields[index]
            assert isinstance(fk, models.ForeignKey)  # only natural-key FKs are deferred
            self.deferred.append((model, pk, index, fk, deferred))
            target = target_model(fk)
            if (target, tuple(deferred.key)) not in self.searched:
                self.wanted[target].setdefault(tuple(deferred.key), f"{table.label} {pk}")
        picked[pk] = Picked(values, why, position)
        key = self.natural_key_of(model, values)
        if key is not None:
            self.natural_keys[model][pk] = key
            self.by_natural_key[model][key] = build_instance(model, values)
        return pk

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


def collect(
    plan: Plan, selections: Iterable[Selection], *, using: str, depth: int | None = None, children: bool = True
) -> Collection:
    """The selected rows, what belongs to them (``children``, down to ``depth`` levels) and what
    they need; a selection of a model the backup does not hold is refused."""
    walk = Walk(plan, using)
    frontier: dict[Model, set[Any]] = defaultdict(set)
    for selection in selections:
        if selection.model not in walk.tables:
            raise RestoreConfigError(f"--select {selection.text!r}: the backup holds no rows of {selection.label}")
        frontier[selection.model].update(walk.read(selection.model, _matches(selection)))
    level = 0
    while frontier and children and (depth is None or level < depth):
        frontier = _down(walk, _with_parents(walk, frontier))
        level += 1
    _up(walk)
    walk.finish()
    return walk.found


def _matches(selection: Selection) -> RowTest:
    keys = selection.keys()

    def test(converter: RowConverter, row: dict[str, Any]) -> str | None:
        for key in keys:
            if key in row:
                try:
                    return "selected" if converter.value(key, row[key]) in selection.values else None
                except (ValueError, TypeError, ConversionError):
                    return None  # an unreadable value is no match; the row is not restored
        return None

    return test


def _with_parents(walk: Walk, frontier: dict[Model, set[Any]]) -> dict[Model, set[Any]]:
    """A multi-table child is one object with its parents' rows: Django deletes them together, so
    they join the frontier (their own children belong to the object too)."""
    frontier = {model: set(keys) for model, keys in frontier.items()}
    queue = list(frontier)
    while queue:
        model = queue.pop()
        for parent, link in model._meta.parents.items():
            if link is None:
                continue
            index = walk.converter(model).fields.index(link)
            wanted = {walk.found.rows[model][pk].values[index] for pk in frontier[model]} - set(walk.found.rows[parent])
            if wanted:
                new = walk.read(parent, _pk_in(wanted, f"part of {model._meta.label}"))
                frontier.setdefault(parent, set()).update(new)
                queue.append(parent)
    return frontier


def _pk_in(keys: set[Any], why: str) -> RowTest:
    def test(converter: RowConverter, row: dict[str, Any]) -> str | None:
        pk = converter.fields[converter.pk_index] if converter.pk_index is not None else None
        if pk is None:
            return None
        for key in (pk.name, pk.attname, "pk", "id"):
            if key in row:
                try:
                    return why if converter.value(pk.name, row[key]) in keys else None
                except (ValueError, TypeError, ConversionError):
                    return None
        return None

    return test


def _down(walk: Walk, frontier: dict[Model, set[Any]]) -> dict[Model, set[Any]]:
    """One level down: the rows whose delete the frontier's rows would cascade to."""
    tests: dict[Model, list[RowTest]] = defaultdict(list)
    for child in walk.tables:
        for fk in child._meta.local_concrete_fields:
            if not isinstance(fk, models.ForeignKey) or fk.remote_field.on_delete is not models.CASCADE:
                continue
            target = target_model(fk)
            if target in frontier and fk.target_field.primary_key:
                natural = {walk.natural_keys[target][pk] for pk in frontier[target] if pk in walk.natural_keys[target]}
                tests[child].append(_column_in(fk, frontier[target], natural, f"belongs to {target._meta.label}"))
    for model, keys in frontier.items():
        for relation in model._meta.private_fields:
            if isinstance(relation, GenericRelation) and relation.related_model in walk.tables:
                tests[relation.related_model].append(_generic_in(relation, model, keys))
    new: dict[Model, set[Any]] = defaultdict(set)
    for child, child_tests in tests.items():
        new[child].update(walk.read(child, _any(child_tests)))
    return {model: keys for model, keys in new.items() if keys}


def _column_in(fk: models.ForeignKey, keys: set[Any], natural: set[tuple], why: str) -> RowTest:
    """Rows whose ``fk`` names one of ``keys``, or one of the ``natural`` keys of those rows."""
    names = tuple(dict.fromkeys((fk.name, fk.attname, column_of(fk))))

    def test(converter: RowConverter, row: dict[str, Any]) -> str | None:
        for name in names:
            value = row.get(name)
            if isinstance(value, list):  # a natural key, whose row may be gone from the database
                try:
                    return why if tuple(value) in natural else None
                except TypeError:
                    return None
            if value is not None:
                try:
                    return why if converter.value(fk.name, value) in keys else None
                except (ValueError, TypeError, ConversionError):
                    return None
        return None

    return test


def _generic_in(relation: GenericRelation, owner: Model, keys: set[Any]) -> RowTest:
    """Rows of ``relation``'s model pointing at ``owner`` rows by content type and object id."""
    content_type = ContentType.objects.get_for_model(owner, for_concrete_model=relation.for_concrete_model)
    type_field, id_field = relation.content_type_field_name, relation.object_id_field_name
    owner_pk = owner._meta.pk
    assert owner_pk is not None
    wanted = {str(key) for key in keys}
    why = f"belongs to {owner._meta.label}"

    def test(converter: RowConverter, row: dict[str, Any]) -> str | None:
        kind = row.get(type_field, row.get(f"{type_field}_id"))
        if kind is None or str(converter.value(type_field, kind)) != str(content_type.pk):
            return None
        return why if str(row.get(id_field)) in wanted else None

    return test


def _any(tests: list[RowTest]) -> RowTest:
    if len(tests) == 1:
        return tests[0]

    def test(converter: RowConverter, row: dict[str, Any]) -> str | None:
        for one in tests:
            why = one(converter, row)
            if why is not None:
                return why
        return None

    return test


def _up(walk: Walk) -> None:
    """Up to what the picked rows need, level by level: a row their foreign keys point at that
    the database no longer holds is read from the backup (and needs its own parents in turn)."""
    examined: dict[Model, set[Any]] = defaultdict(set)
    while True:
        needed = _needed(walk, examined)
        if not needed:
            return
        for target, wants in needed.items():
            missing = _not_in_database(target, set(wants), walk.using)
            if not missing:
                continue
            why = {key: wants[key] for key in missing}
            found = set(walk.read(target, _pk_in(missing, "needed")))
            for key in found:
                walk.found.rows[target][key].why = f"needed by {why[key]}"
            for key in missing - found:
                walk.found.problems.append(
                    (
                        target._meta.label,
                        f"pk {key!r}",
                        f"needed by {why[key]}, but neither the database nor the backup holds it",
                    )
                )


def _needed(walk: Walk, examined: dict[Model, set[Any]]) -> dict[Model, dict[Any, str]]:
    """Keys of rows the picked rows point at (by primary key) that were not picked yet."""
    needed: dict[Model, dict[Any, str]] = defaultdict(dict)
    for model, rows in list(walk.found.rows.items()):
        fields = walk.converter(model).fields
        links = [
            (index, f)
            for index, f in enumerate(fields)
            if isinstance(f, models.ForeignKey) and f.target_field.primary_key
        ]
        for pk, picked in rows.items():
            if pk in examined[model]:
                continue
            examined[model].add(pk)
            for index, fk in links:
                value = picked.values[index]
                target = target_model(fk)
                if value is not None and value not in walk.found.rows.get(target, {}):
                    needed[target].setdefault(value, f"{model._meta.label} {pk}")
    return {target: keys for target, keys in needed.items() if keys}


def _not_in_database(model: Model, keys: set[Any], using: str) -> set[Any]:
    present: set[Any] = set()
    ordered = list(keys)
    for start in range(0, len(ordered), QUERY_CHUNK):
        chunk = ordered[start : start + QUERY_CHUNK]
        present.update(model._base_manager.using(using).filter(pk__in=chunk).values_list("pk", flat=True))
    return keys - present
