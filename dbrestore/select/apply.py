"""A selection's rows against the live database: compared by primary key (added, unchanged,
conflicting), then written in the restore's transaction, nothing else touched.

A row whose primary key now holds different values is a conflict: reported with the fields that
differ and not overwritten unless ``--overwrite``. So is a row that a unique constraint of the
live database refuses (a username taken since the backup). Any conflict left means nothing is
written: the caller's transaction rolls back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connections, models, transaction

from dbrestore.compare.report import ChangedRow, plain_pk
from dbrestore.compare.table import differing, stored_by_keys
from dbrestore.convert.fields import column_of
from dbrestore.convert.row_converter import RowConverter
from dbrestore.exceptions import SelectionConflictError, first_line
from dbrestore.select.walk import Collection, Picked, ThroughPair


@dataclass
class TableOutcome:
    label: str
    db_table: str
    added: list[Any] = field(default_factory=list)
    unchanged: list[Any] = field(default_factory=list)
    #: (pk, why): the fields that differ, or the constraint that refused the row.
    conflicts: list[tuple[Any, str]] = field(default_factory=list)
    overwritten: list[Any] = field(default_factory=list)
    why: dict[Any, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.added) + len(self.unchanged) + len(self.conflicts) + len(self.overwritten)

    def as_dict(self, samples: int) -> dict[str, Any]:
        return {
            "added": len(self.added),
            "unchanged": len(self.unchanged),
            "conflicts": len(self.conflicts),
            "overwritten": len(self.overwritten),
            "samples": {
                "added": [plain_pk(pk) for pk in self.added[:samples]],
                "unchanged": [plain_pk(pk) for pk in self.unchanged[:samples]],
                "conflicts": [{"pk": plain_pk(pk), "why": why} for pk, why in self.conflicts[:samples]],
                "overwritten": [plain_pk(pk) for pk in self.overwritten[:samples]],
            },
        }


@dataclass
class SelectionOutcome:
    tables: list[TableOutcome]
    problems: list[tuple[str, str, str]]

    @property
    def conflicts(self) -> int:
        return sum(len(t.conflicts) for t in self.tables)

    def as_dict(self, samples: int = 5) -> dict[str, Any]:
        return {
            "tables": {t.label: t.as_dict(samples) for t in self.tables},
            "problems": [{"model": label, "where": where, "reason": why} for label, where, why in self.problems],
        }

    def lines(self, samples: int = 5) -> list[str]:
        """The preview on the terminal: per table, the counts and sample keys."""
        if not self.tables:
            return ["The selection matches no row of the backup: nothing to restore."]
        out = [f"{'table':<32} {'add':>6} {'unchanged':>9} {'conflict':>8}"]
        for t in self.tables:
            out.append(f"{t.label:<32} {len(t.added):>6} {len(t.unchanged):>9} {len(t.conflicts):>8}")
            if t.added:
                out.append(f"  add: {_sample(t.added, samples)} ({t.why.get(t.added[0], '')})")
            for pk, why in t.conflicts[:samples]:
                out.append(f"  conflict pk {pk!r}: {why}")
        out += [f"problem: {label} {where}: {why}" for label, where, why in self.problems]
        return out


def compare(collection: Collection, using: str) -> SelectionOutcome:
    """Each picked row against the database row of the same primary key, values compared as
    the restore would store them. Reads only."""
    tables = []
    for table, rows in collection.picked():
        outcome = TableOutcome(table.label, table.db_table, why={pk: picked.why for pk, picked in rows.items()})
        converter = RowConverter(table.model)
        existing = stored_by_keys(converter, [pk for pk in rows if not isinstance(pk, ThroughPair)], using=using)
        pairs = _database_pairs(table.model, [pk for pk in rows if isinstance(pk, ThroughPair)], using)
        names = [f.name for f in converter.fields]
        for pk, picked in rows.items():
            if isinstance(pk, ThroughPair):
                (outcome.unchanged if pk in pairs else outcome.added).append(pk)
                continue
            now = existing.get(pk)
            if now is None:
                outcome.added.append(pk)
                continue
            differ = differing(names, now, picked.values)
            if differ:
                outcome.conflicts.append((pk, ChangedRow(pk, differ).describe()))
            else:
                outcome.unchanged.append(pk)
        tables.append(outcome)
    return SelectionOutcome(tables, list(collection.problems))


def write(collection: Collection, outcome: SelectionOutcome, using: str, *, overwrite: bool) -> None:
    """Insert the added rows (and, with ``overwrite``, update the conflicting ones) inside the
    caller's transaction; raise :class:`SelectionConflictError` while any conflict is left."""
    rows = {table.label: picked for table, picked in collection.picked()}
    models_by_label = {table.label: table.model for table, _ in collection.picked()}
    for table in outcome.tables:
        model, picked = models_by_label[table.label], rows[table.label]
        for pk in list(table.added):
            refused = _insert(model, picked[pk], using)
            if refused:
                table.added.remove(pk)
                table.conflicts.append((pk, refused))
        if overwrite:
            for pk, why in list(table.conflicts):
                if why.startswith("refused by the database"):
                    continue
                refused = _update(model, pk, picked[pk], using)
                if not refused:
                    table.conflicts.remove((pk, why))
                    table.overwritten.append(pk)
    if outcome.conflicts:
        raise SelectionConflictError(_conflict_message(outcome, overwrite))


