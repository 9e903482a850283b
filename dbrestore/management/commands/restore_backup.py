"""``manage.py restore_backup``: the command-line face of :func:`dbrestore.service.restore`."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import IO

import orjson
from django.core.management.base import BaseCommand, CommandError, OutputWrapper

from dbrestore.backups.catalog import backup_root, human_size, list_backups, resolve_source
from dbrestore.chunked.resume import resumable_run
from dbrestore.compare import compare
from dbrestore.exceptions import BackupNotFoundError, DbRestoreError
from dbrestore.files.storage import Location, StoragePath
from dbrestore.jobs import queue_restore, queue_resume
from dbrestore.management.arguments import add_restore_arguments, as_restore_options
from dbrestore.options import check_database, resolved_mode
from dbrestore.plan.preview import preview_restore
from dbrestore.runs.progress import ConsoleProgress
from dbrestore.runs.report import PARTIAL, SUCCEEDED
from dbrestore.select.restore import preview_selection
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
        add_restore_arguments(parser)

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
        restore_options = as_restore_options(options)
        if options["diff"]:
            return self._diff(source, restore_options, options, report_path)
        try:
            if options["interactive"] and not options["dry_run"]:
                self._ask_first(source, options, restore_options)
            if options["run_async"] or options["distribute"]:
                self._queue(source, restore_options, verbosity, wait=options["wait"])
                return
            if options["wait"]:
                raise CommandError("--wait waits for a queued restore: use it with --async or --distribute")
            # tqdm needs the raw stream: Django's OutputWrapper adds a newline to every write.
            progress = ConsoleProgress(_stream(self.stderr), verbosity=verbosity)
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
        if options["diff"]:
            raise CommandError("--diff compares a backup with the database: it does not go with --resume")
        defaults = as_restore_options({**options, **self._defaults})
        given = {name: value for name, value in as_restore_options(options).items() if value != defaults[name]}
        given.pop("atomic", None)  # a resumed run is --no-atomic, said or not
        progress = ConsoleProgress(_stream(self.stderr), verbosity=options["verbosity"])
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

    def _diff(self, source: Location, restore_options: dict, options: dict, report_path: Path | None) -> None:
        """``--diff``: compare and print (:func:`dbrestore.compare.compare`); nothing is written."""
        for flag in ("run_async", "distribute", "wait"):
            if options[flag]:
                raise CommandError(f"--diff writes nothing and runs here: drop --{flag.removeprefix('run_')}")
        try:
            report = compare(source, samples=options["diff_samples"], **restore_options)
        except DbRestoreError as exc:
            raise CommandError(str(exc)) from exc
        if options["verbosity"] >= 1:
            for warning in report.warnings:
                self.stdout.write(self.style.WARNING(f"warning: {warning}"))
            for line in [*report.render_lines(), *report.sample_lines()]:
                self.stdout.write(line)
            totals = report.totals
            self.stdout.write(
                (self.style.WARNING if report.differs else self.style.SUCCESS)(
                    f"Compared in {report.seconds:.2f}s ({report.mode} mode), nothing written: "
                    f"{totals['added']} added, {totals['changed']} changed, {totals['removed']} removed, "
                    f"{totals['unchanged']} unchanged, {totals['rejected']} rejected"
                )
            )
        if report_path is not None:
            _write_report(report, report_path, what=f"the diff of {report.source}")

    def _exit_status(self, result) -> None:
        conflicts = sum(table["conflicts"] for table in (result.selection or {}).get("tables", {}).values())
        if conflicts:  # a --dry-run's: the restore itself refuses to write any
            raise CommandError(f"{conflicts} selected rows conflict with the database (shown above)")
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
        from dbrestore.chunked.distribute import wait as wait_for

        run = wait_for(run, _stream(self.stderr) if verbosity >= 1 else io.StringIO())
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

    def _source(self, options) -> Location:
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

    def _menu(self, backups) -> Location:
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

    def _ask_first(self, source: Location, options: dict, restore_options: dict) -> None:
        """The question before anything is written: what a replace empties, what a selection adds."""
        if options["select"]:
            self._confirm_selection(source, restore_options)
        elif resolved_mode(source, options["mode"]) == "replace":
            self._confirm(source, restore_options)

    def _confirm_selection(self, source: Location, restore_options: dict) -> None:
        if not sys.stdin.isatty():
            raise CommandError(NO_TERMINAL)
        outcome = preview_selection(source, **restore_options)
        self.stdout.write(f"Restoring from {source} into database {restore_options['database']!r}:")
        for line in outcome.lines():
            self.stdout.write(f"  {line}")
        if outcome.conflicts and not restore_options["overwrite"]:
            raise CommandError(
                f"{outcome.conflicts} selected rows conflict with the database (shown above); nothing was "
                "written (--overwrite replaces rows whose primary key holds other values)"
            )
        added = sum(len(table.added) + len(table.conflicts) for table in outcome.tables)
        if self._ask(f"Write these {added} rows? Type 'yes' to continue, or 'no' to cancel: ").strip() != "yes":
            raise CommandError("Restore cancelled.")

    def _confirm(self, source: Location, restore_options: dict) -> None:
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
        for label, table in (result.selection or {}).get("tables", {}).items():
            self.stdout.write(
                f"{label}: {table['added']} added, {table['unchanged']} unchanged (left as they are), "
                f"{table['conflicts']} conflicting, {table['overwritten']} overwritten"
            )
            for conflict in table["samples"]["conflicts"]:
                self.stdout.write(self.style.ERROR(f"  conflict pk {conflict['pk']!r}: {conflict['why']}"))
        style = self.style.SUCCESS if result.status == SUCCEEDED else self.style.WARNING
        verb = "Checked (dry run)" if result.dry_run else "Restored"
        self.stdout.write(
            style(
                f"{verb} {result.inserted} rows ({result.skipped} skipped, {result.rejected} rejected) "
                f"in {result.seconds:.2f}s, {result.rows_per_s:.0f} rows/s: run #{result.run_id} {result.status}"
            )
        )


def _stream(wrapper: OutputWrapper) -> IO[str]:
    """The stream a command's OutputWrapper writes to (its ``_out``, which the stubs do not declare)."""
    stream: IO[str] = getattr(wrapper, "_out")  # noqa: B009  # typed by the stubs as a method
    return stream


def _report_path(value: str | None, source: Location) -> Path | None:
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
    if isinstance(source, StoragePath):  # a local file cannot be the stored backup
        return path
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


def _write_report(result, path: Path, what: str = "") -> None:
    try:
        report = result.as_dict()
        try:
            data = orjson.dumps(report, option=orjson.OPT_INDENT_2)
        except TypeError:  # a lone surrogate from the input (a column or file name): escaped
            data = json.dumps(report, indent=2, default=str).encode()
        path.write_bytes(data)
    except OSError as exc:
        done = what or f"restore #{result.run_id} ended {result.status}"
        raise CommandError(f"{done}, but the report could not be written to {path}: {exc.strerror or exc}") from exc
