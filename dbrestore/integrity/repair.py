"""After the load: orphans swept, deferred FK columns and natural keys filled in (see :mod:`dbrestore.integrity`)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Collection, Iterable
from typing import Any

from django.db import connections, models, transaction

from dbrestore.convert import ConversionError
from dbrestore.convert.fields import column_of, natural_key_manager
from dbrestore.convert.row_converter import ByNaturalKey, RowConverter, find_by_natural_key
from dbrestore.integrity.edges import ForeignKeyEdge, ModelType, classify_foreign_keys, existing_values, orphan_pks
from dbrestore.load.ledger import Ledger
from dbrestore.load.rejects import RejectsFile
from dbrestore.plan.build import Plan, PlannedTable
from dbrestore.runs.report import RestoreResult
from dbrestore.sources.base import batched

_CHUNK = 500
_UPDATE_ROWS = 1000  # rows per UPDATE ... FROM (VALUES ...): at most 1,000 x (1 + FKs) parameters


def sweep_orphans(
    plan: Plan,
    using: str,
    result: RestoreResult,
    rejects: RejectsFile,
    parents_changed: Iterable[ModelType] | None = None,
    every_foreign_key: bool = False,
    checked_while_loading: Collection[ForeignKeyEdge] = (),
) -> int:
    """Delete and reject restored rows whose FK points nowhere; return how many.

    Checks the deferred FKs (all of them with ``every_foreign_key``: an atomic restore checks
    parents this way instead of batch by batch, except those the database already checked row by
    row as they went in), or, given ``parents_changed``, the FKs into those models.
    """
    kinds = classify_foreign_keys(plan)
    tables = {table.model: table for table in plan.tables}
    all_edges = [edge for settled, deferred in kinds.values() for edge in settled + deferred]
    if every_foreign_key:
        edges = [edge for edge in all_edges if edge not in checked_while_loading]
    elif parents_changed is None:
        edges = [edge for _, deferred in kinds.values() for edge in deferred]
    else:
        changed = set(parents_changed)
        edges = [edge for edge in all_edges if edge.parent in changed]
    removed_total = 0
    while edges:
        orphans: dict[ModelType, dict[Any, ForeignKeyEdge]] = defaultdict(dict)
        for edge in edges:
            for pk in orphan_pks(edge, using):
                orphans[edge.model].setdefault(pk, edge)
        if not orphans:
            break
        for model, found in orphans.items():
            _delete(model, list(found), using)
            removed_total += len(found)
            _reject_from_input(tables[model], found, using, result, rejects)
        edges = [edge for edge in all_edges if edge.parent in orphans]
    return removed_total


def _still_null(edges: Iterable[ForeignKeyEdge]) -> dict[str, bool]:
    return {f"{edge.field.attname}__isnull": True for edge in edges}


def _fill_in(model: ModelType, manager, edges: tuple[ForeignKeyEdge, ...], items: list[tuple[Any, dict]]) -> None:
    """Set these FK columns of these rows (pk, {edge: value}) where they are all still NULL, with
    one ``UPDATE ... FROM (VALUES ...)`` per thousand rows (PostgreSQL, SQLite 3.33+), or
    bulk_update elsewhere; never one statement per row."""
    connection = connections[manager.db]
    if connection.vendor not in ("postgresql", "sqlite") or (
        connection.vendor == "sqlite" and sqlite3.sqlite_version_info < (3, 33)  # the backend's Database module
    ):
        _fill_in_with_bulk_update(model, manager, edges, items)
        return
    qn = connection.ops.quote_name
    pk = model._meta.pk
    table = qn(model._meta.db_table)
    types = [pk.rel_db_type(connection)] + [edge.field.db_type(connection) for edge in edges]
    row_sql = "(" + ", ".join(f"CAST(%s AS {db_type})" for db_type in types) + ")"
    sets = ", ".join(f"{qn(edge.field.column)} = v.column{n}" for n, edge in enumerate(edges, start=2))
    still_null = " AND ".join(f"{table}.{qn(edge.field.column)} IS NULL" for edge in edges)
    with connection.cursor() as cursor:
        for chunk in batched(items, _UPDATE_ROWS):
            params = []
            for pk_value, links in chunk:
                params.append(pk.get_db_prep_value(pk_value, connection))
                params.extend(edge.field.get_db_prep_value(links[edge], connection) for edge in edges)
            cursor.execute(
                f"UPDATE {table} SET {sets} FROM (VALUES {', '.join([row_sql] * len(chunk))}) AS v "
                f"WHERE {table}.{qn(column_of(pk))} = v.column1 AND {still_null}",
                params,
            )


def _fill_in_with_bulk_update(
    model: ModelType, manager, edges: tuple[ForeignKeyEdge, ...], items: list[tuple[Any, dict]]
) -> None:
    still_null = set(manager.filter(pk__in=[pk for pk, _ in items], **_still_null(edges)).values_list("pk", flat=True))
    objs = []
    for pk, links in items:
        if pk in still_null:
            obj = model(pk=pk)
            for edge, value in links.items():
                setattr(obj, edge.field.attname, value)
            objs.append(obj)
    if objs:
        manager.bulk_update(objs, [edge.field.name for edge in edges])


def _delete(model: ModelType, pks: list[Any], using: str) -> None:
    for start in range(0, len(pks), _CHUNK):
        model._base_manager.using(using).filter(pk__in=pks[start : start + _CHUNK])._raw_delete(using)


def _reject_from_input(
    table: PlannedTable, found: dict[Any, ForeignKeyEdge], using: str, result: RestoreResult, rejects: RejectsFile
) -> None:
    """Re-read the table's input to write each deleted orphan to the rejects file as it was."""
    converter = RowConverter(table.model, using=using)
    pending = dict(found)
    ledger = table_ledger(table, result, rejects)
    for position, row in table.data.rows():
        if not pending:
            break
        try:
            values = converter.convert(row)
        except ConversionError:
            continue
        edge = pending.pop(converter.pk_of(values), None)
        if edge is None:
            continue
        ledger.withdraw(position, row, edge.describe(values[converter.fields.index(edge.field)]))
    for pk, edge in pending.items():  # rows whose parent was deleted by this sweep: same reason
        ledger.withdraw(None, {"pk": pk}, edge.describe(pk))


