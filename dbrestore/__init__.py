"""dbrestore: restore database backups into a Django project's database.

The public API is :func:`restore` (and :func:`execute` for an existing RestoreRun); the
``restore_backup`` command, the admin and the RQ job are thin layers over it.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.9.0"

__all__ = ["restore", "execute", "__version__"]


def restore(source: Any, **options: Any) -> Any:
    """Restore ``source``; see :func:`dbrestore.service.restore`."""
    from .service import restore as _restore

    return _restore(source, **options)


def execute(run: Any, **options: Any) -> Any:
    """Run an existing RestoreRun; see :func:`dbrestore.service.execute`."""
    from .service import execute as _execute

    return _execute(run, **options)
