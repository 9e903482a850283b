"""Which models a backup restores, in which order, and which tables a replace empties.

Tables are matched to models through the apps registry by model label, ``db_table`` or model
name (case-insensitive; snake_case, camelCase and a plural ``s`` tolerated). Models are ordered
parents first from the FK graph; cycles and self references are allowed (the load runs with
deferred constraint checks) and reported in ``Plan.cycles``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import models
from django.db.models import ForeignObjectRel

from dbrestore import conf
from dbrestore.convert.fields import concrete_model
from dbrestore.exceptions import RestoreConfigError, UnknownTableError
from dbrestore.sources import Backup, TableData

ModelType = type[models.Model]

#: Never backed up, restored nor emptied, whatever ``DBRESTORE["EXCLUDE"]`` says: the
#: checkpoints of restores live in the restored database itself.
ALWAYS_EXCLUDED = ["dbrestore.RestoreChunk"]


@dataclass
class PlannedTable:
    model: ModelType
    data: TableData

    @property
    def label(self) -> str:
        return self.model._meta.label

    @property
    def db_table(self) -> str:
        return self.model._meta.db_table


@dataclass
class OutsideRows:
    """Rows of a model outside the restore whose FK ``field`` points into a table it empties."""

    model: ModelType
    field: models.ForeignObject[Any, Any]
    rows: int
    example_pk: Any

    def describe(self, what: str = "") -> str:
        target = self.field.related_model._meta.label
        rows = "1 row" if self.rows == 1 else f"{self.rows} rows"
        return f"{self.model._meta.label}.{self.field.name} -> {target} ({rows}{what}, e.g. pk {self.example_pk!r})"


@dataclass
class Plan:
    tables: list[PlannedTable]  # in load order: parents first
    models_to_empty: list[ModelType]  # in delete order: children first
    unknown: list[TableData] = field(default_factory=list)  # tables skipped by ignore_unknown
    #: Tables of the backup left out by --exclude or ``DBRESTORE["EXCLUDE"]``: their rows are
    #: counted as skipped, not dropped unseen.
    excluded: list[PlannedTable] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)
    #: FKs from models outside the restore into a model it empties: (referencing model, field).
    outside_references: list[tuple[ModelType, models.ForeignObject[Any, Any]]] = field(default_factory=list)
    #: The outside FKs that hold rows, kept by a replace in one transaction and checked after
    #: the load (:func:`dbrestore.backups.safety.check_outside_rows`).
    kept_outside: list[OutsideRows] = field(default_factory=list)

    @property
    def models(self) -> list[ModelType]:
        return [table.model for table in self.tables]


def normalize(name: str) -> str:
    """``shop.OrderItem``, ``shop_order_item``, ``order-items`` -> comparable keys."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


class ModelIndex:
    """Every installed model (auto-created M2M through models included), by the names a backup may use."""

    def __init__(self, candidates: Iterable[ModelType] | None = None):
        self.models = list(candidates if candidates is not None else apps.get_models(include_auto_created=True))
        self._exact: dict[str, set[ModelType]] = defaultdict(set)
        self._loose: dict[str, set[ModelType]] = defaultdict(set)
        for model in self.models:
            opts = model._meta
            for name in (opts.label_lower, opts.db_table.lower()):
                self._exact[name].add(model)
            for loose in (opts.label, opts.db_table, opts.model_name, opts.object_name):
                if loose is not None:  # (typed optional: set on every model of the registry)
                    self._loose[normalize(loose)].add(model)

    def lookup(self, name: str) -> ModelType | None:
        """The model for a backup table name; ``UnknownTableError`` when ambiguous."""
        for index, key in ((self._exact, name.lower()), (self._loose, normalize(name))):
            found = index.get(key)
            if found:
                return self._one(name, found)
        loose = normalize(name)
        for plural, singular in (("ies", "y"), ("es", ""), ("s", "")):
            if loose.endswith(plural):
                found = self._loose.get(loose[: -len(plural)] + singular)
                if found:
                    return self._one(name, found)
        return None

    @staticmethod
    def _one(name: str, found: set[ModelType]) -> ModelType:
        if len(found) > 1:
            labels = ", ".join(sorted(model._meta.label for model in found))
            raise UnknownTableError(f"table {name!r} is ambiguous: it matches {labels}; name it by model label")
        return next(iter(found))


def resolve_model(data: TableData, index: ModelIndex) -> ModelType | None:
    if data.model_label:
        try:
            return apps.get_model(data.model_label)
        except (LookupError, ValueError):
            pass
    return index.lookup(data.key)


def matches_any(model: ModelType, names: Iterable[str]) -> bool:
    opts = model._meta
    keys = {opts.label_lower, opts.db_table.lower(), normalize(opts.label), normalize(opts.db_table)}
    return any(name.lower() in keys or normalize(name) in keys for name in names)


def fk_parents(model: ModelType) -> set[ModelType]:
    """Concrete models this model's FK / one-to-one columns point to."""
    parents = set()
    for f in model._meta.concrete_fields:
        if f.is_relation and f.remote_field and f.remote_field.model:
            parents.add(concrete_model(f.remote_field.model))
    return parents


def _reachable(start: ModelType, edges: dict[ModelType, set[ModelType]], within: set[ModelType]) -> set[ModelType]:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges[todo.pop()] & within:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _cycle_through(model: ModelType, deps: dict[ModelType, set[ModelType]], within: set[ModelType]) -> set[ModelType]:
    """The models on an FK cycle through ``model``: reachable from it and reaching it."""
    children = {m: {c for c in within if m in deps[c]} for m in within}
    return (_reachable(model, deps, within) & _reachable(model, children, within)) | {model}


