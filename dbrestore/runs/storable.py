"""Text and JSON that dbrestore writes into its own tables (``RestoreRun``, ``RestoreChunk``),
made storable on every database: messages, reasons, sample values and file names come from the
input, and PostgreSQL refuses a NUL character in text and ``\\u0000`` in ``jsonb``, and no
database takes a lone surrogate as UTF-8. Each is escaped (``\\u0000``, ``\\udc80``: the text
says what was there) and each string bounded, so that a run's record can always be saved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a mixin of models; importing Django's models here at run time is not needed
    from django.db.models import Model

    _MixinBase = Model
else:
    _MixinBase = object

#: Characters kept of one string in a JSON column (a message, a reason, a sample value).
MAX_STRING = 10_000
#: Containers deeper than this (never made by dbrestore) are stored as their text.
_MAX_DEPTH = 64


def storable_text(text: str, limit: int | None = MAX_STRING) -> str:
    """``text`` with NUL and lone surrogates escaped, cut to ``limit`` characters (marked ``...``)."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 3, 0)] + "..."
    return text


def storable_json(value: Any, depth: int = 0) -> Any:
    """A JSON value whose every string (keys too) is :func:`storable_text`."""
    if isinstance(value, str):
        return storable_text(value)
    if depth > _MAX_DEPTH:
        return storable_text(repr(value)[:MAX_STRING])
    if isinstance(value, dict):
        return {
            storable_text(key) if isinstance(key, str) else key: storable_json(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [storable_json(item, depth + 1) for item in value]
    return value


def storable_fields(model: type[Model], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (field name -> value) of ``model`` made storable: text bounded by its column."""
    from django.db import models

    out: dict[str, Any] = {}
    for name, value in values.items():
        field = model._meta.get_field(name)
        if isinstance(field, models.JSONField):
            value = storable_json(value)
        elif isinstance(value, str) and isinstance(field, (models.CharField, models.TextField)):
            value = storable_text(value, field.max_length)
        out[name] = value
    return out


class StorableMixin(_MixinBase):
    """A model whose text and JSON fields are made storable whenever it is saved or updated."""

    def save(self, *args: Any, **kwargs: Any) -> None:
        fields = kwargs.get("update_fields")
        names = [f.name for f in self._meta.concrete_fields if fields is None or f.name in fields]
        values = {name: getattr(self, name) for name in names}
        kept: dict[str, Any] = {}
        for name, value in storable_fields(type(self), values).items():
            if value is not values[name]:
                kept[name] = values[name]
                setattr(self, name, value)
        try:
            super().save(*args, **kwargs)
        finally:  # the instance keeps what it holds (a source path is opened as it is)
            for name, value in kept.items():
                setattr(self, name, value)
