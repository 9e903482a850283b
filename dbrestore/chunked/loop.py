"""A chunked restore run to its end by the restoring process: prepared, its chunks loaded level
by level (here, or with ``--jobs N`` in N worker processes, see :mod:`.processes`), then the
post-load steps. The progress events (table started, batches, table finished) come from here.
"""

from __future__ import annotations

import contextlib
import logging
import time

from dbrestore.chunked.checkpoints import done_rows
from dbrestore.chunked.chunks import Chunk, conversion_processes
from dbrestore.chunked.processes import Workers
from dbrestore.chunked.restore import ChunkedRun, add, complete, load_chunk, load_counted, prepare_chunked_run
from dbrestore.exceptions import RestoreCancelled
from dbrestore.load.table import StopCheck, never_stop
from dbrestore.models import RestoreRun
from dbrestore.options import RestoreOptions
from dbrestore.plan.build import Plan
from dbrestore.runs.progress import BaseListener, Broadcast
from dbrestore.runs.report import RestoreResult, TableResult
from dbrestore.sources import Backup

logger = logging.getLogger(__name__)


def restore_chunked(
    run: RestoreRun,
    backup: Backup,
    plan: Plan,
    opts: RestoreOptions,
    result: RestoreResult,
    progress: Broadcast,
    watch: StopCheck = never_stop,
) -> None:
    """The whole chunked restore: prepare (once), the chunks not done yet, the post-load steps.
    ``watch`` is asked between batches here, and as each chunk of a worker process ends."""
    context = ChunkedRun(run, opts, backup, plan, watch=watch)
    levels = prepare_chunked_run(run, opts, backup, plan, result, progress)
    done = {(row.table, row.index) for row in done_rows(run.pk, opts.database)}
    count = sum(map(len, levels))
    jobs = f", {opts.jobs} processes" if opts.jobs > 1 else ""
    progress.phase_started(
        f"loading {len(plan.tables)} tables in {count} chunks ({len(done)} done already){jobs}"
        if done
        else f"loading {len(plan.tables)} tables in {count} chunks{jobs}"
    )
    tracker = _Tracker(levels, done, progress, result, watch)
    with Workers(opts.jobs) if opts.jobs > 1 else contextlib.nullcontext() as workers:
        for level in levels:
            todo = [chunk for chunk in level if (chunk.table, chunk.index) not in done]
            if workers is None:
                for chunk in todo:
                    processes = conversion_processes(opts, context.tables[chunk.table])
                    load_counted(context, chunk, tracker.started(chunk), progress, processes=processes)
                    tracker.chunk_done(chunk)
                continue
            if len({chunk.table for chunk in todo}) > 1 or len(todo) > 1:
                logger.info("Loading %s side by side", ", ".join(dict.fromkeys(chunk.table for chunk in todo)))
            for chunk in todo:
                tracker.started(chunk)
            workers.run(
                load_chunk,
                [(run.pk, chunk.as_dict()) for chunk in todo],
                lambda item, counts: tracker.chunk_done(Chunk.from_dict(item[1]), counts),
            )
    complete(context, result, progress)


class _Tracker:
    """Table started / finished events around the chunks of each table, and the counts of
    chunks loaded in worker processes."""

    def __init__(
        self, levels: list[list[Chunk]], done: set, progress: BaseListener, result: RestoreResult, watch: StopCheck
    ):
        self.left: dict[str, int] = {}
        for level in levels:
            for chunk in level:
                if (chunk.table, chunk.index) not in done:
                    self.left[chunk.table] = self.left.get(chunk.table, 0) + 1
        self.progress, self.result, self.watch = progress, result, watch
        self.begun: dict[str, float] = {}

    def started(self, chunk: Chunk) -> TableResult:
        table = self.result.tables[chunk.table]
        if chunk.table not in self.begun:
            self.begun[chunk.table] = time.monotonic()
            self.progress.table_started(table)
        return table

    def chunk_done(self, chunk: Chunk, counts: dict[str, int] | None = None) -> None:
        table = self.result.tables[chunk.table]
        if counts:  # loaded by a worker process (None: done already by someone else)
            add(table, counts)
            table.seconds = time.monotonic() - self.begun[chunk.table]
            self.progress.batch_done(table)
            reason = self.watch(force=True)
            if reason:  # the workers' chunks in flight are rolled back as the pool ends
                raise RestoreCancelled(reason)
        self.left[chunk.table] -= 1
        if not self.left[chunk.table]:
            self.progress.table_finished(table)