def required_parents(model: ModelType) -> set[ModelType]:
    """Parents reached through NOT NULL FK columns."""
    return {
        concrete_model(f.remote_field.model)
        for f in model._meta.concrete_fields
        if f.is_relation and f.remote_field and not f.null
    }


def order_parents_first(selected: list[ModelType]) -> tuple[list[ModelType], list[list[str]]]:
    """Topological order of ``selected`` by FK (parents first), stable in input order.

    Self references are ignored for ordering. When a cycle remains, the model of the cycle with
    the fewest unresolved parents goes first and the cycle is reported; the load defers
    constraint checks, so the rows still restore.
    """
    remaining = list(selected)
    chosen = set(selected)
    deps = {m: (fk_parents(m) & chosen) - {m} for m in selected}
    ordered: list[ModelType] = []
    cycles: list[list[str]] = []
    while remaining:
        placed = set(ordered)
        ready = [m for m in remaining if deps[m] <= placed]
        if not ready:
            # Break the cycle at a model whose pending parents are reached through nullable FKs:
            # those columns can wait (they are deferred, or loaded as NULL and filled in later).
            breaker = min(
                remaining, key=lambda m: (len(required_parents(m) & (deps[m] - placed)), len(deps[m] - placed))
            )
            cycles.append(sorted(m._meta.label for m in _cycle_through(breaker, deps, set(remaining))))
            ready = [breaker]
        for model in ready:
            ordered.append(model)
            remaining.remove(model)
    return ordered, cycles


def referencing_fields(model: ModelType) -> list[tuple[ModelType, models.ForeignObject[Any, Any]]]:
    """Concrete FK / one-to-one fields of other models that point at ``model``."""
    return [
        (concrete_model(rel.related_model), rel.field)
        for rel in model._meta.get_fields(include_hidden=True)
        # (auto-created and not concrete: the reverse side of a relation, a ForeignObjectRel)
        if isinstance(rel, ForeignObjectRel)
        and rel.auto_created
        and not rel.concrete
        and rel.field.concrete
        and not rel.many_to_many
    ]


def outside_foreign_keys(load_order: list[ModelType]) -> list[tuple[ModelType, models.ForeignObject[Any, Any]]]:
    """The FKs of models outside the restore (auto-created M2M tables included) that point into
    a restored model, each once. Their rows are kept by a replace: see :mod:`dbrestore.backups.safety`."""
    restored = set(load_order)
    found: list[tuple[ModelType, models.ForeignObject[Any, Any]]] = []
    for model in load_order:
        for referencing, fk in referencing_fields(model):
            if referencing not in restored and (referencing, fk) not in found:
                found.append((referencing, fk))
    return found


def build_plan(
    backup: Backup,
    *,
    only: Iterable[str] = (),
    exclude: Iterable[str] = (),
    ignore_unknown: bool = False,
    index: ModelIndex | None = None,
) -> Plan:
    """Map the backup's tables to models, apply only/exclude, and order load and delete."""
    index = index or ModelIndex()
    only, exclude = list(only), list(exclude) + list(conf.get("EXCLUDE")) + ALWAYS_EXCLUDED
    planned: dict[ModelType, PlannedTable] = {}
    unknown: list[TableData] = []
    excluded: list[PlannedTable] = []
    for data in backup.tables:
        model = resolve_model(data, index)
        if model is None:
            if only and not any(normalize(data.key) == normalize(name) for name in only):
                continue
            if any(normalize(data.key) == normalize(name) for name in exclude) or ignore_unknown:
                unknown.append(data)
                continue
            raise UnknownTableError(
                f"{data.origin}: table {data.key!r} matches no installed model "
                "(exclude it with --exclude, or use --ignore-unknown)"
            )
        model = concrete_model(model)
        if only and not matches_any(model, only):
            continue
        if matches_any(model, exclude):
            excluded.append(PlannedTable(model=model, data=data))
            continue
        if model in planned:
            raise UnknownTableError(
                f"{data.origin}: table {data.key!r} maps to {model._meta.label}, "
                f"which {planned[model].data.origin} already provides"
            )
        planned[model] = PlannedTable(model=model, data=data)
    if only and not planned:
        raise RestoreConfigError(f"--only {', '.join(only)} matches no table in {backup.path}")

    load_order, cycles = order_parents_first(list(planned))
    tables = [planned[model] for model in load_order]

    return Plan(
        tables=tables,
        models_to_empty=list(reversed(load_order)),
        unknown=unknown,
        excluded=excluded,
        cycles=cycles,
        outside_references=outside_foreign_keys(load_order),
    )


def plan_warnings(plan: Plan) -> list[str]:
    """What the plan itself finds worth a warning: backup tables that match no model (with
    ``ignore_unknown``; otherwise the plan refuses them). FK cycles are no loss nor change."""
    return [f"{data.origin}: table {data.key!r} matches no model; skipped" for data in plan.unknown]


def backup_models(only: Iterable[str] = (), exclude: Iterable[str] = ()) -> list[type[models.Model]]:
    """The models a backup holds: every concrete, managed model (M2M tables included), parents
    first, without ``DBRESTORE["EXCLUDE"]``, narrowed by ``only`` / ``exclude``."""
    only, exclude = list(only), list(exclude) + list(conf.get("EXCLUDE")) + ALWAYS_EXCLUDED
    chosen = [
        model
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed
        and not model._meta.proxy
        and (not only or matches_any(model, only))
        and not matches_any(model, exclude)
    ]
    ordered, _ = order_parents_first(chosen)
    return ordered
