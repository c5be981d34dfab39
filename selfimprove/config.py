"""Typed config from TOML: frozen dataclasses filled from dicts, with unknown keys and bad types named.

Every component owns a frozen dataclass of its settings (with commented defaults); recipes and run
configs are TOML tables mapped onto them by `from_mapping`, which rejects keys that don't exist and
values of the wrong type, naming the key and where it came from. Nothing is `exec`'d.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

T = TypeVar("T")


def parse_toml(text: str, *, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{where}: invalid TOML: {err}") from None


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    return parse_toml(path.read_text(encoding="utf-8"), where=str(path))


def _check_value(value: Any, annotation: Any, key: str) -> Any:
    """`value` converted to `annotation` (int -> float and list -> tuple only); TypeError naming `key`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check_value(value, arg, key)
            except TypeError as err:
                errors.append(str(err))
        raise TypeError(errors[0])
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise TypeError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_value(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise TypeError(f"{key}: expected {len(args)} items, got {len(value)}")
        return tuple(
            _check_value(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if annotation in (str, bool):
        if not isinstance(value, annotation):
            raise TypeError(f"{key}: expected {annotation.__name__}, got {type(value).__name__} {value!r}")
        return value
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise TypeError(f"{key}: expected a table, got {type(value).__name__} {value!r}")
        return from_mapping(annotation, value, where=key)
    return value


def from_mapping(cls: type[T], data: dict[str, Any], *, where: str) -> T:
    """Build dataclass `cls` from `data`; `where` prefixes error messages (a file name or a table name).

    Unknown keys raise ValueError listing the allowed ones; wrong types raise TypeError naming the key;
    the dataclass's own `__post_init__` validates values.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {key: _check_value(value, hints[key], f"{where}.{key}") for key, value in data.items()}
    try:
        return cls(**values)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def to_mapping(obj: Any) -> dict[str, Any]:
    """A dataclass as a TOML-ready dict (tuples as lists, None values dropped since TOML has no null)."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {k: convert(v) for k, v in dataclasses.asdict(value).items() if v is not None}
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items() if v is not None}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        return value

    return convert(obj)


def dump_toml(data: dict[str, Any]) -> str:
    """Write a nested dict of scalars, lists and tables as TOML (enough for resolved configs)."""

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return repr(value)
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        if isinstance(value, list | tuple):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        raise TypeError(f"cannot write {type(value).__name__} to TOML")

    def table(prefix: str, data: dict[str, Any]) -> list[str]:
        lines = [f"{k} = {scalar(v)}" for k, v in data.items() if not isinstance(v, dict)]
        for k, v in data.items():
            if isinstance(v, dict):
                name = f"{prefix}.{k}" if prefix else k
                lines += ["", f"[{name}]", *table(name, v)]
        return lines

    return "\n".join(table("", data)).lstrip("\n") + "\n"
