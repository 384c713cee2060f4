"""Typed records of JSON files: checked ``from_dict``, ``to_dict``, unknown keys kept (``precompute.schema``).

A :class:`Record` subclass is a dataclass whose fields are declared with ``_spec(converter, ...)``, and, last,
``extra``. ``from_dict(data, path)`` checks each field's type with its converter and raises :class:`SchemaError`,
whose message names the field by its path in the file (``datasets/shapes/n_images: expected an integer, got str
'x'``); ``to_dict()`` writes the fields in order, leaves out None fields (unless ``keep_none``) and keys an older
writer left out, and writes ``extra`` (the keys this version does not know) back unchanged.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from dataclasses import field
from typing import Any, NamedTuple, TypeVar

R = TypeVar("R", bound="Record")


class SchemaError(ValueError):
    """A value of the index that does not fit the schema; ``path`` is where (``datasets/x/n_images``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path or '(top level)'}: {problem}")
        self.path = path
        self.problem = problem


# ------------------------------------------------------------------------------------------- converters
# A converter checks one JSON value and returns the value the record holds: ``convert(value, path)``. Records
# are built by their own from_dict; mappings and lists by the converters below.

Converter = Callable[[Any, str], Any]


def _join(path: str, key: str) -> str:
    return f"{path}/{key}" if path else key


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SchemaError(path, f"expected an integer, got {_describe(value)}")
    return int(value)


def _float(value: Any, path: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SchemaError(path, f"expected a number, got {_describe(value)}")
    return value.item() if hasattr(value, "item") else value  # numpy scalars as Python numbers


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise SchemaError(path, f"expected a string, got {_describe(value)}")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool | numbers.Integral):
        raise SchemaError(path, f"expected true or false, got {_describe(value)}")
    return bool(value)


def _json(value: Any, path: str) -> Any:
    """Any JSON value, kept as it is (records of other files: the skipped files, FAISS parameters)."""
    return value


def _nullable(convert: Converter) -> Converter:
    def check(value: Any, path: str) -> Any:
        return None if value is None else convert(value, path)

    return check


