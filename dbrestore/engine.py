"""Deprecated (goes in the next release): the names callers imported from ``dbrestore.engine`` before it was split:
the service is :mod:`dbrestore.service`, the options :mod:`dbrestore.options`, the safety steps
:mod:`dbrestore.safety`, the load :mod:`dbrestore.loading`, the native path
:mod:`dbrestore.native_restore`."""

import warnings

from .loading import reset_sequences
from .options import METHODS, MODES, RestoreOptions
from .safety import (
    SMALL_TABLE_ROWS,
    cascade_closure,
    empty_tables,
    encryption_recipients,
    prepare_outside_references,
    write_safety_backup,
)
from .service import default_rejects_path, execute, restore, rollback_source

__all__ = [
    "METHODS",
    "MODES",
    "SMALL_TABLE_ROWS",
    "RestoreOptions",
    "cascade_closure",
    "default_rejects_path",
    "empty_tables",
    "encryption_recipients",
    "execute",
    "prepare_outside_references",
    "reset_sequences",
    "restore",
    "rollback_source",
    "write_safety_backup",
]

warnings.warn(
    "dbrestore.engine is deprecated: import from dbrestore (restore, execute), dbrestore.service, dbrestore.options, "
    "dbrestore.safety or dbrestore.loading",
    DeprecationWarning,
    stacklevel=2,
)
