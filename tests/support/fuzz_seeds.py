"""The fuzzers' seeds: small valid backups of every format the readers take, as {relative path:
uncompressed content}, and how to write them. The reader fuzz test (``tests/sources/test_fuzz_readers.py``)
and the demo's ``fuzz_restore`` command mutate them."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
from pathlib import Path
from typing import Any

TAGS = [{"id": i, "name": f"tag-{i}"} for i in range(1, 6)]
CATEGORIES = [{"id": 1, "name": "Tools", "parent_id": None}, {"id": 2, "name": "Saws", "parent_id": 1}]
PRODUCTS = [
    {
        "id": 1,
        "sku": "S1",
        "name": "Saw",
        "price": "9.50",
        "category_id": 2,
        "attributes": {"a": [1, 2.5]},
        "released_on": "2024-01-02",
    }
]


def jsonl(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def manifest_bytes(files: dict[str, tuple[str, str, list[dict]]]) -> bytes:
    tables = []
    for name, (model, table, rows) in files.items():
        data = jsonl(rows) if ".jsonl" in name else json.dumps(rows).encode()
        tables.append(
            {
                "model": model,
                "table": table,
                "file": name,
                "rows": len(rows),
                "sha256": hashlib.sha256(data).hexdigest(),
                "columns": list(rows[0]),
            }
        )
    return json.dumps(
        {
            "format": "dbrestore/1",
            "created_at": "2026-01-01T00:00:00+00:00",
            "migrations": {"shop": ["0001_initial"]},
            "tables": tables,
        },
        indent=2,
    ).encode()


def compress(name: str, data: bytes) -> bytes:
    if name.endswith(".gz"):
        return gzip.compress(data, mtime=0)
    if name.endswith(".bz2"):
        return bz2.compress(data)
    if name.endswith(".xz"):
        return lzma.compress(data)
    return data


def dumpdata_fixture(tags: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A dumpdata fixture: these tags (ids 1 and 2 among them), a category and a product tagged 1 and 2."""
    return [{"model": "shop.tag", "pk": t["id"], "fields": {"name": t["name"]}} for t in tags] + [
        {"model": "shop.category", "pk": 1, "fields": {"name": "Tools", "parent": None}},
        {
            "model": "shop.product",
            "pk": 1,
            "fields": {
                "sku": "S1",
                "name": "Saw",
                "price": "9.50",
                "category": 1,
                "attributes": {},
                "tags": [1, 2],
                "released_on": None,
            },
        },
    ]


def seed_files() -> dict[str, dict[str, bytes]]:
    """Valid backups, each as {relative path: uncompressed content}; the names say the compression."""
    fixture = dumpdata_fixture(TAGS)
    directory = {
        "shop_tag.jsonl": ("shop.Tag", "shop_tag", TAGS),
        "shop_category.jsonl.gz": ("shop.Category", "shop_category", CATEGORIES),
        "shop_product.json": ("shop.Product", "shop_product", PRODUCTS),
    }
    reject = {
        "kind": "rejected",
        "model": "shop.Tag",
        "table": "shop_tag",
        "position": 2,
        "row": TAGS[1],
        "reason": "duplicate",
    }
    return {
        "dbrestore-directory": {
            "manifest.json": manifest_bytes(directory),
            **{
                name: (jsonl(rows) if ".jsonl" in name else json.dumps(rows).encode())
                for name, (_, _, rows) in directory.items()
            },
        },
        "plain-directory": {"shop_tag.json": json.dumps(TAGS).encode(), "shop_category.jsonl.xz": jsonl(CATEGORIES)},
        "table-json": {"shop_tag.json": json.dumps(TAGS).encode()},
        "table-jsonl-gz": {"shop_tag.jsonl.gz": jsonl(TAGS)},
        "table-jsonl-bz2": {"shop_product.jsonl.bz2": jsonl(PRODUCTS)},
        "keyed-object": {
            "export.json": json.dumps({"metadata": {"v": 1}, "shop_tag": TAGS, "shop_category": CATEGORIES}).encode()
        },
        "keyed-object-xz": {"export.json.xz": json.dumps({"shop_product": PRODUCTS, "shop_tag": TAGS}).encode()},
        "dumpdata-json": {"fixture.json": json.dumps(fixture).encode()},
        "dumpdata-jsonl-gz": {"fixture.jsonl.gz": jsonl(fixture)},
        "rejects-file": {"restore-1-rejects.jsonl": jsonl([reject, {**reject, "row": TAGS[2]}])},
    }


SEEDS = seed_files()


def write_backup(root: Path, seed: str, stored: dict[str, bytes]) -> Path:
    """Write a seed's files as stored (compressed) under ``root``; the path to restore or read."""
    if "directory" in seed:
        for name, data in stored.items():
            (root / name).write_bytes(data)
        return root
    ((name, data),) = stored.items()
    (root / name).write_bytes(data)
    return root / name


#: Bytes worth inserting into a backup file: JSON's structure, huge numbers, NUL, bad UTF-8 and
#: surrogate escapes (hypothesis's readers' test and ``manage.py fuzz_restore`` draw from them).
TOKENS = [
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b'"',
    b"\n",
    b"\\",
    b"1e2000000",
    b"1" * 5000,
    b"\x00",
    b"\xff\xfe",
    b'{"model": 1}',
    b"null",
    b"\\ud800",
    b"\\u0000",
    b"-0.0e-9",
]
