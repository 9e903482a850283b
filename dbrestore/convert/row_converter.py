"""A table's backup rows -> lists of values in ``local_concrete_fields`` order.

A :class:`RowConverter` is built once per table: it resolves, once per distinct key layout, which
field each backup key feeds and which converter (:mod:`dbrestore.convert`) that field needs, so
the per-row work is a loop over precompiled functions. Rows may be keyed by attname
(``customer_id``), column name or field name (``customer``); FK values may be natural keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import MultipleObjectsReturned, ObjectDoesNotExist, ValidationError
from django.db import DatabaseError, models
from django.db.models import CompositePrimaryKey

from dbrestore.convert import VALUE_ERRORS, ConversionError, Converter, converter_for
from dbrestore.convert.fields import column_of, does_not_exist, natural_key_manager
from dbrestore.sources.base import UnreadableRow

_NATURAL_KEY_CACHE = 100_000


class DeferredNaturalKey:
    """A nullable FK's natural key whose row is not in the database yet (a forward reference, a
    self reference, a cycle): the row goes in with NULL there, and the key is looked up again
    once every table is loaded, as loaddata's ``handle_forward_references`` does."""

    __slots__ = ("key", "reason")

    def __init__(self, key: list, reason: str):
        self.key = key
        self.reason = reason


class NaturalKeyNotFound(ValueError):
    """No row of ``model`` with natural key ``key`` in the database (nor among ``also``)."""

    def __init__(self, model: type[models.Model], key: tuple, message: str):
        super().__init__(message)
        self.model = model
        self.key = key


#: Rows known by natural key besides the database's: model -> natural key -> an instance holding
#: the row (the undelete's walk finds them in the backup).
KnownNaturalKeys = Mapping[type[models.Model], Mapping[tuple, models.Model]]


@dataclass(frozen=True)
class ByNaturalKey:
    """A row the database numbered, known by its own natural key until it is found again."""

    key: tuple


def find_by_natural_key(field: models.ForeignKey[Any, Any], key: list[Any], using: str) -> Any:
    """The value of ``field``'s target column in the parent known by natural key ``key``."""
    parent = field.remote_field.model
    manager = natural_key_manager(parent, using)
    try:
        return getattr(manager.get_by_natural_key(*key), field.target_field.attname)
    except ObjectDoesNotExist as exc:  # the parent's, or another model's its manager looks up
        message = f"no {parent._meta.label} with natural key {key!r}{_missing(exc, parent)}"
        raise NaturalKeyNotFound(parent, tuple(key), message) from exc
    except MultipleObjectsReturned as exc:
        raise ValueError(f"more than one {parent._meta.label} with natural key {key!r}") from exc
    except (TypeError, ValidationError) as exc:  # a key of the wrong length or type
        raise ValueError(f"not a natural key of {parent._meta.label}: {key!r} ({exc})") from exc
    except DatabaseError:
        raise  # not the row's fault: the restore stops
    except Exception as exc:
        raise ValueError(
            f"natural key {key!r} of {parent._meta.label} could not be looked up: {type(exc).__name__}: {exc}"
        ) from exc


def _missing(exc: Exception, parent: type[models.Model]) -> str:
    """What another model's lookup said, when the parent's manager missed a row of another model
    (``auth.Permission`` by a content type that does not exist)."""
    if isinstance(exc, does_not_exist(parent)):
        return ""
    return f": {str(exc).strip() or type(exc).__name__}"


