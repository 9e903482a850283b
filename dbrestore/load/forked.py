"""Work on blocks of bytes in forked processes, results handed back in order.

The one-transaction COPY path is bound by this process's CPU: reading, converting and formatting
rows takes about 9 us a row, the server half of that. :func:`ordered_map` lets N forked
processes do that work on blocks of a backup file while this process only reads the blocks,
sends the results to the server and counts them, so a restore uses more than one core and
still one connection and one transaction.

Forked, not spawned: a child starts in milliseconds with everything the restoring process has
built (the table's converters, the COPY formatter), and needs no Django set-up or connection of
its own. It must never touch what it inherits of the database connections, so every socket it
inherited (the restore's connection, the lock's, Redis under an RQ worker) is replaced by
``/dev/null`` as it starts: a child can neither write to the server nor keep a session alive. It
dies with the restoring process (Linux: ``PR_SET_PDEATHSIG``), and leaves with ``os._exit``
(``multiprocessing`` does that for forked children), so no cleanup of inherited objects runs.

Blocks go to the children through shared memory slots, results come back through pipes: a
process that sends large messages both ways over pipes deadlocks as soon as both sides write at
once. Each child has at most ``DEPTH`` blocks queued; a block larger than a slot is done here.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import logging
import mmap
import multiprocessing
import os
import signal
import stat
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

R = TypeVar("R")
#: Blocks queued per child: one being worked on, one waiting, so a child never waits for this process.
DEPTH = 2
#: How long a child may take to leave once told to, before it is killed.
_EXIT_WAIT = 5.0


@dataclass
class _Entry:
    payload: bytes
    meta: Any
    child: int | None  # None: done in this process (larger than a slot)
    slot: int | None


class _Child:
    def __init__(self, process: multiprocessing.process.BaseProcess, tasks: Connection, results: Connection):
        self.process = process
        self.tasks = tasks
        self.results = results
        self.queued = 0
        self.alive = True


class ForkedMap(Generic[R]):
    """``work(payload, meta)`` for each item, in ``processes`` forked children; see :func:`ordered_map`."""

    def __init__(self, work: Callable[[bytes, Any], R], processes: int, slot_bytes: int):
        self.work = work
        self.slot_bytes = slot_bytes
        self.slots = mmap.mmap(-1, slot_bytes * processes * DEPTH)  # MAP_SHARED: the children see it
        self.free_slots = list(range(processes * DEPTH))
        self.children: list[_Child] = []
        self._next_child = 0
        context = multiprocessing.get_context("fork")
        gc.freeze()  # the children's collector leaves what they inherit alone, so its pages stay shared
        try:
            for _ in range(processes):
                self.children.append(self._start(context))
        except BaseException:
            self.close()
            raise
        finally:
            gc.unfreeze()

    def _start(self, context) -> _Child:
        tasks_in, tasks_out = context.Pipe(duplex=False)
        results_in, results_out = context.Pipe(duplex=False)
        parent_ends = [tasks_out, results_in] + [end for c in self.children for end in (c.tasks, c.results)]
        process = context.Process(
            target=_serve,
            name="dbrestore-convert",
            daemon=True,
            args=(self.work, self.slots, self.slot_bytes, tasks_in, results_out, parent_ends, os.getpid()),
        )
        process.start()
        tasks_in.close()
        results_out.close()
        return _Child(process, tasks_out, results_in)

    def map(self, items: Iterable[tuple[bytes, Any]]) -> Iterator[tuple[bytes, Any, R | None]]:
        """``(payload, meta, result)`` in the order of ``items``; ``result`` is None where the
        work raised in a child (the caller does that item again itself, to raise the error
        where it belongs, as it would without children)."""
        queue: collections.deque[_Entry] = collections.deque()
        items = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(queue) < len(self.children) * DEPTH:
                item = next(items, None)
                if item is None:
                    exhausted = True
                else:
                    queue.append(self._dispatch(*item))
            if not queue:
                return
            entry = queue.popleft()
            yield entry.payload, entry.meta, self._result(entry)

    def _dispatch(self, payload: bytes, meta: Any) -> _Entry:
        """Give the block to the next child with room for it, or keep it here when it fits no slot."""
        if len(payload) > self.slot_bytes or not self.free_slots:
            return _Entry(payload, meta, None, None)
        for _ in range(len(self.children)):
            index = self._next_child
            self._next_child = (index + 1) % len(self.children)
            child = self.children[index]
            if child.alive and child.queued < DEPTH:
                slot = self.free_slots.pop()
                start = slot * self.slot_bytes
                self.slots[start : start + len(payload)] = payload
                try:
                    child.tasks.send((slot, len(payload), meta))
                except OSError:
                    self.free_slots.append(slot)
                    self._lost(child)
                    continue
                child.queued += 1
                return _Entry(payload, meta, index, slot)
        return _Entry(payload, meta, None, None)

    def _result(self, entry: _Entry) -> R | None:
        """The entry's result; None where a child could not give it (the caller does it itself)."""
        if entry.child is None:
            return self.work(entry.payload, entry.meta)
        child = self.children[entry.child]
        assert entry.slot is not None  # set with the child
        self.free_slots.append(entry.slot)
        if not child.alive:
            return None
        try:
            result = child.results.recv()
        except (EOFError, OSError):
            self._lost(child)
            return None
        child.queued -= 1
        return result

    def _lost(self, child: _Child) -> None:
        """A child died (killed, out of memory): its blocks, and the ones it would have had, are
        done here instead; the restore goes on."""
        child.alive = False
        child.process.join(1)
        logger.warning(
            "A conversion process died (exit code %s): its blocks are converted by the restoring process instead",
            child.process.exitcode,
        )

    def close(self) -> None:
        """Tell every idle child to leave; kill the ones still working (the iteration was cut
        short: their results are not wanted) and the ones that do not leave."""
        for child in self.children:
            if child.queued and child.alive:
                child.process.kill()
            else:
                with contextlib.suppress(OSError):
                    child.tasks.send(None)
        for child in self.children:
            child.process.join(_EXIT_WAIT)
            if child.process.is_alive():
                child.process.kill()
                child.process.join()
            child.tasks.close()
            child.results.close()
        self.children = []
        self.slots.close()


