"""Many-to-many lists set exactly, as loaddata's ``set()`` sets them.

A dumpdata object that gives a many-to-many field gives its whole list: loaddata makes the
object's set exactly that list, removing what migrations or earlier data added. A merge does the
same: before a fixture's through rows are loaded, the through rows of every owner that gives
the field are deleted (a symmetrical M2M to self: both directions). Owners the database does not
hold are left to the load, which rejects their rows with the reason.
"""

from __future__ import annotations

from django.db import models

from dbrestore.convert import ConversionError
from dbrestore.convert.row_converter import RowConverter
from dbrestore.plan.build import PlannedTable
from dbrestore.sources.base import batched

_OWNERS_PER_DELETE = 1_000


def clear_given_lists(table: PlannedTable, using: str) -> int:
    """Delete the through rows of the owners the fixture gives a list for; return how many."""
    through = table.model
    converter = RowConverter(through, using=using)
    manager = through._base_manager.using(using)
    m2m = _m2m_field(through)
    owner_field = through._meta.get_field(m2m.m2m_field_name())
    other_field = through._meta.get_field(m2m.m2m_reverse_field_name())
    assert isinstance(owner_field, models.ForeignKey) and isinstance(other_field, models.ForeignKey)  # a through's
    mirrored = m2m.remote_field.symmetrical and m2m.remote_field.model == m2m.model
    deleted = 0
    for batch in batched(table.data.owners(), _OWNERS_PER_DELETE):
        owners = set()
        for _, row in batch:
            try:
                owners.add(converter.value(owner_field.name, row[owner_field.name]))
            except (ConversionError, ValueError):
                continue
        if owners:
            deleted += manager.filter(**{f"{owner_field.attname}__in": owners})._raw_delete(using)
            if mirrored:
                deleted += manager.filter(**{f"{other_field.attname}__in": owners})._raw_delete(using)
    return deleted


def _m2m_field(through: type[models.Model]) -> models.ManyToManyField:
    owner = through._meta.auto_created  # the model that declares the field (typed bool: False if not auto-created)
    assert isinstance(owner, type) and issubclass(owner, models.Model)
    return next(f for f in owner._meta.many_to_many if f.remote_field.through is through)
