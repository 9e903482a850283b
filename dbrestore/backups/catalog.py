"""The backups in BACKUP_DIR, or in the storage ``DBRESTORE["STORAGE"]`` names: listing them
(``--list``, the admin's Restore page) and resolving a name the user picked back to a path
inside that directory (or storage), and nowhere else.

Safety backups (taken before a restore empties tables) live in ``safety/`` there: they are
not restore candidates (``--latest``, the menu, the admin's list), only listed when asked for
(``--list --all``), found by ``--rollback`` through their run, and pruned to the newest
``SAFETY_BACKUP_KEEP``."""

from __future__ import annotations

import datetime
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import orjson

from dbrestore import conf
from dbrestore.exceptions import BackupNotFoundError
from dbrestore.files.storage import SCHEME, StoragePath, as_location, configured_alias, storage_root
from dbrestore.sources.directory import DATA_SUFFIXES, MANIFEST_NAME, is_data_file

logger = logging.getLogger(__name__)

SAFETY_DIR = "safety"
SAFETY_PREFIX = "safety-run"  # also how safety backups written before the safety/ folder are told apart
NOT_BACKUPS = {"rejects", SAFETY_DIR}
UPLOAD_PREFIX = "upload-"
BACKUP_SUFFIXES = (*DATA_SUFFIXES, ".gz", ".bz2", ".xz", ".lzma", ".zst", ".gpg", ".sql", ".dump", ".backup")


@dataclass
class BackupInfo:
    name: str
    path: Path | StoragePath
    created: datetime.datetime
    size: int  # bytes
    tables: int | None
    rows: int | None

    @property
    def is_safety(self) -> bool:
        return self.path.parent.name == SAFETY_DIR or self.path.name.startswith(SAFETY_PREFIX)


def backup_dir() -> Path:
    return conf.backup_dir()


def backup_root(storage: str | None = None) -> Path | StoragePath:
    """Where backups are listed and written: the storage ``storage`` (``--storage``) or
    ``DBRESTORE["STORAGE"]`` names, else BACKUP_DIR."""
    alias = configured_alias(storage)
    return storage_root(alias) if alias else backup_dir()


def _manifest_info(name: str, path, manifest_bytes: bytes, created, size) -> BackupInfo:
    try:
        manifest = orjson.loads(manifest_bytes)
        tables = manifest.get("tables") or []
        rows = sum(int(t.get("rows") or 0) for t in tables)
        if manifest.get("created_at"):
            created = datetime.datetime.fromisoformat(manifest["created_at"])
        return BackupInfo(name, path, created, size, len(tables), rows)
    except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError):
        return BackupInfo(name, path, created, size, None, None)


def _stored_backups(root: StoragePath) -> list[BackupInfo]:
    """Backups in a storage: each "folder" with a manifest.json, and single backup files."""
    storage = root.storage
    dirs, files = root.listdir()
    found = []
    for name in dirs:
        if name.startswith(".") or name in NOT_BACKUPS:
            continue
        path = root / name
        _, names = path.listdir()
        data = [file for file in names if file != MANIFEST_NAME and file.endswith(BACKUP_SUFFIXES)]
        if MANIFEST_NAME not in names and not data:
            continue
        size = sum(storage.size(f"{path.key}/{file}") for file in names)
        created = storage.get_modified_time(f"{path.key}/{(MANIFEST_NAME if MANIFEST_NAME in names else data[0])}")
        if MANIFEST_NAME in names:
            found.append(_manifest_info(name, path, (path / MANIFEST_NAME).read_bytes(), created, size))
        elif name.startswith(UPLOAD_PREFIX) and len(names) == 1:  # the uploaded file is the backup
            found.append(BackupInfo(f"{name}/{names[0]}", path / names[0], created, size, None, None))
        else:
            found.append(BackupInfo(name, path, created, size, len(data), None))
    for name in files:
        if name.endswith(BACKUP_SUFFIXES) and not name.startswith("."):
            key = (root / name).key
            found.append(BackupInfo(name, root / name, storage.get_modified_time(key), storage.size(key), None, None))
    return found


