"""Checks around the load: the backup against its manifest before anything is written (sha256,
row counts, migrations), and the database against the backup after the load (row counts)."""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import connections

from dbrestore.backups.writer import applied_migrations
from dbrestore.exceptions import ChecksumMismatchError
from dbrestore.plan.build import Plan
from dbrestore.runs.report import RestoreResult
from dbrestore.sources import Backup
from dbrestore.sources.readers import is_json_lines_name, open_binary

_CHUNK = 1024 * 1024


def verify_checksums(plan: Plan) -> None:
    """Hash (and, for JSON Lines, count) every data file the manifest describes, before any
    write: a mismatch raises ChecksumMismatchError naming the file."""
    for table in plan.tables:
        data = table.data
        if not data.expected_sha256 and data.expected_rows is None:
            continue
        digest, lines = hashlib.sha256(), 0
        with open_binary(data.origin, rows=False) as stream:
            try:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    lines += chunk.count(b"\n")
            except (OSError, EOFError) as exc:
                raise ChecksumMismatchError(f"cannot read (corrupt or truncated): {exc}", path=data.origin) from exc
        if data.expected_sha256 and digest.hexdigest() != data.expected_sha256:
            raise ChecksumMismatchError(
                f"sha256 {digest.hexdigest()[:16]}... does not match the manifest's {data.expected_sha256[:16]}... "
                "(changed or damaged file; --skip-checksum to restore it anyway)",
                path=data.origin,
            )
        if data.expected_rows is not None and is_json_lines_name(data.origin) and lines != data.expected_rows:
            raise ChecksumMismatchError(
                f"{lines} rows, but the manifest says {data.expected_rows} (--skip-checksum to restore it anyway)",
                path=data.origin,
            )


def migration_drift(backup: Backup, using: str) -> list[str]:
    """Warnings for apps whose migrations in the backup differ from the database's."""
    recorded = backup.metadata.get("migrations")
    if not isinstance(recorded, dict):
        return []
    current = applied_migrations(using)
    ahead, behind = [], []
    for app in sorted(set(recorded) | set(current)):
        theirs, ours = set(recorded.get(app, [])), set(current.get(app, []))
        if theirs - ours:
            ahead.append(app)
        if ours - theirs:
            behind.append(app)
    warnings = []
    if ahead:
        warnings.append(f"the backup has migrations this database has not applied, in: {', '.join(ahead)}")
    if behind:
        warnings.append(f"this database has migrations the backup was made without, in: {', '.join(behind)}")
    return warnings


def verify_counts(plan: Plan, result: RestoreResult, using: str, mode: str | None) -> dict[str, Any]:
    """Per table: rows the manifest promised, rows read, rows in the table now. Mismatches are
    returned under ``"mismatches"`` as sentences."""
    tables, mismatches = {}, []
    counts = table_counts([table.model for table in plan.tables], using)
    for table in plan.tables:
        done = result.tables[table.label]
        in_db = counts[table.model]
        expected = table.data.expected_rows
        ok = True
        if expected is not None and done.total != expected:
            ok = False
            mismatches.append(f"{table.label}: read {done.total} rows, the manifest says {expected}")
        if mode == "replace" and in_db != done.inserted:  # mode None: a dry run, nothing loaded
            ok = False
            mismatches.append(f"{table.label}: {in_db} rows in the table after the load, {done.inserted} inserted")
        tables[table.label] = {"expected": expected, "read": done.total, "in_db": in_db, "ok": ok}
    return {"tables": tables, "mismatches": mismatches, "ok": not mismatches}


def table_counts(models: list, using: str, limit: int | None = None) -> dict:
    """Rows in each model's table (counted up to ``limit`` when given), asked in one query per
    hundred tables rather than one per table: a small restore's fixed cost is round trips."""
    connection = connections[using]
    qn = connection.ops.quote_name
    found: dict = {}
    unique = list(dict.fromkeys(models))
    probe = (
        "SELECT COUNT(*) FROM {}"
        if limit is None
        else f"SELECT COUNT(*) FROM (SELECT 1 FROM {{}} LIMIT {int(limit)}) t"
    )
    for start in range(0, len(unique), 100):
        chunk = unique[start : start + 100]
        sql = "SELECT " + ", ".join(f"({probe.format(qn(m._meta.db_table))})" for m in chunk)
        with connection.cursor() as cursor:
            cursor.execute(sql)
            found.update(zip(chunk, cursor.fetchone(), strict=True))
    return found


__all__ = ["verify_checksums", "migration_drift", "verify_counts", "table_counts"]
