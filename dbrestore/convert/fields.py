"""Typed access to what Django's stubs type loosely or not at all: a concrete field's column, a
model's ``DoesNotExist``, natural keys (methods a project's models and managers define)."""

from __future__ import annotations

from typing import Any, Protocol

from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.db.models.fields.related import RelatedField


class NaturalKeyManager(Protocol):
    """A manager with ``get_by_natural_key`` (as loaddata uses it)."""

    def get_by_natural_key(self, *key: Any) -> models.Model: ...


def column_of(field: models.Field[Any, Any]) -> str:
    """A concrete field's column. The stubs type ``Field.column`` as optional: it is None only for
    fields without a column of their own (a ForeignObject, a composite primary key), never concrete."""
    column = field.column
    assert column is not None, f"{field} has no column"
    return column


def does_not_exist(model: type[models.Model]) -> type[ObjectDoesNotExist]:
    """``model.DoesNotExist``, which the model's metaclass adds to every concrete model."""
    exception: type[ObjectDoesNotExist] = getattr(model, "DoesNotExist")  # noqa: B009  # made by ModelBase
    return exception


def natural_key_manager(model: type[models.Model], using: str | None) -> NaturalKeyManager:
    """``model``'s default manager on ``using``, whose ``get_by_natural_key`` the project defines
    (callers check it is there, as loaddata does)."""
    manager: Any = model._default_manager.db_manager(using)
    return manager


def concrete_model(model: type[models.Model]) -> type[models.Model]:
    """``model._meta.concrete_model``: typed optional, it is set on every model of the registry."""
    concrete = model._meta.concrete_model
    assert concrete is not None, f"{model} has no concrete model"
    return concrete


def through_model(field: models.ManyToManyField[Any, Any]) -> type[models.Model]:
    """A many-to-many field's through model: typed optional, set once the models are loaded."""
    through = field.remote_field.through
    assert through is not None, f"{field} has no through model"
    return through


def db_type_of(field: models.Field[Any, Any], connection: Any) -> str:
    """A concrete field's column type on ``connection``: typed optional, None only for fields
    without a column (many-to-many)."""
    db_type = field.db_type(connection)
    assert db_type is not None, f"{field} has no column type"
    return db_type


def value_field(field: models.Field[Any, Any]) -> models.Field[Any, Any]:
    """The field whose values ``field`` holds: a relation's target field (a foreign key's), else
    the field itself."""
    return field.target_field if isinstance(field, RelatedField) else field


def target_model(field: models.ForeignKey[Any, Any]) -> type[models.Model]:
    """The concrete model a foreign key points at (``related_model``: typed optional, and may
    name a proxy)."""
    related = field.related_model
    assert isinstance(related, type), f"{field} points at no model"
    return concrete_model(related)
