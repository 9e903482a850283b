"""The command line of ``restore_backup``: its options, their help, and how they become
:class:`~dbrestore.options.RestoreOptions` keywords."""

from __future__ import annotations

import argparse
from pathlib import Path

from django.db import DEFAULT_DB_ALIAS

from dbrestore import conf
from dbrestore.conf import split_commas
from dbrestore.options import METHODS, MODES
from dbrestore.select.lookups import HELP as SELECT_HELP


def _removed(replacement: str) -> type[argparse.Action]:
    """An option that was removed: naming it says what to use instead (rather than argparse
    taking it for an abbreviation of another option, as ``--force`` of ``--force-color``)."""

    class Removed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None) -> None:
            parser.error(f"{option_string} was removed: use {replacement} (see CHANGELOG.md)")

    return Removed


def add_restore_arguments(parser) -> None:
    for removed, replacement in (("--force", "--noinput"), ("--no-indexes-after-load", "--keep-indexes")):
        parser.add_argument(
            removed, action=_removed(replacement), nargs=0, default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
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
        help="PostgreSQL, replace mode in one transaction, or any mode with --no-atomic (the "
        "default there): drop the restored tables' non-unique indexes and the FK constraints "
        "between them (replace mode), load, then build them again (one pass each, as pg_restore "
        "does; chunked runs record them on the run first). Given explicitly, fail where it "
        "cannot be used.",
    )
    parser.add_argument(
        "--keep-indexes",
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
    parser.add_argument("--report-json", default=None, metavar="PATH", help="Also write the report as JSON to PATH.")
    parser.add_argument(
        "--diff",
        action="store_true",
        help="Write nothing: compare the backup with the database as this restore (with these "
        "options and mode) would see it, and report per table the rows it would add (key not in "
        "the database), change (stored values differ, compared as the restore would store them; "
        "the fields named), remove (replace: rows the backup lacks, and outside rows affected; "
        "merge and append: none) and leave unchanged, and the rows it would reject, with the "
        'reason. With --report-json, each table gets a "diff" object. Takes no lock.',
    )
    parser.add_argument(
        "--diff-samples",
        type=int,
        default=5,
        metavar="N",
        help="With --diff: up to N example primary keys of each kind per table (default 5; 0 for none).",
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
    _add_select_arguments(parser)


def _add_select_arguments(parser) -> None:
    group = parser.add_argument_group(
        "undelete (--select)",
        "Restore chosen rows, what they need and what belongs to them into the live database, upserted by "
        "primary key; nothing else is touched. A preview (rows added, unchanged, conflicting) is shown and "
        "confirmed first; --dry-run stops there. A row whose primary key or unique value is taken since the "
        "backup is a conflict: nothing is written and the exit status is 1, unless --overwrite.",
    )
    group.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="LABEL:LOOKUP",
        help=f"Rows to restore (repeatable): {SELECT_HELP}. Followed down to what Django's delete removes with "
        "them (CASCADE children, M2M rows, generic relations, multi-table parents and children) and up to the "
        "rows they point at that the database no longer holds.",
    )
    group.add_argument(
        "--select-depth",
        type=int,
        metavar="N",
        help="Follow what belongs to the selected rows N levels down (default: all the way).",
    )
    group.add_argument(
        "--no-children",
        action="store_false",
        dest="select_children",
        help="Restore the selected rows and what they need, not what belongs to them.",
    )
    group.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace database rows whose primary key now holds other values with the backup's.",
    )


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
    "select",
    "select_depth",
    "select_children",
    "overwrite",
)


def as_restore_options(options: dict) -> dict:
    """The command line as :class:`~dbrestore.options.RestoreOptions` keywords."""
    return {
        **{name: options[name] for name in _AS_GIVEN},
        "only": split_commas(options["only"]),
        "exclude": split_commas(options["exclude"]),
        "rejects_file": str(Path(options["rejects_file"]).absolute()) if options["rejects_file"] else None,
    }
