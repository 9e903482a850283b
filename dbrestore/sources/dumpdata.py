"""Django ``dumpdata`` output: JSON arrays or JSON Lines of ``{"model", "pk", "fields"}``,
plain or compressed, natural keys and many-to-many values included.

A fixture interleaves models, and the restore loads one table at a time (parents first), so each
table is a filtered pass over the file: constant memory, one read per table. Many-to-many values
become rows of the auto-created through table. Natural foreign keys (lists) are resolved against
the database when the rows are converted (see :mod:`dbrestore.convert`); a row without ``pk``
(``--natural-primary``) gets a new primary key from the database. A multi-table child's object
holds its own table's fields only (its parents are objects of their own), as loaddata reads it;
a proxy model's objects go into its concrete model's table.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ijson
import orjson
from django.apps import apps
from django.db import models

from dbrestore.convert.fields import concrete_model, through_model
from dbrestore.exceptions import BackupFormatError
from dbrestore.files.storage import Location
from dbrestore.sources.base import Backup, PositionedRow, TableData, UnreadableRow
from dbrestore.sources.bounds import PARSER_BUFFER
from dbrestore.sources.readers import first_significant_byte, iter_json_array, iter_json_lines, loads_line, open_binary


def _is_json_lines(path: Location) -> bool:
    """Told by the content, as dumpdata writes them: an array starts with ``[``, JSON Lines with ``{``."""
    return first_significant_byte(path) == b"{"


def _objects(path: Location) -> Iterator[PositionedRow]:
    if _is_json_lines(path):
        return iter_json_lines(path)
    return iter_json_array(path)


def _first_object(path: Location, first: bytes) -> dict | None:
    with open_binary(path) as stream:
        try:
            if first == b"{":
                found = None
                for line in stream.lines():  # blank lines before the first object are allowed
                    if line.strip():
                        found = loads_line(line)
                        break
            else:
                found = next(ijson.items(stream, "item", buf_size=PARSER_BUFFER), None)
        except (ijson.JSONError, orjson.JSONDecodeError, UnicodeDecodeError, ValueError):
            return None
    return found if isinstance(found, dict) else None


def is_dumpdata(path: Location, first: bytes) -> bool:
    if first not in (b"[", b"{"):
        return False
    obj = _first_object(path, first)
    return obj is not None and isinstance(obj.get("model"), str) and isinstance(obj.get("fields"), dict)


def _label_of(obj: dict, path: Location, position: int) -> str:
    """The lower-cased model label of a dumpdata object; anything but such an object is an error."""
    if not isinstance(obj.get("model"), str) or not isinstance(obj.get("fields"), dict):
        raise BackupFormatError(
            'not a dumpdata object (needs "model" and "fields")', path=path, position=f"row {position}"
        )
    return obj["model"].lower()


def _model(label: str) -> type[models.Model] | None:
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        return None


def _is_composite(model: type[models.Model]) -> bool:
    return not model._meta.pk.concrete


def _model_rows(path: Location, labels: frozenset[str], concrete_label: str) -> Iterator[PositionedRow]:
    """The rows of one table: the objects of its model and of its proxies."""
    model = apps.get_model(concrete_label)
    pk_name = None if _is_composite(model) else model._meta.pk.attname
    m2m = {f.name for f in model._meta.many_to_many}
    for position, obj in _objects(path):
        label = _label_of(obj, path, position)
        if label not in labels:
            continue
        row = {name: value for name, value in obj.get("fields", {}).items() if name not in m2m}
        if "pk" in obj:
            if pk_name is not None:
                row[pk_name] = obj["pk"]
            else:
                _composite_pk_values(model, obj, row, path, position)
        bad = obj.reason if obj.__class__ is UnreadableRow else _bad_m2m(model, obj)
        yield position, (UnreadableRow(row, bad) if bad else row)


def _composite_pk_values(model, obj: dict, row: dict, path: Location, position: int) -> None:
    """A composite primary key: dumpdata writes its parts as fields too, and ``pk`` as a list."""
    parts = model._meta.pk.fields
    value = obj["pk"]
    if not isinstance(value, list) or len(value) != len(parts):
        raise BackupFormatError(
            f"{obj['model']}: pk must be a list of {len(parts)} values, found {value!r:.60}",
            path=path,
            position=f"row {position}",
        )
    for part, item in zip(parts, value, strict=True):
        row.setdefault(part.name, item)


def _m2m_owners(
    path: Location, labels: frozenset[str], field: models.ManyToManyField
) -> Iterator[tuple[int, Any, list]]:
    """``(position, owner, values)`` for each object that gives this many-to-many field: its
    list, and its owner's pk (or natural key, with --natural-primary)."""
    for position, obj in _objects(path):
        label = _label_of(obj, path, position)
        if label not in labels:
            continue
        model = apps.get_model(label)
        values = obj.get("fields", {}).get(field.name)
        if not isinstance(values, list) or obj.__class__ is UnreadableRow or _bad_m2m(model, obj):
            continue  # the object is rejected: see _model_rows
        owner = obj.get("pk")
        if model._meta.concrete_model is not field.model:
            # loaddata drops it without a word (the child's instance has no value for the
            # parent's key when the M2M is set): here the values are rejected, with the reason.
            owner = NoOwner(
                owner,
                f"{obj['model']}.{field.name}: a multi-table child's object gives the "
                f"{field.model._meta.label} field {field.name!r}, which loaddata ignores; "
                f"give it on the {field.model._meta.label} object",
            )
        elif owner is None:
            owner = _natural_key_of(model, obj)
        yield position, owner, values


def _through_rows(path: Location, labels: frozenset[str], field: models.ManyToManyField) -> Iterator[PositionedRow]:
    source = field.m2m_field_name()  # the through table's FK to the model that declares the field
    target = field.m2m_reverse_field_name()
    # A symmetrical M2M to self holds both directions, as loaddata's ``set()`` writes them (a
    # mirror already in the fixture is skipped as a duplicate).
    mirrored = field.remote_field.symmetrical and field.remote_field.model == field.model
    for position, owner, values in _m2m_owners(path, labels, field):
        for value in values:
            if isinstance(owner, NoOwner):
                yield position, UnreadableRow({source: owner.key, target: value}, owner.reason)
                continue
            yield position, {source: owner, target: value}
            if mirrored and value != owner:
                yield position, {source: value, target: owner}


def _owner_rows(path: Location, labels: frozenset[str], field: models.ManyToManyField) -> Iterator[PositionedRow]:
    """The owners whose list the fixture gives, as ``{through FK column: owner}`` rows."""
    source = field.m2m_field_name()
    for position, owner, _ in _m2m_owners(path, labels, field):
        if not isinstance(owner, NoOwner):  # loaddata leaves such a list as it is
            yield position, {source: owner}


def _natural_key_of(model: type[models.Model], obj: dict) -> list | NoOwner:
    """With --natural-primary the owner of an M2M value is known by its natural key, which the
    owner's fields make (foreign keys in it given by natural key, looked up: parents are loaded
    first); a :class:`NoOwner` saying why when it cannot be made."""
    parent_link = model._meta.pk
    if (
        parent_link.remote_field
        and parent_link.remote_field.parent_link
        and obj["fields"].get(parent_link.name) is not None
    ):
        # A multi-table child: dumpdata --natural-primary writes its link to the parent (by the
        # parent's natural key), which is its own key too; its own fields make no natural key.
        return obj["fields"][parent_link.name]
    values: dict[str, Any] = {}
    try:
        for f in model._meta.concrete_fields:
            if f.name not in obj["fields"]:
                continue
            value = obj["fields"][f.name]
            if f.remote_field is not None and isinstance(value, list):  # (f.is_relation)
                manager: Any = f.remote_field.model._default_manager  # Any: get_by_natural_key is the project's
                value = manager.get_by_natural_key(*value)
                values[f.name] = value
            else:
                values[f.attname] = f.to_python(value)
        if not hasattr(model, "natural_key"):
            raise ValueError(f"{model._meta.label} has no natural_key()")
        instance: Any = model(**values)  # Any: natural_key() is the project's method
        return list(instance.natural_key())
    except Exception as exc:
        return NoOwner(
            None,
            f"{obj['model']}: many-to-many values of an object without pk need its natural key, "
            f"which could not be made: {type(exc).__name__}: {exc}",
        )


@dataclass(frozen=True)
class NoOwner:
    """An M2M owner whose values cannot be restored: its through rows are rejected with ``reason``."""

    key: Any
    reason: str


def _bad_m2m(model: type[models.Model], obj: dict) -> str | None:
    """Why the object's many-to-many values cannot be restored (one that is not a list), or None.
    loaddata fails the whole fixture on it; here the object is a rejected row."""
    for f in model._meta.many_to_many:
        value = obj["fields"].get(f.name)
        if value is not None and not isinstance(value, list):
            return f"{obj['model']}.{f.name}: a many-to-many value must be a list, found {type(value).__name__}"
    return None


def _m2m_names(model: type[models.Model], obj: dict) -> set[str]:
    """The M2M fields the object gives a list for (an empty one too: it empties the object's set)."""
    return {f.name for f in model._meta.many_to_many if isinstance(obj["fields"].get(f.name), list)}


def open_dumpdata(path: Location) -> Backup:
    """One pass to learn the models (and check the M2M values), then a table per model."""
    found: dict[str, dict] = {}
    for position, obj in _objects(path):
        label = obj.get("model")
        if not isinstance(label, str) or not isinstance(obj.get("fields"), dict):
            raise BackupFormatError(
                'not a dumpdata object (needs "model" and "fields")', path=path, position=f"row {position}"
            )
        label = label.lower()
        entry = found.get(label)
        if entry is None:
            entry = found[label] = {"model": _model(label), "m2m": set()}
        if entry["model"] is not None:
            entry["m2m"] |= _m2m_names(entry["model"], obj)
    tables = []
    by_concrete: dict[type[models.Model], set[str]] = {}
    for label, entry in found.items():
        model = entry["model"]
        if model is None:
            tables.append(TableData(key=label, origin=path, open_rows=lambda: iter(()), model_label=None))
            continue
        by_concrete.setdefault(concrete_model(model), set()).add(label)
    # An M2M table is filled from the objects of every model that has the field: the model that
    # declares it, its proxies and its multi-table children (their pk is the owner's).
    by_field: dict[models.ManyToManyField, set[str]] = {}
    for concrete, labels in by_concrete.items():
        concrete_label = concrete._meta.label_lower
        tables.append(
            TableData(
                key=concrete_label,
                origin=path,
                model_label=concrete._meta.label,
                open_rows=functools.partial(_model_rows, path, frozenset(labels), concrete_label),
            )
        )
        for label in labels:
            for field in concrete._meta.many_to_many:
                if field.name in found[label]["m2m"] and through_model(field)._meta.auto_created:
                    by_field.setdefault(field, set()).add(label)
    for field, labels in by_field.items():
        through = through_model(field)
        tables.append(
            TableData(
                key=through._meta.db_table,
                origin=path,
                model_label=through._meta.label,
                open_rows=functools.partial(_through_rows, path, frozenset(labels), field),
                open_owners=functools.partial(_owner_rows, path, frozenset(labels), field),
            )
        )
    return Backup(path=path, format="dumpdata", tables=tables)
