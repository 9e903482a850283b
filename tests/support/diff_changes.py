"""The diff tests' known changes: which rows of the sample are updated, deleted, added and
spelled otherwise, and the helpers that make and check them (the fixtures are in
``tests/compare/conftest.py``)."""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from dbrestore.backups.writer import create_backup

#: Rows of the sample's OrderItem table the tests change (the sample holds 168 of them).
UPDATED = [2, 5, 9, 14, 20, 33, 41]
DELETED = [3, 50, 100]
SPELLED = 60  # saved again with the same values spelled otherwise
ADDED_COUNT = 2
BACKUP_SPELLED = 70  # spelled otherwise in the backup


def respelled(row: dict) -> dict:
    """The same decimal with a trailing zero, the same moment at +05:30."""
    moment = datetime.datetime.fromisoformat(row["added_at"])
    return {
        "unit_price": f"{Decimal(row['unit_price']):f}0",
        "added_at": moment.astimezone(datetime.timezone(datetime.timedelta(hours=5, minutes=30))).isoformat(),
    }


@dataclass
class Changed:
    backup: Path
    added: list[int]  # the primary keys of the rows added through the ORM


def rewrite_row(backup: Path, file: str, pk: int, change) -> None:
    """Change one row of a JSON Lines data file of ``backup`` (``change(row)`` gives the new
    values), and its manifest entry's sha256 (a backup edited on purpose, not a damaged one)."""
    path = backup / file
    lines = path.read_text().splitlines()
    for index, line in enumerate(lines):
        row = json.loads(line)
        if row.get("id") == pk:
            lines[index] = json.dumps({**row, **change(row)})
    path.write_text("\n".join(lines) + "\n")
    manifest = json.loads((backup / "manifest.json").read_text())
    for entry in manifest["tables"]:
        if entry["file"] == file:
            entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (backup / "manifest.json").write_text(json.dumps(manifest, indent=2))


def checksums(directory: Path) -> dict[str, str]:
    """Each table's sha256 in a fresh ``create_backup`` of the database."""
    create_backup(directory, compress=False)
    manifest = json.loads((directory / "manifest.json").read_text())
    return {entry["model"]: entry["sha256"] for entry in manifest["tables"]}