def ordered_map(
    work: Callable[[bytes, Any], R], items: Iterable[tuple[bytes, Any]], processes: int, slot_bytes: int
) -> Generator[tuple[bytes, Any, R | None], None, None]:
    """``(payload, meta, work(payload, meta))`` for each ``(payload, meta)`` of ``items``, in
    order, the work done in ``processes`` forked children (``work`` and what it uses are theirs
    by the fork: only the payload, through shared memory, and ``meta`` are sent). The children
    are started on the first item asked for and ended when the iteration ends or is closed."""
    pool = ForkedMap(work, processes, slot_bytes)
    try:
        yield from pool.map(items)
    finally:
        pool.close()


def _serve(
    work: Callable[[bytes, Any], Any],
    slots: mmap.mmap,
    slot_bytes: int,
    tasks: Connection,
    results: Connection,
    parent_ends: list[Connection],
    parent: int,
) -> None:
    """A child's loop: a block from its slot, the work on it, the result back; until told to leave."""
    _cut_from_parent(parent_ends, parent)
    while True:
        try:
            task = tasks.recv()
        except EOFError:
            return
        if task is None:
            return
        slot, length, meta = task
        start = slot * slot_bytes
        try:
            result = work(slots[start : start + length], meta)
        except BaseException as exc:
            logger.debug("block %r failed in a conversion process: %s", meta, exc)
            result = None
        try:
            results.send(result)
        except Exception:
            results.send(None)


def _cut_from_parent(parent_ends: list[Connection], parent: int) -> None:
    """In the child: die with the parent, leave Ctrl-C to it, and let go of everything of its
    that must not outlive it or be used from here (its sockets, its ends of the pipes)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the child ends when its task pipe closes
        pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for end in parent_ends:
        end.close()
    devnull = os.open(os.devnull, os.O_RDWR)
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ():
        fd = int(name)
        with contextlib.suppress(OSError):
            if fd != devnull and stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.dup2(devnull, fd)
    os.close(devnull)
