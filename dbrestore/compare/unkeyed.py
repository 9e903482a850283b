"""Backup rows without a primary key (the database numbers them, as a dumpdata fixture's
many-to-many rows) in a merge or an append: found in the database by a unique set of their
columns (a through table's pair of FKs), so that a list already there is unchanged, not added.

A fixture gives an owner's whole list, and a merge sets it exactly (:mod:`dbrestore.load.m2m`):
the database rows of the fixture's owners that it does not give are removed.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q, UniqueConstraint

from dbrestore.convert import ConversionError
from dbrestore.convert.row_converter import RowConverter
from dbrestore.plan.build import PlannedTable
from dbrestore.sources.base import batched


def unique_positions(model: type[models.Model], names: list[str]) -> list[int] | None:
    """Positions in ``names`` (attnames) of the first unique set of ``model`` without its
    primary key (``unique_together``, an unconditional ``UniqueConstraint``), or None."""
    opts = model._meta
    sets = [list(together) for together in opts.unique_together] + [
        list(constraint.fields)
        for constraint in opts.constraints
        if isinstance(constraint, UniqueConstraint) and constraint.fields and constraint.condition is None
    ]
    for names_in_set in sets:
        attnames = [opts.get_field(name).attname for name in names_in_set]  # type: ignore[union-attr]
        if opts.pk.attname not in attnames and all(attname in names for attname in attnames):
            return [names.index(attname) for attname in attnames]
    return None


def stored_by_unique(
    manager: models.QuerySet, names: list[str], positions: list[int], rows: list[list[Any]]
) -> dict[tuple, tuple]:
    """The database's rows that may hold ``rows``' unique values, by those values: one query,
    by the first column of the set."""
    first = positions[0]
    wanted = {values[first] for values in rows if values[first] is not None}
    if not wanted:
        return {}
    stored = manager.filter(**{f"{names[first]}__in": wanted}).values_list(*names)
    return {tuple(row[i] for i in positions): row for row in stored.iterator(chunk_size=5_000)}


def owners_rows(table: PlannedTable, converter: RowConverter, using: str) -> int | None:
    """The database's through rows of the owners a fixture gives a list for (a merge deletes
    them, then loads the fixture's): how many; None when the table has no owners."""
    if table.data.open_owners is None or not table.model._meta.auto_created:
        return None
    owner = table.model._meta.auto_created  # the model declaring the field (typed bool: False if not auto-created)
    assert isinstance(owner, type) and issubclass(owner, models.Model)
    m2m = next(f for f in owner._meta.many_to_many if f.remote_field.through is table.model)
    owner_field = table.model._meta.get_field(m2m.m2m_field_name())
    other_field = table.model._meta.get_field(m2m.m2m_reverse_field_name())
    mirrored = m2m.remote_field.symmetrical and m2m.remote_field.model == m2m.model
    manager = table.model._base_manager.using(using)
    rows = 0
    for batch in batched(table.data.owners(), 1_000):
        owners = set()
        for _, row in batch:
            try:
                owners.add(converter.value(owner_field.name, row[owner_field.name]))
            except (ConversionError, ValueError, KeyError):
                continue
        if owners:
            mine = Q(**{f"{owner_field.attname}__in": owners})
            if mirrored:
                mine |= Q(**{f"{other_field.attname}__in": owners})
            rows += manager.filter(mine).count()
    return rows
