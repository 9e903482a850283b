"""``--jobs N`` for JSON backups: tables at the same FK level load side by side, as ``pg_restore -j``.

A table's *level* is one more than the highest level of the restored tables its settled FKs
point to (see :func:`~dbrestore.integrity.classify_foreign_keys`): the tables of one level only
need the levels before them to be complete, so they can load in parallel connections, and the
next level starts when the whole level is done. Each worker is a thread with its own Django
connection (Django keeps one per thread), closed when its table is done.

Parallel connections cannot share one transaction, so this is for ``--no-atomic`` restores on
PostgreSQL. Threads are enough: while one waits for the server, the other converts rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from django.db import connections

Item = TypeVar("Item")


def load_levels(models_in_order: list[type], parents: dict[type, Iterable[type]]) -> list[list[type]]:
    """Group ``models_in_order`` (parents first) into levels that may load at the same time.

    ``parents`` maps a model to the parent models it must wait for.
    """
    level: dict[type, int] = {}
    for model in models_in_order:
        level[model] = 1 + max((level[parent] for parent in parents.get(model, ()) if parent in level), default=-1)
    grouped: list[list[type]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for model in models_in_order:
        grouped[level[model]].append(model)
    return grouped


def run_in_threads(items: list[Item], work: Callable[[Item], None], *, jobs: int, using: str,
                   stop: threading.Event) -> None:
    """``work(item)`` for every item, ``jobs`` at a time.

    The first error sets ``stop`` (``work`` is expected to check it between batches and give
    up), the items not yet started are skipped, and that error is raised once all are done.
    """
    first_error: list[BaseException] = []
    lock = threading.Lock()

    def in_own_connection(item: Item) -> None:
        if stop.is_set():
            return
        try:
            work(item)
        except BaseException as exc:
            with lock:
                if not stop.is_set():  # later errors are this one's consequences
                    first_error.append(exc)
                    stop.set()
        finally:
            connections[using].close()

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="dbrestore-load") as pool:
        list(pool.map(in_own_connection, items))
    if first_error:
        raise first_error[0]
