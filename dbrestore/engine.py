"""The restore service: one call used by the command, the admin and the RQ job.

Data flows one way: source (``sources``) -> plan (``plan``) -> convert (``convert``) ->
load (``loader``) -> report (``report``), with progress events along the way (``progress``)
and the run's history in a RestoreRun row (``runs``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.utils import DatabaseError
from django.utils import timezone

from . import conf, locks, native, postload, signals
from .backup import create_backup
from .discovery import backup_root, prune_safety_backups, safety_backup_path
from .exceptions import DbRestoreError, OutsideReferenceError, RestoreAbortedError, RestoreCancelled, RestoreConfigError
from .integrity import (
    ForeignKeyEdge,
    apply_deferred_foreign_keys,
    apply_deferred_natural_keys,
    classify_foreign_keys,
    nullable_deferred_fields,
    sweep_orphans,
)
from .loader import TableLoader
from .models import RestoreRun
from .sources.native import NATIVE_FORMATS
from .parallel import load_levels, run_in_threads
from .plan import Plan, PlannedTable, build_plan, order_parents_first, referencing_fields
from .progress import BaseListener, Broadcast, ProgressListener
from .rejects import RejectsFile
from .report import CANCELLED, FAILED, PARTIAL, SUCCEEDED, RestoreResult
from .runs import RunRecorder, create_run, describe_tables, finish_run, tables_progress
from .sources import Backup, open_backup, refuse_outputs
from .storage import StoragePath, as_location, configured_alias
from .verify import migration_drift, table_counts, verify_checksums, verify_counts

logger = logging.getLogger(__name__)

MODES = ("replace", "merge", "append")
# Tables this small are emptied by DELETE on PostgreSQL: TRUNCATE makes new files for each
# table and its indexes, several milliseconds a table, while DELETE of a few rows is a round trip.
SMALL_TABLE_ROWS = 1_000
METHODS = ("auto", "orm", "copy")


@dataclass
class RestoreOptions:
    """Everything that shapes a restore besides its source. Stored on RestoreRun.options."""

    database: str = DEFAULT_DB_ALIAS
    mode: str = "replace"
    batch_size: int | None = None
    only: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    dry_run: bool = False
    atomic: bool = True
    ignore_unknown: bool = False
    rejects_file: str | None = None
    cascade: bool = False  # replace: also empty outside tables whose rows point into restored ones
    log_skipped: bool = False  # write rows skipped as duplicates to the rejects file too
    max_rejects: int | None = None  # stop (and roll back when atomic) after this many rejects
    skip_checksum: bool = False  # do not check data files against the manifest's sha256 and counts
    safety_backup: bool = True  # back up the tables a replace empties, first (and SAFETY_BACKUP)
    method: str = "auto"  # auto | orm | copy: auto is COPY on PostgreSQL in replace mode
    jobs: int = 1  # tables loaded side by side: pg_restore --jobs; JSON backups with --no-atomic
    terminate_connections: bool = False  # native dumps: end other sessions on the database first
    # PostgreSQL replace in one transaction: build secondary indexes and FKs between restored tables
    # after the load. None (the default): on wherever it keeps its guarantees; False: --keep-indexes.
    indexes_after_load: bool | None = None
    storage: str | None = None  # settings.STORAGES alias for the safety backup (default DBRESTORE["STORAGE"])

    def validate(self) -> None:
        if self.database not in connections:
            known = ", ".join(connections)
            raise RestoreConfigError(f"unknown database alias {self.database!r} (configured: {known})")
        if self.mode not in MODES:
            raise RestoreConfigError(f"unknown mode {self.mode!r} (choose from {', '.join(MODES)})")
        if self.batch_size is None:
            self.batch_size = int(conf.get("BATCH_SIZE"))
        if self.batch_size < 1:
            raise RestoreConfigError(f"batch size must be at least 1 (got {self.batch_size})")
        if self.method not in METHODS:
            raise RestoreConfigError(f"unknown method {self.method!r} (choose from {', '.join(METHODS)})")
        if self.method == "copy" and connections[self.database].vendor != "postgresql":
            raise RestoreConfigError("--method copy needs PostgreSQL")
        if self.method == "copy" and self.mode != "replace":
            raise RestoreConfigError("--method copy works in replace mode; merge and append use the ORM path")
        if self.jobs < 1:
            raise RestoreConfigError(f"--jobs must be at least 1 (got {self.jobs})")
        if self.indexes_after_load is None:
            self.indexes_after_load = self._indexes_after_load_fits()
        elif self.indexes_after_load:
            if connections[self.database].vendor != "postgresql":
                raise RestoreConfigError("--indexes-after-load needs PostgreSQL")
            if self.mode != "replace" or not self.atomic:
                raise RestoreConfigError("--indexes-after-load works in replace mode, in one transaction (not with --no-atomic)")
        configured_alias(self.storage)  # an unknown --storage alias fails here, before a run is made
        if self.max_rejects is not None and self.max_rejects < 0:
            raise RestoreConfigError(f"--max-rejects must be 0 or more (got {self.max_rejects})")
        self.only, self.exclude = list(self.only or []), list(self.exclude or [])

    def _indexes_after_load_fits(self) -> bool:
        """The default: PostgreSQL, replace mode, one transaction, rows actually written."""
        return (connections[self.database].vendor == "postgresql" and self.mode == "replace" and self.atomic
                and not self.dry_run)

    def make_paths_absolute(self) -> None:
        if self.rejects_file:
            self.rejects_file = absolute(self.rejects_file)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def uses_copy(self) -> bool:
        """COPY on PostgreSQL in replace mode (unless --method orm), the ORM path otherwise."""
        return not self.dry_run and (self.method == "copy" or (
            self.method == "auto" and self.mode == "replace" and connections[self.database].vendor == "postgresql"
        ))

    def loader_class(self) -> type[TableLoader]:
        if not self.uses_copy():
            return TableLoader
        from .copyload import CopyTableLoader  # imported here: psycopg costs SQLite 45 ms of start-up

        return CopyTableLoader


def restore(
    source: str | Path,
    *,
    requested_by: str = "",
    listeners: Iterable[ProgressListener] = (),
    **options: Any,
) -> RestoreResult:
    """Restore ``source`` into the database; record and return the outcome.

    Raises a :class:`~dbrestore.exceptions.DbRestoreError` for bad input or options (the run,
    when one was created, is marked failed with that message first).
    """
    opts = RestoreOptions(**options)
    opts.validate()
    opts.make_paths_absolute()
    with locks.holding(opts.database) as lock:
        run = create_run(source=absolute(source), database=opts.database, mode=opts.mode, options=opts.as_json(),
                         requested_by=requested_by)
        return execute(run, lock=lock, listeners=listeners)


def absolute(path: str | Path | StoragePath) -> str:
    """Paths on a RestoreRun do not depend on where the process stood (a worker stands elsewhere);
    a location in a storage is absolute already."""
    location = as_location(path)
    return str(location if isinstance(location, StoragePath) else location.absolute())


def execute(run: RestoreRun, *, lock: locks.DatabaseLock, listeners: Iterable[ProgressListener] = (),
            job_id: str | None = None) -> RestoreResult:
    """Run a RestoreRun (fresh, or queued by ``--async`` / the admin) to its end, holding
    ``lock``, the database's restore lock (``job_id``: the RQ job running it, watched)."""
    opts = RestoreOptions(**run.options)
    opts.validate()
    result = RestoreResult(run_id=run.pk, source=run.source, database=opts.database, dry_run=opts.dry_run,
                           method="copy" if opts.uses_copy() else "orm")
    recorder = RunRecorder(run, restore_database=opts.database, atomic=opts.atomic and not opts.dry_run,
                           lock=lock, job_id=job_id)
    progress = Broadcast([recorder, *listeners])
    rejects = RejectsFile(
        Path(opts.rejects_file) if opts.rejects_file else default_rejects_path(run), max_rejects=opts.max_rejects
    )
    started = time.monotonic()
    plan: Plan | None = None
    _mark_running(run)
    try:
        backup = open_backup(run.source)
        refuse_outputs(backup, [rejects.path])
        if opts.rejects_file:  # a typo in --rejects-file fails now, not at the first reject
            rejects.check_writable()
        run.source_format = backup.format
        if backup.format in NATIVE_FORMATS:
            _restore_native(run, backup, opts, result, progress, recorder)
        else:
            plan = build_plan(backup, only=opts.only, exclude=opts.exclude, ignore_unknown=opts.ignore_unknown)
            _restore_rows(run, backup, plan, opts, result, rejects, progress, started)
        result.errors.extend(result.verification.get("mismatches", []))
        result.status = PARTIAL if result.rejected or not result.verification.get("ok", True) else SUCCEEDED
    except RestoreCancelled as exc:
        result.status = CANCELLED
        result.errors.append(str(exc))
    except DbRestoreError as exc:
        result.status = FAILED
        result.errors.append(str(exc))
        raise
    except BaseException as exc:  # KeyboardInterrupt and SystemExit (SIGTERM) end the run too
        result.status = FAILED
        result.errors.append(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        raise
    finally:
        recorder.close()
        result.seconds = time.monotonic() - started
        result.rejects_file = str(rejects.path) if rejects.used else None
        tables = tables_progress(result, recorder.finished)
        with contextlib.suppress(Exception):  # a full disk must not keep the outcome from being recorded
            rejects.close()
        if result.status in (FAILED, CANCELLED):
            _note_table_states(plan, opts, result, tables)
        finish_run(run, result, tables)
        progress.restore_finished(result)
    signals.post_restore.send(sender=RestoreRun, run=run, tables=list(result.tables), result=result)
    return result


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def prepare_outside_references(plan: Plan, opts: RestoreOptions, result: RestoreResult) -> None:
    """Refuse to empty tables that rows of tables outside the restore point to, unless
    ``cascade``: then those tables are emptied too (and named in a warning)."""
    blocking: dict[type, list[str]] = {}
    for model, fk in plan.outside_references:
        if model._base_manager.using(opts.database).filter(**{f"{fk.attname}__isnull": False}).exists():
            blocking.setdefault(model, []).append(f"{model._meta.label}.{fk.name} -> {fk.related_model._meta.label}")
    if not blocking:
        return
    described = "; ".join(ref for refs in blocking.values() for ref in refs)
    if not opts.cascade:
        raise OutsideReferenceError(
            f"replace mode would empty tables that rows outside the backup point to: {described} "
            "(include those tables, use --cascade to empty them too, or --mode append/merge)"
        )
    extra = cascade_closure(list(blocking), set(plan.models_to_empty))
    delete_order, _ = order_parents_first(extra)
    plan.models_to_empty[:0] = list(reversed(delete_order))
    result.warnings.append(
        "--cascade: also emptied " + ", ".join(model._meta.label for model in extra) + f" ({described})"
    )


def cascade_closure(models: list, already: set) -> list:
    """``models`` and, transitively, every model with an FK into them, not in ``already``."""
    found, todo = [], list(models)
    while todo:
        model = todo.pop(0)
        if model in already or model in found:
            continue
        found.append(model)
        todo.extend(referencing for referencing, _ in referencing_fields(model))
    return found


def _note_table_states(plan: Plan | None, opts: RestoreOptions, result: RestoreResult,
                       tables: dict[str, Any]) -> None:
    """After a failure, say what each table was left holding (rows now, rows expected, complete
    or not: counted in the database, recorded on ``tables`` too)."""
    if plan is None or opts.dry_run:
        return
    if opts.atomic:
        result.errors.append("rolled back: the database is as it was before the restore")
        return
    result.errors.extend(describe_tables(opts.database, tables, opts.mode))


def write_safety_backup(run: RestoreRun, plan: Plan, using: str, *, storage: str | None = None,
                        recipients: list[str] | None = None) -> Path | StoragePath:
    """Back up the tables the restore is about to empty, into ``safety/`` of the backups' storage
    (or BACKUP_DIR), encrypted for ``recipients`` when given; a failure stops the restore before it
    empties any table."""
    root = backup_root(storage)
    directory = safety_backup_path(run.pk, root=root)
    create_backup(directory, using=using, models_to_save=plan.models_to_empty, recipients=recipients)
    logger.info("Safety backup of %d tables in %s", len(plan.models_to_empty), directory)
    prune_safety_backups(root=root)
    return directory


def encryption_recipients(backup: Backup) -> list[str]:
    """The GPG recipients an encrypted backup was made for (its safety backup gets the same)."""
    encryption = backup.metadata.get("encryption")
    if isinstance(encryption, dict) and encryption.get("method") == "gpg":
        return [str(r) for r in encryption.get("recipients") or []]
    return []


def default_rejects_path(run: RestoreRun) -> Path:
    return conf.backup_dir() / "rejects" / f"restore-{run.pk}-rejects.jsonl"


def _mark_running(run: RestoreRun) -> None:
    run.status = RestoreRun.Status.RUNNING
    run.started_at = run.started_at or timezone.now()
    run.save(update_fields=["status", "started_at"])


def _note_plan(plan: Plan, result: RestoreResult) -> None:
    for data in plan.unknown:
        result.warnings.append(f"{data.origin}: table {data.key!r} matches no model; skipped")
    for cycle in plan.cycles:  # no loss nor change: not a warning
        logger.info("FK cycle between %s; loaded with deferred constraint checks", ", ".join(cycle))
    for table in plan.tables:
        result.table(table.label, table.db_table, expected=table.data.expected_rows)


def _count_excluded(plan: Plan, result: RestoreResult) -> None:
    """Rows of excluded models (``--exclude``, ``DBRESTORE["EXCLUDE"]``) are counted as skipped
    and named, not dropped unseen."""
    for table in plan.excluded:
        done = result.table(table.label, table.db_table, expected=table.data.expected_rows)
        rows = sum(1 for _ in table.data.rows())
        done.total += rows
        done.skipped += rows
        if rows:
            result.warnings.append(f"{table.data.origin}: {rows} rows of {table.label} not restored: the model is excluded "
                                   "(--exclude or DBRESTORE['EXCLUDE']); counted as skipped")


def _expected_rows(plan: Plan) -> int | None:
    counts = [table.data.expected_rows for table in plan.tables]
    return None if any(count is None for count in counts) else sum(counts)


@contextlib.contextmanager
def _restore_transaction(opts: RestoreOptions) -> Iterator[None]:
    if opts.atomic and not opts.dry_run:
        with transaction.atomic(using=opts.database):
            yield
    else:
        yield


def _load(plan: Plan, opts: RestoreOptions, result: RestoreResult, rejects: RejectsFile,
          progress: Broadcast, started: float, truncate: bool = True) -> None:
    connection = connections[opts.database]
    if opts.mode == "replace" and not opts.dry_run:
        progress.phase_started(f"emptying {len(plan.models_to_empty)} tables")
        empty_tables(plan, opts.database, truncate=truncate)
    progress.phase_started("checking the rows (dry run)" if opts.dry_run else f"loading {len(plan.tables)} tables")
    aside = None
    if opts.indexes_after_load and not opts.dry_run:
        aside = postload.set_aside(postload.worth_setting_aside(plan.tables), opts.database, restored=plan.models)
    foreign_keys = classify_foreign_keys(plan)
    checked_while_loading: set[ForeignKeyEdge] = set()
    deferred_natural_keys: list[tuple[PlannedTable, list]] = []

    def load_table(table: PlannedTable, listener: BaseListener, stop: threading.Event | None = None) -> None:
        settled, deferred = foreign_keys[table.model]
        table_result = result.table(table.label, table.db_table)
        listener.table_started(table_result)
        table_started = time.monotonic()

        def on_batch(current):
            current.seconds = time.monotonic() - table_started
            if stop is not None and stop.is_set():
                raise RestoreCancelled("stopped: the load of another table failed")
            listener.batch_done(current)

        loader = opts.loader_class()(
            table.model, using=opts.database, batch_size=opts.batch_size, result=table_result,
            rejects=rejects, dry_run=opts.dry_run, on_batch=on_batch, mode=opts.mode,
            # One transaction: FKs are checked after the load by one anti-join each (sweep_orphans),
            # except those the COPY path has the database check as it goes (checked_foreign_keys).
            # Batch by batch commits must check settled parents first: COPY has the database do it
            # as each COPY commits, the ORM path asks a query per FK per batch.
            fk_checks=[] if opts.atomic else settled,
            settled_foreign_keys=settled,
            nulled_fields=[] if opts.atomic else nullable_deferred_fields(deferred),
            log_skipped=opts.log_skipped,
            side_by_side=opts.jobs if opts.jobs > 1 and not opts.dry_run else 1,
        )
        loader.load(table.data.rows())
        checked_while_loading.update(loader.checked_foreign_keys)
        if loader.deferred_natural_keys:
            deferred_natural_keys.append((table, loader.deferred_natural_keys))
        _note_drift(table, loader, result)
        table_result.seconds = time.monotonic() - table_started
        listener.table_finished(table_result)

    if opts.jobs > 1 and not opts.dry_run:
        _load_in_parallel(plan, foreign_keys, opts, progress, load_table)
    else:
        for table in plan.tables:
            load_table(table, progress)
    if not opts.dry_run:
        apply_deferred_natural_keys(deferred_natural_keys, opts.database, result, rejects)
        if aside is not None:
            progress.phase_started("building indexes")
            aside.rebuild_indexes()
            if aside.add_foreign_keys_if_valid():  # then PostgreSQL has checked them, once each
                qn = connection.ops.quote_name
                checked_while_loading.update(
                    edge for settled, deferred in foreign_keys.values() for edge in settled + deferred
                    if aside.validates(qn(edge.model._meta.db_table), edge.field.column)
                )
        progress.phase_started("checking foreign keys")
        if opts.atomic:
            sweep_orphans(plan, opts.database, result, rejects, every_foreign_key=True,
                          checked_while_loading=checked_while_loading)
        else:
            apply_deferred_foreign_keys(plan, opts.database, opts.batch_size, result, rejects)
        if aside is not None and not aside.foreign_keys_added:
            progress.phase_started("adding foreign key constraints")
            aside.rebuild()
        _check_constraints(plan, connection)
        reset_sequences(plan, opts.database)
    progress.phase_started("verifying row counts")
    result.verification = verify_counts(plan, result, opts.database, None if opts.dry_run else opts.mode)


def _load_in_parallel(plan: Plan, foreign_keys, opts: RestoreOptions, progress: Broadcast, load_table) -> None:
    """``--jobs N``: the tables of each FK level in N connections at once (see :mod:`.parallel`)."""
    tables = {table.model: table for table in plan.tables}
    parents = {model: [edge.parent for edge in settled] for model, (settled, _) in foreign_keys.items()}
    stop = threading.Event()
    for level in load_levels(plan.models, parents):
        logger.info("Loading %s side by side", ", ".join(model._meta.label for model in level))
        run_in_threads([tables[model] for model in level], lambda table: load_table(table, progress, stop),
                       jobs=opts.jobs, using=opts.database, stop=stop)


def _note_drift(table, loader: TableLoader, result: RestoreResult) -> None:
    converter = loader.converter
    if converter.unknown_columns:
        result.warnings.append(
            f"{table.data.origin}: columns {', '.join(sorted(converter.unknown_columns))} are not fields of "
            f"{table.label}; {converter.dropped_values} values dropped"
        )
    if converter.missing_columns:
        result.warnings.append(
            f"{table.data.origin}: {table.label} fields missing from the backup: "
            f"{', '.join(sorted(converter.missing_columns))} (default or NULL used; rows rejected where neither)"
        )


def empty_tables(plan: Plan, using: str, truncate: bool = True) -> None:
    """Delete every row of the tables the restore replaces, children first.

    PostgreSQL gets one TRUNCATE of them all, unless a table outside the restore has an FK
    into one of them (TRUNCATE refuses that even when no row points in), or unless not
    ``truncate`` (all of them hold fewer than ``SMALL_TABLE_ROWS`` rows: DELETE is quicker
    there): then DELETE. The
    statements run in one transaction even with ``--no-atomic``: tables in an FK cycle can only
    be emptied together (the deferred checks pass at its end), and a failure empties nothing.
    """
    connection = connections[using]
    tables = [model._meta.db_table for model in plan.models_to_empty]
    if not tables:
        return
    if connection.vendor == "postgresql" and not plan.outside_references and truncate:
        statements = connection.ops.sql_flush(no_style(), tables, reset_sequences=False, allow_cascade=False)
    else:
        statements = [f"DELETE FROM {connection.ops.quote_name(table)}" for table in tables]
        if connection.vendor == "postgresql":
            # Run the deferred FK checks of the deleted rows now: PostgreSQL refuses to ALTER
            # (set aside the FKs of) a table with trigger events pending.
            statements += ["SET CONSTRAINTS ALL IMMEDIATE", "SET CONSTRAINTS ALL DEFERRED"]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
    logger.info("Emptied %d tables: %s", len(tables), ", ".join(tables))


def _check_constraints(plan: Plan, connection) -> None:
    """Fail with the constraint's name before COMMIT rather than at it."""
    try:
        connection.check_constraints(table_names=[model._meta.db_table for model in plan.models])
    except DatabaseError as exc:
        raise RestoreAbortedError(f"foreign key check failed after the load: {_first_line(exc)}") from exc


def reset_sequences(plan: Plan, using: str) -> None:
    """Move PostgreSQL sequences past the restored ids so the next INSERT does not collide."""
    connection = connections[using]
    statements = connection.ops.sequence_reset_sql(no_style(), plan.models)
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)


