"""The restore of a PostgreSQL dump (psql / pg_restore through :mod:`dbrestore.native.tools`): the
safety dump first, then the tools, then the tables counted against the dump."""

from __future__ import annotations

from pathlib import Path

from dbrestore import conf, signals
from dbrestore.backups.catalog import prune_safety_backups, safety_backup_path
from dbrestore.load.ledger import Ledger
from dbrestore.models import RestoreRun
from dbrestore.native import tools as native
from dbrestore.options import RestoreOptions
from dbrestore.runs.lifecycle import RunRecorder, record_safety_backup
from dbrestore.runs.progress import BaseListener
from dbrestore.runs.report import RestoreResult
from dbrestore.runs.watch import RunWatch
from dbrestore.sources import Backup


def restore_native(
    run: RestoreRun,
    backup: Backup,
    opts: RestoreOptions,
    result: RestoreResult,
    progress: BaseListener,
    recorder: RunRecorder,
    watch: RunWatch,
) -> None:
    """A pg_dump file through psql / pg_restore (see :mod:`dbrestore.native.tools`); ``watch`` is
    asked as each table starts whether to stop."""
    native.require_postgresql(opts.database)
    progress.restore_started(result, None)
    if opts.dry_run:
        result.warnings.append(f"dry run: {backup.path} is a {backup.format} dump; nothing was restored")
        return
    if opts.safety_backup and conf.get("SAFETY_BACKUP"):
        progress.phase_started("safety backup of the database (pg_dump)")
        target = safety_backup_path(run.pk, ".dump")
        assert isinstance(target, Path)  # no root given: under BACKUP_DIR, local (pg_dump writes it)
        result.safety_backup = str(native.dump_database(target, opts.database))
        prune_safety_backups()
        record_safety_backup(run, result.safety_backup)
    if opts.terminate_connections:
        ended = native.terminate_other_sessions(opts.database, keep=recorder.backend_pids())
        result.warnings.append(f"--terminate-connections: ended {ended} other sessions")
    signals.pre_restore.send(sender=RestoreRun, run=run, tables=[])

    def on_table(name: str) -> None:
        watch.check(force=True)
        progress.table_started(result.table(name, name))

    progress.phase_started(f"restoring the {backup.format} dump")
    assert isinstance(backup.path, Path)  # a dump in a storage is refused when opened (sources._stored_native)
    copied = native.restore_dump(backup.path, backup.format, using=opts.database, jobs=opts.jobs, on_table=on_table)
    counts = native.table_counts(opts.database)
    mismatches = [
        f"{table}: {copied[table]} rows in the dump, {counts.get(table)} in the table"
        for table in copied
        if counts.get(table) != copied[table]
    ]
    result.tables.clear()
    for table, rows in counts.items():
        Ledger(table, table, result.table(table, table)).counted_in_table(rows)
    result.verification = {
        "tables": {t: {"in_db": n, "in_dump": copied.get(t)} for t, n in counts.items()},
        "mismatches": mismatches,
        "ok": not mismatches,
    }
