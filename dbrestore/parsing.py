"""Options given as text: repeatable, comma-separated lists (``--only a,b --only c``)."""

from __future__ import annotations

from collections.abc import Iterable


def split_commas(values: Iterable[str]) -> list[str]:
    """Every comma-separated item of ``values``, stripped, empty ones left out."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]
