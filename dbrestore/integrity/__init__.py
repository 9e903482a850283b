"""Foreign keys: orphans become rejects instead of a failed COMMIT.

A restored table's FK columns fall in two kinds (see :func:`classify_foreign_keys`):

* *settled*: the parent table is loaded before this one, or is not part of the restore. Each
  batch asks the parent once per FK column which of its values exist
  (:class:`~.edges.ParentCheck`), and rejects the rows that point nowhere.
* *deferred*: a self reference, or a parent loaded later (an FK cycle). The rows go in as they
  are (constraint checks are deferred to COMMIT on PostgreSQL and SQLite); after the load,
  :func:`sweep_orphans` finds the rows whose parent never came with one anti-join per FK,
  deletes them, and rejects them with their original row, found by re-reading the input (only
  when there are orphans, so memory stays flat). Deleting a row can orphan its children, so the
  sweep repeats over the FKs into tables that lost rows until nothing changes.

With ``--no-atomic`` every batch commits on its own, so a deferred FK cannot wait for COMMIT:
its (nullable) columns are loaded as NULL and filled in afterwards by
:func:`apply_deferred_foreign_keys`.

Every row deleted here is *withdrawn* in its table's :class:`~dbrestore.load.ledger.Ledger`
(inserted -> rejected, with its reason). The checks made while the rows go in live in
:mod:`.edges`, the repairs after the load in :mod:`.repair`.
"""

from dbrestore.integrity.edges import (
    ForeignKeyEdge,
    ParentCheck,
    check_constraints,
    checked_as_copied,
    classify_foreign_keys,
    existing_values,
    foreign_key_constraints,
    orphan_pks,
)
from dbrestore.integrity.repair import (
    apply_deferred_foreign_keys,
    apply_deferred_natural_keys,
    nullable_deferred_fields,
    sweep_orphans,
    table_ledger,
)

__all__ = [
    "ForeignKeyEdge",
    "ParentCheck",
    "apply_deferred_foreign_keys",
    "apply_deferred_natural_keys",
    "check_constraints",
    "checked_as_copied",
    "classify_foreign_keys",
    "existing_values",
    "foreign_key_constraints",
    "nullable_deferred_fields",
    "orphan_pks",
    "sweep_orphans",
    "table_ledger",
]
