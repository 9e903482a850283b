"""Progress listeners: the terminal (a bar on a TTY, periodic lines otherwise) and RestoreRun.

The engine calls every listener at the same points; listeners never change the restore.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any, Protocol

from dbrestore.runs.report import RestoreResult, TableResult


class ProgressListener(Protocol):
    def restore_started(self, result: RestoreResult, rows_expected: int | None) -> None: ...

    def phase_started(self, phase: str) -> None: ...

    def table_started(self, table: TableResult) -> None: ...

    def batch_done(self, table: TableResult) -> None: ...

    def table_finished(self, table: TableResult) -> None: ...

    def restore_finished(self, result: RestoreResult) -> None: ...


class BaseListener:
    """A listener that does nothing; subclasses override what they need."""

    def restore_started(self, result: RestoreResult, rows_expected: int | None) -> None:
        pass

    def phase_started(self, phase: str) -> None:
        """A step of the restore begins (checksums, safety backup, emptying, loading, ...)."""

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

    def phase_started(self, phase: str) -> None:
        self._send("phase_started", phase)

    def table_started(self, table: TableResult) -> None:
        self._send("table_started", table)

    def batch_done(self, table: TableResult) -> None:
        self._send("batch_done", table)

    def table_finished(self, table: TableResult) -> None:
        self._send("table_finished", table)

    def restore_finished(self, result: RestoreResult) -> None:
        self._send("restore_finished", result)


class ConsoleProgress(BaseListener):
    """The restore on the terminal (``stream``, stderr for the command).

    ``verbosity`` 0 prints nothing; 1 a line per phase as it starts and, on a terminal, an
    overall bar (rows, rows/s, ETA of the whole restore) above the current table's bar, or a
    line every ``interval`` seconds otherwise; 2 also a line per table when it ends; 3 also a
    line per batch and the time each phase took.
    """

    def __init__(
        self, stream: IO[str] | None = None, *, verbosity: int = 1, interval: float = 5.0, tty: bool | None = None
    ):
        self.stream = stream or sys.stderr
        self.verbosity = verbosity
        self.interval = interval
        self.tty = self.stream.isatty() if tty is None else tty
        self._result: RestoreResult | None = None
        self._expected: int | None = None
        self._started = time.monotonic()
        self._overall: Any = None  # the tqdm bar of the whole restore, from the first table on
        self._bars: dict[str, Any] = {}  # one per table loading (several with --jobs)
        self._shown: dict[str, int] = {}
        self._last_line = 0.0
        self._phase: tuple[str, float] | None = None

    def _write(self, line: str) -> None:
        if self._overall is not None:
            from tqdm import tqdm

            tqdm.write(line, file=self.stream)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def restore_started(self, result: RestoreResult, rows_expected: int | None) -> None:
        self._result, self._expected, self._started = result, rows_expected, time.monotonic()
        if self.verbosity >= 1:
            counts = [f"{len(result.tables)} tables"] if result.tables else []
            counts += [f"{rows_expected} rows"] if rows_expected is not None else []
            self._write(f"Restoring {result.source}" + (f": {', '.join(counts)}" if counts else ""))

    def phase_started(self, phase: str) -> None:
        self._end_phase()
        self._phase = (phase, time.monotonic())
        if self.verbosity >= 1:
            self._write(f"- {phase}...")

    def _end_phase(self) -> None:
        if self._phase is not None and self.verbosity >= 3:
            self._write(f"  ({self._phase[0]}: {time.monotonic() - self._phase[1]:.2f}s)")
        self._phase = None

    def _overall_done(self) -> int:
        return self._result.total if self._result is not None else sum(self._shown.values())

    def table_started(self, table: TableResult) -> None:
        self._shown[table.label] = 0
        if self.verbosity >= 1 and self.tty:
            from tqdm import tqdm

            if self._overall is None:
                self._overall = tqdm(
                    total=self._expected,
                    desc="all tables",
                    unit="rows",
                    unit_scale=True,
                    file=self.stream,
                    position=0,
                    leave=True,
                    dynamic_ncols=True,
                )
            self._bars[table.label] = tqdm(
                total=table.expected,
                desc=table.label,
                unit="rows",
                unit_scale=True,
                file=self.stream,
                position=1 + len(self._bars),
                leave=False,
                dynamic_ncols=True,
            )
        self._last_line = time.monotonic()

    def _advance(self, table: TableResult) -> None:
        self._bars[table.label].update(table.total - self._shown[table.label])
        self._shown[table.label] = table.total
        self._overall.update(self._overall_done() - self._overall.n)

    def _line(self, table: TableResult) -> str:
        of = f"/{table.expected}" if table.expected is not None else ""
        done = self._overall_done()
        elapsed = time.monotonic() - self._started
        speed = done / elapsed if elapsed > 0 else 0.0
        overall = f"all tables {done}" + (f"/{self._expected}" if self._expected is not None else "")
        eta = ""
        if self._expected and speed > 0 and done < self._expected:
            eta = f", ETA {(self._expected - done) / speed:.0f}s"
        return f"{table.label}: {table.total}{of} rows; {overall} rows, {speed:,.0f} rows/s{eta}"

    def batch_done(self, table: TableResult) -> None:
        if table.label in self._bars:
            self._advance(table)
        elif self.verbosity >= 1 and self.verbosity < 3 and time.monotonic() - self._last_line >= self.interval:
            self._last_line = time.monotonic()
            self._write(self._line(table))
        if self.verbosity >= 3:
            self._write(
                f"  batch: {table.label} {table.total} rows read, {table.inserted} inserted, "
                f"{table.skipped} skipped, {table.rejected} rejected, {table.seconds:.2f}s"
            )

    def table_finished(self, table: TableResult) -> None:
        if table.label in self._bars:
            self._advance(table)
            self._bars.pop(table.label).close()
        if self.verbosity >= 2:
            self._write(
                f"{table.label}: {table.total} rows ({table.inserted} inserted, {table.skipped} skipped, "
                f"{table.rejected} rejected) in {table.seconds:.2f}s"
            )

    def restore_finished(self, result: RestoreResult) -> None:
        self._end_phase()
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
        if self._overall is not None:
            self._overall.update(result.total - self._overall.n)
            self._overall.close()
            self._overall = None
