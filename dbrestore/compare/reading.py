"""Reads of the database for the diff: each a short transaction of its own, done ahead in a
thread while the next batch of the backup is read and converted, and patient for a limited
time only with tables a restore is writing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.db import DatabaseError, connections

#: How long a read waits for a table lock (a restore's TRUNCATE) before the diff gives up.
LOCK_TIMEOUT = "5s"


@contextlib.contextmanager
def patient_reads(using: str) -> Iterator[None]:
    """On PostgreSQL, reads of this connection give up after ``LOCK_TIMEOUT`` instead of waiting
    on a table a restore holds (its TRUNCATE); the session's own setting is put back after."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('lock_timeout')")
        before = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('lock_timeout', %s, false)", [LOCK_TIMEOUT])
    try:
        yield
    finally:
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", [before])


class ReadAhead:
    """Runs reads in a thread of its own, with its own connection (the server answers while
    this thread converts the backup's next batch); ``submit`` returns the call that waits for
    the rows. Inside a transaction the reads stay on its connection, in this thread: a thread's
    connection would not see what the transaction wrote."""

    def __init__(self, using: str):
        self.using = using
        self.pool: ThreadPoolExecutor | None = None
        if not connections[using].in_atomic_block:
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbrestore-diff")

    def __enter__(self) -> ReadAhead:
        return self

    def submit(self, read: Callable[..., list[tuple]], *args: Any) -> Callable[[], list[tuple]]:
        if self.pool is None:
            rows = read(*args)
            return lambda: rows
        future: Future[list[tuple]] = self.pool.submit(self._read, read, *args)
        return future.result

    def _read(self, read: Callable[..., list[tuple]], *args: Any) -> list[tuple]:
        connection = connections[self.using]  # this thread's
        if connection.vendor == "postgresql" and connection.connection is None:
            connection.ensure_connection()
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('lock_timeout', %s, false)", [LOCK_TIMEOUT])
        return read(*args)

    def __exit__(self, *exc_info: object) -> None:
        if self.pool is not None:
            self.pool.submit(lambda: connections[self.using].close())  # looked up there: that thread's own
            self.pool.shutdown(wait=True)