def natural_key_converter(
    field: models.ForeignKey[Any, Any],
    base: Converter,
    using: str,
    *,
    defer: bool = False,
    also: KnownNaturalKeys | None = None,
) -> Converter:
    """An FK converter that also takes a natural key (a list, as ``dumpdata --natural-foreign``
    writes) and finds the parent's key in the database, or else among ``also``; plain values go
    through ``base``. With ``defer``, a key not found in a nullable column becomes a
    :class:`DeferredNaturalKey`."""
    cache: dict[tuple, Any] = {}
    defer = defer and field.null
    parent, target = field.remote_field.model, field.target_field.attname

    def convert(value: Any) -> Any:
        if not isinstance(value, list):
            return base(value)
        try:
            key = tuple(value)
            hash(key)
        except TypeError:
            raise ValueError(f"not a natural key: {value!r}") from None
        if key not in cache:
            if len(cache) >= _NATURAL_KEY_CACHE:
                cache.clear()
            try:
                cache[key] = find_by_natural_key(field, value, using)
            except ValueError as exc:
                known = also.get(parent, {}).get(key) if also is not None else None
                if known is not None:
                    return getattr(known, target)
                if defer:
                    return DeferredNaturalKey(value, str(exc))
                raise
        return cache[key]

    return convert


def _has_natural_keys(model: type[models.Model]) -> bool:
    return hasattr(model._default_manager, "get_by_natural_key")


# Modules whose callables make a default without touching the database (uuid4, now, dict...).
_DEFAULTS_WITHOUT_QUERIES = {"uuid", "datetime", "django.utils.timezone", "builtins"}


def _default_may_query(field: models.Field) -> bool:
    if not field.has_default():  # NOT_PROVIDED is a class, hence callable
        return False
    default = field.default
    return callable(default) and getattr(default, "__module__", None) not in _DEFAULTS_WITHOUT_QUERIES


def build_instance(model: type[models.Model], values: list[Any]) -> models.Model:
    """A model instance holding ``values`` (in ``local_concrete_fields`` order), for the ORM insert."""
    if not model._meta.parents:
        return model(*values)
    obj = model()
    for f, value in zip(model._meta.local_concrete_fields, values, strict=True):
        setattr(obj, f.attname, value)
    return obj


