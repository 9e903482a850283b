"""One restore per database: a lock the operating system or the database releases when its
holder dies.

PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) taken on a connection of its
own, held for the whole restore; the server drops it the moment that session ends (a killed
process, a killed worker, a terminated backend). SQLite: ``fcntl.flock`` on a lock file next
to the database file; the kernel drops it when the holder's file descriptor closes. Other
vendors get a lock file named after the database in the temporary directory (one machine).

A run's liveness follows from the lock: whoever takes it knows that no restore of that database
is alive, so the runs left ``running`` are dead (:func:`dbrestore.runs.reap_dead_runs`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from dbrestore.exceptions import LockLostError, RestoreConfigError, RestoreLockedError, first_line

# pg_try_advisory_lock(int4, int4): advisory locks are per database, so one key pair suffices.
ADVISORY_KEYS = (0x6462_7273, 1)  # "dbrs"
POLL_SECONDS = 0.05


class DatabaseLock:
    """The restore lock of one database alias; ``acquire`` does not block beyond ``wait``."""

    def __init__(self, database: str):
        self.database = database
        self.held = False

    def acquire(self, wait: float = 0.0) -> bool:
        """Take the lock, retrying for up to ``wait`` seconds; False if someone else holds it."""
        deadline = time.monotonic() + wait
        while True:
            if self._try():
                self.held = True
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)

    def release(self) -> None:
        self.held = False
        self._release()

    def check(self) -> None:
        """Raise :class:`LockLostError` when the lock was lost (its session ended, its file went)."""

    def busy(self) -> bool | None:
        """Whether someone holds the lock, when that can be seen without taking it (else None)."""
        return None

    def backend_pids(self) -> list[int]:
        """PostgreSQL backend pids of the lock's own session (to spare them)."""
        raise NotImplementedError

    def _try(self) -> bool:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError


class AdvisoryLock(DatabaseLock):
    """A PostgreSQL session advisory lock on a dedicated connection."""

    def __init__(self, database: str, keys: tuple[int, int] = ADVISORY_KEYS):
        super().__init__(database)
        self.keys = keys  # the int4 pair of pg_try_advisory_lock (chunk locks use others, see fanout)
        self._connection: BaseDatabaseWrapper | None = None
        self.backend_pid: int | None = None

    def _open(self) -> BaseDatabaseWrapper:
        main = connections[self.database]
        connection = type(main)(dict(main.settings_dict), self.database)
        connection.ensure_connection()
        connection.set_autocommit(True)
        if connection.pg_version >= 140000:  # type: ignore[attr-defined]  # PostgreSQL's wrapper has it
            with connection.cursor() as cursor:  # the session sits idle for the whole restore
                cursor.execute("SET idle_session_timeout = 0")
        # Checked from the threads of --jobs too, one at a time (progress events are serialised).
        connection.inc_thread_sharing()
        return connection

    def _try(self) -> bool:
        if self._connection is None:
            self._connection = self._open()
        with self._connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s), pg_backend_pid()", self.keys)
            got, self.backend_pid = cursor.fetchone()
        return bool(got)

    def _release(self) -> None:
        # Closing the session releases the lock; no unlock statement that could fail first.
        if self._connection is not None:
            with contextlib.suppress(DatabaseError):
                self._connection.close()
            self._connection.dec_thread_sharing()
            self._connection = None

    def check(self) -> None:
        if not self.held or self._connection is None:
            return
        try:
            with self._connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError as exc:
            raise LockLostError(
                f"lost the restore lock of database {self.database!r} (its session ended: "
                f"{first_line(exc)}); "
                "stopped so that no other restore runs beside this one"
            ) from exc

    def backend_pids(self) -> list[int]:
        return [self.backend_pid] if self.held and self.backend_pid else []

    def busy(self) -> bool | None:
        # classid, objid, objsubid 2: how pg_locks shows a lock taken with two int4 keys.
        try:
            with connections[self.database].cursor() as cursor:
                cursor.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = %s AND objid = %s AND objsubid = 2 "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
                    self.keys,
                )
                return bool(cursor.fetchone()[0])
        except DatabaseError:
            return None