def _mapping(convert: Converter, what: str = "mapping") -> Converter:
    """A JSON object with string keys; each value checked by ``convert``. ``what`` names it in errors."""

    def check(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            name = path.rsplit("/", 1)[-1] or "index"
            raise SchemaError(path, f"holds no {name!r} {what} (got {_describe(value)})")
        return {str(key): convert(item, _join(path, str(key))) for key, item in value.items()}

    return check


def _list(convert: Converter) -> Converter:
    def check(value: Any, path: str) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise SchemaError(path, f"expected a list, got {_describe(value)}")
        return [convert(item, f"{path}/{i}") for i, item in enumerate(value)]

    return check


def _interval(value: Any, path: str) -> list[float | None]:
    """A 95 % interval: ``[low, high]``, each a number or null (no finite bound)."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise SchemaError(path, f"expected an interval [low, high], got {_describe(value)}")
    return [_nullable(_float)(bound, f"{path}/{i}") for i, bound in enumerate(value)]


# Fast paths for the mappings an index holds thousands of (a summary and its intervals per metric of every layer):
# one type test per value, and the path of a value built only when it fails.
_NUMBERS = (int, float)


def _scores(value: Any, path: str) -> dict[str, float | None]:
    """A summary: score name -> mean over queries, or null where undefined."""
    if type(value) is dict and all(item is None or type(item) in _NUMBERS for item in value.values()):
        return dict(value)
    return _mapping(_nullable(_float), "mapping of scores")(value, path)


def _intervals(value: Any, path: str) -> dict[str, list[float | None]]:
    """Intervals of a summary: score name -> [low, high]."""
    if type(value) is dict and all(
        type(item) is list and len(item) == 2 and all(b is None or type(b) in _NUMBERS for b in item)
        for item in value.values()
    ):
        return {key: list(item) for key, item in value.items()}
    return _mapping(_interval, "mapping of intervals")(value, path)


def _record(cls: type[Record]) -> Converter:
    return lambda value, path: cls.from_dict(value, path)


def _spec(
    convert: Converter, *, required: bool = False, keep_none: bool = False, what: str | None = None, **kwargs: Any
) -> Any:
    """A record field read by ``convert``.

    required : absent from the file is an error (``what`` names it in the message).
    keep_none : written as ``null`` when None (the writer always wrote the key); else a None field is left out.
    """
    if not required and "default" not in kwargs and "default_factory" not in kwargs:
        kwargs["default"] = None
    return field(metadata={"convert": convert, "required": required, "keep_none": keep_none, "what": what}, **kwargs)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, dict):
        return {key: item if type(item) in _SCALARS else _dump(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [item if type(item) in _SCALARS else _dump(item) for item in value]
    return value


class Record:
    """Base of the index records: checked ``from_dict``, ``to_dict``, unknown keys kept in ``extra``."""

    # Each subclass is a dataclass that declares its fields with _spec and, last, ``extra``: the keys this version
    # does not know, written back unchanged. (The base is no dataclass, so a subclass may be frozen.)

    @classmethod
    def _fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if f.name != "extra"]

    @classmethod
    def _specs(cls) -> tuple[_FieldSpec, ...]:
        specs = _SPECS.get(cls)
        if specs is None:  # once per class: from_dict runs for every entry of a large index
            specs = _SPECS[cls] = tuple(
                _FieldSpec(
                    f.name,
                    f.metadata["convert"],
                    f.metadata["required"],
                    f.metadata["keep_none"],
                    f.metadata["what"],
                    _default_of(f),
                )
                for f in cls._fields()
            )
        return specs

    @classmethod
    def from_dict(cls: type[R], data: Any, path: str = "") -> R:
        """The record of one JSON object, checked; SchemaError names the first field that does not fit."""
        if not isinstance(data, dict):
            raise SchemaError(path, f"expected an object ({cls.__name__}), got {_describe(data)}")
        values: dict[str, Any] = {}
        absent = []
        for spec in cls._specs():
            name = spec.name
            if name not in data:
                if spec.required:
                    what = f" {spec.what}" if spec.what else ""
                    raise SchemaError(path, f"has no{what} ({name!r} is missing)")
                absent.append(name)
                continue
            value = data[name]
            if value is None:
                if spec.required:
                    raise SchemaError(_join(path, name), "is null, expected a value")
                values[name] = None
                continue
            values[name] = spec.convert(value, f"{path}/{name}" if path else name)
        extra = (
            {key: value for key, value in data.items() if key not in values and key not in absent}
            if len(data) > len(values)
            else {}
        )
        record = cls(**values, extra=extra)  # type: ignore[call-arg]
        record._check(path)
        if absent:  # keys an older writer left out are left out again (not written as null)
            record.__dict__["_absent"] = frozenset(absent)
        return record

    def _check(self, path: str) -> None:
        """Checks across fields or of ranges, after the types (a subclass's hook); raise SchemaError."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this record (plain dicts, lists and scalars), in field order, extra keys last."""
        out: dict[str, Any] = {}
        absent = self.__dict__.get("_absent", ())
        for spec in self._specs():
            value = getattr(self, spec.name)
            if value is None and not spec.keep_none:
                continue
            if absent and spec.name in absent and value == spec.default:
                continue
            out[spec.name] = _dump(value)
        if self.extra:
            out.update(self.extra)
        return out


class _FieldSpec(NamedTuple):
    name: str
    convert: Converter
    required: bool
    keep_none: bool
    what: str | None
    default: Any


_SPECS: dict[type, tuple[_FieldSpec, ...]] = {}


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def _extra() -> Any:
    return field(default_factory=dict, compare=True, repr=False)


__all__ = ["Converter", "Record", "SchemaError"]
