"""Progress listeners: the terminal (a bar on a TTY, periodic lines otherwise) and RestoreRun.

The engine calls every listener at the same points; listeners never change the restore.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any, Protocol

from .report import RestoreResult, TableResult


class ProgressListener(Protocol):
    def restore_started(self, result: RestoreResult, rows_expected: int | None) -> None: ...

    def table_started(self, table: TableResult) -> None: ...

    def batch_done(self, table: TableResult) -> None: ...

    def table_finished(self, table: TableResult) -> None: ...

    def restore_finished(self, result: RestoreResult) -> None: ...


class BaseListener:
    """A listener that does nothing; subclasses override what they need."""

    def restore_started(self, result: RestoreResult, rows_expected: int | None) -> None:
        pass

    def table_started(self, table: TableResult) -> None:
        pass

    def batch_done(self, table: TableResult) -> None:
        pass

    def table_finished(self, table: TableResult) -> None:
        pass

    def restore_finished(self, result: RestoreResult) -> None:
        pass


class Broadcast(BaseListener):
    """Forwards every event to several listeners, one event at a time: with ``--jobs`` tables
    load in several threads, and listeners are written for one."""

    def __init__(self, listeners: list[ProgressListener]):
        self.listeners = listeners
        self._lock = threading.Lock()

    def _send(self, event: str, *args: Any) -> None:
        with self._lock:
            for listener in self.listeners:
                getattr(listener, event)(*args)

    def restore_started(self, result: RestoreResult, rows_expected: int | None) -> None:
        self._send("restore_started", result, rows_expected)

    def table_started(self, table: TableResult) -> None:
        self._send("table_started", table)

    def batch_done(self, table: TableResult) -> None:
        self._send("batch_done", table)

    def table_finished(self, table: TableResult) -> None:
        self._send("table_finished", table)

    def restore_finished(self, result: RestoreResult) -> None:
        self._send("restore_finished", result)


class ConsoleProgress(BaseListener):
    """A tqdm bar per table on a terminal; a line every ``interval`` seconds otherwise.

    ``verbosity`` 0 prints nothing, 1 the bar or periodic lines, 2 also a line per table.
    """

    def __init__(self, stream: IO[str] | None = None, *, verbosity: int = 1, interval: float = 5.0, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.verbosity = verbosity
        self.interval = interval
        self.tty = self.stream.isatty() if tty is None else tty
        self._bars: dict[str, Any] = {}  # one per table loading (several with --jobs)
        self._shown: dict[str, int] = {}
        self._last_line = 0.0

    def table_started(self, table: TableResult) -> None:
        self._shown[table.label] = 0
        if self.verbosity >= 1 and self.tty:
            from tqdm import tqdm

            self._bars[table.label] = tqdm(total=table.expected, desc=table.label, unit="rows", unit_scale=True,
                                           file=self.stream, leave=self.verbosity >= 2)
        self._last_line = time.monotonic()

    def _advance(self, table: TableResult) -> None:
        self._bars[table.label].update(table.total - self._shown[table.label])
        self._shown[table.label] = table.total

    def batch_done(self, table: TableResult) -> None:
        if table.label in self._bars:
            self._advance(table)
        elif self.verbosity >= 1 and time.monotonic() - self._last_line >= self.interval:
            self._last_line = time.monotonic()
            of = f"/{table.expected}" if table.expected is not None else ""
            self.stream.write(f"{table.label}: {table.total}{of} rows\n")
            self.stream.flush()

    def table_finished(self, table: TableResult) -> None:
        if table.label in self._bars:
            self._advance(table)
            self._bars.pop(table.label).close()
        if self.verbosity >= 2:
            self.stream.write(
                f"{table.label}: {table.total} rows ({table.inserted} inserted, {table.skipped} skipped, "
                f"{table.rejected} rejected) in {table.seconds:.2f}s\n"
            )
            self.stream.flush()
