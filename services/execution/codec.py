"""The library's frozen dataclasses (the OMS's events, ``tradecore.oms.types`` values) as JSON,
and back: how they are journaled (``JournalEntry.oms``: the class name and this JSON).

Field values are encoded by their declared types: ``str``/``int``/``float``/``bool``,
``StrEnum`` members by value, ``X | None``, ``tuple[X, ...]`` and fixed tuples, ``frozenset``,
``dict[str, X]`` and nested dataclasses. Floats keep their exact value (JSON numbers written by
``repr``); NaN and infinities are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"``. Decoding checks every field against its type, so a record the service cannot
read is a ValueError naming the class and the field, never a half-built event.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable
from enum import Enum
from typing import Any

_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _float_out(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


#: Field names of each dataclass encoded so far (``dataclasses.fields`` once per class).
_FIELDS: dict[type, tuple[str, ...]] = {}


def _out(value: Any) -> Any:
    t = type(value)
    # the common cases first, by exact type (an event is mostly strings and numbers)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        return value if math.isfinite(value) else _float_out(value)
    names = _FIELDS.get(t)
    if names is not None:
        return {n: _out(getattr(value, n)) for n in names}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return _float_out(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELDS[t] = tuple(f.name for f in dataclasses.fields(value))
        return {n: _out(getattr(value, n)) for n in names}
    if isinstance(value, (tuple, list)):
        return [_out(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(_out(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _out(v) for k, v in value.items()}
    raise TypeError(f"cannot encode {type(value).__name__}")


class Codec:
    """Encodes and decodes the dataclasses it was given (by class name)."""

    def __init__(self, classes: Iterable[type]) -> None:
        self.classes: dict[str, type] = {}
        for cls in classes:
            if not dataclasses.is_dataclass(cls):
                raise TypeError(f"{cls.__name__} is not a dataclass")
            if cls.__name__ in self.classes:
                raise ValueError(f"two classes named {cls.__name__}")
            self.classes[cls.__name__] = cls
        self._hints: dict[type, dict[str, Any]] = {}

    def encode(self, obj: Any) -> tuple[str, bytes]:
        """(class name, JSON) of a dataclass this codec knows."""
        name = type(obj).__name__
        if self.classes.get(name) is not type(obj):
            raise TypeError(f"{name} is not a class of this codec")
        return name, json.dumps(_out(obj), separators=(",", ":"), allow_nan=False).encode()

    def decode(self, name: str, data: bytes) -> Any:
        cls = self.classes.get(name)
        if cls is None:
            raise ValueError(f"unknown journaled class {name!r}")
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise ValueError(f"{name}: not JSON ({exc})") from None
        return self._dataclass(cls, raw, name)

    def _type_hints(self, cls: type) -> dict[str, Any]:
        hints = self._hints.get(cls)
        if hints is None:
            hints = self._hints[cls] = typing.get_type_hints(cls)
        return hints

    def _dataclass(self, cls: type, raw: Any, where: str) -> Any:
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected an object")
        hints = self._type_hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in raw:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ValueError(f"{where}.{f.name}: missing")
                continue
            kwargs[f.name] = self._value(hints[f.name], raw[f.name], f"{where}.{f.name}")
        unknown = set(raw) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{where}: unknown fields {sorted(unknown)}")
        return cls(**kwargs)

    def _value(self, tp: Any, raw: Any, where: str) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            if raw is None and type(None) in args:
                return None
            rest = [a for a in args if a is not type(None)]
            if len(rest) == 1:
                return self._value(rest[0], raw, where)
            for a in rest:  # the first member that reads it
                try:
                    return self._value(a, raw, where)
                except ValueError:
                    continue
            raise ValueError(f"{where}: {raw!r} is none of {tp}")
        if tp is Any:
            return raw
        if isinstance(tp, type) and issubclass(tp, Enum):
            try:
                return tp(raw)
            except ValueError:
                raise ValueError(f"{where}: {raw!r} is not a {tp.__name__}") from None
        if tp is bool:
            if not isinstance(raw, bool):
                raise ValueError(f"{where}: expected a bool")
            return raw
        if tp is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise ValueError(f"{where}: expected an integer")
            return raw
        if tp is float:
            if isinstance(raw, str) and raw in _SPECIAL:
                return _SPECIAL[raw]
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                raise ValueError(f"{where}: expected a number")
            return float(raw)
        if tp is str:
            if not isinstance(raw, str):
                raise ValueError(f"{where}: expected a string")
            return raw
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self._dataclass(tp, raw, where)
        if origin is tuple:
            if not isinstance(raw, list):
                raise ValueError(f"{where}: expected a list")
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(self._value(args[0], v, f"{where}[{i}]") for i, v in enumerate(raw))
            if len(raw) != len(args):
                raise ValueError(f"{where}: expected {len(args)} items")
            return tuple(
                self._value(a, v, f"{where}[{i}]")
                for i, (a, v) in enumerate(zip(args, raw, strict=True))
            )
        if origin in (frozenset, set):
            if not isinstance(raw, list):
                raise ValueError(f"{where}: expected a list")
            return origin(self._value(args[0], v, f"{where}[{i}]") for i, v in enumerate(raw))
        if origin is dict:
            if not isinstance(raw, dict):
                raise ValueError(f"{where}: expected an object")
            return {k: self._value(args[1], v, f"{where}[{k!r}]") for k, v in raw.items()}
        raise ValueError(f"{where}: cannot decode a {tp}")


__all__ = ["Codec"]
