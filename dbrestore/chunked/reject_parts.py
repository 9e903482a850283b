"""The rejects of a chunked restore, one part file per chunk, joined at the end.

A chunk writes its rejected rows to a file of its own under ``<rejects file>.parts/`` and
renames it into place just before the chunk commits: a chunk redone after a crash overwrites
its part, and only the parts of chunks whose checkpoint is done are joined, in load order,
followed by the rejects of the post-load steps. So a reject line is never lost nor doubled.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from dbrestore.chunked.chunks import Chunk


def folder(rejects_path: Path) -> Path:
    return rejects_path.with_name(rejects_path.name + ".parts")


def part_path(rejects_path: Path, table: str, index: int) -> Path:
    return folder(rejects_path) / f"{table}-{index:06d}.jsonl"


def postload_path(rejects_path: Path) -> Path:
    """The post-load steps' rejects (appended: each step rejects a row once, deleting it)."""
    return folder(rejects_path) / "post-load.jsonl"


class Part:
    """One chunk's rejects: written to ``writing``, published as the chunk's part."""

    def __init__(self, rejects_path: Path, chunk: Chunk):
        self.final = part_path(rejects_path, chunk.table, chunk.index)
        self.writing = self.final.with_name(f"{self.final.name}.{os.getpid()}-{threading.get_ident()}.writing")

    def publish(self, used: bool) -> None:
        """Before the chunk commits: its rejects become its part (none: no part)."""
        if used:
            os.replace(self.writing, self.final)
        else:
            self.final.unlink(missing_ok=True)

    def discard(self) -> None:
        self.writing.unlink(missing_ok=True)


def join(rejects_path: Path, done: list[tuple[str, int]]) -> str | None:
    """Write the run's rejects file from the parts of the ``done`` chunks (in load order) and the
    post-load rejects; return its path, or None when no row was rejected."""
    sources = [part_path(rejects_path, table, index) for table, index in done]
    sources = [path for path in [*sources, postload_path(rejects_path)] if path.exists()]
    if not sources:
        rejects_path.unlink(missing_ok=True)
        return None
    rejects_path.parent.mkdir(parents=True, exist_ok=True)
    joining = rejects_path.with_name(rejects_path.name + ".joining")
    with open(joining, "wb") as out:
        for path in sources:
            with open(path, "rb") as part:
                shutil.copyfileobj(part, out)
    os.replace(joining, rejects_path)
    return str(rejects_path)


def remove(rejects_path: Path) -> None:
    """The parts, once the run's rejects file holds them all and the run succeeded."""
    shutil.rmtree(folder(rejects_path), ignore_errors=True)
