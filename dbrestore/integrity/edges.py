"""Foreign-key edges and the checks made while the rows go in, and right after.

* :class:`ParentCheck`: per batch, one query per FK column asks the parent which values exist;
  the rows that point nowhere are rejected before the write (``--no-atomic``, and the COPY
  path's fallback).
* :func:`checked_as_copied`: the COPY path in one transaction has PostgreSQL check the FKs to
  parents already loaded as each COPY ends (``SET CONSTRAINTS ... IMMEDIATE``), so they need no
  orphan sweep.
* :func:`check_constraints`: after the load, the database's own check, so a broken FK fails
  with its name before COMMIT rather than at it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, models
from django.db.models import Exists, OuterRef

from dbrestore.convert.fields import concrete_model
from dbrestore.exceptions import RestoreAbortedError, first_line
from dbrestore.load.ledger import Ledger
from dbrestore.load.rows import PendingRow
from dbrestore.plan.build import Plan

ModelType = type[models.Model]


@dataclass(frozen=True)
class ForeignKeyEdge:
    model: ModelType
    field: models.ForeignKey
    parent: ModelType

    @property
    def target_attname(self) -> str:
        return self.field.target_field.attname

    def describe(self, value: Any) -> str:
        return (
            f"foreign key {self.model._meta.db_table}.{self.field.column}={value!r} "
            f"points to no row of {self.parent._meta.db_table}"
        )


def classify_foreign_keys(plan: Plan) -> dict[ModelType, tuple[list[ForeignKeyEdge], list[ForeignKeyEdge]]]:
    """For each restored model: (settled FKs, deferred FKs)."""
    position = {table.model: index for index, table in enumerate(plan.tables)}
    kinds = {}
    for table in plan.tables:
        settled, deferred = [], []
        for f in table.model._meta.local_concrete_fields:
            # (a concrete relation is a ForeignKey, which has db_constraint)
            if not isinstance(f, models.ForeignKey) or not getattr(f, "db_constraint", False):
                continue
            parent = concrete_model(f.remote_field.model)
            edge = ForeignKeyEdge(table.model, f, parent)
            parent_position = position.get(parent)
            if parent_position is None or parent_position < position[table.model]:
                settled.append(edge)
            else:
                deferred.append(edge)
        kinds[table.model] = (settled, deferred)
    return kinds


def existing_values(edge: ForeignKeyEdge, values: set[Any], using: str) -> set[Any]:
    manager = edge.parent._base_manager.using(using)
    lookup = f"{edge.target_attname}__in"
    return set(manager.filter(**{lookup: list(values)}).values_list(edge.target_attname, flat=True))


def orphan_pks(edge: ForeignKeyEdge, using: str) -> list[Any]:
    """Primary keys of ``edge.model`` rows whose FK value has no parent row (one anti-join)."""
    parents = edge.parent._base_manager.using(using).filter(**{edge.target_attname: OuterRef(edge.field.attname)})
    rows = (
        edge.model._base_manager.using(using)
        .filter(**{f"{edge.field.attname}__isnull": False})
        .filter(~Exists(parents))
        .values_list("pk", flat=True)
    )
    return list(rows)


class ParentCheck:
    """Rejects, batch by batch, the rows whose parent (of the edges asked about) is not there.

    ``fields``: the order of a row's values (the table's ``local_concrete_fields``).
    """

    def __init__(self, fields: list[models.Field], using: str, ledger: Ledger):
        self.fields = fields
        self.using = using
        self.ledger = ledger

    def keep_present(self, pending: list[PendingRow], edges: Iterable[ForeignKeyEdge]) -> list[PendingRow]:
        """The rows whose parents are there; the others are rejected."""
        for edge in edges:
            index = self.fields.index(edge.field)
            values = {p.values[index] for p in pending} - {None}
            if not values:
                continue
            missing = values - existing_values(edge, values, self.using)
            if not missing:
                continue
            kept = []
            for p in pending:
                value = p.values[index]
                if value is not None and value in missing:
                    self.ledger.reject(p.position, p.row, edge.describe(value))
                else:
                    kept.append(p)
            pending = kept
        return pending


@contextlib.contextmanager
def checked_as_copied(
    connection, model: ModelType, settled: Iterable[ForeignKeyEdge]
) -> Iterator[list[ForeignKeyEdge]]:
    """Make the FKs to parents already loaded IMMEDIATE for this table's load (then DEFERRED
    again: a later orphan sweep may delete parents whose children go with them). Yields a list
    that holds, once the load went through, the FKs the database checked row by row.

    Outside a transaction (``--no-atomic``) each COPY commits, FK checks included, by itself.
    """
    checked: list[ForeignKeyEdge] = []
    if not connection.in_atomic_block:
        yield checked
        return
    constraints = foreign_key_constraints(connection, model)
    edges = [edge for edge in settled if edge.field.column in constraints]
    deferrable = sorted({name for edge in edges for name, can_defer in constraints[edge.field.column] if can_defer})
    listed = ", ".join(connection.ops.quote_name(name) for name in deferrable)
    if listed:
        with connection.cursor() as cursor:
            cursor.execute(f"SET CONSTRAINTS {listed} IMMEDIATE")
    yield checked  # on an error the transaction rolls back, and the setting with it
    if listed:
        with connection.cursor() as cursor:
            cursor.execute(f"SET CONSTRAINTS {listed} DEFERRED")
    checked.extend(edges)


def foreign_key_constraints(connection, model: ModelType) -> dict[str, list[tuple[str, bool]]]:
    """The single-column FK constraints of ``model``'s table: column -> [(name, deferrable)]."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT a.attname, c.conname, c.condeferrable FROM pg_constraint c
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
               WHERE c.conrelid = %s::regclass AND c.contype = 'f' AND cardinality(c.conkey) = 1""",
            [connection.ops.quote_name(model._meta.db_table)],
        )
        constraints: dict[str, list[tuple[str, bool]]] = {}
        for column, name, deferrable in cursor.fetchall():
            constraints.setdefault(column, []).append((name, deferrable))
        return constraints


def check_constraints(plan: Plan, connection) -> None:
    """Fail with the constraint's name before COMMIT rather than at it."""
    try:
        connection.check_constraints(table_names=[model._meta.db_table for model in plan.models])
    except DatabaseError as exc:
        raise RestoreAbortedError(f"foreign key check failed after the load: {first_line(exc)}") from exc
