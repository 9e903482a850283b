"""dbrestore's settings: ``settings.DBRESTORE`` over documented defaults, read lazily."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    "BACKUP_DIR": None,  # folder of backups (path); None: BASE_DIR / "backups"; relative: under BASE_DIR
    "STORAGE": None,  # alias in settings.STORAGES holding the backups instead of BACKUP_DIR (None: BACKUP_DIR)
    "BATCH_SIZE": 1000,  # rows per INSERT batch
    "CHUNK_BYTES": 32 * 1024**2,  # --no-atomic: bytes of a JSON Lines file per chunk (a transaction and a checkpoint)
    "COPY_BATCH_SIZE": 5_000,  # rows per COPY statement on the COPY path (at least BATCH_SIZE); two in flight
    # Forked processes converting a big JSON Lines table for COPY (None: the cores, at most 4; 0 or 1: none).
    "CONVERT_PROCESSES": None,
    # Rows from which a table is converted in those processes (smaller ones are over sooner).
    "CONVERT_MIN_ROWS": 50_000,
    "QUEUE": "dbrestore",  # django-rq queue name for background restores
    "JOB_TIMEOUT": 24 * 3600,  # seconds an RQ restore job may run
    "SYNC_JOBS": False,  # run "background" restores in-process (no Redis needed)
    "DISTRIBUTE_RETRIES": 2,  # --distribute: times RQ retries a chunk job that failed, before the run fails
    "SAFETY_BACKUP": True,  # back up the tables a restore replaces, before emptying them
    "SAFETY_BACKUP_KEEP": 10,  # safety backups kept in BACKUP_DIR/safety/ (the newest N; None keeps all)
    "RUN_DATABASE": "default",  # database alias that stores RestoreRun history
    "EXCLUDE": [  # never backed up, restored nor emptied (model labels)
        "dbrestore.RestoreRun",
        "sessions.Session",
        "contenttypes.ContentType",  # made by migrate; ids differ between databases
        "auth.Permission",
    ],
    "PROGRESS_INTERVAL": 1.0,  # seconds between progress writes to RestoreRun
    "SET_ASIDE_MIN_ROWS": None,  # rows a table needs for its indexes and FKs to be built after the load (None: 5,000)
    "LOCK_WAIT": 1.0,  # seconds a busy database lock is retried: no run on record, or --resume of a killed one
    "MAX_UPLOAD_SIZE": 2 * 1024**3,  # bytes accepted by the admin upload
    "UPLOAD_EXTENSIONS": [
        ".json",
        ".jsonl",
        ".gz",
        ".bz2",
        ".xz",
        ".lzma",
        ".zst",
        ".sql",
        ".dump",
        ".backup",
    ],  # no reader takes .zip
    "MAX_MESSAGES": 200,  # warnings, and errors, kept on a RestoreRun (the first N of each; reports keep all)
    "PG_BIN_DIR": None,  # folder of psql / pg_restore / pg_dump (None: PATH)
    "GPG_RECIPIENTS": [],  # create_backup encrypts for these keys (ids, fingerprints, emails) without --encrypt
    "GPG_BINARY": "gpg",  # the GnuPG executable (keys from its keyring, or GNUPGHOME)
    "GPG_ALWAYS_TRUST": False,  # encrypt for imported keys that are not certified in the keyring
    "MAX_ROW_BYTES": 64 * 1024**2,  # bytes of one row (a JSON Lines line, an array item, a manifest); None: no limit
    "MAX_INFLATION_RATIO": 200,  # decompressed bytes per compressed byte past the first 16 MiB; None: no limit
    "MAX_NUMBER_DIGITS": 4300,  # digits of a number in a row (Python's int limit); 1e2000000 is refused
    # Levels of arrays/objects in one row: deeper is a rejected row (a JSONField value deeper than 254 is too).
    "MAX_NESTING": 1000,
}


@functools.cache
def get_config() -> dict[str, Any]:
    """The effective configuration: defaults updated with ``settings.DBRESTORE``."""
    config = dict(DEFAULTS)
    user = getattr(settings, "DBRESTORE", {})
    if isinstance(user, dict):  # anything else is reported by the check dbrestore.E001
        config.update(user)
    return config


def get(key: str) -> Any:
    return get_config()[key]


def backup_dir() -> Path:
    """``BACKUP_DIR`` as an absolute path that does not depend on the current directory: a
    relative setting (or the default, ``backups``) is taken under ``settings.BASE_DIR``."""
    path = Path(get("BACKUP_DIR") or "backups").expanduser()
    if not path.is_absolute():
        base = getattr(settings, "BASE_DIR", None)
        path = (Path(base) if base else Path.cwd()) / path
    return path.resolve()


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs: Any) -> None:
    if setting == "DBRESTORE":
        get_config.cache_clear()


def run_database() -> str:
    """The database alias that holds the RestoreRun history."""
    alias: str = get("RUN_DATABASE")
    return alias


def split_commas(values: Iterable[str]) -> list[str]:
    """Every comma-separated item of ``values`` (``--only a,b --only c``; a setting's list), stripped,
    empty ones left out."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]
