"""Deprecated home of :func:`rq_dashboard_urls`: it lives in :mod:`dbrestore.admin.dashboard` now.

This module goes in the next release; a project's ``urls.py`` should import from the new path."""

from __future__ import annotations

import warnings
from typing import Any

_MOVED = ("rq_dashboard_urls", "can_use_dashboard", "restore_permission_required", "RESTORE_PERMISSION")


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"dbrestore.dashboard.{name} is deprecated: import it from dbrestore.admin.dashboard",
        DeprecationWarning,
        stacklevel=2,
    )
    from dbrestore.admin import dashboard

    return getattr(dashboard, name)
