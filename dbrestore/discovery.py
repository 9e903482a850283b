"""The backups in BACKUP_DIR: listing them (``--list``, the admin's Restore page) and
resolving a name the user picked back to a path inside that directory, and nowhere else.

Safety backups (taken before a restore empties tables) live in ``BACKUP_DIR/safety/``: they are
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

from . import conf
from .exceptions import BackupNotFoundError
from .sources.directory import MANIFEST_NAME, is_data_file

logger = logging.getLogger(__name__)

SAFETY_DIR = "safety"
SAFETY_PREFIX = "safety-run"  # also how safety backups written before the safety/ folder are told apart
NOT_BACKUPS = {"rejects", SAFETY_DIR}
BACKUP_SUFFIXES = (".json", ".jsonl", ".gz", ".bz2", ".xz", ".sql", ".dump", ".backup")


@dataclass
class BackupInfo:
    name: str
    path: Path
    created: datetime.datetime
    size: int  # bytes
    tables: int | None
    rows: int | None

    @property
    def is_safety(self) -> bool:
        return self.path.parent.name == SAFETY_DIR or self.path.name.startswith(SAFETY_PREFIX)


def backup_dir() -> Path:
    return conf.backup_dir()


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


def _file_info(path: Path) -> BackupInfo | None:
    if not path.name.endswith(BACKUP_SUFFIXES):
        return None
    stat = path.stat()
    created = datetime.datetime.fromtimestamp(stat.st_mtime, tz=datetime.timezone.utc)
    return BackupInfo(path.name, path, created, stat.st_size, None, None)


def _entries(directory: Path, prefix: str = "") -> list[BackupInfo]:
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        if entry.name.startswith(".") or entry.name in NOT_BACKUPS:
            continue
        info = _directory_info(entry) if entry.is_dir() else _file_info(entry)
        if info is not None:
            info.name = prefix + info.name
            found.append(info)
    return found


def list_backups(directory: Path | None = None, *, include_safety: bool = False) -> list[BackupInfo]:
    """Backups in BACKUP_DIR, newest first; safety backups only with ``include_safety`` (named
    ``safety/<name>``)."""
    directory = directory or backup_dir()
    found = _entries(directory)
    if include_safety:
        found += _entries(directory / SAFETY_DIR, prefix=f"{SAFETY_DIR}/")
    else:
        found = [info for info in found if not info.is_safety]
    return sorted(found, key=lambda info: (info.created, info.name), reverse=True)


def resolve_backup_name(name: str) -> Path:
    """The path of the backup called ``name`` in BACKUP_DIR (``safety/<name>`` for a safety
    backup); never a path outside it."""
    for info in list_backups(include_safety=True):
        if info.name == name:
            return info.path
    raise BackupNotFoundError(f"no backup named {name!r} in {backup_dir()}")


def safety_backup_path(run_id: int, suffix: str = "") -> Path:
    """Where the safety backup of restore run ``run_id`` goes: a new name in BACKUP_DIR/safety/."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S-%fZ")
    return backup_dir() / SAFETY_DIR / f"{SAFETY_PREFIX}{run_id}-{stamp}{suffix}"


def prune_safety_backups(keep: int | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` (default ``SAFETY_BACKUP_KEEP``) safety backups; None
    keeps them all. Returns what was deleted."""
    keep = conf.get("SAFETY_BACKUP_KEEP") if keep is None else keep
    if keep is None:
        return []
    safety = [info for info in list_backups(include_safety=True) if info.is_safety]
    deleted = []
    for info in safety[keep:]:
        if info.path.is_dir():
            shutil.rmtree(info.path, ignore_errors=True)
        else:
            info.path.unlink(missing_ok=True)
        logger.info("Deleted the old safety backup %s (SAFETY_BACKUP_KEEP=%s)", info.path, keep)
        deleted.append(info.path)
    return deleted


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
    directory = backup_dir() / f"upload-{stamp}-{os.urandom(4).hex()}"
    directory.mkdir(parents=True)
    return directory / (stem + "".join(suffixes))
