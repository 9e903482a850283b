"""dbrestore: restore database backups into a Django project's database.

The public API is :func:`restore` (and :func:`execute` for an existing RestoreRun); the
``restore_backup`` command, the admin and the RQ job are thin layers over it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importing them at run time would load Django's models before the app registry
    from dbrestore.files.storage import StoragePath
    from dbrestore.models import RestoreRun
    from dbrestore.runs.locks import DatabaseLock
    from dbrestore.runs.progress import ProgressListener
    from dbrestore.runs.report import RestoreResult

__version__ = "0.9.0"

__all__ = ["restore", "execute", "__version__"]


def restore(
    source: str | Path | StoragePath,
    *,
    requested_by: str = "",
    listeners: Iterable[ProgressListener] = (),
    **options: Any,
) -> RestoreResult:
    """Restore ``source`` (``options``: the fields of :class:`dbrestore.options.RestoreOptions`);
    see :func:`dbrestore.service.restore`."""
    from dbrestore.service import restore as _restore

    return _restore(source, requested_by=requested_by, listeners=listeners, **options)


def execute(
    run: RestoreRun, *, lock: DatabaseLock, listeners: Iterable[ProgressListener] = (), job_id: str | None = None
) -> RestoreResult:
    """Run an existing RestoreRun holding its database's lock; see :func:`dbrestore.service.execute`."""
    from dbrestore.service import execute as _execute

    return _execute(run, lock=lock, listeners=listeners, job_id=job_id)
