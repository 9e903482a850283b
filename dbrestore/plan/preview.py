"""What a restore would do, found without reading the whole backup: for the admin's
confirmation page (a dry run's findings, in the time of a web request)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbrestore.backups.safety import prepare_outside_references, replaces_rows
from dbrestore.convert.row_converter import RowConverter
from dbrestore.exceptions import OutsideReferenceError
from dbrestore.files.storage import Source
from dbrestore.load.atomic import drift_warnings
from dbrestore.options import RestoreOptions
from dbrestore.plan.build import plan_warnings
from dbrestore.plan.recorded import plan_for
from dbrestore.sources import open_backup


@dataclass
class TablePreview:
    label: str
    db_table: str
    rows_now: int  # rows in the database table now
    rows_in_backup: int | None  # from the manifest, when it says
    emptied: bool


@dataclass
class Preview:
    source: str
    format: str
    mode: str  # the mode the restore runs in (``auto`` resolved)
    tables: list[TablePreview]
    also_emptied: list[TablePreview]  # --cascade tables: emptied but not loaded
    warnings: list[str] = field(default_factory=list)
    #: Outside rows pointing into replaced tables, kept and checked after the load.
    kept_outside: list[str] = field(default_factory=list)

    @property
    def rows_to_load(self) -> int | None:
        counts = [t.rows_in_backup for t in self.tables]
        known = [c for c in counts if c is not None]
        return None if len(known) < len(counts) else sum(known)


def preview_restore(source: Source, **options: Any) -> Preview:
    """The tables a restore would empty (with their row counts now), the rows it would load and
    the warnings it would give, found by the restore's own functions: the plan's findings, the
    outside references (the refusal the restore would raise, or the ``--cascade`` tables), and
    the columns the converter would drop or fill in, from the first row (or the manifest)."""
    opts = RestoreOptions.for_source(source, **options)
    backup = open_backup(source)
    plan = plan_for(backup, opts)
    warnings = plan_warnings(plan)
    if replaces_rows(opts):
        try:
            warnings += prepare_outside_references(plan, opts)
        except OutsideReferenceError as exc:
            warnings.append(str(exc))
    for table in plan.tables:
        columns = _columns(table)
        if columns:  # the restore converts no row of an empty table: nothing to say
            warnings += drift_warnings(table, *RowConverter(table.model).drift(columns))
    replace = opts.mode == "replace"

    def count(model) -> int:
        return model._base_manager.using(opts.database).count()

    tables = [TablePreview(t.label, t.db_table, count(t.model), t.data.expected_rows, replace) for t in plan.tables]
    loaded = set(plan.models)
    extra = [
        TablePreview(m._meta.label, m._meta.db_table, count(m), None, True)
        for m in plan.models_to_empty
        if replace and m not in loaded
    ]
    kept = [outside.describe() for outside in plan.kept_outside]
    return Preview(str(source), backup.format, opts.mode, tables, extra, warnings, kept)


def _columns(table) -> list[str]:
    """The columns of the manifest, else of the first row (none for an empty table)."""
    if table.data.columns is not None:
        return list(table.data.columns)
    first = next(iter(table.data.rows()), None)
    return list(first[1]) if first else []


__all__ = ["Preview", "TablePreview", "preview_restore"]
