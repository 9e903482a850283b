"""The old import path of the COPY loader; it lives in :mod:`dbrestore.load.copy` now."""

from .load.copy import CopyTableLoader

__all__ = ["CopyTableLoader"]
