"""What a diff found: per table, rows added, changed, removed, unchanged and rejected, with
samples; rendered as the terminal's table and as the ``--report-json`` document."""

from __future__ import annotations

import datetime
import decimal
import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

#: Characters of a value shown in a sample of a changed row (old and new); longer ones are cut.
VALUE_CHARS = 40
CLASSES = ("added", "changed", "removed", "unchanged")


def shown(value: Any, limit: int = VALUE_CHARS) -> str | int | bool | None:
    """A value of a sample as a person reads it: None, booleans and integers as they are, the
    rest as text (ISO dates, decimals as written, JSON), cut to ``limit`` characters."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, (datetime.date, datetime.time)):
        text = value.isoformat()
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, default=str, ensure_ascii=False)
    elif isinstance(value, (bytes, memoryview)):
        text = repr(bytes(value))
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plain_pk(pk: Any) -> Any:
    """A primary key as JSON holds it (a composite key as a list)."""
    if isinstance(pk, tuple):
        return [plain_pk(part) for part in pk]
    if isinstance(pk, (uuid.UUID, decimal.Decimal, datetime.date, datetime.time)):
        return str(pk)
    return pk


def same(old: Any, new: Any) -> bool:
    """Whether a stored value and the value the restore would store are the same value: equal
    as Python compares them (``1.5`` and ``1.50``, one moment in two time zones), NaN as NaN."""
    if old == new:
        return True
    return isinstance(old, float) and isinstance(new, float) and math.isnan(old) and math.isnan(new)


@dataclass
class ChangedRow:
    """A row in both whose stored values differ: per field, (old: the database's, new: the backup's)."""

    pk: Any
    fields: dict[str, tuple[Any, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "pk": plain_pk(self.pk),
            "fields": {name: {"old": shown(old), "new": shown(new)} for name, (old, new) in self.fields.items()},
        }

    def describe(self) -> str:
        return ", ".join(f"{name}: {shown(old)!r} -> {shown(new)!r}" for name, (old, new) in self.fields.items())


@dataclass
class RejectedRow:
    """A backup row the restore would reject, with its reason."""

    position: int | None
    pk: Any
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"position": self.position, "pk": plain_pk(self.pk), "reason": self.reason}


@dataclass
class TableDiff:
    """One table: every backup row is counted once as added, changed, unchanged or rejected;
    ``removed`` counts database rows the restore would delete."""

    label: str
    table: str
    samples_wanted: int = 5
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    rejected: int = 0
    #: Up to ``samples_wanted`` of each: primary keys (added, removed), rows (changed, rejected).
    added_pks: list[Any] = field(default_factory=list)
    changed_rows: list[ChangedRow] = field(default_factory=list)
    removed_pks: list[Any] = field(default_factory=list)
    rejected_rows: list[RejectedRow] = field(default_factory=list)
    #: What a person should know about this table's figures (the restore empties it whole...).
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def sample(self, samples: list, item: Any) -> None:
        if len(samples) < self.samples_wanted:
            samples.append(item)

    @property
    def rows_read(self) -> int:
        return self.added + self.changed + self.unchanged + self.rejected

    @property
    def differs(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.rejected)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "seconds": round(self.seconds, 3),
            "diff": {
                "added": self.added,
                "changed": self.changed,
                "removed": self.removed,
                "unchanged": self.unchanged,
                "rejected": self.rejected,
                "samples": {
                    "added": [plain_pk(pk) for pk in self.added_pks],
                    "changed": [row.as_dict() for row in self.changed_rows],
                    "removed": [plain_pk(pk) for pk in self.removed_pks],
                    "rejected": [row.as_dict() for row in self.rejected_rows],
                },
                "notes": self.notes,
            },
        }

    def sample_lines(self) -> list[str]:
        """The samples as lines for the terminal (none for a table without a difference)."""
        lines = [f"{self.label}:"] if self.differs or self.notes else []
        if self.added_pks:
            lines.append(f"  added, e.g. pk {', '.join(map(str, map(plain_pk, self.added_pks)))}")
        for row in self.changed_rows:
            lines.append(f"  changed pk {plain_pk(row.pk)}: {row.describe()}")
        if self.removed_pks:
            lines.append(f"  removed, e.g. pk {', '.join(map(str, map(plain_pk, self.removed_pks)))}")
        for rejected in self.rejected_rows:
            where = f"row {rejected.position}" if rejected.position is not None else "a row"
            pk = f" (pk {plain_pk(rejected.pk)})" if rejected.pk is not None else ""
            lines.append(f"  rejected {where}{pk}: {rejected.reason}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return lines


@dataclass
class OutsideEffect:
    """Rows of a model outside the backup that a replace would affect: emptied with
    ``--cascade``, or pointing to rows the backup does not bring back (the restore would be undone)."""

    label: str
    field: str
    target: str
    rows: int
    example_pk: Any
    emptied: bool

    def describe(self) -> str:
        what = (
            "emptied by --cascade"
            if self.emptied
            else "point to rows the backup does not bring back: the restore would be refused and undone"
        )
        example = plain_pk(self.example_pk)
        return f"{self.label}.{self.field} -> {self.target}: {self.rows} rows {what} (e.g. pk {example!r})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.label,
            "field": self.field,
            "target": self.target,
            "rows": self.rows,
            "example_pk": plain_pk(self.example_pk),
            "emptied": self.emptied,
        }


@dataclass
class DiffReport:
    """A backup compared with the database, as the restore with these options would see it."""

    source: str
    database: str
    mode: str
    format: str
    samples: int = 5
    tables: dict[str, TableDiff] = field(default_factory=dict)
    outside: list[OutsideEffect] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def table(self, label: str, db_table: str) -> TableDiff:
        found = self.tables.get(label)
        if found is None:
            found = self.tables[label] = TableDiff(label, db_table, samples_wanted=self.samples)
        return found

    def _sum(self, name: str) -> int:
        return sum(getattr(table, name) for table in self.tables.values())

    @property
    def totals(self) -> dict[str, int]:
        return {name: self._sum(name) for name in (*CLASSES, "rejected")}

    @property
    def rows_per_s(self) -> float:
        read = sum(table.rows_read for table in self.tables.values())
        return read / self.seconds if self.seconds else 0.0

    @property
    def differs(self) -> bool:
        return any(table.differs for table in self.tables.values()) or bool(self.outside)

    def as_dict(self) -> dict[str, Any]:
        """The ``--report-json`` document of ``--diff``."""
        return {
            "diff": True,
            "source": self.source,
            "database": self.database,
            "mode": self.mode,
            "format": self.format,
            "duration_s": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s, 1),
            "totals": self.totals,
            "tables": {label: table.as_dict() for label, table in self.tables.items()},
            "outside": [effect.as_dict() for effect in self.outside],
            "warnings": self.warnings,
        }

    def render_lines(self) -> list[str]:
        """The per-table text report for the terminal, like the restore's summary."""
        header = (
            f"{'table':<32} {'added':>10} {'changed':>10} {'removed':>10} {'unchanged':>10} {'rejected':>9} "
            f"{'seconds':>8}"
        )
        lines = [header, "-" * len(header)]
        for label, t in self.tables.items():
            lines.append(
                f"{label:<32} {t.added:>10} {t.changed:>10} {t.removed:>10} {t.unchanged:>10} {t.rejected:>9} "
                f"{t.seconds:>8.2f}"
            )
        totals = self.totals
        lines.append("-" * len(header))
        lines.append(
            f"{'TOTAL':<32} {totals['added']:>10} {totals['changed']:>10} {totals['removed']:>10} "
            f"{totals['unchanged']:>10} {totals['rejected']:>9} {self.seconds:>8.2f}"
        )
        return lines

    def sample_lines(self) -> list[str]:
        lines = [line for table in self.tables.values() for line in table.sample_lines()]
        return lines + [f"outside the backup: {effect.describe()}" for effect in self.outside]