def _directory_info(path: Path) -> BackupInfo | None:
    manifest_path = path / MANIFEST_NAME
    files = [p for p in path.iterdir() if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    created = datetime.datetime.fromtimestamp(path.stat().st_mtime, tz=datetime.UTC)
    if manifest_path.is_file():
        try:
            manifest = orjson.loads(manifest_path.read_bytes())
            tables = manifest.get("tables") or []
            rows = sum(int(t.get("rows") or 0) for t in tables)
            if manifest.get("created_at"):
                created = datetime.datetime.fromisoformat(manifest["created_at"])
            return BackupInfo(path.name, path, created, size, len(tables), rows)
        except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError):
            return BackupInfo(path.name, path, created, size, None, None)
    data = [p for p in files if is_data_file(p)]
    if not data and not (path / "toc.dat").exists():
        return None
    return BackupInfo(path.name, path, created, size, len(data) or None, None)


def _upload_info(path: Path) -> BackupInfo | None:
    """An upload's folder holds one file, which is the backup: ``upload-<stamp>/<file>``."""
    files = [p for p in path.iterdir() if p.is_file()]
    info = _file_info(files[0]) if len(files) == 1 else None
    if info is None:
        return _directory_info(path)
    info.name = f"{path.name}/{info.name}"
    return info


def _file_info(path: Path) -> BackupInfo | None:
    if not path.name.endswith(BACKUP_SUFFIXES):
        return None
    stat = path.stat()
    created = datetime.datetime.fromtimestamp(stat.st_mtime, tz=datetime.UTC)
    return BackupInfo(path.name, path, created, stat.st_size, None, None)


def _entries(directory: Path | StoragePath, prefix: str = "") -> list[BackupInfo]:
    if isinstance(directory, StoragePath):
        found = directory.guarded("list the backups", _stored_backups, directory)
        for info in found:
            info.name = prefix + info.name
        return found
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        if entry.name.startswith(".") or entry.name in NOT_BACKUPS:
            continue
        if entry.is_dir():
            info = _upload_info(entry) if entry.name.startswith(UPLOAD_PREFIX) else _directory_info(entry)
        else:
            info = _file_info(entry)
        if info is not None:
            info.name = prefix + info.name
            found.append(info)
    return found


def list_backups(
    directory: Path | StoragePath | None = None, storage: str | None = None, *, include_safety: bool = False
) -> list[BackupInfo]:
    """Backups in BACKUP_DIR (or the configured storage), newest first; safety backups only with
    ``include_safety`` (named ``safety/<name>``)."""
    directory = directory or backup_root(storage)
    found = _entries(directory)
    if include_safety:
        found += _entries(directory / SAFETY_DIR, prefix=f"{SAFETY_DIR}/")
    else:
        found = [info for info in found if not info.is_safety]
    return sorted(found, key=lambda info: (info.created, info.name), reverse=True)


def resolve_backup_name(name: str, storage: str | None = None) -> Path | StoragePath:
    """The path of the backup called ``name`` in BACKUP_DIR or the storage (``safety/<name>`` for a
    safety backup); never a path outside it.

    An upload is named ``upload-<stamp>/<file>``: the file itself is the backup, read as the
    same file would be from the command line.
    """
    root = backup_root(storage)
    for info in list_backups(root, include_safety=True):
        if info.name == name:
            return info.path
    raise BackupNotFoundError(f"no backup named {name!r} in {root}")


