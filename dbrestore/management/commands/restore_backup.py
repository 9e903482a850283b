"""``manage.py restore_backup``: the command-line face of :func:`dbrestore.service.restore`."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from dbrestore import conf
from dbrestore.discovery import backup_root, human_size, list_backups, resolve_source
from dbrestore.exceptions import BackupNotFoundError, DbRestoreError
from dbrestore.jobs import queue_restore, queue_resume
from dbrestore.options import METHODS, MODES, check_database, resolved_mode
from dbrestore.parsing import split_commas
from dbrestore.preview import preview_restore
from dbrestore.progress import ConsoleProgress
from dbrestore.report import PARTIAL, SUCCEEDED
from dbrestore.resume import resumable_run
from dbrestore.service import restore, resume, rollback_source

EXIT_PARTIAL = 3
NO_TERMINAL = "there is no terminal to confirm on: pass --noinput to restore without asking"


class Command(BaseCommand):
    help = (
        "Restore a backup into the database. SOURCE is one of: a dbrestore backup directory (manifest.json "
        "+ data files, from create_backup); a plain directory of <table>.json / <table>.jsonl files; a "
        "single <table>.json / .jsonl file; one JSON object keyed by table; Django dumpdata output (JSON or "
        "JSON Lines, natural keys included); a rejects file (with --mode append); a PostgreSQL pg_dump file "
        "(plain .sql, .sql.gz, custom format or a directory dump); or the name of a backup in BACKUP_DIR. "
        "Data files may be .gz, .bz2 or .xz. Tables are emptied (children first) and reloaded (parents "
        "first) in one transaction by default; every row ends inserted, skipped as a duplicate, or rejected "
        "into the rejects file."
    )
    epilog = (
        "Exit status: 0 every row restored; 1 failed or refused (bad input, a restore already running, "
        "cancelled; the database is as it was unless --no-atomic); 2 bad command-line usage; 3 finished "
        "with rejected rows or a verification mismatch (run status partial). -v 0 prints only errors, 1 "
        "(default) the phases, a progress bar and the report, 2 also a line per table, 3 also a line per "
        "batch and the time of each phase."
    )
    # Not Django's missing_args_message: with no argument at all, a terminal gets a menu instead.
    no_source_message = "Give the backup to restore: a directory, a file or a backup name (see --help, --list)."

    def add_arguments(self, parser):
        parser.epilog = self.epilog
        self._parser = parser
        parser.add_argument(
            "source",
            nargs="?",
            help="Backup directory or file, or the name of a backup in "
            "BACKUP_DIR. Without it: --latest, --list, or (on a terminal) a menu.",
        )
        parser.add_argument(
            "--list",
            action="store_true",
            dest="list_backups",
            help="List the backups in BACKUP_DIR, newest first, and exit.",
        )
        parser.add_argument(
            "--all",
            action="store_true",
            dest="list_all",
            help="With --list: the safety backups in BACKUP_DIR/safety/ too.",
        )
        parser.add_argument("--latest", action="store_true", help="Restore the newest backup in BACKUP_DIR.")
        parser.add_argument(
            "--storage",
            default=None,
            metavar="ALIAS",
            help="Find backups (names, --latest, --list, the menu) in this settings.STORAGES alias and "
            "write the safety backup there (default DBRESTORE['STORAGE'], or BACKUP_DIR).",
        )
        parser.add_argument(
            "--resume",
            type=int,
            metavar="RUN_ID",
            default=None,
            help="Continue --no-atomic restore RUN_ID that failed, was cancelled or was killed: its "
            "finished chunks are kept, the interrupted one is redone, then the post-load steps "
            "run. Refused when the backup, the database or the options differ from the run's. "
            "Atomic restores roll back: run them again.",
        )
        parser.add_argument(
            "--chunk-bytes",
            type=int,
            metavar="BYTES",
            default=None,
            help="With --no-atomic: bytes of a JSON Lines file per chunk, each one transaction with "
            f"its checkpoint (default DBRESTORE['CHUNK_BYTES'], now {conf.get('CHUNK_BYTES')}).",
        )
        parser.add_argument(
            "--rollback",
            type=int,
            metavar="RUN_ID",
            default=None,
            help="Restore the safety backup that restore run RUN_ID took before it emptied tables.",
        )
        parser.add_argument(
            "--skip-checksum",
            action="store_true",
            help="Do not check the data files against the manifest's sha256 and row counts.",
        )
        parser.add_argument(
            "--no-safety-backup",
            action="store_false",
            dest="safety_backup",
            help="Do not back up the tables about to be replaced first (on by default).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help=f"Rows per INSERT batch (default settings.DBRESTORE['BATCH_SIZE'], now {conf.get('BATCH_SIZE')}).",
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help='Database alias to restore into (default "default").',
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            "--force",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation before emptying tables.",
        )
        parser.add_argument(
            "-n", "--dry-run", action="store_true", help="Read, map, convert and count every row; write nothing."
        )
        parser.add_argument(
            "--only",
            action="append",
            default=[],
            metavar="TABLE",
            help="Restore only this model label or table (repeatable, or comma-separated).",
        )
        parser.add_argument(
            "--exclude",
            action="append",
            default=[],
            metavar="TABLE",
            help="Skip this model label or table (repeatable, or comma-separated).",
        )
        parser.add_argument(
            "--mode",
            choices=MODES,
            default="auto",
            help="auto (default): merge for a dumpdata fixture (what loaddata does), replace for "
            "anything else; replace: empty the restored tables, then load (rows outside the "
            "backup that point into them are kept when the load brings back what they point "
            "to); merge: insert new rows and update existing ones by primary key, set each "
            "fixture object's many-to-many list exactly, delete nothing else; append: insert, "
            "keep existing rows, count conflicts as skipped.",
        )
        parser.add_argument(
            "--method",
            choices=METHODS,
            default="auto",
            help="How rows go in: copy (PostgreSQL COPY, replace mode), orm (batched INSERTs), "
            "auto (default: copy on PostgreSQL in replace mode, orm otherwise).",
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=1,
            metavar="N",
            help="Load in N parallel connections (PostgreSQL): pg_restore --jobs N for dumps; for JSON "
            "backups, with --no-atomic, the chunks of one FK level (several tables, several chunks of "
            "one table) in N worker processes, each its own connection and memory budget. Default 1.",
        )
        parser.add_argument(
            "--convert-processes",
            type=int,
            default=None,
            metavar="N",
            help="COPY in one transaction (PostgreSQL, the default there): N forked processes read and "
            "convert the rows of each JSON Lines table of 50,000 rows or more, while this one "
            "sends them to the server, in its one connection and transaction. Default "
            "DBRESTORE['CONVERT_PROCESSES'], else the cores available, at most 4; 0 or 1: this "
            "process alone (each process takes about 10 MB of its own).",
        )
        parser.add_argument(
            "--indexes-after-load",
            action="store_const",
            const=True,
            default=None,
            help="PostgreSQL, replace mode, one transaction (the default there): drop the restored "
            "tables' non-unique indexes and the FK constraints between them, load, then build "
            "them again (one pass each, as pg_restore does). Given explicitly, fail where it "
            "cannot be used.",
        )
        parser.add_argument(
            "--keep-indexes",
            "--no-indexes-after-load",
            action="store_const",
            const=False,
            dest="indexes_after_load",
            help="Load into the tables with their indexes and FK constraints in place (the way "
            "before): for a small restore into big tables kept by --only, or to leave every "
            "schema object untouched.",
        )
        parser.add_argument(
            "--terminate-connections",
            action="store_true",
            help="PostgreSQL dumps: end the other sessions on the database before restoring.",
        )
        parser.add_argument(
            "--cascade",
            action="store_true",
            help="replace: also empty tables outside the backup whose rows point into restored tables.",
        )
        parser.add_argument(
            "--log-skipped",
            action="store_true",
            help='Write rows skipped as duplicates to the rejects file too ("kind": "skipped").',
        )
        parser.add_argument(
            "--max-rejects",
            type=int,
            default=None,
            metavar="N",
            help="Stop (rolled back when atomic) when more than N rows are rejected.",
        )
        parser.add_argument(
            "--strict",
            action="store_const",
            const=0,
            dest="max_rejects",
            help="Stop at the first rejected row (same as --max-rejects 0).",
        )
        parser.add_argument(
            "--no-atomic",
            action="store_false",
            dest="atomic",
            help="Commit chunk by chunk (see --chunk-bytes), each with its checkpoint, instead of one "
            "transaction for the whole restore: an interrupted run continues with --resume RUN_ID.",
        )
        parser.add_argument(
            "--ignore-unknown",
            action="store_true",
            help="Skip (with a warning) tables that match no installed model instead of failing.",
        )
        parser.add_argument(
            "--rejects-file",
            default=None,
            metavar="PATH",
            help="Where rejected rows go (JSON Lines; default BACKUP_DIR/rejects/restore-<run>-rejects.jsonl).",
        )
        parser.add_argument(
            "--report-json", default=None, metavar="PATH", help="Also write the report as JSON to PATH."
        )
        parser.add_argument(
            "--async",
            action="store_true",
            dest="run_async",
            help="Queue the restore for the RQ worker (manage.py rqworker dbrestore) and print the "
            "run id on the last line; follow it with restore_status RUN_ID.",
        )
        parser.add_argument(
            "--distribute",
            action="store_true",
            help="With --no-atomic (PostgreSQL): queue the restore's chunks as RQ jobs on the dbrestore "
            "queue, FK level after FK level, for any number of rqworker processes on any host "
            "that reaches the database and the backup; prints the run id and returns.",
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="With --async or --distribute: wait for the run to end, showing its progress; exit "
            "status as without them.",
        )

    def handle(self, *args, **options):
        verbosity = options["verbosity"]
        if options["resume"] is not None:
            return self._resume(options)
        self.storage = options["storage"]
        try:
            check_database(options["database"])
            if options["list_backups"]:
                self._print_backups(include_safety=options["list_all"])
                return
        except DbRestoreError as exc:
            raise CommandError(str(exc)) from exc
        source = self._source(options)
        report_path = _report_path(options["report_json"], source)
        restore_options = _restore_options(options)
        try:
            if (
                options["interactive"]
                and not options["dry_run"]
                and resolved_mode(source, options["mode"]) == "replace"
            ):
                self._confirm(source, restore_options)
            if options["run_async"] or options["distribute"]:
                self._queue(source, restore_options, verbosity, wait=options["wait"])
                return
            if options["wait"]:
                raise CommandError("--wait waits for a queued restore: use it with --async or --distribute")
            # tqdm needs the raw stream: Django's OutputWrapper adds a newline to every write.
            progress = ConsoleProgress(self.stderr._out, verbosity=verbosity)
            result = restore(source, listeners=[progress], requested_by=_who(), **restore_options)
        except DbRestoreError as exc:
            raise CommandError(str(exc)) from exc
        self._print_report(result, verbosity)
        if report_path is not None:
            _write_report(result, report_path)
        self._exit_status(result)

    @property
    def _defaults(self) -> dict:
        return {action.dest: action.default for action in self._parser._actions if action.dest != "help"}

    def _resume(self, options) -> None:
        """``--resume RUN_ID``: the options given (those not left at their defaults) must be the run's."""
        defaults = _restore_options({**options, **self._defaults})
        given = {name: value for name, value in _restore_options(options).items() if value != defaults[name]}
        given.pop("atomic", None)  # a resumed run is --no-atomic, said or not
        progress = ConsoleProgress(self.stderr._out, verbosity=options["verbosity"])
        try:
            source = resolve_source(options["source"], storage=options["storage"]) if options["source"] else None
            if options["run_async"] or options["distribute"]:  # as the admin's Resume button: through RQ
                run = queue_resume(resumable_run(options["resume"]), requested_by=_who(), source=source, options=given)
                self.stdout.write(str(run.pk))
                return
            result = resume(options["resume"], source=source, listeners=[progress], **given)
        except DbRestoreError as exc:
            raise CommandError(str(exc)) from exc
        self._print_report(result, options["verbosity"])
        self._exit_status(result)

    def _exit_status(self, result) -> None:
        if result.status != SUCCEEDED:
            where = f"; rejected rows are in {result.rejects_file}" if result.rejects_file else ""
            raise CommandError(
                f"restore #{result.run_id} ended {result.status}: {result.rejected} rows rejected{where}",
                returncode=EXIT_PARTIAL if result.status == PARTIAL else 1,
            )

    def _queue(self, source, restore_options: dict, verbosity: int, *, wait: bool) -> None:
        """``--async`` / ``--distribute``: queue the run, print its id; with ``--wait`` follow it."""
        run = queue_restore(source, requested_by=_who(), **restore_options)
        run.refresh_from_db()  # with SYNC_JOBS it has already run
        if verbosity >= 1:
            self.stdout.write(
                f"Restore #{run.pk}: {run.status}; follow it with: python manage.py restore_status {run.pk}"
            )
        self.stdout.write(str(run.pk))
        if not wait:
            return
        from dbrestore.distribute import wait as wait_for

        run = wait_for(run, self.stderr._out if verbosity >= 1 else io.StringIO())
        for error in run.errors if verbosity >= 1 else ():
            self.stdout.write(self.style.ERROR(f"error: {error}"))
        if run.status != SUCCEEDED:
            raise CommandError(
                f"restore #{run.pk} ended {run.status}", returncode=EXIT_PARTIAL if run.status == PARTIAL else 1
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {run.rows_inserted} rows ({run.rows_skipped} skipped, "
                f"{run.rows_rejected} rejected): run #{run.pk} {run.status}"
            )
        )

    def _source(self, options) -> Path:
        """The backup to restore: a path, a name in BACKUP_DIR, --latest, --rollback, or a menu."""
        try:
            if options["rollback"] is not None:
                return rollback_source(options["rollback"])
            if options["source"]:
                return resolve_source(options["source"], storage=self.storage)
            backups = list_backups(storage=self.storage)
            if options["latest"]:
                if not backups:
                    raise BackupNotFoundError(f"no backups in {backup_root(self.storage)}")
                return backups[0].path
        except DbRestoreError as exc:
            raise CommandError(str(exc)) from exc
        if options["interactive"] and sys.stdin.isatty() and backups:
            return self._menu(backups)
        raise CommandError(self.no_source_message)

    def _menu(self, backups) -> Path:
        self._print_backups(backups, numbered=True)
        answer = self._ask(f"Restore which backup? [1-{len(backups)}, Enter to cancel]: ").strip()
        if not answer.isdigit() or not 1 <= int(answer) <= len(backups):
            raise CommandError("Restore cancelled.")
        return backups[int(answer) - 1].path

    @staticmethod
    def _ask(prompt: str) -> str:
        """A question on the terminal; without one (or at end of input) the restore stops cleanly."""
        if not sys.stdin.isatty():
            raise CommandError(NO_TERMINAL)
        try:
            return input(prompt)
        except EOFError:
            raise CommandError(
                "end of input at the question: nothing was restored; pass --noinput to restore without asking"
            ) from None

    def _print_backups(self, backups=None, numbered: bool = False, include_safety: bool = False) -> None:
        backups = list_backups(storage=self.storage, include_safety=include_safety) if backups is None else backups
        if not backups:
            self.stdout.write(f"No backups in {backup_root(self.storage)}")
            return
        self.stdout.write(
            f"{'#  ' if numbered else ''}{'name':<40} {'created (UTC)':<20} {'size':>9} {'tables':>6} {'rows':>10}"
        )
        for index, info in enumerate(backups, start=1):
            self.stdout.write(
                f"{f'{index:<3}' if numbered else ''}{info.name:<40} {info.created:%Y-%m-%d %H:%M:%S} "
                f"{human_size(info.size):>9} {info.tables if info.tables is not None else '?':>6} "
                f"{info.rows if info.rows is not None else '?':>10}"
            )

    def _confirm(self, source: Path, restore_options: dict) -> None:
        if not sys.stdin.isatty():
            raise CommandError(NO_TERMINAL)  # before reading the backup for the question
        preview = preview_restore(source, **restore_options)
        emptied = [*[t for t in preview.tables if t.emptied], *preview.also_emptied]
        self.stdout.write(
            f"Restoring {source} into database {restore_options['database']!r} empties these tables first:"
        )
        for table in emptied:
            self.stdout.write(f"  {table.db_table} ({table.rows_now} rows now)")
        if preview.kept_outside:
            self.stdout.write(
                "and keeps these rows outside the backup that point into them (checked after the load; "
                "the restore is undone if the backup does not bring back what they point to):"
            )
            for kept in preview.kept_outside:
                self.stdout.write(f"  {kept}")
        for warning in preview.warnings:
            self.stdout.write(self.style.WARNING(f"warning: {warning}"))
        answer = self._ask("Type 'yes' to continue, or 'no' to cancel: ")
        if answer.strip().lower() != "yes":
            raise CommandError("Restore cancelled.")

    def _print_report(self, result, verbosity: int) -> None:
        if verbosity < 1:
            return
        for warning in result.warnings:
            self.stdout.write(self.style.WARNING(f"warning: {warning}"))
        for line in result.render_lines():
            self.stdout.write(line)
        if result.safety_backup:
            self.stdout.write(
                f"Safety backup of the replaced tables: {result.safety_backup} "
                f"(undo with: restore_backup --rollback {result.run_id})"
            )
        verification = result.verification
        if verification.get("tables") and verification.get("ok"):
            self.stdout.write(
                self.style.SUCCESS(f"Verified: row counts of {len(verification['tables'])} tables match.")
            )
        for mismatch in verification.get("mismatches", []):
            self.stdout.write(self.style.ERROR(f"verification: {mismatch}"))
        style = self.style.SUCCESS if result.status == SUCCEEDED else self.style.WARNING
        verb = "Checked (dry run)" if result.dry_run else "Restored"
        self.stdout.write(
            style(
                f"{verb} {result.inserted} rows ({result.skipped} skipped, {result.rejected} rejected) "
                f"in {result.seconds:.2f}s, {result.rows_per_s:.0f} rows/s: run #{result.run_id} {result.status}"
            )
        )


