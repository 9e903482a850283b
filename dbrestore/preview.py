"""What a restore would do, found without reading the whole backup: for the admin's
confirmation page (a dry run's findings, in the time of a web request)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .options import RestoreOptions
from .plan import build_plan
from .sources import open_backup


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
    tables: list[TablePreview]
    also_emptied: list[TablePreview]  # M2M tables (and --cascade tables) emptied but not loaded
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_to_load(self) -> int | None:
        counts = [t.rows_in_backup for t in self.tables]
        return None if any(c is None for c in counts) else sum(counts)


def preview_restore(source: str | Path, **options: Any) -> Preview:
    """The tables a restore would empty (with their row counts now), the rows it would load and
    the warnings it would give (unknown tables, FK cycles, columns that do not match)."""
    opts = RestoreOptions(**options)
    opts.validate()
    backup = open_backup(source)
    plan = build_plan(backup, only=opts.only, exclude=opts.exclude, ignore_unknown=opts.ignore_unknown)
    replace = opts.mode == "replace"

    def count(model) -> int:
        return model._base_manager.using(opts.database).count()

    tables = [
        TablePreview(t.label, t.db_table, count(t.model), t.data.expected_rows, replace) for t in plan.tables
    ]
    loaded = set(plan.models)
    extra = [
        TablePreview(m._meta.label, m._meta.db_table, count(m), None, True)
        for m in plan.models_to_empty
        if replace and m not in loaded
    ]
    warnings = [f"table {d.key!r} matches no model; it will be skipped" for d in plan.unknown]
    warnings += [f"FK cycle between {', '.join(c)}; loaded with deferred constraint checks" for c in plan.cycles]
    for table in plan.tables:
        warnings += _column_drift(table)
    if replace:
        for model, fk in plan.outside_references:
            if model._base_manager.using(opts.database).filter(**{f"{fk.attname}__isnull": False}).exists():
                warnings.append(
                    f"{model._meta.label}.{fk.name} points into {fk.related_model._meta.label}, which would be "
                    "emptied: the restore will refuse unless --cascade"
                )
    return Preview(str(source), backup.format, tables, extra, warnings)


def _column_drift(table) -> list[str]:
    """Columns of the first row (or the manifest) that the model lacks, and the reverse."""
    columns = table.data.columns
    if columns is None:
        first = next(iter(table.data.rows()), None)
        columns = list(first[1]) if first else []
    fields = table.model._meta.concrete_fields
    known = {name for f in fields for name in (f.name, f.attname, f.column)}
    extra = [c for c in columns if c not in known]
    missing = [f.column for f in fields if not {f.name, f.attname, f.column} & set(columns)]
    warnings = []
    if extra:
        warnings.append(f"{table.label}: backup columns {', '.join(extra)} are not fields; their values will be dropped")
    if missing and columns:
        warnings.append(f"{table.label}: fields {', '.join(missing)} are not in the backup; defaults will be used")
    return warnings


__all__ = ["Preview", "TablePreview", "preview_restore"]
