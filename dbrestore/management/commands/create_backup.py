"""``manage.py create_backup``: the database's tables in dbrestore's directory format."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from dbrestore.backups.catalog import backup_root
from dbrestore.backups.writer import create_backup, create_native_backup, timestamped_directory
from dbrestore.conf import split_commas
from dbrestore.exceptions import DbRestoreError
from dbrestore.files.gpg import recipients_from
from dbrestore.files.storage import StoragePath, as_location
from dbrestore.options import check_database
from dbrestore.sources.directory import read_manifest


class Command(BaseCommand):
    help = (
        "Write a backup: manifest.json plus one gzipped JSON Lines file per table, rows ordered by "
        "primary key, read from one snapshot. Restore it with restore_backup."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--output",
            "-o",
            default=None,
            help="Directory to write (exactly this one; default BACKUP_DIR/<UTC timestamp>/).",
        )
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help='Database alias to back up (default "default").'
        )
        parser.add_argument(
            "--only",
            action="append",
            default=[],
            metavar="TABLE",
            help="Back up only this model label or table (repeatable, or comma-separated).",
        )
        parser.add_argument(
            "--exclude",
            action="append",
            default=[],
            metavar="TABLE",
            help="Leave out this model label or table (repeatable, or comma-separated).",
        )
        parser.add_argument(
            "--compress",
            choices=["gzip", "zstd", "none"],
            default="gzip",
            help="Compress the data files: gzip (.jsonl.gz, the default), zstd (.jsonl.zst) or none.",
        )
        parser.add_argument(
            "--no-compress",
            action="store_const",
            const="none",
            dest="compress",
            help="Write plain .jsonl files (same as --compress none).",
        )
        parser.add_argument(
            "--encrypt",
            action="append",
            default=[],
            metavar="RECIPIENT",
            help="Encrypt each data file with gpg for this key (repeatable; default "
            "DBRESTORE['GPG_RECIPIENTS']); the files get a .gpg suffix.",
        )
        parser.add_argument(
            "--storage",
            default=None,
            metavar="ALIAS",
            help="Write into this settings.STORAGES alias (default DBRESTORE['STORAGE'], or BACKUP_DIR).",
        )
        parser.add_argument(
            "--native",
            action="store_true",
            help="PostgreSQL: write pg_dump -Fc (database.dump) and a manifest instead of JSON.",
        )

    def handle(self, *args, **options):
        try:
            check_database(options["database"])
        except DbRestoreError as exc:
            raise CommandError(str(exc)) from exc
        try:
            output = (
                as_location(options["output"])
                if options["output"]
                else timestamped_directory(backup_root(options["storage"]))
            )
            if options["native"] and isinstance(output, StoragePath):
                raise CommandError("--native writes a local pg_dump file; it cannot be written to a storage")
        except DbRestoreError as exc:
            raise CommandError(str(exc)) from exc
        if options["native"]:
            try:
                path = create_native_backup(output, using=options["database"])
            except DbRestoreError as exc:
                raise CommandError(str(exc)) from exc
            if options["verbosity"] >= 1:
                self.stdout.write(self.style.SUCCESS(f"Wrote a pg_dump custom-format backup to {path}"))
            return
        try:
            directory = create_backup(
                output,
                using=options["database"],
                only=split_commas(options["only"]),
                exclude=split_commas(options["exclude"]),
                compress=None if options["compress"] == "none" else options["compress"],
                recipients=recipients_from(options["encrypt"]),
            )
            manifest = read_manifest(directory / "manifest.json")
        except DbRestoreError as exc:
            raise CommandError(str(exc)) from exc
        if options["verbosity"] >= 2:
            for table in manifest["tables"]:
                self.stdout.write(f"{table['model']}: {table['rows']} rows -> {table['file']}")
        rows = sum(table["rows"] for table in manifest["tables"])
        if options["verbosity"] >= 1:
            encrypted = manifest.get("encryption")
            how = f", encrypted for {', '.join(encrypted['recipients'])}" if encrypted else ""
            self.stdout.write(
                self.style.SUCCESS(f"Backed up {rows} rows in {len(manifest['tables'])} tables to {directory}{how}")
            )
