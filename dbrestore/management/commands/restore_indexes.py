"""``manage.py restore_indexes RUN_ID``: put back the indexes and FK constraints that a chunked
restore set aside, without finishing its load (for a run given up on)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from dbrestore.chunked import aside
from dbrestore.conf import run_database
from dbrestore.exceptions import DbRestoreError
from dbrestore.models import RestoreRun
from dbrestore.runs import locks
from dbrestore.runs.lifecycle import reap_dead_runs


class Command(BaseCommand):
    help = (
        "Build again the indexes and FK constraints a failed --no-atomic restore set aside for its "
        "load, leaving its rows as they are (restore_backup --resume RUN_ID does it too, after "
        "loading the rest)."
    )

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int, help="The RestoreRun id (see restore_status).")

    def handle(self, *args, run_id: int, **options):
        run = RestoreRun.objects.using(run_database()).filter(pk=run_id).first()
        if run is None:
            raise CommandError(f"no restore run #{run_id}")
        try:
            with locks.holding(run.database, resuming=run.pk):  # no restore of that database runs meanwhile
                reap_dead_runs(run.database)
                run.refresh_from_db()
                if run.is_active:
                    raise CommandError(f"restore #{run.pk} is {run.status}; it puts them back itself when it ends")
                done = aside.put_back_now(run)
        except DbRestoreError as exc:
            raise CommandError(str(exc)) from exc
        if not done:
            self.stdout.write(f"Restore #{run.pk} has nothing set aside.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Restore #{run.pk}: put back {len(done.indexes)} indexes and {len(done.foreign_keys)} foreign keys "
                f"({', '.join(done.names())})."
            )
        )
