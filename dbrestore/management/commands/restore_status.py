"""``manage.py restore_status RUN_ID``: where a restore is, for people (default) or machines (--json)."""

from __future__ import annotations

import orjson
from django.core.management.base import BaseCommand, CommandError

from dbrestore.chunked import aside
from dbrestore.models import RestoreRun
from dbrestore.runs.lifecycle import progress_data, settle


class Command(BaseCommand):
    help = (
        "Show the status and progress of a restore run (see restore_backup --async). A run whose "
        "process or RQ job is gone is marked failed, with the reason."
    )

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int, help="The RestoreRun id printed by restore_backup.")
        parser.add_argument("--json", action="store_true", help="Print the progress document as JSON.")

    def handle(self, *args, run_id: int, **options):
        try:
            run = RestoreRun.objects.get(pk=run_id)
        except RestoreRun.DoesNotExist:
            raise CommandError(f"no restore run #{run_id}") from None
        if run.is_active:
            settle(run.database)  # a run nobody is behind any more is failed now, with the reason
            run.refresh_from_db()
        data = progress_data(run)
        data["set_aside"] = aside.describe(run)
        # PostgreSQL's jsonb keeps its own key order; "position" is the restore's order.
        data["tables"] = dict(sorted((data["tables"] or {}).items(), key=lambda item: item[1].get("position", 0)))
        if options["json"]:
            self.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
            return
        self.stdout.write(
            f"Restore #{run.pk} of {run.source}: {data['status']}, "
            f"{data['rows_done']}/{data['rows_total'] or '?'} rows "
            f"({data['percent']}%), {data['rows_inserted']} inserted, {data['rows_skipped']} skipped, "
            f"{data['rows_rejected']} rejected"
            + (f", loading {data['current_table']}" if data["current_table"] else "")
        )
        for label, table in data["tables"].items():
            self.stdout.write(
                f"  {label}: {table['total']} read, {table['inserted']} inserted, {table['skipped']} skipped, "
                f"{table['rejected']} rejected" + _chunks(table) + _left_holding(table)
            )
        for message in data["errors"]:
            self.stdout.write(self.style.ERROR(f"  error: {message}"))
        set_aside = aside.describe(run)
        if set_aside:
            self.stdout.write((self.style.NOTICE if run.is_active else self.style.WARNING)(f"  indexes: {set_aside}"))


def _chunks(table: dict) -> str:
    """A chunked (``--no-atomic``) run: done, partial N of M chunks, or untouched."""
    if "state" not in table:
        return ""
    return f"; {table['state']}" if table["state"] != "done" else f"; done ({table['chunks']} chunks)"


def _left_holding(table: dict) -> str:
    """What a failed ``--no-atomic`` restore left in the table (counted when it failed)."""
    if "rows_now" not in table:
        return ""
    now = "?" if table["rows_now"] is None else table["rows_now"]
    expected = "?" if table.get("expected") is None else table["expected"]
    return f"; now {now} rows of {expected} expected, {'complete' if table['complete'] else 'incomplete'}"
