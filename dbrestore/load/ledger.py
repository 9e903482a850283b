"""The ledger of one table: the only place rows are counted or rejected.

Every input row ends as exactly one of *inserted*, *skipped* (its primary key or a unique value
is already there, or its model is excluded) or *rejected* (written to the rejects file with the
reason). The loaders, the fallback chain, the COPY pipeline and the integrity steps after the
load all record what became of a row here, so the counts and the rejects file cannot disagree.
A row taken out again after it went in (an orphan, a natural key never found) is *withdrawn*:
one inserted row less, one rejected row more, with its reason in the rejects file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from dbrestore.load.rejects import RejectsFile
from dbrestore.load.rows import PendingRow
from dbrestore.runs.report import TableResult

SKIPPED_REASON = "a row with this primary key or unique value is already there"


class Ledger:
    """Counts onto ``result`` (one table's) and writes to ``rejects`` (None: a ledger that only
    counts, for excluded models and native dumps).

    ``log_skipped``: rows skipped as duplicates go to the rejects file too (``--log-skipped``).
    """

    def __init__(
        self,
        label: str,
        db_table: str,
        result: TableResult,
        rejects: RejectsFile | None = None,
        *,
        log_skipped: bool = False,
    ):
        self.label = label
        self.db_table = db_table
        self.result = result
        self.rejects = rejects
        self.log_skipped = log_skipped

    def read(self, rows: int = 1) -> None:
        """Rows read from the backup (each one is then inserted, skipped or rejected)."""
        self.result.total += rows

    def reject(self, position: int | None, row: dict[str, Any], reason: str) -> None:
        assert self.rejects is not None, "a ledger that rejects rows needs the rejects file"
        self.result.rejected += 1
        self.rejects.write(model=self.label, table=self.db_table, position=position, row=row, reason=reason)

    def passed(self, rows: int) -> None:
        """A dry run: rows that would go in (converted and checked, not written)."""
        self.result.inserted += rows

    def excluded(self, rows: int) -> None:
        """Rows of an excluded model: read, and skipped."""
        self.result.total += rows
        self.result.skipped += rows

    def counted_in_table(self, rows: int) -> None:
        """A native dump: the rows pg_restore / psql left in the table, as its count says."""
        self.result.total = self.result.inserted = rows

    def written(self, pending: Sequence[PendingRow], inserted: int, pks: list[Any] | None) -> None:
        """A write of ``pending`` put ``inserted`` rows in (``pks``: theirs, when the database
        said); the others were skipped as duplicates."""
        self.result.inserted += inserted
        self.result.skipped += len(pending) - inserted
        if self.log_skipped and inserted < len(pending) and self.rejects is not None:
            for p in _skipped_rows(pending, inserted, pks):
                self.rejects.write(
                    model=self.label,
                    table=self.db_table,
                    position=p.position,
                    row=p.row,
                    reason=SKIPPED_REASON,
                    kind="skipped",
                )

    def copied(self, rows: int) -> None:
        """Rows a COPY put in (all of its rows, or it failed)."""
        self.result.inserted += rows

    def withdraw(self, position: int | None, row: dict[str, Any], reason: str) -> None:
        """A row that went in and was deleted again by the integrity steps: rejected after all."""
        self.result.inserted -= 1
        self.reject(position, row, reason)

    def withdrawn_earlier(self, rows: int = 1) -> None:
        """Rows an earlier attempt of a chunked run's post-load steps withdrew: their lines are in
        the rejects file already, the chunks' checkpoints still count them as inserted."""
        self.result.inserted -= rows
        self.result.rejected += rows


def _skipped_rows(pending: Sequence[PendingRow], inserted: int, pks: list[Any] | None) -> list[PendingRow]:
    if pks is None:  # the database did not say which rows went in; a lone row it can
        return list(pending) if inserted == 0 and len(pending) == 1 else []
    went_in = Counter(pks)
    skipped = []
    for p in pending:
        if went_in[p.obj.pk] > 0:
            went_in[p.obj.pk] -= 1
        else:
            skipped.append(p)
    return skipped
