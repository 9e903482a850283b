"""Backup readers. ``open_backup(path)`` detects the format and returns a :class:`Backup`.

Each format is a module with an ``open_*`` function; detection looks at the content, not only
the name. New formats register in :data:`FILE_FORMATS` (single files) or are recognised as
directories in :func:`open_backup`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from dbrestore.exceptions import BackupFormatError, BackupNotFoundError, DbRestoreError, describe
from dbrestore.files.storage import Location, Source, StoragePath, as_location
from dbrestore.native.formats import detect_native_format
from dbrestore.sources.base import Backup, PositionedRow, Row, TableData
from dbrestore.sources.bounds import require_regular_file
from dbrestore.sources.directory import MANIFEST_NAME, file_table, open_directory, table_key
from dbrestore.sources.dumpdata import is_dumpdata, open_dumpdata
from dbrestore.sources.keyed import is_keyed_object, open_keyed_object
from dbrestore.sources.readers import first_significant_byte, is_json_lines_name
from dbrestore.sources.rejects import is_rejects_file, open_rejects_file

__all__ = [
    "Backup",
    "TableData",
    "Row",
    "PositionedRow",
    "open_backup",
    "is_fixture",
    "refuse_outputs",
    "MANIFEST_NAME",
]


def open_single_table_file(path: Location) -> Backup:
    """A lone ``<table>.json`` array or ``<table>.jsonl`` file: one table named after the file."""
    table = file_table(table_key(path), path)
    return Backup(path=path, format="json-table", tables=[table])


#: Detectors for single files, tried in order: ``(matches(path, first_byte), opener)``.
FILE_FORMATS: list[tuple[Callable[[Location, bytes], bool], Callable[[Location], Backup]]] = [
    (is_rejects_file, open_rejects_file),
    (is_dumpdata, open_dumpdata),
    (is_keyed_object, open_keyed_object),
    (lambda path, first: first == b"[" or is_json_lines_name(path), open_single_table_file),
]


def _native(path: Location) -> Backup | None:
    """A PostgreSQL dump (or a dbrestore directory whose manifest points at one): no row streams,
    the engine hands it to :mod:`dbrestore.native.tools`."""
    if isinstance(path, StoragePath):
        _stored_native(path)
        return None
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        from dbrestore.sources.directory import read_manifest

        native = read_manifest(path / MANIFEST_NAME).get("native")
        if isinstance(native, dict) and native.get("file"):
            if not isinstance(native["file"], str):
                raise BackupFormatError('"native": "file" must be a string', path=path / MANIFEST_NAME)
            path = path / Path(native["file"]).name
            if not path.exists():
                raise BackupFormatError(f"the dump {path.name} named in the manifest is missing", path=path.parent)
            if not path.is_dir():
                require_regular_file(path)
        else:
            return None
    if path.is_file() and path.stat().st_size == 0:
        raise BackupFormatError("the file is empty", path=path)
    fmt = detect_native_format(path)
    return Backup(path=path, format=fmt, tables=[]) if fmt else None


def _stored_native(path: StoragePath) -> None:
    """pg_dump files are read by psql / pg_restore from a local path: not from a storage."""
    from dbrestore.sources.directory import read_manifest

    native = (path / MANIFEST_NAME).is_file() and read_manifest(path / MANIFEST_NAME).get("native")
    if native or path.name.endswith((".sql", ".sql.gz", ".dump", ".backup")):
        raise BackupFormatError(
            "PostgreSQL dumps are restored from a local file; download it from the storage first", path=path
        )
    return None


def open_backup(source: Source) -> Backup:
    """Open a backup directory or file (local, or ``storage://ALIAS/KEY``), detecting its format;
    raise a one-line error if unusable.

    The error boundary of detection: whatever a reader raises while the backup is opened that is
    not one of dbrestore's errors becomes a :class:`BackupFormatError` naming the path.
    """
    path = as_location(source)
    try:
        return _open(path)
    except DbRestoreError:
        raise
    except Exception as exc:
        raise BackupFormatError(f"cannot read: {describe(exc)}", path=path) from exc


def is_fixture(source: Source) -> bool:
    """Whether ``source`` is a Django ``dumpdata`` fixture, told from its first object (a source
    that cannot be read is not: opening it then says why)."""
    try:
        path = as_location(source)
        return path.is_file() and is_dumpdata(path, first_significant_byte(path))
    except Exception:  # any trouble reading it: open_backup reports it, with the file named
        return False


def refuse_outputs(backup: Backup, outputs: Iterable[Path]) -> None:
    """Refuse a backup that is (or holds) the rejects file the restore writes (``outputs``):
    reading it while appending to it would never end."""
    targets = {Path(output).expanduser().resolve() for output in outputs}
    for path in {backup.path, *(table.origin for table in backup.tables)}:
        if path.resolve() in targets:
            raise BackupFormatError(
                "is the file this restore writes its rejected rows to: it cannot also be read "
                "(choose another --rejects-file)",
                path=path,
            )


def _open(path: Location) -> Backup:
    stored = isinstance(path, StoragePath)
    if not path.exists():
        what = (
            f"no such object in storage {path.alias!r}"
            if isinstance(path, StoragePath)
            else "no such file or directory"
        )
        raise BackupNotFoundError(f"{path}: {what}")
    if not stored and not path.is_dir():
        require_regular_file(path)
    native = _native(path)
    if native is not None:
        return native
    if path.is_dir():
        return open_directory(path)
    first = first_significant_byte(path)
    if not first:
        raise BackupFormatError("the file is empty", path=path)
    for matches, opener in FILE_FORMATS:
        if matches(path, first):
            return opener(path)
    raise BackupFormatError(
        "not a recognised backup format (expected a JSON array or object, JSON Lines, dumpdata or a directory)",
        path=path,
    )
