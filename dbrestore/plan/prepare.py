"""What a JSON restore does before its first row: the plan's warnings and counts, checksums,
migration drift, outside references, the safety backup. Shared by the one-transaction load
(:mod:`dbrestore.service`) and the chunked one (:mod:`dbrestore.chunked.restore`), which records it done."""

from __future__ import annotations

import logging

from dbrestore import signals
from dbrestore.backups.safety import make_safe
from dbrestore.integrity.verify import migration_drift, verify_checksums
from dbrestore.load.ledger import Ledger
from dbrestore.models import RestoreRun
from dbrestore.options import RestoreOptions
from dbrestore.plan.build import Plan, plan_warnings
from dbrestore.runs.progress import BaseListener
from dbrestore.runs.report import RestoreResult
from dbrestore.sources import Backup

logger = logging.getLogger(__name__)


def note_plan(plan: Plan, result: RestoreResult) -> None:
    result.warnings.extend(plan_warnings(plan))
    for cycle in plan.cycles:  # no loss nor change: not a warning
        logger.info("FK cycle between %s; loaded with deferred constraint checks", ", ".join(cycle))
    for table in plan.tables:
        result.table(table.label, table.db_table, expected=table.data.expected_rows)


def count_excluded(plan: Plan, result: RestoreResult) -> None:
    """Rows of excluded models (``--exclude``, ``DBRESTORE["EXCLUDE"]``) are counted as skipped
    and named, not dropped unseen."""
    for table in plan.excluded:
        done = result.table(table.label, table.db_table, expected=table.data.expected_rows)
        rows = sum(1 for _ in table.data.rows())
        Ledger(table.label, table.db_table, done).excluded(rows)
        if rows:
            result.warnings.append(
                f"{table.data.origin}: {rows} rows of {table.label} not restored: the model is excluded "
                "(--exclude or DBRESTORE['EXCLUDE']); counted as skipped"
            )


def expected_rows(plan: Plan) -> int | None:
    counts = [table.data.expected_rows for table in plan.tables]
    known = [count for count in counts if count is not None]
    return None if len(known) < len(counts) else sum(known)


def check_and_make_safe(
    run: RestoreRun, backup: Backup, plan: Plan, opts: RestoreOptions, result: RestoreResult, progress: BaseListener
) -> bool:
    """Everything before the first row is written (emptying aside); returns whether every table
    to empty is small (DELETE beats TRUNCATE then)."""
    opts.check_row_load()
    note_plan(plan, result)
    count_excluded(plan, result)
    progress.restore_started(result, expected_rows(plan))
    signals.pre_restore.send(sender=RestoreRun, run=run, tables=[t.label for t in plan.tables])
    if not opts.skip_checksum:
        progress.phase_started("checking the data files against the manifest")
        verify_checksums(plan)
    for warning in migration_drift(backup, opts.database):
        logger.warning("%s: %s", run.source, warning)
        result.warnings.append(warning)
    return make_safe(run, backup, plan, opts, result, progress)
