"""Rows of the demo shop's tables as a backup holds them, for backups written by hand."""

from __future__ import annotations

import json
from pathlib import Path


def customer(pk: int, **overrides) -> dict:
    row = {
        "id": pk,
        "email": f"c{pk}@example.com",
        "name": f"C {pk}",
        "external_id": f"00000000-0000-4000-8000-{pk:012d}",
        "joined_at": "2024-03-01T12:00:00+00:00",
        "birth_date": None,
        "is_active": True,
        "notes": "",
        "referred_by_id": None,
        "avatar": None,
        "last_order_id": None,
    }
    return {**row, **overrides}


def order(pk: int, customer_id: int, **overrides) -> dict:
    row = {
        "id": pk,
        "number": f"10000000-0000-4000-8000-{pk:012d}",
        "customer_id": customer_id,
        "placed_at": "2024-03-02T00:00:00Z",
        "status": "new",
        "total": "10.00",
        "gift_for_id": None,
    }
    return {**row, **overrides}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
