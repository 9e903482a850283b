"""The old import path of the ORM loader; it lives in :mod:`dbrestore.load` now."""

from .load.insert import FallbackChain, Inserter, is_fatal
from .load.rows import PendingRow
from .load.table import TableLoader
from .sources.base import batched

__all__ = ["FallbackChain", "Inserter", "PendingRow", "TableLoader", "batched", "is_fatal"]