def resolve_source(value: str, storage: str | None = None, *, paths: bool = True) -> Path | StoragePath:
    """The backup a user named, by the rules the command and the admin share.

    In order: a storage URL ``storage://alias/key`` (``paths`` only), a path that exists
    (``paths`` only), a backup's name in BACKUP_DIR or the storage (``safety/<name>`` and
    ``upload-<stamp>/<file>`` are names too, see :func:`backup_name`), and last any other path
    (``paths`` only; the restore then reports it missing). Paths are made absolute: a queued
    restore runs in a worker that stands elsewhere. The admin passes ``paths=False``: only a
    name resolves, so that a form can never point the restore at another file of the server.
    """
    if paths and value.startswith(SCHEME):
        return as_location(value)
    if paths and Path(value).exists():
        return Path(value).absolute()
    try:
        return resolve_backup_name(value, storage=storage)
    except BackupNotFoundError:
        if not paths:
            raise
    return Path(value).absolute()


def safety_backup_path(run_id: int, suffix: str = "", root: Path | StoragePath | None = None) -> Path | StoragePath:
    """Where the safety backup of restore run ``run_id`` goes: a new name in ``safety/`` of
    ``root`` (a storage's root, see :func:`backup_root`; default BACKUP_DIR)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H-%M-%S-%fZ")
    return (root or backup_dir()) / SAFETY_DIR / f"{SAFETY_PREFIX}{run_id}-{stamp}{suffix}"


def prune_safety_backups(keep: int | None = None, root: Path | StoragePath | None = None) -> list[Path | StoragePath]:
    """Delete all but the newest ``keep`` (default ``SAFETY_BACKUP_KEEP``) safety backups in
    ``root`` (default BACKUP_DIR); None keeps them all. Returns what was deleted."""
    keep = conf.get("SAFETY_BACKUP_KEEP") if keep is None else keep
    if keep is None:
        return []
    safety = [info for info in list_backups(root or backup_dir(), include_safety=True) if info.is_safety]
    deleted = []
    for info in safety[keep:]:
        _delete_backup(info.path)
        logger.info("Deleted the old safety backup %s (SAFETY_BACKUP_KEEP=%s)", info.path, keep)
        deleted.append(info.path)
    return deleted


def _delete_backup(path: Path | StoragePath) -> None:
    if isinstance(path, StoragePath):
        _, files = path.listdir() if path.is_dir() else ([], [])
        keys = [f"{path.key}/{name}" for name in files] or [path.key]
        for key in keys:
            path.guarded("delete an old safety backup", path.storage.delete, key)
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def backup_name(path: Path | StoragePath) -> str:
    """The name :func:`resolve_backup_name` turns back into ``path``."""
    if path.parent.name.startswith(UPLOAD_PREFIX):
        return f"{path.parent.name}/{path.name}"
    return path.name


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def upload_location(original_name: str) -> Path | StoragePath:
    """Where an upload goes so that the restore (an RQ worker too) can read it: in the configured
    storage when there is one (see :func:`upload_path`), else BACKUP_DIR."""
    alias = configured_alias()
    if not alias:
        return upload_path(original_name)
    local = upload_path(original_name, create=False)
    return storage_root(alias) / local.parent.name / local.name


def upload_path(original_name: str, create: bool = True) -> Path:
    """Where an uploaded backup goes: a fresh generated directory in BACKUP_DIR holding one file
    whose name keeps only the letters, digits and ``_`` of the uploaded stem (the table name, for
    a single-table file) and its allowed suffixes. Nothing else of the uploaded name is used."""
    allowed = {suffix.lower() for suffix in conf.get("UPLOAD_EXTENSIONS")}
    suffixes = [s.lower() for s in Path(original_name).suffixes[-2:]]
    suffixes = [s for s in suffixes if s in allowed and re.fullmatch(r"\.[a-z0-9]{1,8}", s)]
    if not suffixes or Path(original_name).suffix.lower() not in allowed:
        raise BackupNotFoundError(
            f"{Path(original_name).name!r}: not an accepted backup file (allowed: {', '.join(sorted(allowed))})"
        )
    stem = re.sub(r"[^A-Za-z0-9_]", "", Path(original_name).name.split(".")[0])[:64] or "upload"
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
    directory = backup_dir() / f"{UPLOAD_PREFIX}{stamp}-{os.urandom(4).hex()}"
    if create:
        directory.mkdir(parents=True)
    return directory / (stem + "".join(suffixes))
