"""Counts and timings of a restore: per table and overall, as text and as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The one set of status names: RestoreRun.Status and the admin's badges (status-<name> in dbrestore.css) use these.
QUEUED, RUNNING = "queued", "running"
SUCCEEDED, PARTIAL, FAILED, CANCELLED = "succeeded", "partial", "failed", "cancelled"


@dataclass
class TableResult:
    """What happened to one table's rows. ``inserted + skipped + rejected == total``."""

    label: str
    table: str
    expected: int | None = None  # rows the backup says it holds, when it says
    total: int = 0  # rows read so far
    inserted: int = 0
    skipped: int = 0
    rejected: int = 0
    seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.total / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "expected": self.expected,
            "total": self.total,
            "inserted": self.inserted,
            "skipped": self.skipped,
            "rejected": self.rejected,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s, 1),
        }


@dataclass
class RestoreResult:
    """The outcome of one restore, rendered by the command and stored on RestoreRun."""

    run_id: int | None
    source: str
    database: str
    status: str = SUCCEEDED
    dry_run: bool = False
    method: str = "orm"  # how rows went in: "copy" or "orm"
    tables: dict[str, TableResult] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rejects_file: str | None = None
    safety_backup: str | None = None
    verification: dict[str, Any] = field(default_factory=dict)
    #: ``--select``: per table, the rows added, unchanged, conflicting and overwritten (with samples).
    selection: dict[str, Any] | None = None

    def table(self, label: str, table: str, expected: int | None = None) -> TableResult:
        result = self.tables.get(label)
        if result is None:
            result = self.tables[label] = TableResult(label=label, table=table, expected=expected)
        return result

    def _sum(self, attribute: str) -> int:
        return sum(getattr(result, attribute) for result in self.tables.values())

    @property
    def total(self) -> int:
        return self._sum("total")

    @property
    def inserted(self) -> int:
        return self._sum("inserted")

    @property
    def skipped(self) -> int:
        return self._sum("skipped")

    @property
    def rejected(self) -> int:
        return self._sum("rejected")

    @property
    def rows_per_s(self) -> float:
        return self.total / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The ``--report-json`` document."""
        return {
            "run_id": self.run_id,
            "status": self.status,
            "source": self.source,
            "database": self.database,
            "dry_run": self.dry_run,
            "method": self.method,
            "duration_s": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s, 1),
            "totals": {
                "total": self.total,
                "inserted": self.inserted,
                "skipped": self.skipped,
                "rejected": self.rejected,
            },
            "tables": {label: result.as_dict() for label, result in self.tables.items()},
            "warnings": self.warnings,
            "errors": self.errors,
            "rejects_file": self.rejects_file,
            "safety_backup": self.safety_backup,
            "verification": self.verification,
            **({"selection": self.selection} if self.selection is not None else {}),
        }

    def render_lines(self) -> list[str]:
        """A per-table text report for the terminal."""
        header = (
            f"{'table':<32} {'total':>10} {'inserted':>10} {'skipped':>9} {'rejected':>9} {'seconds':>8} {'rows/s':>10}"
        )
        lines = [header, "-" * len(header)]
        for label, r in self.tables.items():
            lines.append(
                f"{label:<32} {r.total:>10} {r.inserted:>10} {r.skipped:>9} {r.rejected:>9} "
                f"{r.seconds:>8.2f} {r.rows_per_s:>10.0f}"
            )
        lines.append("-" * len(header))
        lines.append(
            f"{'TOTAL':<32} {self.total:>10} {self.inserted:>10} {self.skipped:>9} {self.rejected:>9} "
            f"{self.seconds:>8.2f} {self.rows_per_s:>10.0f}"
        )
        return lines
