"""The errors dbrestore raises. Each message is one line meant for the user."""

from __future__ import annotations


class DbRestoreError(Exception):
    """Base of every error dbrestore raises on purpose."""


class BackupNotFoundError(DbRestoreError):
    """The source path or backup name does not exist."""


class BackupFormatError(DbRestoreError):
    """A backup file is empty, unreadable, or not valid JSON / not a known format.

    ``path`` and ``position`` (a line or byte offset) locate the problem when known.
    """

    def __init__(self, message: str, *, path: object = None, position: str | None = None):
        self.path = path
        self.position = position
        where = str(path) if path else ""
        if where and position:
            where = f"{where} ({position})"
        super().__init__(f"{where}: {message}" if where else message)


class InputTooLargeError(BackupFormatError):
    """A read went past a bound: a row or line longer than ``MAX_ROW_BYTES``, a compressed file
    inflating more than ``MAX_INFLATION_RATIO`` times, a number with too many digits."""


class ChecksumMismatchError(BackupFormatError):
    """A data file's sha256 or row count differs from the manifest."""


class UnknownTableError(DbRestoreError):
    """A table in the backup maps to no installed model."""


class RestoreConfigError(DbRestoreError):
    """Options that cannot work together, an unknown database alias, and the like."""


class RestoreLockedError(DbRestoreError):
    """Another restore is queued or running against the same database."""


class RestoreCancelled(DbRestoreError):
    """The run was cancelled by a user; raised at a batch boundary."""


class TooManyRejectsError(DbRestoreError):
    """More rows were rejected than ``--max-rejects`` allows."""


class OutsideReferenceError(RestoreConfigError):
    """Replace mode would empty a table that rows of a table outside the restore point to."""


class RestoreAbortedError(DbRestoreError):
    """The database refused a statement that the restore cannot do without (rolled back when atomic)."""


class BackupWriteError(DbRestoreError):
    """A backup (or the safety backup before a restore) could not be written."""


class RejectsWriteError(DbRestoreError):
    """The rejects file could not be written: the restore fails (rolled back when atomic), since a
    row it cannot record would be lost without a trace."""
