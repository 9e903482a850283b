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


class RestoreQueueError(DbRestoreError):
    """A background restore could not be put on its RQ queue (Redis down, unknown queue)."""


class RestoreCancelled(DbRestoreError):
    """The run was cancelled by a user; raised at a batch boundary."""


class TooManyRejectsError(DbRestoreError):
    """More rows were rejected than ``--max-rejects`` allows."""


class MissingExtraError(RestoreConfigError):
    """A feature used without the optional dependencies its extra brings (``dbrestore[s3]``...)."""

    def __init__(self, feature: str, extra: str, missing: str):
        super().__init__(f"{feature} needs {missing} (not installed): pip install 'dbrestore[{extra}]'")


class OutsideReferenceError(RestoreConfigError):
    """Replace mode would empty a table that rows of a table outside the restore point to."""


class SelectionConflictError(DbRestoreError):
    """Rows of a ``--select`` restore conflict with the live database (a primary key or a unique
    value taken since the backup); nothing was written."""


class RestoreAbortedError(DbRestoreError):
    """The database refused a statement that the restore cannot do without (rolled back when atomic)."""


class BackupWriteError(DbRestoreError):
    """A backup (or the safety backup before a restore) could not be written."""


class StorageError(DbRestoreError):
    """A storage (``settings.STORAGES``) refused or dropped a request: a denied request, a lost
    connection, a missing bucket."""


class EncryptionError(DbRestoreError):
    """GnuPG could not encrypt or decrypt a backup file: no key, a corrupt file, no gpg binary."""


class LockLostError(RestoreAbortedError):
    """The restore lost its database lock midway (its session was terminated); it stops."""


class RejectsWriteError(DbRestoreError):
    """A rejected row could not be written to the rejects file (full disk, unwritable path); the
    restore stops (rolled back when atomic) rather than lose the row silently."""


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (yajl's are bytes, with the input quoted on the next
    lines; a database error's detail follows its first line), or its class name when empty."""
    arg = exc.args[0] if exc.args else ""
    text = (arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(exc)).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def describe(exc: BaseException) -> str:
    """``TypeName: first line of the message`` (the class name alone when there is none)."""
    arg = exc.args[0] if exc.args else ""
    if not (arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(exc)).strip():
        return type(exc).__name__
    return f"{type(exc).__name__}: {first_line(exc)}"
