"""Deprecated: the old import path of the COPY loader; it lives in :mod:`dbrestore.load.copy` now,
and this module goes in the next release."""

import warnings

from .load.copy import CopyTableLoader

__all__ = ["CopyTableLoader"]

warnings.warn("dbrestore.copyload is deprecated: import from dbrestore.load.copy", DeprecationWarning, stacklevel=2)