def _restore_rows(run: RestoreRun, backup: Backup, plan: Plan, opts: RestoreOptions, result: RestoreResult,
                  rejects: RejectsFile, progress: Broadcast, started: float) -> None:
    """A JSON backup: check it, make the restore safe, then load the rows."""
    _check_jobs(opts)
    _note_plan(plan, result)
    _count_excluded(plan, result)
    progress.restore_started(result, _expected_rows(plan))
    signals.pre_restore.send(sender=RestoreRun, run=run, tables=[t.label for t in plan.tables])
    if not opts.skip_checksum:
        progress.phase_started("checking the data files against the manifest")
        verify_checksums(plan)
    for warning in migration_drift(backup, opts.database):
        logger.warning("%s: %s", run.source, warning)
        result.warnings.append(warning)
    small = False
    if opts.mode == "replace" and not opts.dry_run:
        prepare_outside_references(plan, opts, result)
        rows_now = table_counts(plan.models_to_empty, opts.database, limit=SMALL_TABLE_ROWS)
        small = all(n < SMALL_TABLE_ROWS for n in rows_now.values())
        if opts.safety_backup and conf.get("SAFETY_BACKUP"):
            if any(rows_now.values()):
                progress.phase_started(f"safety backup of {len(plan.models_to_empty)} tables")
                result.safety_backup = str(write_safety_backup(
                    run, plan, opts.database, storage=opts.storage, recipients=encryption_recipients(backup),
                ))
                RestoreRun.objects.filter(pk=run.pk).update(safety_backup=result.safety_backup)
            else:
                logger.info("No safety backup: the tables this restore replaces are empty")
    try:
        with _restore_transaction(opts):
            _load(plan, opts, result, rejects, progress, started, truncate=not small)
    except DatabaseError as exc:
        raise RestoreAbortedError(f"the database stopped the restore: {_first_line(exc)}") from exc


