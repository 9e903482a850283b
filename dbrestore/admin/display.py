"""What the admin shows about a run beyond its counters: whether its rows were rolled back, and
what the restored tables hold now. A cancelled or failed atomic restore counted rows as
inserted that its rollback took away again; the pages must show the database, not the counter."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import DatabaseError, connections

from dbrestore.chunked import checkpoints
from dbrestore.models import RestoreRun

ROLLED_BACK_STATUSES = (RestoreRun.Status.FAILED, RestoreRun.Status.CANCELLED)


def rolled_back(run: RestoreRun) -> bool:
    """The run ended without committing anything: failed or cancelled inside one transaction."""
    options = run.options or {}
    if run.status not in ROLLED_BACK_STATUSES or options.get("dry_run"):
        return False
    return bool(options.get("atomic", True)) and int(options.get("jobs") or 1) == 1


def rows_now(run: RestoreRun) -> dict[str, int | None]:
    """Rows each of the run's tables holds now (None when its model or database is gone)."""
    counts: dict[str, int | None] = {}
    usable = run.database in connections
    for label in run.tables or {}:
        counts[label] = None
        if not usable or "." not in label:
            continue
        try:
            model = apps.get_model(label)
            counts[label] = model._base_manager.using(run.database).count()
        except (LookupError, ValueError, DatabaseError):
            pass
    return counts


def table_rows(run: RestoreRun) -> list[dict[str, Any]]:
    """The run's tables in restore order, each with ``rows_now`` once the run is final."""
    final = run.status in RestoreRun.FINAL_STATUSES
    now = rows_now(run) if final else {}
    data = {"tables": {label: dict(table) for label, table in (run.tables or {}).items()}}
    try:
        checkpoints.overlay(run, data)  # done / partial N of M chunks / untouched
    except DatabaseError:
        pass
    ordered = sorted(data["tables"].items(), key=lambda item: item[1].get("position", 0))
    return [{"label": label, **table, "rows_now": now.get(label)} for label, table in ordered]


def verification_rows(run: RestoreRun) -> list[dict[str, Any]]:
    """RestoreRun.verification as table rows: expected / read / in the table / ok."""
    tables = (run.verification or {}).get("tables") or {}
    return [
        {
            "label": label,
            "expected": data.get("expected", data.get("in_dump")),
            "read": data.get("read"),
            "in_db": data.get("in_db"),
            "ok": data.get("ok", data.get("in_db") == data.get("in_dump")),
        }
        for label, data in tables.items()
    ]


def may_resume(run: RestoreRun) -> bool:
    """Whether the run page offers Resume: a failed or cancelled ``--no-atomic`` JSON restore."""
    options = run.options or {}
    return (
        run.status in ROLLED_BACK_STATUSES
        and not options.get("atomic", True)
        and not options.get("dry_run")
        and bool((run.checkpoint or {}).get("prepared"))
    )
