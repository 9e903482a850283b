"""FK levels: the tables that may load side by side (``--jobs N``, as ``pg_restore -j``).

A table's *level* is one more than the highest level of the restored tables its settled FKs
point to (see :func:`~dbrestore.integrity.classify_foreign_keys`): the tables of one level only
need the levels before them to be complete, so they can load in parallel connections, and the
next level starts when the whole level is done. The chunks of a level load in worker processes
(:mod:`dbrestore.chunked.processes`); parallel connections cannot share one transaction, so this is for
``--no-atomic`` restores on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import TypeVar

M = TypeVar("M", bound=Hashable)  # a model class


def load_levels(models_in_order: list[M], parents: Mapping[M, Iterable[M]]) -> list[list[M]]:
    """Group ``models_in_order`` (parents first) into levels that may load at the same time.

    ``parents`` maps a model to the parent models it must wait for.
    """
    level: dict[M, int] = {}
    for model in models_in_order:
        level[model] = 1 + max((level[parent] for parent in parents.get(model, ()) if parent in level), default=-1)
    grouped: list[list[M]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for model in models_in_order:
        grouped[level[model]].append(model)
    return grouped
