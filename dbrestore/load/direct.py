"""The ORM path's multi-row INSERT built straight from converted values.

Django's ``bulk_create`` (and :meth:`Inserter.insert <dbrestore.load.insert.Inserter.insert>`) needs a
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
tests/load/test_direct_insert.py stores the same rows both ways and compares them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from django.db import models
from django.db.models.constants import OnConflict
from django.db.models.fields.files import FileDescriptor
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

from dbrestore.convert.fields import column_of, db_type_of

#: Descriptors that hand back what was set: Django's own for plain fields and FK columns.
_PLAIN_DESCRIPTORS = (DeferredAttribute, ForeignKeyDeferredAttribute)


def _descriptor_kind(model: type[models.Model], field: models.Field) -> str | None:
    """ "plain", "file" (FileField's descriptor) or None (one that may change values)."""
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
        model.__init__ is not models.Model.__init__ or pre_init.has_listeners(model) or post_init.has_listeners(model)
    )


class DirectInsert:
    """Builds one table's INSERT statements and parameters from rows of converted values."""

    def __init__(
        self,
        model: type[models.Model],
        connection,
        fields: list[models.Field],
        preps: list[Callable],
        *,
        merge_fields: list[models.Field],
    ):
        self.model = model
        self.connection = connection
        self.fields = fields
        self.pk = model._meta.pk
        self.pk_index = fields.index(self.pk)
        self._preps = preps
        self._merge_fields = merge_fields
        self._statements: dict[tuple[bool, bool, int], str] = {}

    @classmethod
    def for_model(
        cls, model: type[models.Model], connection, *, merge: bool = False, update_fields: Sequence[models.Field] = ()
    ) -> DirectInsert | None:
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

    def execute(
        self, rows: Sequence[list[Any]], *, returning: bool, rows_per_statement: int
    ) -> tuple[int, list[Any] | None]:
        """Insert ``rows``: (rows inserted, their primary keys when ``returning``), as
        ``Inserter.insert`` counts them (RETURNING where the keys are wanted, rowcount otherwise)."""
        inserted = 0
        pks: list[Any] | None = [] if returning else None
        to_python = self.pk.to_python
        with self.connection.cursor() as cursor:
            for chunk, with_pk in self._groups(rows, rows_per_statement):
                sql, params = self.statement(chunk, with_pk=with_pk, returning=returning)
                cursor.execute(sql, params)
                if pks is not None:  # returning
                    returned = cursor.fetchall()
                    pks.extend(to_python(row[0]) for row in returned)
                    inserted += len(returned)
                else:
                    inserted += max(cursor.rowcount, 0)
        return inserted, pks

    def _groups(self, rows: Sequence[list[Any]], size: int) -> Iterator[tuple[Sequence[list[Any]], bool]]:
        """Chunks that fit one statement: rows with a primary key, then rows without one (natural
        primary keys), which leave the column out so that the database numbers them."""
        index = self.pk_index
        without_pk = [values for values in rows if values[index] is None]
        with_pk = [values for values in rows if values[index] is not None] if without_pk else rows
        for start in range(0, len(with_pk), size):
            yield with_pk[start : start + size], True
        for start in range(0, len(without_pk), size):
            yield without_pk[start : start + size], False

    def statement(self, rows: Sequence[list[Any]], *, with_pk: bool, returning: bool) -> tuple[str, Any]:
        """The SQL and parameters inserting ``rows`` (all with a primary key, or all without:
        then the column is left out and the database numbers them)."""
        prepare = self._prepare_row[with_pk]
        prepared = [prepare(values) for values in rows]
        unnest = len(rows) > 1 and self._can_unnest
        key = (with_pk, returning, 0 if unnest else len(rows))
        sql = self._statements.get(key)
        if sql is None:
            if len(self._statements) > 64:
                self._statements.clear()
            sql = self._statements[key] = self._sql(with_pk, returning, unnest, len(rows))
        if unnest:
            return sql, [list(column) for column in zip(*prepared, strict=True)]
        return sql, [value for values in prepared for value in values]

    @functools.cached_property
    def _prepare_row(self) -> dict[bool, Callable[[list[Any]], list[Any]]]:
        fast = [_pass_through(f, self.connection) for f in self.fields]
        return {with_pk: _compile(self._preps, fast, None if with_pk else self.pk_index) for with_pk in (True, False)}

    def _columns(self, with_pk: bool) -> list[models.Field]:
        return self.fields if with_pk else [f for f in self.fields if f is not self.pk]

    @functools.cached_property
    def _can_unnest(self) -> bool:
        """Django 5.2's PostgreSQL compiler uses UNNEST for these columns (its same tests)."""
        if self.connection.vendor != "postgresql":
            return False
        data_types = self.connection.data_types
        return not any(hasattr(f, "get_placeholder") for f in self.fields) and all(
            # (a concrete relation is a ForeignKey)
            (f.target_field if isinstance(f, models.ForeignKey) else f).get_internal_type() in data_types
            for f in self.fields
        )

    def _sql(self, with_pk: bool, returning: bool, unnest: bool, n_rows: int) -> str:
        ops = self.connection.ops
        qn = ops.quote_name
        fields = self._columns(with_pk)
        parts = [f"INSERT INTO {qn(self.model._meta.db_table)} ({', '.join(qn(column_of(f)) for f in fields)})"]
        if unnest:
            types = ", ".join(f"(%s)::{db_type_of(f, self.connection).split('(')[0]}[]" for f in fields)
            parts.append(f"SELECT * FROM UNNEST({types})")
        else:
            row = f"({', '.join(['%s'] * len(fields))})"
            parts.append("VALUES " + ", ".join([row] * n_rows))
        if self._merge_fields and with_pk:  # a row the database numbers matches no row by key: never an update
            parts.append(
                ops.on_conflict_suffix_sql(
                    fields, OnConflict.UPDATE, [column_of(f) for f in self._merge_fields], [column_of(self.pk)]
                )
            )
        else:
            parts.append("ON CONFLICT DO NOTHING")
        if returning:
            returning_sql, _ = ops.return_insert_columns([self.pk])
            parts.append(returning_sql)
        return " ".join(part for part in parts if part)


