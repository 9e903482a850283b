"""System checks of ``settings.DBRESTORE`` (``manage.py check``): a bad value is named at start-up
instead of crashing a restore later with a traceback."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from dbrestore import conf

POSITIVE_INTEGERS = ("BATCH_SIZE", "COPY_BATCH_SIZE")


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list:
    """Every check of ``settings.DBRESTORE``; the later ones only run when it is a dict."""
    user = getattr(settings, "DBRESTORE", {})
    if not isinstance(user, dict):
        return [
            Error(
                f"DBRESTORE must be a dict, not {type(user).__name__}.",
                hint='Write DBRESTORE = {"BACKUP_DIR": BASE_DIR / "backups", ...}; see docs/settings.md.',
                id="dbrestore.E001",
            )
        ]
    config = conf.get_config()
    return [
        *_unknown_keys(user),
        *_positive_integers(config),
        *_safety_keep(config),
        *_conversion(config),
        *_queue(config),
        *_run_database(config),
        *_backup_dir(config),
    ]


@register(Tags.database)
def check_indexes_set_aside(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list:
    """A chunked restore that ended (failed, cancelled, died) with indexes and FK constraints
    set aside: its database lacks them until it is resumed or ``restore_indexes`` runs
    (``manage.py check --database ALIAS``, and ``migrate``)."""
    if not databases:
        return []
    from django.db import DatabaseError

    from dbrestore.chunked import aside
    from dbrestore.models import RestoreRun

    try:
        runs = list(
            RestoreRun.objects.using(conf.run_database())
            .filter(database__in=list(databases), checkpoint__has_key=aside.KEY)
            .exclude(status__in=RestoreRun.ACTIVE_STATUSES)
        )
    except DatabaseError:  # no history table yet (before migrate)
        return []
    found = []
    for run in runs:
        described = aside.describe(run)
        if described:
            found.append(
                Warning(
                    f"Restore #{run.pk} of database {run.database!r} ended {run.status}: {described}.",
                    hint=f"Resume it (restore_backup --resume {run.pk}) or run manage.py restore_indexes {run.pk}.",
                    id="dbrestore.W004",
                )
            )
    return found


def _unknown_keys(user: dict) -> list:
    found = []
    for key in user:
        if key in conf.DEFAULTS:
            continue
        close = difflib.get_close_matches(str(key).upper(), conf.DEFAULTS, n=1, cutoff=0.6)
        hint = f"Did you mean {close[0]!r}?" if close else "Known keys: " + ", ".join(sorted(conf.DEFAULTS)) + "."
        found.append(Warning(f"DBRESTORE has an unknown key {key!r}; it is ignored.", hint=hint, id="dbrestore.W001"))
    return found


def _positive_integers(config: dict) -> list:
    found = []
    for key in POSITIVE_INTEGERS:
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            found.append(
                Error(
                    f"DBRESTORE[{key!r}] must be a positive integer (rows), not {value!r}.",
                    hint=f"Leave it out for the default, {conf.DEFAULTS[key]}.",
                    id="dbrestore.E002",
                )
            )
    return found


def _conversion(config: dict) -> list:
    """CONVERT_PROCESSES (None or a count) and CONVERT_MIN_ROWS (rows): whole numbers, 0 allowed."""
    found = []
    for key, allow_none in (("CONVERT_PROCESSES", True), ("CONVERT_MIN_ROWS", False)):
        value = config[key]
        if (value is None and allow_none) or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            continue
        found.append(
            Error(
                f"DBRESTORE[{key!r}] must be a whole number of 0 or more"
                f"{' or None' if allow_none else ''}, not {value!r}.",
                hint=f"Leave it out for the default, {conf.DEFAULTS[key]}.",
                id="dbrestore.E007",
            )
        )
    return found


def _safety_keep(config: dict) -> list:
    value = config["SAFETY_BACKUP_KEEP"]
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return []
    return [
        Error(
            f"DBRESTORE['SAFETY_BACKUP_KEEP'] must be a positive integer (safety backups kept) or None, not {value!r}.",
            hint=f"None keeps them all; the default keeps the newest {conf.DEFAULTS['SAFETY_BACKUP_KEEP']}.",
            id="dbrestore.E006",
        )
    ]


def _queue(config: dict) -> list:
    queues = getattr(settings, "RQ_QUEUES", {}) or {}
    if config["QUEUE"] in queues:
        return []
    if config["SYNC_JOBS"]:
        return []  # jobs run in-process: no queue needed
    hint = f'Add it: RQ_QUEUES = {{..., "{config["QUEUE"]}": {{"URL": "redis://127.0.0.1:6379/0"}}}}' + (
        f" (configured: {', '.join(queues)})." if queues else "."
    )
    return [
        Error(f"DBRESTORE['QUEUE'] is {config['QUEUE']!r}, which is not in RQ_QUEUES.", hint=hint, id="dbrestore.E003")
    ]


def _run_database(config: dict) -> list:
    if config["RUN_DATABASE"] in settings.DATABASES:
        return []
    return [
        Error(
            f"DBRESTORE['RUN_DATABASE'] is {config['RUN_DATABASE']!r}, which is not in DATABASES.",
            hint=f"Use one of: {', '.join(settings.DATABASES)} (default 'default').",
            id="dbrestore.E004",
        )
    ]


def _backup_dir(config: dict) -> list:
    value = config["BACKUP_DIR"]
    if value is not None and not isinstance(value, (str, os.PathLike)):
        return [
            Error(
                f"DBRESTORE['BACKUP_DIR'] must be a path, not {value!r}.",
                hint='For example BASE_DIR / "backups".',
                id="dbrestore.E005",
            )
        ]
    path = conf.backup_dir()
    found = []
    if value is not None and not Path(value).expanduser().is_absolute():
        found.append(
            Warning(
                f"DBRESTORE['BACKUP_DIR'] is relative ({value!s}); it is taken as {path}.",
                hint='Give an absolute path, e.g. BASE_DIR / "backups".',
                id="dbrestore.W002",
            )
        )
    if not _writable(path):
        found.append(
            Warning(
                f"DBRESTORE['BACKUP_DIR'] ({path}) cannot be written: backups, safety backups, rejects files and "
                "uploads go there.",
                hint="Create it, or give the user who runs Django and the RQ worker write access to it.",
                id="dbrestore.W003",
            )
        )
    return found


def _writable(path: Path) -> bool:
    """The folder, or the nearest existing folder above it (created on first use), is writable."""
    while not path.exists():
        if path.parent == path:
            return False
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)
