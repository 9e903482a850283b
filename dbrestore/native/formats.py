"""Which PostgreSQL dump format a file or directory holds, from its content (the restore of
those dumps is :mod:`dbrestore.native.tools`)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

NATIVE_FORMATS = ("pg-sql", "pg-sql-gz", "pg-custom", "pg-directory")
_SQL_START = re.compile(rb"^\s*(--|SET |CREATE |SELECT |BEGIN|\\)", re.IGNORECASE)


def detect_native_format(path: Path) -> str | None:
    """``pg-directory``, ``pg-custom``, ``pg-sql-gz``, ``pg-sql`` or None, from the content."""
    if path.is_dir():
        return "pg-directory" if (path / "toc.dat").is_file() else None
    with open(path, "rb") as stream:
        head = stream.read(5)
    if head == b"PGDMP":
        return "pg-custom"
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as stream:
                start = stream.read(4096)
        except (OSError, EOFError):
            return None
        return "pg-sql-gz" if _SQL_START.match(start) and b"[" != start.lstrip()[:1] else None
    if path.suffix.lower() == ".sql":
        return "pg-sql"
    with open(path, "rb") as stream:
        start = stream.read(4096)
    return "pg-sql" if start.startswith(b"--") and b"PostgreSQL database dump" in start else None
