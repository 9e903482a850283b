"""RestoreOptions, everything that shapes a restore besides its source, and every check on it."""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, connections

from dbrestore import conf
from dbrestore.exceptions import RestoreConfigError
from dbrestore.files.storage import Source, StoragePath, as_location, configured_alias
from dbrestore.load.table import TableLoader
from dbrestore.sources import is_fixture

if TYPE_CHECKING:
    from dbrestore.load.copy import CopyTableLoader
    from dbrestore.sources import TableData

#: ``auto`` (the default) is resolved against the source by :meth:`RestoreOptions.resolve_mode`.
MODES = ("auto", "replace", "merge", "append")
METHODS = ("auto", "orm", "copy")


@dataclass
class RestoreOptions:
    """Everything that shapes a restore besides its source. Stored on RestoreRun.options."""

    database: str = DEFAULT_DB_ALIAS
    mode: str = "auto"  # auto | replace | merge | append; auto: merge for a dumpdata fixture, else replace
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
    chunk_bytes: int | None = (
        None  # --no-atomic: bytes per chunk of a JSON Lines file (default DBRESTORE["CHUNK_BYTES"])
    )
    distribute: bool = (
        False  # --no-atomic: the chunks as RQ jobs, for any number of workers (dbrestore.chunked.distribute)
    )
    # COPY in one transaction: forked processes that read and convert a big JSON Lines table's rows
    # (dbrestore.load.forked). None: DBRESTORE["CONVERT_PROCESSES"]; 0 or 1: this process alone.
    convert_processes: int | None = None
    # --select LABEL:LOOKUP (undelete): these rows, what they need and (select_children, down to
    # select_depth levels) what belongs to them, upserted by primary key; nothing else is touched.
    select: list[str] = field(default_factory=list)
    select_depth: int | None = None
    select_children: bool = True
    overwrite: bool = False  # --select: rows whose primary key now holds other values are replaced

    @classmethod
    def for_source(cls, source: Source, **options: Any) -> RestoreOptions:
        """The checked options of a restore of ``source``: ``auto`` resolved against it, paths
        made absolute. The command, the admin and the RQ job all start here."""
        opts = cls(**options)
        opts.resolve_mode(source)
        opts.validate()
        opts.make_paths_absolute()
        return opts

    def resolve_mode(self, source: Source) -> None:
        """``auto``: a dumpdata fixture is merged, as ``loaddata`` loads it (rows upserted by
        primary key, nothing else deleted); every other backup replaces the tables it holds."""
        if self.mode == "auto":
            self.mode = "merge" if self.select or is_fixture(source) else "replace"

    def validate(self) -> None:
        check_database(self.database)
        if self.mode == "auto":  # no source to look at: the mode of a backup
            self.mode = "replace"
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
            if self.mode != "replace" and self.atomic:
                raise RestoreConfigError(
                    "--indexes-after-load works in replace mode in one transaction; in merge and append "
                    "mode only with --no-atomic (the unique indexes stay, for the conflicts)"
                )
        configured_alias(self.storage)  # an unknown --storage alias fails here, before a run is made
        if self.chunk_bytes is not None and self.chunk_bytes < 1:
            raise RestoreConfigError(f"--chunk-bytes must be at least 1 (got {self.chunk_bytes})")
        if self.convert_processes is not None and self.convert_processes < 0:
            raise RestoreConfigError(f"--convert-processes must be 0 or more (got {self.convert_processes})")
        if self.max_rejects is not None and self.max_rejects < 0:
            raise RestoreConfigError(f"--max-rejects must be 0 or more (got {self.max_rejects})")
        self.only, self.exclude = list(self.only or []), list(self.exclude or [])
        if self.distribute:
            self._check_distribute()
        self._check_select()

    def _check_select(self) -> None:
        """``--select`` upserts chosen rows in one transaction; its lookups are checked now, before
        anything is read."""
        self.select = list(self.select or [])
        if not self.select:
            if self.overwrite or self.select_depth is not None or not self.select_children:
                raise RestoreConfigError("--overwrite, --select-depth and --no-children work with --select")
            return
        from dbrestore.select.lookups import parse_selection  # the models are loaded by now

        for text in self.select:
            parse_selection(text)
        if self.mode not in ("auto", "merge"):
            raise RestoreConfigError(
                f"--select upserts the chosen rows by primary key and touches nothing else: --mode {self.mode} "
                "does not apply (leave --mode out)"
            )
        if not self.atomic or self.distribute or self.jobs > 1:
            raise RestoreConfigError(
                "--select restores its rows in one transaction: drop --no-atomic, --distribute, --jobs"
            )
        if self.select_depth is not None and self.select_depth < 0:
            raise RestoreConfigError(f"--select-depth must be 0 or more (got {self.select_depth})")

    def _check_distribute(self) -> None:
        """``--distribute`` loads chunks in RQ workers, each committing its own."""
        if self.atomic:
            raise RestoreConfigError(
                "--distribute loads the chunks in several RQ workers, which cannot share one "
                "transaction: add --no-atomic"
            )
        if self.dry_run:
            raise RestoreConfigError(
                "--distribute writes rows in RQ workers; --dry-run checks in this process: drop one of them"
            )
        if connections[self.database].vendor != "postgresql":
            raise RestoreConfigError(
                "--distribute needs PostgreSQL: workers on several hosts load side by side (SQLite has one writer)"
            )

    def check_row_load(self) -> None:
        """The checks that hold for a JSON backup only: ``--jobs N`` loads tables in parallel
        connections (a native dump hands ``--jobs`` to pg_restore, in one transaction or not)."""
        if self.jobs == 1 or self.dry_run:
            return
        if connections[self.database].vendor != "postgresql":
            raise RestoreConfigError(
                "--jobs N loads tables in parallel connections: PostgreSQL only (SQLite has one writer)"
            )
        if self.atomic:
            raise RestoreConfigError(
                "--jobs N loads tables in parallel connections, which cannot share one transaction: add --no-atomic"
            )

    def _indexes_after_load_fits(self) -> bool:
        """The default: PostgreSQL, rows actually written, in replace mode in one transaction
        or chunk by chunk (``--no-atomic``: any mode, see :mod:`dbrestore.chunked.aside`)."""
        return (
            connections[self.database].vendor == "postgresql"
            and (self.mode == "replace" or not self.atomic)
            and not self.dry_run
        )

    def make_paths_absolute(self) -> None:
        if self.rejects_file:
            self.rejects_file = absolute(self.rejects_file)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def uses_copy(self) -> bool:
        """COPY on PostgreSQL in replace mode (unless --method orm), the ORM path otherwise."""
        return not self.dry_run and (
            self.method == "copy"
            or (self.method == "auto" and self.mode == "replace" and connections[self.database].vendor == "postgresql")
        )

    def conversion_processes(self, data: TableData) -> int:
        """Processes that convert this table's rows (1: this one): ``convert_processes`` for a
        JSON Lines table of ``CONVERT_MIN_ROWS`` rows or more loaded by COPY in one transaction;
        smaller tables are over before forking would pay (a few milliseconds a process). The
        default is decided here, where the restore runs (an RQ worker's cores, not the web
        server's that queued it)."""
        processes = default_convert_processes() if self.convert_processes is None else self.convert_processes
        if not (processes > 1 and self.uses_copy() and self.atomic and data.blocks is not None):
            return 1
        return processes if data.at_least_rows(int(conf.get("CONVERT_MIN_ROWS"))) else 1

    def loader_class(self) -> type[TableLoader] | type[CopyTableLoader]:
        if not self.uses_copy():
            return TableLoader
        from dbrestore.load.copy import CopyTableLoader  # imported here: psycopg costs SQLite 45 ms of start-up

        return CopyTableLoader


def absolute(path: str | Path | StoragePath) -> str:
    """Paths on a RestoreRun do not depend on where the process stood (a worker stands elsewhere);
    a location in a storage is absolute already."""
    location = as_location(path)
    return str(location if isinstance(location, StoragePath) else location.absolute())


def default_convert_processes() -> int:
    """``DBRESTORE["CONVERT_PROCESSES"]``, or where it is None, the cores this process may run
    on, at most 4 (the restoring process and the server need their share), and 1 where
    processes cannot be forked."""
    configured = conf.get("CONVERT_PROCESSES")
    if configured is not None:
        return int(configured)
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, 4)


def resolved_mode(source: Source, mode: str) -> str:
    """The mode a restore of ``source`` asked for as ``mode`` runs in (see ``resolve_mode``)."""
    opts = RestoreOptions(mode=mode)
    opts.resolve_mode(source)
    return opts.mode


def check_database(alias: str) -> None:
    """Refuse an alias that is not in settings.DATABASES, naming the ones that are."""
    if alias not in connections:
        raise RestoreConfigError(f"unknown database alias {alias!r} (configured: {', '.join(connections)})")
