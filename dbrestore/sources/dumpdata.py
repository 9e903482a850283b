"""Django ``dumpdata`` output: JSON arrays or JSON Lines of ``{"model", "pk", "fields"}``,
plain or compressed, natural keys and many-to-many values included.

A fixture interleaves models, and the restore loads one table at a time (parents first), so each
table is a filtered pass over the file: constant memory, one read per table. Many-to-many values
become rows of the auto-created through table. Natural foreign keys (lists) are resolved against
the database when the rows are converted (see :mod:`dbrestore.convert`); a row without ``pk``
(``--natural-primary``) gets a new primary key from the database.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import ijson
import orjson
from django.apps import apps

from ..exceptions import BackupFormatError
from .base import Backup, PositionedRow, TableData
from .bounds import PARSER_BUFFER
from .readers import data_suffix, iter_json_array, iter_json_lines, open_binary


def _objects(path: Path) -> Iterator[PositionedRow]:
    if data_suffix(path) in (".jsonl", ".ndjson"):
        return iter_json_lines(path)
    return iter_json_array(path)


def _first_object(path: Path) -> dict | None:
    with open_binary(path) as stream:
        try:
            if data_suffix(path) in (".jsonl", ".ndjson"):
                line = next(stream.lines(), b"")
                found = orjson.loads(line) if line.strip() else None
            else:
                found = next(ijson.items(stream, "item", use_float=True, buf_size=PARSER_BUFFER), None)
        except (ijson.JSONError, orjson.JSONDecodeError, UnicodeDecodeError):
            return None
    return found if isinstance(found, dict) else None


def is_dumpdata(path: Path, first: bytes) -> bool:
    if first not in (b"[", b"{"):
        return False
    obj = _first_object(path)
    return obj is not None and isinstance(obj.get("model"), str) and isinstance(obj.get("fields"), dict)


def _is_object_of(obj: dict, label: str, path: Path, position: int) -> bool:
    """Whether ``obj`` is a ``label`` object; anything but a dumpdata object is an error."""
    if not isinstance(obj.get("model"), str) or not isinstance(obj.get("fields"), dict):
        raise BackupFormatError(
            'not a dumpdata object (needs "model" and "fields")', path=path, position=f"row {position}"
        )
    return obj["model"].lower() == label


def _model_rows(path: Path, label: str) -> Iterator[PositionedRow]:
    model = apps.get_model(label)
    pk_name = model._meta.pk.attname
    m2m = {f.name for f in model._meta.many_to_many}
    for position, obj in _objects(path):
        if not _is_object_of(obj, label, path, position):
            continue
        row = {name: value for name, value in obj.get("fields", {}).items() if name not in m2m}
        if "pk" in obj:
            row[pk_name] = obj["pk"]
        yield position, row


def _through_rows(path: Path, label: str, field_name: str) -> Iterator[PositionedRow]:
    model = apps.get_model(label)
    field = model._meta.get_field(field_name)
    source = field.m2m_field_name()  # the through table's FK to ``model``
    target = field.m2m_reverse_field_name()
    for position, obj in _objects(path):
        if not _is_object_of(obj, label, path, position):
            continue
        values = obj.get("fields", {}).get(field_name) or []
        if not isinstance(values, list):
            raise BackupFormatError(f"{label}.{field_name}: a many-to-many value must be a list, not "
                                    f"{type(values).__name__}", path=path, position=f"row {position}")
        owner = obj.get("pk")
        if owner is None and values:
            owner = _natural_key_of(model, obj, path, position)
        for value in values:
            yield position, {source: owner, target: value}


def _natural_key_of(model, obj: dict, path: Path, position: int) -> list:
    """With --natural-primary the owner of an M2M value is known by its natural key."""
    if not hasattr(model, "natural_key"):
        raise BackupFormatError(f"{model._meta.label} object without \"pk\", and the model has no natural key",
                                path=path, position=f"row {position}")
    instance = model(**{k: v for k, v in obj.get("fields", {}).items() if k in {f.name for f in model._meta.concrete_fields}})
    return list(instance.natural_key())


def open_dumpdata(path: Path) -> Backup:
    labels: dict[str, dict] = {}
    for position, obj in _objects(path):
        label = obj.get("model")
        if not isinstance(label, str) or not isinstance(obj.get("fields"), dict):
            raise BackupFormatError('not a dumpdata object (needs "model" and "fields")', path=path, position=f"row {position}")
        entry = labels.setdefault(label.lower(), {"m2m": set()})
        for name, value in obj["fields"].items():
            if isinstance(value, list) and value:
                entry["m2m"].add(name)
    tables = []
    for label, entry in labels.items():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            tables.append(TableData(key=label, origin=path, open_rows=lambda: iter(()), model_label=None))
            continue
        tables.append(TableData(key=label, origin=path, open_rows=functools.partial(_model_rows, path, label),
                                model_label=model._meta.label))
        for field in model._meta.many_to_many:
            if field.name in entry["m2m"] and field.remote_field.through._meta.auto_created:
                through = field.remote_field.through
                tables.append(TableData(
                    key=through._meta.db_table, origin=path, model_label=through._meta.label,
                    open_rows=functools.partial(_through_rows, path, label, field.name),
                ))
    return Backup(path=path, format="dumpdata", tables=tables)