class FileLock(DatabaseLock):
    """``fcntl.flock`` on a lock file that is never deleted (deleting would let two holders in)."""

    def __init__(self, database: str, path: Path):
        super().__init__(database)
        self.path = path
        self._fd: int | None = None

    def _try(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RestoreConfigError(f"cannot open the restore lock file {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def check(self) -> None:
        if not self.held or self._fd is None:
            return
        try:
            same = os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            raise LockLostError(
                f"the restore lock file {self.path} was removed or replaced; stopped so that no "
                "other restore runs beside this one"
            )

    def backend_pids(self) -> list[int]:
        return []

    def busy(self) -> bool | None:
        """Seen in ``/proc/locks`` (Linux) without taking the lock: a page that only looks must not
        take it for a moment, or a restore starting at that moment would be refused."""
        try:
            stat = os.stat(self.path)
            table = Path("/proc/locks").read_text()
        except FileNotFoundError:
            return False if not self.path.exists() else None
        except OSError:
            return None
        # "1: FLOCK  ADVISORY  WRITE 4242 08:01:123456 0 EOF": device major:minor (hex), inode.
        wanted = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
        return any(
            len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == wanted
            for fields in (line.split() for line in table.splitlines())
        )


def lock_for(database: str) -> DatabaseLock:
    """The restore lock of database alias ``database`` (not yet taken)."""
    connection = connections[database]
    if connection.vendor == "postgresql":
        return AdvisoryLock(database)
    name = str(connection.settings_dict.get("NAME") or "")
    if connection.vendor == "sqlite" and name and ":memory:" not in name and "mode=memory" not in name:
        return FileLock(database, Path(f"{name}.dbrestore-lock"))
    # An in-memory SQLite database lives in this process; other vendors: this machine only.
    settings = connection.settings_dict
    ident = f"{connection.vendor}:{settings.get('HOST')}:{settings.get('PORT')}:{name}"
    if connection.vendor == "sqlite":
        ident += f":{os.getpid()}"
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return FileLock(database, Path(tempfile.gettempdir()) / f"dbrestore-{digest}.lock")


@contextlib.contextmanager
def holding(database: str, *, wait: float | None = None, resuming: int | None = None) -> Iterator[DatabaseLock]:
    """Hold the restore lock of ``database`` for the block, or raise :class:`RestoreLockedError`.

    While the lock is busy it is retried for up to ``wait`` seconds (``LOCK_WAIT``) when no
    queued or running restore of the database is on record (someone may be only looking: the
    progress page checks liveness by taking the lock for a moment; or be about to record a run),
    and when the one on record is run ``resuming``, which the caller takes for dead (``--resume``
    right after a SIGKILL: the server ends the killed process's session, and drops its lock,
    a moment after the process died, once it reads the closed socket). Any other run on record
    is alive as far as anyone can tell: refused at once, so two live restores never run at once.
    """
    from dbrestore import conf

    wait = conf.get("LOCK_WAIT") if wait is None else wait
    lock = lock_for(database)
    deadline = time.monotonic() + wait
    while not lock.acquire():
        holder = _holder(database)
        if (holder is not None and holder.pk != resuming) or time.monotonic() >= deadline:
            lock.release()  # the connection or descriptor opened to try
            raise RestoreLockedError(locked_message(database, holder))
        time.sleep(POLL_SECONDS)
    try:
        yield lock
    finally:
        lock.release()


def _holder(database: str):
    from dbrestore import conf
    from dbrestore.models import RestoreRun

    return (
        RestoreRun.objects.using(conf.run_database())
        .filter(database=database, status__in=RestoreRun.ACTIVE_STATUSES)
        .order_by("created_at")
        .first()
    )


def locked_message(database: str, holder=None) -> str:
    """Who holds the lock of ``database``, as far as the run history says."""
    if holder is None:
        return f"another restore holds the lock of database {database!r} (it is starting or finishing); try again"
    return (
        f"restore #{holder.pk} of {holder.source} is already {holder.status} against database {database!r}; "
        "wait for it or cancel it"
    )
