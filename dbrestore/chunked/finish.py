"""The post-load steps of a chunked restore, written so that they may run again: a resume
after a failure among them, or a second resume, does them over without doing anything twice.

Natural keys and FK columns loaded as NULL are filled in where they are still NULL; the rows
the steps reject are deleted (so not found again) and their lines appended to the post-load
part, whose lines also say how many rows an earlier attempt moved from inserted to rejected.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from django.db import connections

from dbrestore.chunked import aside, checkpoints
from dbrestore.chunked import reject_parts as parts
from dbrestore.convert.row_converter import DeferredNaturalKey
from dbrestore.integrity import apply_deferred_foreign_keys, apply_deferred_natural_keys, check_constraints
from dbrestore.integrity.verify import verify_counts
from dbrestore.load.atomic import drift_warnings, reset_sequences
from dbrestore.load.ledger import Ledger
from dbrestore.load.rejects import RejectsFile
from dbrestore.models import RestoreChunk
from dbrestore.plan.build import PlannedTable
from dbrestore.runs.progress import BaseListener
from dbrestore.runs.report import RestoreResult

logger = logging.getLogger(__name__)


def post_load(context: Any, result: RestoreResult, progress: BaseListener) -> None:
    """``context``: a :class:`~dbrestore.chunked.restore.ChunkedRun` whose chunks are all done."""
    using, plan, opts = context.using, context.plan, context.opts
    done = checkpoints.done_rows(context.run.pk, using)
    postload = parts.postload_path(context.rejects_path)
    _count_earlier(postload, result)
    rejects = RejectsFile(postload)
    try:
        apply_deferred_natural_keys(_natural_keys(context.tables, done, using), using, result, rejects)
        progress.phase_started("checking foreign keys")
        apply_deferred_foreign_keys(plan, using, opts.batch_size, result, rejects)
        aside.put_back(context, result, rejects, progress)
        check_constraints(plan, connections[using])
        reset_sequences(plan, using)
    finally:
        rejects.close()
    _note_drift(context.tables, done, result)
    result.rejects_file = parts.join(context.rejects_path, [(row.table, row.index) for row in done])
    progress.phase_started("verifying row counts")
    result.verification = verify_counts(plan, result, using, opts.mode)


def _count_earlier(postload: Path, result: RestoreResult) -> None:
    """Rows an earlier attempt of these steps rejected (deleted): counted as rejected again."""
    if not postload.exists():
        return
    with open(postload, "rb") as stream:
        for line in stream:
            record = orjson.loads(line)
            table = result.tables.get(record.get("model"))
            if table is not None and record.get("kind") == "rejected":
                Ledger(table.label, table.table, table).withdrawn_earlier()


def _natural_keys(
    tables: dict[str, PlannedTable], done: list[RestoreChunk], using: str
) -> list[tuple[PlannedTable, list]]:
    """The natural keys left to fill in: those of rows still there with the column still NULL."""
    found: dict[str, list] = defaultdict(list)
    for row in done:
        table = tables[row.table]
        for position, data, pk, name, key, reason in row.details.get("natural_keys", []):
            field = table.model._meta.get_field(name)
            found[row.table].append(
                (position, data, table.model._meta.pk.to_python(pk), field, DeferredNaturalKey(key, reason))
            )
    wanted = []
    for label, items in found.items():
        table = tables[label]
        manager = table.model._base_manager.using(using)
        left: list[Any] = []  # items of found: (position, row, pk, field, DeferredNaturalKey)
        for field in {item[3] for item in items}:
            pks = [item[2] for item in items if item[3] is field]
            still = set(manager.filter(pk__in=pks, **{f"{field.attname}__isnull": True}).values_list("pk", flat=True))
            left.extend(item for item in items if item[3] is field and item[2] in still)
        if left:
            wanted.append((table, sorted(left, key=lambda item: item[0])))
    return wanted


def _note_drift(tables: dict[str, PlannedTable], done: list[RestoreChunk], result: RestoreResult) -> None:
    unknown: dict[str, set] = defaultdict(set)
    missing: dict[str, set] = defaultdict(set)
    dropped: dict[str, int] = defaultdict(int)
    for row in done:
        unknown[row.table].update(row.details.get("unknown", []))
        missing[row.table].update(row.details.get("missing", []))
        dropped[row.table] += row.details.get("dropped") or 0
    for label, table in tables.items():
        result.warnings.extend(drift_warnings(table, sorted(unknown[label]), sorted(missing[label]), dropped[label]))
