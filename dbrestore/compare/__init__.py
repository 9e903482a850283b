"""Backup rows against database rows: the diff (``restore_backup --diff``, the admin's
"Compare with the database" step), and the undelete's preview.

One engine, by primary key, with values converted as the restore would store them (the same
:class:`~dbrestore.convert.row_converter.RowConverter`), so a value that only changes its
spelling is unchanged. The undelete (:mod:`dbrestore.select.apply`) reads the database's rows
and tells a conflict from an unchanged row with this package's ``stored_by_keys`` and
``differing``. Streamed on both sides, batch by batch: ``engine.py`` (:func:`compare`,
the service call), ``table.py`` (one table, by primary-key ranges or by keys), ``report.py``
(:class:`DiffReport`, rendered by the command and the admin).
"""

from __future__ import annotations

from dbrestore.compare.engine import DEFAULT_SAMPLES, compare
from dbrestore.compare.report import ChangedRow, DiffReport, OutsideEffect, RejectedRow, TableDiff

__all__ = ["DEFAULT_SAMPLES", "ChangedRow", "DiffReport", "OutsideEffect", "RejectedRow", "TableDiff", "compare"]
