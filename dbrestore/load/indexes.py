"""Indexes after the load (the default in replace mode on PostgreSQL; ``--keep-indexes`` turns
it off): build secondary indexes and FK constraints once, after the load.

Loading into an indexed table with FK constraints costs PostgreSQL an index insertion per row
per index and an FK trigger per row per constraint (checked at COMMIT, or when the restore
checks constraints). ``pg_restore`` avoids both by creating indexes and constraints after the
data (its *post-data* section): one sort per index, one set-based query per constraint.

Inside the restore's transaction (PostgreSQL, replace mode, atomic), :func:`set_aside` drops
the restored tables' non-unique indexes and the FK constraints between them, remembering each one's exact
definition from the catalog (``pg_get_indexdef`` / ``pg_get_constraintdef``), and
:meth:`SetAside.rebuild` creates them again after the orphan sweep has rejected the rows that
point nowhere. ``ALTER TABLE ADD CONSTRAINT`` validates every row with one query, so the
guarantee is the database's own, as without the option. Primary keys and unique indexes stay:
they are what tells a duplicate row. Everything happens in the one transaction, so a failure
rolls the drops back with the rows.

It locks nothing more than the restore already does: the TRUNCATE that empties the restored
tables holds an ACCESS EXCLUSIVE lock on each until COMMIT, and dropping an FK locks the two
tables it joins, both restored. FKs to tables outside the restore stay (dropping one would lock
that outside table); the COPY path has the database check them as it copies.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connections, models, transaction

logger = logging.getLogger(__name__)

MIN_ROWS = 5_000  # tables expected to hold fewer rows keep their indexes (see worth_setting_aside)

# Only the FKs between restored tables: one to a table outside the restore stays, since dropping
# it would lock that outside table until COMMIT (TRUNCATE already locks the restored ones).
_FOREIGN_KEYS = """
    SELECT quote_ident(conname), pg_get_constraintdef(oid),
           CASE WHEN cardinality(conkey) = 1 THEN
               (SELECT attname FROM pg_attribute WHERE attrelid = conrelid AND attnum = conkey[1]) END
    FROM pg_constraint
    WHERE conrelid = %s::regclass AND contype = 'f' AND confrelid = ANY(%s::text[]::regclass[])
    ORDER BY conname
"""
# Indexes that back no constraint and enforce no uniqueness: the ones only reads need.
_SECONDARY_INDEXES = """
    SELECT quote_ident(n.nspname) || '.' || quote_ident(i.relname), pg_get_indexdef(x.indexrelid)
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_namespace n ON n.oid = i.relnamespace
    WHERE x.indrelid = %s::regclass AND NOT x.indisunique AND NOT x.indisprimary
      AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.contype <> 'f')
    ORDER BY i.relname
"""


@dataclass
class SetAside:
    """The indexes and FK constraints dropped before the load, to create again after it."""

    using: str
    indexes: list[tuple[str, str]] = field(default_factory=list)  # (name, CREATE INDEX ...)
    # (quoted table, quoted name, definition, column or None when it spans several)
    foreign_keys: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    foreign_keys_added: bool = False

    def rebuild(self) -> None:
        """Create the indexes, then add (and so validate) the FK constraints not added yet."""
        self.rebuild_indexes()
        if self.foreign_keys and not self.foreign_keys_added:
            self._add_foreign_keys()

    def rebuild_indexes(self) -> None:
        if not self.indexes:
            return
        with connections[self.using].cursor() as cursor:
            for _, definition in self.indexes:
                cursor.execute(definition)
        logger.info("Rebuilt %d indexes after the load", len(self.indexes))
        self.indexes = []

    def add_foreign_keys_if_valid(self) -> bool:
        """Add the FK constraints back under a savepoint, before any orphan sweep: True when
        every row passes (PostgreSQL validated them all, so they need no anti-join of ours);
        False, and nothing added, when a row points nowhere (the sweep rejects it, then
        :meth:`rebuild` adds them)."""
        if not self.foreign_keys:
            return False
        try:
            with transaction.atomic(using=self.using):
                self._add_foreign_keys()
        except IntegrityError as exc:
            logger.info("An FK set aside has orphans (%s); sweeping before adding them back", exc)
            return False
        self.foreign_keys_added = True
        return True

    def validates(self, table: str, column: str) -> bool:
        """Whether an FK constraint on this (quoted) table's column was added back and so
        validated by PostgreSQL."""
        return self.foreign_keys_added and any(t == table and c == column for t, _, _, c in self.foreign_keys)

    def _add_foreign_keys(self) -> None:
        with connections[self.using].cursor() as cursor:
            for table, name, definition, _ in self.foreign_keys:
                cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
        logger.info("Added back %d foreign keys after the load", len(self.foreign_keys))


def worth_setting_aside(tables: list) -> list[type[models.Model]]:
    """The planned tables big enough (or of unknown size) to gain from it.

    Dropping and rebuilding costs a few statements per index and FK, about a millisecond each;
    keeping them costs an index insertion and an FK trigger per row, a few microseconds. A table
    of fewer than ``MIN_ROWS`` rows (:meth:`~dbrestore.sources.TableData.at_least_rows`) keeps
    its indexes and FKs (then checked as it is copied).
    """
    return [table.model for table in tables if table.data.at_least_rows(MIN_ROWS)]


def set_aside(
    models_to_load: list[type[models.Model]], using: str, restored: list[type[models.Model]] | None = None
) -> SetAside:
    """Drop the secondary indexes of these tables and their FK constraints to ``restored``
    tables (default: these); return how to rebuild them."""
    connection = connections[using]
    aside = SetAside(using)
    qn = connection.ops.quote_name
    targets = [qn(model._meta.db_table) for model in (models_to_load if restored is None else restored)]
    if not models_to_load:
        return aside
    with connection.cursor() as cursor:
        for model in models_to_load:
            table = qn(model._meta.db_table)
            cursor.execute(_FOREIGN_KEYS, [table, targets])
            aside.foreign_keys.extend((table, *constraint) for constraint in cursor.fetchall())
            cursor.execute(_SECONDARY_INDEXES, [table])
            aside.indexes.extend(cursor.fetchall())
        for table, name, _, _ in aside.foreign_keys:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for name, _ in aside.indexes:
            cursor.execute(f"DROP INDEX {name}")
    logger.info("Set aside %d indexes and %d foreign keys for the load", len(aside.indexes), len(aside.foreign_keys))
    return aside


def set_aside_foreign_keys(
    foreign_keys: list[tuple[type[models.Model], models.ForeignObject[Any, Any]]], using: str
) -> SetAside:
    """Drop the FK constraints of these (model, field) pairs (PostgreSQL): the outside rows a
    replace keeps point into tables it empties, and the check of those FKs would otherwise fire
    as the emptied tables are altered. :meth:`SetAside.rebuild` adds them back, validating
    every row, once :func:`dbrestore.backups.safety.check_outside_rows` has named any that point nowhere."""
    connection = connections[using]
    aside = SetAside(using)
    if connection.vendor != "postgresql":
        return aside
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        for model, fk in foreign_keys:
            table = qn(model._meta.db_table)
            cursor.execute(_FOREIGN_KEYS, [table, [qn(fk.related_model._meta.db_table)]])
            aside.foreign_keys.extend(
                (table, *constraint) for constraint in cursor.fetchall() if constraint[2] == fk.column
            )
        for table, name, _, _ in aside.foreign_keys:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    return aside
