"""What makes a replace safe before a row is written: refuse (or, with ``--cascade``, widen)
when rows outside the restore point in, back up what is about to be emptied, then empty it.
The admin's preview asks :func:`outside_references` too, so it says what the restore will do."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.core.management.color import no_style
from django.db import connections, models, transaction
from django.db.models import Exists, OuterRef, QuerySet

from dbrestore import conf
from dbrestore.backups.catalog import backup_root, prune_safety_backups, safety_backup_path
from dbrestore.backups.writer import create_backup
from dbrestore.exceptions import OutsideReferenceError
from dbrestore.files.storage import StoragePath
from dbrestore.integrity.verify import table_counts
from dbrestore.models import RestoreRun
from dbrestore.options import RestoreOptions
from dbrestore.plan.build import OutsideRows, Plan, order_parents_first, referencing_fields
from dbrestore.runs.lifecycle import record_safety_backup
from dbrestore.runs.progress import BaseListener
from dbrestore.runs.report import RestoreResult
from dbrestore.sources import Backup

logger = logging.getLogger(__name__)

# Tables this small are emptied by DELETE on PostgreSQL: TRUNCATE makes new files for each
# table and its indexes, several milliseconds a table, while DELETE of a few rows is a round trip.
SMALL_TABLE_ROWS = 1_000


def replaces_rows(opts: RestoreOptions) -> bool:
    """Whether the restore empties tables (replace mode, rows actually written): only then the
    outside references and the safety backup matter."""
    return opts.mode == "replace" and not opts.dry_run


def make_safe(
    run: RestoreRun, backup: Backup, plan: Plan, opts: RestoreOptions, result: RestoreResult, progress: BaseListener
) -> bool:
    """Before a replace empties anything: refuse or widen for outside references, then take the
    safety backup. Returns whether every table to empty is small (DELETE beats TRUNCATE then)."""
    if not replaces_rows(opts):
        return False
    result.warnings.extend(prepare_outside_references(plan, opts))
    rows_now = table_counts(plan.models_to_empty, opts.database, limit=SMALL_TABLE_ROWS)
    if opts.safety_backup and conf.get("SAFETY_BACKUP"):
        if any(rows_now.values()):
            progress.phase_started(f"safety backup of {len(plan.models_to_empty)} tables")
            result.safety_backup = str(
                write_safety_backup(
                    run,
                    plan,
                    opts.database,
                    storage=opts.storage,
                    recipients=encryption_recipients(backup),
                )
            )
            record_safety_backup(run, result.safety_backup)
        else:
            logger.info("No safety backup: the tables this restore replaces are empty")
    return all(n < SMALL_TABLE_ROWS for n in rows_now.values())


def outside_references(plan: Plan, using: str) -> list[OutsideRows]:
    """The FKs of models outside the restore into a table it would empty that rows hold now,
    each with its number of rows and one example."""
    found = (_counted(model, fk, _pointing(model, fk, using)) for model, fk in plan.outside_references)
    return [outside for outside in found if outside is not None]


def _pointing(model: type[models.Model], fk: models.ForeignObject[Any, Any], using: str) -> QuerySet:
    return model._base_manager.using(using).filter(**{f"{fk.attname}__isnull": False})


def _counted(model: type[models.Model], fk: models.ForeignObject[Any, Any], rows: QuerySet) -> OutsideRows | None:
    count = rows.count()
    return OutsideRows(model, fk, count, rows.order_by("pk").values_list("pk", flat=True)[0]) if count else None


def prepare_outside_references(plan: Plan, opts: RestoreOptions) -> list[str]:
    """Rows outside the restore that point into a table it empties: with ``cascade``, their
    tables are emptied too (the warning naming them is returned); in one transaction they are
    kept, and :func:`check_outside_rows` makes sure after the load that the backup brought back
    what they point to (as loaddata's constraint check at its end); chunk by chunk commits they
    would point nowhere in between, so the restore refuses."""
    found = outside_references(plan, opts.database)
    if not found:
        return []
    described = "; ".join(outside.describe() for outside in found)
    if opts.cascade:
        extra = cascade_closure([outside.model for outside in found], set(plan.models_to_empty))
        delete_order, _ = order_parents_first(extra)
        plan.models_to_empty[:0] = list(reversed(delete_order))
        return ["--cascade: also emptied " + ", ".join(model._meta.label for model in extra) + f" ({described})"]
    if not opts.atomic:
        raise OutsideReferenceError(
            f"rows outside the backup point into tables this restore empties, and --no-atomic commits the emptied "
            f"tables before the rows come back: {described} (restore in one transaction, include those tables, "
            "use --cascade to empty them too, or --mode merge/append)"
        )
    plan.kept_outside = found
    logger.info("Kept rows outside the backup that point into restored tables (checked after the load): %s", described)
    return []


def check_outside_rows(plan: Plan, using: str) -> None:
    """After the load, inside its transaction: every kept outside row points at a row again;
    otherwise :class:`OutsideReferenceError` (the transaction rolls back), naming each relation
    once with the rows that point nowhere."""
    dangling = []
    for kept in plan.kept_outside:
        fk = kept.field
        target = fk.related_model._base_manager.using(using).filter(**{fk.target_field.attname: OuterRef(fk.attname)})
        found = _counted(kept.model, fk, _pointing(kept.model, fk, using).filter(~Exists(target)))
        if found is not None:
            dangling.append(found)
    if dangling:
        raise OutsideReferenceError(
            "rows outside the backup would point to rows the backup does not bring back: "
            + "; ".join(outside.describe(" pointing nowhere") for outside in dangling)
            + " (nothing was changed: restore those tables too, use --cascade to empty them, or --mode merge)"
        )


def cascade_closure(models: list, already: set) -> list:
    """``models`` and, transitively, every model with an FK into them, not in ``already``."""
    found, todo = [], list(models)
    while todo:
        model = todo.pop(0)
        if model in already or model in found:
            continue
        found.append(model)
        todo.extend(referencing for referencing, _ in referencing_fields(model))
    return found


def write_safety_backup(
    run: RestoreRun, plan: Plan, using: str, *, storage: str | None = None, recipients: list[str] | None = None
) -> Path | StoragePath:
    """Back up the tables the restore is about to empty, into ``safety/`` of the backups' storage
    (or BACKUP_DIR), encrypted for ``recipients`` when given; a failure stops the restore before it
    empties any table."""
    root = backup_root(storage)
    directory = safety_backup_path(run.pk, root=root)
    create_backup(directory, using=using, models_to_save=plan.models_to_empty, recipients=recipients)
    logger.info("Safety backup of %d tables in %s", len(plan.models_to_empty), directory)
    prune_safety_backups(root=root)
    return directory


def encryption_recipients(backup: Backup) -> list[str]:
    """The GPG recipients an encrypted backup was made for (its safety backup gets the same)."""
    encryption = backup.metadata.get("encryption")
    if isinstance(encryption, dict) and encryption.get("method") == "gpg":
        return [str(r) for r in encryption.get("recipients") or []]
    return []


def empty_tables(plan: Plan, using: str, truncate: bool = True) -> None:
    """Delete every row of the tables the restore replaces, children first.

    PostgreSQL gets one TRUNCATE of them all, unless a table outside the restore has an FK
    into one of them (TRUNCATE refuses that even when no row points in), or unless not
    ``truncate`` (all of them hold fewer than ``SMALL_TABLE_ROWS`` rows: DELETE is quicker
    there): then DELETE. The
    statements run in one transaction even with ``--no-atomic``: tables in an FK cycle can only
    be emptied together (the deferred checks pass at its end), and a failure empties nothing.
    """
    connection = connections[using]
    tables = [model._meta.db_table for model in plan.models_to_empty]
    if not tables:
        return
    if connection.vendor == "postgresql" and not plan.outside_references and truncate:
        statements = connection.ops.sql_flush(no_style(), tables, reset_sequences=False, allow_cascade=False)
    else:
        statements = [f"DELETE FROM {connection.ops.quote_name(table)}" for table in tables]
        if connection.vendor == "postgresql":
            # Run the deferred FK checks of the deleted rows now: PostgreSQL refuses to ALTER
            # (set aside the FKs of) a table with trigger events pending.
            statements += ["SET CONSTRAINTS ALL IMMEDIATE", "SET CONSTRAINTS ALL DEFERRED"]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
    logger.info("Emptied %d tables: %s", len(tables), ", ".join(tables))