def _report_path(value: str | None, source: Path) -> Path | None:
    """``--report-json``, checked before the restore: its folder exists and is writable, and it is
    not the backup (nor inside it)."""
    if not value:
        return None
    path = Path(value).expanduser()
    folder = path.parent
    if path.is_dir():
        raise CommandError(f"--report-json {value}: is a directory")
    if not folder.is_dir():
        raise CommandError(f"--report-json {value}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise CommandError(f"--report-json {value}: not writable")
    resolved, backup = path.resolve(), Path(source).expanduser().resolve()
    if resolved == backup or backup in resolved.parents:
        raise CommandError(f"--report-json {value}: would overwrite the backup being restored")
    return path


def _who() -> str:
    import getpass

    try:
        return f"{getpass.getuser()} (command line)"
    except (KeyError, OSError):
        return "command line"


#: Command-line options handed to RestoreOptions under the same name, as they are.
_AS_GIVEN = (
    "database",
    "mode",
    "batch_size",
    "dry_run",
    "atomic",
    "ignore_unknown",
    "cascade",
    "log_skipped",
    "max_rejects",
    "skip_checksum",
    "method",
    "jobs",
    "terminate_connections",
    "safety_backup",
    "indexes_after_load",
    "storage",
    "chunk_bytes",
    "distribute",
    "convert_processes",
)


def _restore_options(options: dict) -> dict:
    """The command line as :class:`~dbrestore.options.RestoreOptions` keywords."""
    return {
        **{name: options[name] for name in _AS_GIVEN},
        "only": split_commas(options["only"]),
        "exclude": split_commas(options["exclude"]),
        "rejects_file": str(Path(options["rejects_file"]).absolute()) if options["rejects_file"] else None,
    }


def _write_report(result, path: Path) -> None:
    try:
        report = result.as_dict()
        try:
            data = orjson.dumps(report, option=orjson.OPT_INDENT_2)
        except TypeError:  # a lone surrogate from the input (a column or file name): escaped
            data = json.dumps(report, indent=2, default=str).encode()
        path.write_bytes(data)
    except OSError as exc:
        raise CommandError(
            f"restore #{result.run_id} ended {result.status}, but the report could not be "
            f"written to {path}: {exc.strerror or exc}"
        ) from exc