class RowConverter:
    """Turns backup rows of one model into lists in ``local_concrete_fields`` order.

    With ``using``, FK values may also be natural keys, looked up in that database; with
    ``defer_natural_keys`` one not found yet in a nullable column comes back as a
    :class:`DeferredNaturalKey` (the loader fills it in after the load).
    """

    def __init__(
        self,
        model: type[models.Model],
        using: str | None = None,
        *,
        defer_natural_keys: bool = False,
        known_natural_keys: KnownNaturalKeys | None = None,
    ):
        self.model = model
        #: The model's own table's columns: a multi-table child's parents have rows of their own.
        self.fields = list(model._meta.local_concrete_fields)
        pk = model._meta.pk
        #: None for a composite primary key (see ``pk_of``).
        self.pk_index = self.fields.index(pk) if pk.concrete else None
        self._pk_parts = (
            # (its parts are concrete fields: no relation's reverse side)
            [self.fields.index(f) for f in pk.fields if isinstance(f, models.Field)]
            if isinstance(pk, CompositePrimaryKey)
            else []
        )
        self._field_index: dict[str, int] = {}
        for position, f in enumerate(self.fields):
            for key in (f.name, column_of(f), f.attname):
                self._field_index.setdefault(key, position)
        self._converters = [converter_for(f, using) for f in self.fields]
        #: Converting may run a query (a natural key to look up, a default from project code):
        #: then it must not happen while the connection is busy with a COPY.
        self.may_query_database = any(_default_may_query(f) for f in self.fields)
        #: Positions of nullable FKs that may come back as a DeferredNaturalKey.
        self.deferrable_positions: list[int] = []
        if using is not None:
            for position, f in enumerate(self.fields):
                # A concrete relation is a ForeignKey (a ForeignObject has no column of its own).
                if isinstance(f, models.ForeignKey) and _has_natural_keys(f.remote_field.model):
                    self._converters[position] = natural_key_converter(
                        f, self._converters[position], using, defer=defer_natural_keys, also=known_natural_keys
                    )
                    self.may_query_database = True
                    if f.null and defer_natural_keys:
                        self.deferrable_positions.append(position)
        #: Rows without a primary key take the key of the row their natural key finds, as
        #: loaddata's ``build_instance`` does (``--natural-primary`` fixtures).
        self.identifies_by_natural_key = (
            using is not None
            and self.pk_index is not None
            and hasattr(model, "natural_key")
            and _has_natural_keys(model)
        )
        self.may_query_database = self.may_query_database or self.identifies_by_natural_key
        self.using = using
        self._layouts: dict[tuple[str, ...], tuple[list[tuple[str, int, Converter]], list[int], list[str]]] = {}
        self._compiled: dict[tuple[str, ...], Callable[[dict[str, Any]], list[Any]]] = {}
        self.unknown_columns: set[str] = set()
        self.missing_columns: set[str] = set()
        self.dropped_values = 0

    def drift(self, keys: Iterable[str]) -> tuple[list[str], list[str]]:
        """For rows with these keys: the keys that are no field (their values are dropped) and
        the columns the rows lack (default or NULL used), as the conversion itself decides."""
        _, missing, unknown = self._layout(tuple(keys))
        return list(unknown), [
            self.fields[p].column for p in missing if not isinstance(self.fields[p], models.fields.AutoFieldMixin)
        ]

    def take_deferred(self, values: list[Any]) -> list[tuple[int, DeferredNaturalKey]]:
        """The natural keys not found yet in converted ``values``, each replaced by NULL."""
        deferred = []
        for index in self.deferrable_positions:
            value = values[index]
            if value.__class__ is DeferredNaturalKey:
                deferred.append((index, value))
                values[index] = None
        return deferred

    def identify(self, values: list[Any]) -> tuple | None:
        """For a row without a primary key: its natural key, made by the model's own
        ``natural_key()``; the primary key of the row that holds it, put into ``values`` (loaddata's
        ``build_instance``). None when the row has a primary key. A key that cannot be made or
        matches several rows is a :class:`ConversionError`."""
        pk_index = self.pk_index
        if pk_index is None or values[pk_index] is not None:  # None: a composite key, never identified so
            return None
        obj: Any = build_instance(self.model, values)  # Any: natural_key() is the project's method
        obj._state.db = self.using
        column = column_of(self.fields[pk_index])
        try:
            key = tuple(obj.natural_key())
        except Exception as exc:
            raise ConversionError(
                column, None, f"its natural key could not be made: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            found = natural_key_manager(self.model, self.using).get_by_natural_key(*key)
        except does_not_exist(self.model):
            return key
        except Exception as exc:
            raise ConversionError(
                column, None, f"finding the row with natural key {list(key)!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        values[pk_index] = self.model._meta.pk.to_python(found.pk)
        return key

    def convert_leniently(self, row: dict[str, Any]) -> list[Any]:
        """Values for the fields ``row`` holds that convert, None for the others: enough to make
        the natural key of a row that cannot be converted whole yet."""
        values: list[Any] = [None] * len(self.fields)
        for key, position, convert in self._layout(tuple(row))[0]:
            if row[key] is not None:
                try:
                    values[position] = convert(row[key])
                except VALUE_ERRORS:
                    pass
        return values

    def value(self, key: str, raw: Any) -> Any:
        """One backup value for the field ``key`` names, converted as in a row (a natural key
        looked up); ``ValueError`` when it cannot be."""
        return self._converters[self._field_index[key]](raw)

    def pk_of(self, values: list[Any]) -> Any:
        """The primary key in converted ``values``: a tuple for a composite key."""
        if self.pk_index is not None:
            return values[self.pk_index]
        return tuple(values[index] for index in self._pk_parts)

    def _layout(self, keys: tuple[str, ...]):
        layout = self._layouts.get(keys)
        if layout is None:
            steps, seen, unknown = [], set(), []
            for key in keys:
                position = self._field_index.get(key)
                if position is None or position in seen:
                    unknown.append(key)
                    continue
                seen.add(position)
                steps.append((key, position, self._converters[position]))
            missing = [position for position in range(len(self.fields)) if position not in seen]
            self.unknown_columns.update(unknown)
            # An auto-incremented primary key the database numbers is no loss (M2M rows, ``pk`` omitted).
            self.missing_columns.update(
                column_of(self.fields[p])
                for p in missing
                if not isinstance(self.fields[p], models.fields.AutoFieldMixin)
            )
            layout = self._layouts[keys] = (steps, missing, unknown)
            if not missing and not unknown:
                self._compiled[keys] = _compile(steps, len(self.fields))
        return layout

    def convert(self, row: dict[str, Any]) -> list[Any]:
        """Values for every concrete field.

        A field the row lacks gets its default, NULL when nullable, or the row is rejected.
        Keys that are no field are dropped and counted in ``dropped_values``.
        """
        if row.__class__ is UnreadableRow:
            raise ConversionError.unreadable(row.reason)
        keys = tuple(row)
        compiled = self._compiled.get(keys)
        if compiled is not None:
            try:
                return compiled(row)
            except VALUE_ERRORS:
                pass  # converted again below, to name the column in the rejection
        return self._convert_field_by_field(row, keys)

    def _convert_field_by_field(self, row: dict[str, Any], keys: tuple[str, ...]) -> list[Any]:
        steps, missing, unknown = self._layout(keys)
        values: list[Any] = [None] * len(self.fields)
        for key, position, convert in steps:
            value = row[key]
            if value is not None:
                try:
                    value = convert(value)
                except VALUE_ERRORS as exc:
                    raise ConversionError(self.fields[position].column, value, str(exc) or type(exc).__name__) from exc
            values[position] = value
        for position in missing:
            f = self.fields[position]
            if f.has_default() or (f.blank and f.empty_strings_allowed and not f.null):
                values[position] = f.get_default()  # the declared default, or "" for blank text
            elif not f.null and not f.primary_key:
                raise ConversionError(f.column, None, "missing from the backup, and the field has no default")
        if unknown:
            self.dropped_values += len(unknown)
        return values


def _identity_type(converter: Converter) -> type | None:
    """The type a value passes this converter unchanged in (the compiled code skips the call)."""
    if getattr(converter, "bounds", None) is not None:
        return int
    return getattr(converter, "identity_type", None)


def _compile(steps: list[tuple[str, int, Converter]], width: int) -> Callable[[dict[str, Any]], list[Any]]:
    """One function for rows with exactly these keys: the loop over the fields unrolled, calls
    skipped for values that are already right (an int within the column's range for an integer
    field, a float for a float field).

    1.1 us per OrderItem row instead of 1.8 with the field-by-field loop, which remains for rows
    that lack fields or have others, and to name the column when a value cannot be converted.
    Only names made here go into the source; the keys and converters are passed in as globals.
    """
    namespace: dict[str, Any] = {}
    lines = ["def convert(row):"]
    for n, (key, position, converter) in enumerate(steps):
        namespace[f"key{n}"], namespace[f"convert{n}"] = key, converter
        value = f"v{position}"
        lines.append(f"    {value} = row[key{n}]")
        exact = _identity_type(converter)
        if exact is None:
            lines.append(f"    if {value} is not None: {value} = convert{n}({value})")
            continue
        namespace[f"type{n}"] = exact
        condition = f"{value}.__class__ is not type{n}"
        bounds = getattr(converter, "bounds", None)
        if bounds is not None:
            namespace[f"low{n}"], namespace[f"high{n}"] = bounds
            condition += f" or not low{n} <= {value} <= high{n}"
        lines.append(f"    if {value} is not None and ({condition}): {value} = convert{n}({value})")
    lines.append(f"    return [{', '.join(f'v{position}' for position in range(width))}]")
    exec("\n".join(lines), namespace)
    return namespace["convert"]