def _check_jobs(opts: RestoreOptions) -> None:
    if opts.jobs == 1 or opts.dry_run:
        return
    if connections[opts.database].vendor != "postgresql":
        raise RestoreConfigError("--jobs N loads tables in parallel connections: PostgreSQL only (SQLite has one writer)")
    if opts.atomic:
        raise RestoreConfigError("--jobs N loads tables in parallel connections, which cannot share one transaction: "
                                 "add --no-atomic")


def _restore_native(run: RestoreRun, backup: Backup, opts: RestoreOptions, result: RestoreResult,
                    progress: BaseListener, recorder: RunRecorder) -> None:
    """A pg_dump file through psql / pg_restore (see :mod:`dbrestore.native`)."""
    native.require_postgresql(opts.database)
    progress.restore_started(result, None)
    if opts.dry_run:
        result.warnings.append(f"dry run: {backup.path} is a {backup.format} dump; nothing was restored")
        return
    if opts.safety_backup and conf.get("SAFETY_BACKUP"):
        progress.phase_started("safety backup of the database (pg_dump)")
        result.safety_backup = str(native.dump_database(safety_backup_path(run.pk, ".dump"), opts.database))
        prune_safety_backups()
        RestoreRun.objects.filter(pk=run.pk).update(safety_backup=result.safety_backup)
    if opts.terminate_connections:
        ended = native.terminate_other_sessions(opts.database, keep=recorder.backend_pids())
        result.warnings.append(f"--terminate-connections: ended {ended} other sessions")
    signals.pre_restore.send(sender=RestoreRun, run=run, tables=[])

    def on_table(name: str) -> None:
        progress.table_started(result.table(name, name))

    progress.phase_started(f"restoring the {backup.format} dump")
    native.restore_dump(backup.path, backup.format, using=opts.database, jobs=opts.jobs, result=result, on_table=on_table)
    copied = result.verification.pop("copied_rows", {})
    counts = native.table_counts(opts.database)
    mismatches = [f"{table}: {copied[table]} rows in the dump, {counts.get(table)} in the table"
                  for table in copied if counts.get(table) != copied[table]]
    result.tables.clear()
    for table, rows in counts.items():
        done = result.table(table, table)
        done.total = done.inserted = rows
    result.verification = {"tables": {t: {"in_db": n, "in_dump": copied.get(t)} for t, n in counts.items()},
                           "mismatches": mismatches, "ok": not mismatches}


def rollback_source(run_id: int) -> Path | StoragePath:
    """The safety backup restore run ``run_id`` took, to restore it (``--rollback``)."""
    run = RestoreRun.objects.using(conf.get("RUN_DATABASE")).filter(pk=run_id).first()
    if run is None:
        raise RestoreConfigError(f"no restore run #{run_id}")
    if not run.safety_backup:
        raise RestoreConfigError(f"restore run #{run_id} took no safety backup; there is nothing to roll back to")
    path = as_location(run.safety_backup)
    if not path.exists():
        raise RestoreConfigError(f"the safety backup of run #{run_id} is gone: {path}")
    return path