def _plain_placeholder(field: models.Field, connection) -> bool:
    """BinaryField's placeholder is ``%s`` on PostgreSQL and SQLite (only MySQL's differs)."""
    from django.db.backends.base.operations import BaseDatabaseOperations

    return (
        type(field).get_placeholder is models.BinaryField.get_placeholder  # type: ignore[attr-defined]  # a hook the stubs omit
        and type(connection.ops).binary_placeholder_sql is BaseDatabaseOperations.binary_placeholder_sql
    )


def _prep(field: models.Field, connection, *, empty_for_none: bool) -> Callable[[Any], Any]:
    """What the insert compiler binds for a value of ``field`` (``get_db_prep_save``); FileField's
    descriptor wraps ``None`` in a FieldFile whose text is ``""``, so ``None`` becomes ``""``."""
    prepare = functools.partial(field.get_db_prep_save, connection=connection)
    if empty_for_none:
        return lambda value: prepare("" if value is None else value)
    return prepare


def _pass_through(field: models.Field, connection) -> tuple[type, Callable[[Any], Any] | None] | None:
    """(T, wrap) when ``get_db_prep_save`` of a value of exactly class T (or None) is the value
    itself (``wrap`` None) or ``wrap(value)``, read off the methods the field class inherits
    from Django: integers (PostgreSQL wraps them in psycopg's Int2/Int4/Int8 by column type),
    text and booleans. Other fields and subclasses overriding any of these methods: None (the
    full ``get_db_prep_save`` call)."""
    from django.db.backends.base.operations import BaseDatabaseOperations
    from django.db.models import fields as f

    kind = type(field)
    if field.is_relation:
        from django.db.models.fields.related import ForeignKey

        if kind.get_db_prep_save is not ForeignKey.get_db_prep_save or not isinstance(field, ForeignKey):
            return None
        target = _pass_through(field.target_field, connection)
        return target if target is not None and target[0] is int else None  # "" may become NULL there
    if kind.get_db_prep_save is not f.Field.get_db_prep_save:
        return None
    ops = type(connection.ops)
    if isinstance(field, f.AutoFieldMixin):
        plain = (
            kind.get_db_prep_value is f.AutoFieldMixin.get_db_prep_value
            and kind.get_prep_value is f.IntegerField.get_prep_value
            and ops.validate_autopk_value is BaseDatabaseOperations.validate_autopk_value
        )
        return (int, None) if plain else None
    if isinstance(field, f.IntegerField):
        if (
            kind.get_prep_value is not f.IntegerField.get_prep_value
            or kind.get_db_prep_value is not f.IntegerField.get_db_prep_value
        ):
            return None
        if ops.adapt_integerfield_value is BaseDatabaseOperations.adapt_integerfield_value:
            return int, None
        type_map = getattr(connection.ops, "integerfield_type_map", None)  # PostgreSQL with psycopg 3
        if connection.vendor == "postgresql" and type_map and field.get_internal_type() in type_map:
            return int, type_map[field.get_internal_type()]
        return None
    if kind.get_db_prep_value is not f.Field.get_db_prep_value:
        return None
    for base, value_class in ((f.CharField, str), (f.TextField, str), (f.BooleanField, bool)):
        if isinstance(field, base):
            same = kind.get_prep_value is base.get_prep_value and kind.to_python is base.to_python
            return (value_class, None) if same else None
    return None


def _compile(preps: list[Callable], fast: list, skip: int | None) -> Callable[[list[Any]], list[Any]]:
    """One function preparing a row: the loop over the columns unrolled, ``get_db_prep_save``
    skipped for the values :func:`_pass_through` vouches for (``skip``: the column left out)."""
    namespace: dict[str, Any] = {}
    names = [f"v{i}" for i in range(len(preps))]
    items = []
    for i, (prep, through) in enumerate(zip(preps, fast, strict=True)):
        if i == skip:
            continue
        namespace[f"prep{i}"] = prep
        if through is None:
            items.append(f"prep{i}(v{i})")
            continue
        namespace[f"type{i}"], wrap = through
        if wrap is None:
            items.append(f"(v{i} if v{i} is None or v{i}.__class__ is type{i} else prep{i}(v{i}))")
        else:
            namespace[f"wrap{i}"] = wrap
            items.append(f"(None if v{i} is None else wrap{i}(v{i}) if v{i}.__class__ is type{i} else prep{i}(v{i}))")
    unpack = f"{', '.join(names)}, = values"
    source = f"def prepare(values):\n    {unpack}\n    return [{', '.join(items)}]"
    exec(source, namespace)
    return namespace["prepare"]
