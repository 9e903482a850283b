"""The ORM path's multi-row INSERT built straight from converted values.

Django's ``bulk_create`` (and :meth:`Inserter.insert <dbrestore.loader.Inserter.insert>`) needs a
model instance per row and its insert compiler, which builds a placeholder and a parameter list
per value: most of the ORM path's time (py-spy: 46% in ``SQLInsertCompiler.as_sql``, 11% in
model instances). :class:`DirectInsert` writes the statement that compiler writes, once per
column set, and binds what it binds: each value through its field's ``get_db_prep_save``, as
``SQLInsertCompiler.prepare_value`` does for a raw insert (``pre_save`` is skipped for raw
inserts, so ``auto_now`` fields keep the backup's value either way). On PostgreSQL that is
Django 5.2's ``INSERT ... SELECT * FROM UNNEST((%s)::type[], ...)``, one array per column; on
SQLite ``VALUES (...), (...)`` with ``ON CONFLICT DO NOTHING`` (not ``INSERT OR IGNORE``, see
``Inserter._statements``).

An instance can change a value on its way in: a field descriptor (FileField's turns ``None``
into ``""``, ImageField's reads the image for its dimension fields), a custom ``__init__``, a
``pre_init``/``post_init`` receiver. Models with any of those, other than the FileField case
reproduced here, keep the instance path (:meth:`DirectInsert.for_model` returns None), as do
composite primary keys and fields with their own placeholder SQL (GIS).
tests/test_direct_insert.py stores the same rows both ways and compares them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from django.db import models
from django.db.models.constants import OnConflict
from django.db.models.fields.files import FileDescriptor
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

#: Descriptors that hand back what was set: Django's own for plain fields and FK columns.
_PLAIN_DESCRIPTORS = (DeferredAttribute, ForeignKeyDeferredAttribute)


def _descriptor_kind(model: type[models.Model], field: models.Field) -> str | None:
    """"plain", "file" (FileField's descriptor) or None (one that may change values)."""
    descriptor = None
    for klass in model.__mro__:
        if field.attname in vars(klass):
            descriptor = vars(klass)[field.attname]
            break
    if type(descriptor) is FileDescriptor:
        return "file"
    return "plain" if type(descriptor) in _PLAIN_DESCRIPTORS else None


def _instances_change_values(model: type[models.Model]) -> bool:
    return (
        model.__init__ is not models.Model.__init__
        or pre_init.has_listeners(model)
        or post_init.has_listeners(model)
    )


class DirectInsert:
    """Builds one table's INSERT statements and parameters from rows of converted values."""

    def __init__(self, model: type[models.Model], connection, fields: list[models.Field], preps: list[Callable],
                 *, merge_fields: list[models.Field]):
        self.model = model
        self.connection = connection
        self.fields = fields
        self.pk = model._meta.pk
        self.pk_index = fields.index(self.pk)
        self._preps = preps
        self._merge_fields = merge_fields
        self._statements: dict[tuple[bool, bool, int], str] = {}

    @classmethod
    def for_model(cls, model: type[models.Model], connection, *, merge: bool = False,
                  update_fields: Sequence[models.Field] = ()) -> DirectInsert | None:
        """The builder for ``model``, or None when its rows must go through model instances."""
        if connection.vendor not in ("postgresql", "sqlite") or not model._meta.pk.concrete:
            return None
        if _instances_change_values(model):
            return None
        fields = list(model._meta.local_concrete_fields)
        if model._meta.pk not in fields:  # a proxy
            return None
        preps = []
        for f in fields:
            kind = _descriptor_kind(model, f)
            if kind is None or (hasattr(f, "get_placeholder") and not _plain_placeholder(f, connection)):
                return None
            preps.append(_prep(f, connection, empty_for_none=kind == "file"))
        return cls(model, connection, fields, preps, merge_fields=list(update_fields) if merge else [])

    def statement(self, rows: Sequence[list[Any]], *, with_pk: bool, returning: bool) -> tuple[str, Any]:
        """The SQL and parameters inserting ``rows`` (all with a primary key, or all without:
        then the column is left out and the database numbers them)."""
        preps = self._preps
        if with_pk:
            prepared = [[prep(value) for prep, value in zip(preps, values)] for values in rows]
        else:
            skip = self.pk_index
            prepared = [[prep(value) for i, (prep, value) in enumerate(zip(preps, values)) if i != skip]
                        for values in rows]
        unnest = len(rows) > 1 and self._can_unnest
        key = (with_pk, returning, 0 if unnest else len(rows))
        sql = self._statements.get(key)
        if sql is None:
            if len(self._statements) > 64:
                self._statements.clear()
            sql = self._statements[key] = self._sql(with_pk, returning, unnest, len(rows))
        if unnest:
            return sql, [list(column) for column in zip(*prepared)]
        return sql, [value for values in prepared for value in values]

    def _columns(self, with_pk: bool) -> list[models.Field]:
        return self.fields if with_pk else [f for f in self.fields if f is not self.pk]

    @functools.cached_property
    def _can_unnest(self) -> bool:
        """Django 5.2's PostgreSQL compiler uses UNNEST for these columns (its same tests)."""
        if self.connection.vendor != "postgresql":
            return False
        data_types = self.connection.data_types
        return not any(hasattr(f, "get_placeholder") for f in self.fields) and all((f.target_field if f.is_relation else f).get_internal_type() in data_types for f in self.fields)

    def _sql(self, with_pk: bool, returning: bool, unnest: bool, n_rows: int) -> str:
        ops = self.connection.ops
        qn = ops.quote_name
        fields = self._columns(with_pk)
        parts = [f"INSERT INTO {qn(self.model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)})"]
        if unnest:
            types = ", ".join(f"(%s)::{f.db_type(self.connection).split('(')[0]}[]" for f in fields)
            parts.append(f"SELECT * FROM UNNEST({types})")
        else:
            row = f"({', '.join(['%s'] * len(fields))})"
            parts.append("VALUES " + ", ".join([row] * n_rows))
        if self._merge_fields:
            parts.append(ops.on_conflict_suffix_sql(fields, OnConflict.UPDATE, [f.column for f in self._merge_fields],
                                                    [self.pk.column]))
        else:
            parts.append("ON CONFLICT DO NOTHING")
        if returning:
            returning_sql, _ = ops.return_insert_columns([self.pk])
            parts.append(returning_sql)
        return " ".join(part for part in parts if part)


def _plain_placeholder(field: models.Field, connection) -> bool:
    """BinaryField's placeholder is ``%s`` on PostgreSQL and SQLite (only MySQL's differs)."""
    from django.db.backends.base.operations import BaseDatabaseOperations

    return (type(field).get_placeholder is models.BinaryField.get_placeholder
            and type(connection.ops).binary_placeholder_sql is BaseDatabaseOperations.binary_placeholder_sql)


def _prep(field: models.Field, connection, *, empty_for_none: bool) -> Callable[[Any], Any]:
    """What the insert compiler binds for a value of ``field`` (``get_db_prep_save``); FileField's
    descriptor wraps ``None`` in a FieldFile whose text is ``""``, so ``None`` becomes ``""``."""
    prepare = functools.partial(field.get_db_prep_save, connection=connection)
    if empty_for_none:
        return lambda value: prepare("" if value is None else value)
    return prepare
