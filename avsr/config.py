"""Typed configuration: YAML files mapped onto kw_only dataclasses.

Every stage has one config dataclass. :func:`load_config` reads a YAML file (or
starts from the defaults), applies dotted command-line overrides such as
``train.lr=3e-4`` and checks every value against the dataclass field types. An
unknown key is an error naming the key and listing the valid ones. A file may name
another with ``base: other.yaml`` and hold only what differs from it; the config
written beside a stage's outputs is always the fully resolved one.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from avsr.io import atomic_write_text

T = TypeVar("T")

CONFIG_VERSION = 1

_FLOAT_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class ConfigError(ValueError):
    """A configuration value or key is invalid."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where lossless."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin is Union or (hasattr(types, "UnionType") and isinstance(tp, types.UnionType)):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} does not match {_type_name(tp)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {list(choices)}")
        return value
    if origin in (list, Sequence, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = get_args(tp) or (Any, Any)
        return {_convert(k, kt, where): _convert(v, vt, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ConfigError(f"{where}: expected a path, got {value!r}")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking keys and types."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields and k != "version"]
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown config key '{where}{unknown[0]}'; valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        if name == "version" and name not in fields:
            continue
        where = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _convert(value, hints[name], where)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required field
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from exc


def to_dict(obj: Any) -> Any:
    """Plain YAML-able data from a (nested) dataclass."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.path=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads "3e-4" as a string
    return key.split("."), value


def _section_type(tp: Any) -> Any:
    """``Section | None`` -> ``Section`` (an optional section can be set key by key); also
    ``Section | float`` (a section with a scalar shorthand)."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        sections = [a for a in args if dataclasses.is_dataclass(a) or get_origin(a) is dict]
        if len(sections) == 1:
            return sections[0]
    return tp


def apply_overrides(cls: type, data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply dotted overrides to ``data`` (a dict for ``cls``), validating key paths."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        tp: Any = cls
        for i, part in enumerate(path):
            tp = _section_type(tp)
            if get_origin(tp) is dict:  # free-form mapping (e.g. encoder overrides): any key
                for key in path[i:-1]:
                    child = node.get(key)
                    node[key] = child if isinstance(child, dict) else {}
                    node = node[key]
                node[path[-1]] = value
                break
            fields = {f.name: f for f in dataclasses.fields(tp)} if dataclasses.is_dataclass(tp) else None
            if fields is None or part not in fields:
                valid = ", ".join(sorted(fields)) if fields else "(none: not a section)"
                dotted = ".".join(path[: i + 1])
                raise ConfigError(f"unknown config key '{dotted}'; valid keys: {valid}")
            hints = typing.get_type_hints(tp)
            if i == len(path) - 1:
                node[part] = value
            else:
                tp = hints[part]
                child = node.get(part)
                if dataclasses.is_dataclass(child):
                    child = to_dict(child)
                if not isinstance(child, dict):
                    child = {}
                node[part] = child
                node = child
    return data


def _read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of one YAML file (empty file: ``{}``)."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return loaded


def _read_chain(path: Path, seen: tuple[Path, ...]) -> tuple[dict[str, Any], tuple[Path, ...]]:
    """(merged mapping, files read: ``path`` first, then its bases) of one config file."""
    files = (*seen, path)
    if path.resolve() in {p.resolve() for p in seen}:
        raise ConfigError("config files form a base cycle: " + " -> ".join(str(p) for p in files))
    data = _read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data, (path,)
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: base must be a path relative to the file, got {base!r}")
    base_data, base_files = _read_chain(path.parent / base, files)
    return _deep_merge(base_data, data), (path, *base_files)


def read_config_file(path: str | Path) -> tuple[dict[str, Any], tuple[Path, ...]]:
    """The mapping of a YAML config file, with its ``base:`` chain merged in.

    ``base: other.yaml`` (a path relative to the file) is read first and this file's keys
    are deep-merged over it: mappings key by key, any other value (lists included)
    replaced. A base may have a base; a cycle is an error naming the files. Returns the
    mapping and the files read (``path`` first, then its bases).
    """
    return _read_chain(Path(path), ())


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Defaults of ``cls``, updated by the YAML file at ``path`` (and its ``base:`` chain),
    then by ``overrides``."""
    data: dict[str, Any] = {}
    origin = "overrides"
    if path is not None:
        data, files = read_config_file(path)
        origin = str(files[0]) + "".join(f" (base {f})" for f in files[1:])
    try:
        base = to_dict(from_dict(cls, data, prefix=""))
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from exc
    merged = apply_overrides(cls, _deep_merge(base, data), overrides)
    try:
        return from_dict(cls, merged)
    except ConfigError as exc:
        where = f"{origin} + overrides" if path is not None else origin
        raise ConfigError(f"{where}: {exc}") from exc


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``update``: mappings merged key by key, other values replaced."""
    out = dict(base)
    for k, v in update.items():
        if k == "version":
            continue
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def dump_config(obj: Any) -> str:
    """YAML text of a config, with a version field first."""
    data = {"version": CONFIG_VERSION, **to_dict(obj)}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def save_config(obj: Any, path: str | Path) -> Path:
    """Write the resolved config (atomically) so every output says how it was made."""
    path = Path(path)
    atomic_write_text(path, dump_config(obj))
    return path
