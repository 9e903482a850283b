"""The backups in BACKUP_DIR: listing them (``--list``, the admin's Restore page) and
resolving a name the user picked back to a path inside that directory, and nowhere else."""

from __future__ import annotations

import datetime
import os
import re
from dataclasses import dataclass
from pathlib import Path

import orjson

from . import conf
from .exceptions import BackupNotFoundError
from .sources.directory import MANIFEST_NAME, is_data_file

NOT_BACKUPS = {"rejects"}
UPLOAD_PREFIX = "upload-"
BACKUP_SUFFIXES = (".json", ".jsonl", ".gz", ".bz2", ".xz", ".sql", ".dump", ".backup")


@dataclass
class BackupInfo:
    name: str
    path: Path
    created: datetime.datetime
    size: int  # bytes
    tables: int | None
    rows: int | None


def backup_dir() -> Path:
    return Path(conf.get("BACKUP_DIR")).expanduser()


def _directory_info(path: Path) -> BackupInfo | None:
    manifest_path = path / MANIFEST_NAME
    files = [p for p in path.iterdir() if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    created = datetime.datetime.fromtimestamp(path.stat().st_mtime, tz=datetime.timezone.utc)
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
    created = datetime.datetime.fromtimestamp(stat.st_mtime, tz=datetime.timezone.utc)
    return BackupInfo(path.name, path, created, stat.st_size, None, None)


def list_backups(directory: Path | None = None) -> list[BackupInfo]:
    """Backups in BACKUP_DIR, newest first."""
    directory = directory or backup_dir()
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
            found.append(info)
    return sorted(found, key=lambda info: (info.created, info.name), reverse=True)


def resolve_backup_name(name: str) -> Path:
    """The path of the backup called ``name`` in BACKUP_DIR; never a path outside it.

    An upload is named ``upload-<stamp>/<file>``: the file itself is the backup, read as the
    same file would be from the command line.
    """
    for info in list_backups():
        if info.name == name:
            return info.path
    raise BackupNotFoundError(f"no backup named {name!r} in {backup_dir()}")


def backup_name(path: Path) -> str:
    """The name :func:`resolve_backup_name` turns back into ``path``."""
    if path.parent.name.startswith(UPLOAD_PREFIX) and path.parent.parent == backup_dir():
        return f"{path.parent.name}/{path.name}"
    return path.name


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def upload_path(original_name: str) -> Path:
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
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    directory = backup_dir() / f"{UPLOAD_PREFIX}{stamp}-{os.urandom(4).hex()}"
    directory.mkdir(parents=True)
    return directory / (stem + "".join(suffixes))
