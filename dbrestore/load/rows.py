"""A converted row on its way into the table, as the writers (INSERT chain, COPY) and the ledger see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models

from dbrestore.convert.row_converter import build_instance


@dataclass
class PendingRow:
    """A converted row on its way in: field values in ``local_concrete_fields`` order, and the
    model instance the ORM path needs (built only when it is used)."""

    position: int
    row: dict[str, Any]
    values: list[Any]
    model: type[models.Model]
    _obj: models.Model | None = None

    @property
    def obj(self) -> models.Model:
        if self._obj is None:
            self._obj = build_instance(self.model, self.values)
        return self._obj
