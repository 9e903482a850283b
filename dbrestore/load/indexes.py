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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, IntegrityError, connections, models, transaction

from dbrestore.exceptions import RestoreAbortedError, first_line

logger = logging.getLogger(__name__)

MIN_ROWS = 5_000  # the default of DBRESTORE["SET_ASIDE_MIN_ROWS"] (see worth_setting_aside)

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

    def rebuild_side_by_side(self, workers: int) -> None:
        """Create the indexes not there yet, up to ``workers`` at a time, each on a connection
        of its own (as ``pg_restore -j`` does: ``CREATE INDEX`` takes a SHARE lock, which two
        builds on one table share). Outside a transaction: each index commits as it is built,
        so a kill loses only those in flight. The ones that cannot be built are named, with
        the database's reason, in one :class:`IndexRebuildError` once the others are built."""
        todo = [(name, definition) for name, definition in self.indexes if not self._index_exists(name)]
        failed: list[tuple[str, str]] = []
        if todo:
            with ThreadPoolExecutor(max(1, min(workers, len(todo))), thread_name_prefix="dbrestore-index") as pool:
                for (name, _), error in zip(todo, pool.map(self._build_alone, todo), strict=True):
                    if error:
                        failed.append((name, error))
            logger.info("Rebuilt %d indexes after the load (%d side by side)", len(todo) - len(failed), workers)
        left = {name for name, _ in failed}
        self.indexes = [(name, definition) for name, definition in self.indexes if name in left]
        if failed:
            raise IndexRebuildError(failed)

    def _build_alone(self, item: tuple[str, str]) -> str | None:
        main = connections[self.using]
        connection = type(main)(dict(main.settings_dict), self.using)
        try:
            connection.ensure_connection()
            connection.set_autocommit(True)
            with connection.cursor() as cursor:
                cursor.execute(item[1])
        except DatabaseError as exc:
            return first_line(exc)
        finally:
            connection.close()
        return None

    def _index_exists(self, name: str) -> bool:
        with connections[self.using].cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
            return bool(cursor.fetchone()[0])

    def _foreign_key_exists(self, table: str, name: str) -> bool:
        with connections[self.using].cursor() as cursor:
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = %s::regclass "
                "AND quote_ident(conname) = %s AND contype = 'f')",
                [table, name],
            )
            return bool(cursor.fetchone()[0])

    def as_record(self) -> dict[str, list[list[Any]]]:
        """What to store on the run (JSON) to put them back from any process."""
        return {
            "indexes": [list(item) for item in self.indexes],
            "foreign_keys": [list(fk) for fk in self.foreign_keys],
        }

    @classmethod
    def from_record(cls, using: str, record: dict[str, Any] | None) -> SetAside:
        record = record or {}
        return cls(
            using,
            indexes=[(name, definition) for name, definition in record.get("indexes", [])],
            foreign_keys=[
                (table, name, definition, column) for table, name, definition, column in record.get("foreign_keys", [])
            ],
        )

    def merged(self, other: SetAside) -> SetAside:
        """These and ``other``'s (an earlier attempt's record: some may be gone from the catalog)."""
        indexes = dict(other.indexes) | dict(self.indexes)
        keys = {(fk[0], fk[1]): fk for fk in [*other.foreign_keys, *self.foreign_keys]}
        return SetAside(self.using, indexes=list(indexes.items()), foreign_keys=list(keys.values()))

    def __bool__(self) -> bool:
        return bool(self.indexes or self.foreign_keys)

    def names(self) -> list[str]:
        return [name for name, _ in self.indexes] + [name for _, name, _, _ in self.foreign_keys]

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
        except (IntegrityError, IndexRebuildError) as exc:
            logger.info("An FK set aside has orphans (%s); sweeping before adding them back", exc)
            return False
        self.foreign_keys_added = True
        return True

    def validates(self, table: str, column: str) -> bool:
        """Whether an FK constraint on this (quoted) table's column was added back and so
        validated by PostgreSQL."""
        return self.foreign_keys_added and any(t == table and c == column for t, _, _, c in self.foreign_keys)

    def _add_foreign_keys(self) -> None:
        """Add each FK constraint not there yet (one added by an attempt that died stays)."""
        with connections[self.using].cursor() as cursor:
            for table, name, definition, _ in self.foreign_keys:
                if self._foreign_key_exists(table, name):
                    continue
                try:
                    with transaction.atomic(using=self.using):
                        cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
                except IntegrityError as exc:
                    raise IndexRebuildError([(f"{name} on {table}", first_line(exc))], kind="foreign key") from exc
        logger.info("Added back %d foreign keys after the load", len(self.foreign_keys))

    def add_foreign_keys(self) -> None:
        """Add back (and so validate) every FK constraint not there yet; raise
        :class:`IndexRebuildError` naming the first that a row violates."""
        self._add_foreign_keys()
        self.foreign_keys_added = True


class IndexRebuildError(RestoreAbortedError):
    """Indexes (or an FK constraint) set aside for the load that could not be put back."""

    def __init__(self, failed: list[tuple[str, str]], kind: str = "index"):
        self.failed = failed
        listed = "; ".join(f"{name}: {reason}" for name, reason in failed)
        plural = "indexes" if kind == "index" else "foreign keys"
        super().__init__(
            f"could not put back the {kind if len(failed) == 1 else plural} set aside for the load: {listed}"
        )


def worth_setting_aside(tables: list) -> list[type[models.Model]]:
    """The planned tables big enough (or of unknown size) to gain from it.

    Dropping and rebuilding costs a few statements per index and FK, about a millisecond each;
    keeping them costs an index insertion and an FK trigger per row, a few microseconds. A table
    of fewer than ``MIN_ROWS`` rows (:meth:`~dbrestore.sources.TableData.at_least_rows`) keeps
    its indexes and FKs (then checked as it is copied).
    """
    from dbrestore import conf

    configured = conf.get("SET_ASIDE_MIN_ROWS")
    least = MIN_ROWS if configured is None else int(configured)
    return [table.model for table in tables if table.data.at_least_rows(least)]


def set_aside(
    models_to_load: list[type[models.Model]], using: str, restored: list[type[models.Model]] | None = None
) -> SetAside:
    """Drop the secondary indexes of these tables and their FK constraints to ``restored``
    tables (default: these); return how to rebuild them."""
    aside = find(models_to_load, using, restored)
    drop(aside)
    return aside


def find(
    models_to_load: list[type[models.Model]], using: str, restored: list[type[models.Model]] | None = None
) -> SetAside:
    """The secondary indexes of these tables and their FK constraints to ``restored`` tables
    (default: these), read from the catalog, nothing dropped yet."""
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
    return aside


def drop(aside: SetAside) -> None:
    """Drop what ``aside`` lists (whatever of it is still there)."""
    with connections[aside.using].cursor() as cursor:
        for table, name, _, _ in aside.foreign_keys:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")
        for name, _ in aside.indexes:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
    logger.info("Set aside %d indexes and %d foreign keys for the load", len(aside.indexes), len(aside.foreign_keys))


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
