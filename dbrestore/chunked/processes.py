"""``--jobs N`` for JSON backups: chunks load in N worker processes, past the GIL.

Each worker is a fresh Python process (``spawn``: a forked child would share the parent's
database sockets, among them the one holding the restore lock), with Django set up as in the
parent (same settings module, the parent's database names and ``DBRESTORE`` settings) and its
own connection and COPY stream. It is given chunks by id (``load_chunk(run_id, chunk)``),
opens the run's backup and plan once, and loads each chunk in its transaction with its
checkpoint. The memory bound of one load holds per process: N workers use N times it.

The chunks of one level go to the workers together; the next level starts when all are done.
A worker dies with the restoring process (Linux: ``PR_SET_PDEATHSIG``), so a killed restore
leaves no chunk loading behind it: its transaction rolls back, and ``--resume`` redoes it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from typing import Any

from django.conf import settings
from django.db import connections

from dbrestore.exceptions import RestoreAbortedError

logger = logging.getLogger(__name__)


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: a worker ends when its pipe closes, after its chunk
        pass


def _start(overlay: dict[str, Any]) -> None:
    """In the worker, before any work: Django as the parent has it."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for alias, name in overlay["names"].items():
        settings.DATABASES[alias]["NAME"] = name
    settings.DBRESTORE = overlay["dbrestore"]
    import django

    django.setup()


def _call(work: Callable[..., Any], *args: Any) -> Any:
    """Run ``work`` in the worker; an error that cannot cross the process boundary as it is
    comes back as a :class:`RestoreAbortedError` with its message."""
    try:
        return work(*args)
    except Exception as exc:
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            raise RestoreAbortedError(str(exc)) from None
        raise
    finally:
        for connection in connections.all(initialized_only=True):
            if connection.queries_logged:
                connection.queries_log.clear()


class Workers:
    """N worker processes, started once for the whole restore."""

    def __init__(self, jobs: int):
        self.jobs = jobs
        overlay = {
            "names": {alias: connections[alias].settings_dict["NAME"] for alias in connections},
            "dbrestore": dict(getattr(settings, "DBRESTORE", {}) or {}),
        }
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings.SETTINGS_MODULE or "")
        self.pool = ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_start, initargs=(overlay,)
        )

    def run(self, work: Callable[..., Any], items: list[Any], done: Callable[[Any, Any], None]) -> None:
        """``work(*item)`` for every item in the workers; ``done(item, result)`` here as each ends.
        The first error cancels the items not started, waits for the others, and is raised."""
        futures: dict[Future, Any] = {self.pool.submit(_call, work, *item): item for item in items}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    done(futures[future], future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            wait(pending)
            raise

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
