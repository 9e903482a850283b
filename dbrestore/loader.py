"""Deprecated: the old import path of the ORM loader; it lives in :mod:`dbrestore.load` now, and
this module goes in the next release."""

import warnings

from .load.insert import FallbackChain, Inserter, is_fatal
from .load.rows import PendingRow
from .load.table import TableLoader
from .sources.base import batched

__all__ = ["FallbackChain", "Inserter", "PendingRow", "TableLoader", "batched", "is_fatal"]

warnings.warn(
    "dbrestore.loader is deprecated: import from dbrestore.load.insert, dbrestore.load.rows and dbrestore.load.table",
    DeprecationWarning,
    stacklevel=2,
)