def nullable_deferred_fields(deferred: Iterable[ForeignKeyEdge]) -> list[models.Field]:
    return [edge.field for edge in deferred if edge.field.null]


def apply_deferred_foreign_keys(
    plan: Plan, using: str, batch_size: int, result: RestoreResult, rejects: RejectsFile
) -> None:
    """``--no-atomic``: fill in the deferred FK columns loaded as NULL, a batch per transaction.

    Only rows still NULL there are updated, so rows that existed before an append keep theirs.
    A row whose parent does not exist is deleted and rejected.
    """
    kinds = classify_foreign_keys(plan)
    for table in plan.tables:
        edges = [edge for edge in kinds[table.model][1] if edge.field.null]
        if edges:
            _apply_table(table, edges, using, batch_size, result, rejects, plan)


def _apply_table(
    table: PlannedTable,
    edges: list[ForeignKeyEdge],
    using: str,
    batch_size: int,
    result: RestoreResult,
    rejects: RejectsFile,
    plan: Plan,
) -> None:
    converter = RowConverter(table.model, using=using)
    index = {f: i for i, f in enumerate(converter.fields)}
    manager = table.model._base_manager.using(using)

    def wanted(item):
        position, row = item
        try:
            values = converter.convert(row)
        except ConversionError:
            return None
        links = {edge: values[index[edge.field]] for edge in edges if values[index[edge.field]] is not None}
        return (position, row, converter.pk_of(values), links) if links else None

    orphans = []
    for batch in batched(filter(None, map(wanted, table.data.rows())), batch_size):
        with transaction.atomic(using=using):
            missing = {}
            for edge in edges:
                values = {links[edge] for *_, links in batch if edge in links}
                missing[edge] = values - existing_values(edge, values, using) if values else set()
            linked: dict[tuple[ForeignKeyEdge, ...], list[tuple[Any, dict]]] = defaultdict(list)
            for position, row, pk, links in batch:
                broken = next((edge for edge, value in links.items() if value in missing[edge]), None)
                if broken is None:
                    linked[tuple(links)].append((pk, links))
                elif manager.filter(pk=pk, **_still_null(links)).exists():
                    orphans.append((position, row, pk, broken, links[broken]))
            for group, items in linked.items():
                _fill_in(table.model, manager, group, items)
    if orphans:
        # Children may already point at these rows: delete them and their orphaned children at once.
        with transaction.atomic(using=using):
            _delete(table.model, [pk for _, _, pk, _, _ in orphans], using)
            ledger = table_ledger(table, result, rejects)
            for position, row, _, edge, value in orphans:
                ledger.withdraw(position, row, edge.describe(value))
            sweep_orphans(plan, using, result, rejects, parents_changed=[table.model])


def apply_deferred_natural_keys(
    deferred: list[tuple[PlannedTable, list]], using: str, result: RestoreResult, rejects: RejectsFile
) -> None:
    """Fill in the natural keys that pointed forward (loaddata's ``save_deferred_fields``): every
    table is loaded now, so each key is looked up again. A key still not found rejects its row
    (deleted; rows pointing at it are swept as orphans after)."""
    for table, items in deferred:
        manager = table.model._base_manager.using(using)
        unresolved: dict[Any, tuple[int, dict, str]] = {}
        for position, row, pk, field, marker in items:
            if pk in unresolved:
                continue
            try:
                if isinstance(pk, ByNaturalKey):  # numbered by the database: found by its own key
                    pk = _pk_by_natural_key(table.model, pk, using)
                value = find_by_natural_key(field, marker.key, using)
            except ValueError as exc:
                unresolved[pk] = (position, row, f"column {field.column!r}: {exc}")
                continue
            with transaction.atomic(using=using):
                manager.filter(pk=pk).update(**{field.attname: value})
        if unresolved:
            with transaction.atomic(using=using):
                _delete(table.model, [pk for pk in unresolved if not isinstance(pk, ByNaturalKey)], using)
            ledger = table_ledger(table, result, rejects)
            for position, row, reason in unresolved.values():
                ledger.withdraw(position, row, reason)


def _pk_by_natural_key(model: ModelType, row: ByNaturalKey, using: str) -> Any:
    try:
        return natural_key_manager(model, using).get_by_natural_key(*row.key).pk
    except Exception as exc:
        raise ValueError(f"the row with natural key {list(row.key)!r} was not found again: {exc}") from exc


def table_ledger(table: PlannedTable, result: RestoreResult, rejects: RejectsFile) -> Ledger:
    return Ledger(table.label, table.db_table, result.table(table.label, table.db_table), rejects)
