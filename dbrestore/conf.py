"""dbrestore's settings: ``settings.DBRESTORE`` over documented defaults, read lazily."""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    "BACKUP_DIR": "backups",  # where create_backup writes and restore_backup --list looks
    "BATCH_SIZE": 1000,  # rows per INSERT batch
    "COPY_BATCH_SIZE": 5_000,  # rows per COPY statement on the COPY path (at least BATCH_SIZE); two in flight
    "QUEUE": "dbrestore",  # django-rq queue name for background restores
    "JOB_TIMEOUT": 24 * 3600,  # seconds an RQ restore job may run
    "SYNC_JOBS": False,  # run "background" restores in-process (no Redis needed)
    "SAFETY_BACKUP": True,  # back up the tables a restore replaces, before emptying them
    "RUN_DATABASE": "default",  # database alias that stores RestoreRun history
    "EXCLUDE": [  # never backed up, restored nor emptied (model labels)
        "dbrestore.RestoreRun",
        "sessions.Session",
        "contenttypes.ContentType",  # made by migrate; ids differ between databases
        "auth.Permission",
    ],
    "PROGRESS_INTERVAL": 1.0,  # seconds between progress writes to RestoreRun
    "HEARTBEAT_TIMEOUT": 120,  # seconds without heartbeat before a running restore counts as dead
    "MAX_UPLOAD_SIZE": 2 * 1024**3,  # bytes accepted by the admin upload
    "UPLOAD_EXTENSIONS": [".json", ".jsonl", ".gz", ".bz2", ".xz", ".sql", ".dump", ".backup", ".zip"],
    "MAX_MESSAGES": 200,  # warnings/errors kept on a RestoreRun
    "PG_BIN_DIR": None,
    "MAX_ROW_BYTES": 64 * 1024**2,  # bytes of one row (a JSON Lines line, an array item, a manifest); None: no limit
    "MAX_INFLATION_RATIO": 200,  # decompressed bytes per compressed byte past the first 16 MiB; None: no limit
    "MAX_NUMBER_DIGITS": 4300,  # digits of a number in a row (Python's int limit); 1e2000000 is refused
    "MAX_NESTING": 255,  # levels of arrays/objects inside one value (orjson writes no deeper)  # folder of psql / pg_restore / pg_dump (None: PATH)
}


@functools.cache
def get_config() -> dict[str, Any]:
    """The effective configuration: defaults updated with ``settings.DBRESTORE``."""
    config = dict(DEFAULTS)
    config.update(getattr(settings, "DBRESTORE", {}))
    return config


def get(key: str) -> Any:
    return get_config()[key]


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs: Any) -> None:
    if setting == "DBRESTORE":
        get_config.cache_clear()