def _conflict_message(outcome: SelectionOutcome, overwrite: bool) -> str:
    first = next((t, pk, why) for t in outcome.tables for pk, why in t.conflicts)
    table, pk, why = first
    hint = "" if overwrite else " (--overwrite replaces rows whose primary key holds other values)"
    return (
        f"{outcome.conflicts} selected rows conflict with the database, nothing was written{hint}; "
        f"first: {table.label} pk {pk!r}: {why}"
    )


def _database_pairs(through: type[models.Model], pairs: list[ThroughPair], using: str) -> set[ThroughPair]:
    """The M2M rows linking these pairs that the database holds."""
    if not pairs:
        return set()
    source, target = (f.attname for f in through._meta.local_concrete_fields if not f.primary_key)
    found: set[ThroughPair] = set()
    for start in range(0, len(pairs), 500):
        chunk = pairs[start : start + 500]
        queryset = through._base_manager.using(using).filter(
            **{f"{source}__in": {p.source for p in chunk}, f"{target}__in": {p.target for p in chunk}}
        )
        found.update(ThroughPair(*row) for row in queryset.values_list(source, target))
    return found & set(pairs)


def _sample(keys: list[Any], samples: int) -> str:
    listed = ", ".join(repr(pk) for pk in keys[:samples])
    return listed + (f" and {len(keys) - samples} more" if len(keys) > samples else "")


def _insert(model: type[models.Model], picked: Picked, using: str) -> str | None:
    """The row in, raw (as loaddata's raw save: no ``auto_now``, no signals); the database's
    refusal as the conflict's reason."""
    connection = connections[using]
    qn = connection.ops.quote_name
    given = [
        (f, value)
        for f, value in zip(model._meta.local_concrete_fields, picked.values, strict=True)
        if value is not None or not f.primary_key  # a ThroughPair's id: the database numbers it
    ]
    fields = [f for f, _ in given]
    params = [f.get_db_prep_save(value, connection) for f, value in given]
    sql = (
        f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(qn(column_of(f)) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    return _execute(sql, params, using)


def _update(model: type[models.Model], pk: Any, picked: Picked, using: str) -> str | None:
    connection = connections[using]
    qn = connection.ops.quote_name
    pk_field = model._meta.pk
    fields = [f for f in model._meta.local_concrete_fields if f is not pk_field]
    values = dict(zip(model._meta.local_concrete_fields, picked.values, strict=True))
    params = [f.get_db_prep_save(values[f], connection) for f in fields]
    sql = (
        f"UPDATE {qn(model._meta.db_table)} SET {', '.join(f'{qn(column_of(f))} = %s' for f in fields)} "
        f"WHERE {qn(column_of(pk_field))} = %s"
    )
    return _execute(sql, [*params, pk_field.get_db_prep_save(pk, connection)], using)


def _execute(sql: str, params: list[Any], using: str) -> str | None:
    try:
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute(sql, params)
    except IntegrityError as exc:
        return f"refused by the database: {first_line(exc)}"
    return None
