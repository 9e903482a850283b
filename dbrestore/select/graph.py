"""The rows a selection brings back, found in the backup by walking the apps registry's graph.

Down from the selected rows to what Django's delete would have removed with them (the deletion
``Collector``'s walk: ``on_delete=CASCADE`` children, auto-created M2M rows, ``GenericRelation``
rows, multi-table-inheritance children and parents), then up to what every picked row needs (its
foreign keys and MTI parents), read from the backup only where the database no longer holds it.
A row that points at a picked row by its natural key belongs to it as one that points by primary
key does. Reading and picking the rows (natural keys followed) is :mod:`dbrestore.select.walk`'s.

Each pass reads only the tables it needs, one table once per level of the graph, and keeps only
the picked rows and the keys of the frontier: memory follows the selection, not the backup.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.contrib.contenttypes.fields import GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models

from dbrestore.convert import ConversionError
from dbrestore.convert.fields import column_of, target_model
from dbrestore.convert.row_converter import RowConverter
from dbrestore.exceptions import RestoreConfigError
from dbrestore.plan.build import Plan
from dbrestore.select.lookups import Selection
from dbrestore.select.walk import Collection, Model, RowTest, Walk

QUERY_CHUNK = 500


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
