"""Typed configuration: dataclasses loaded from YAML plus ``key=value`` overrides.

A config is a tree of frozen-free ``@dataclass`` objects with type-annotated fields. Values come
from three layers, later ones winning: the dataclass defaults, an optional YAML file, and
command-line overrides with dotted paths (``data.window_s=2.5``). Every key and value is
validated before any work starts: an unknown key fails with the closest valid key suggested, a
value of the wrong type fails naming the key, the expected type and the value given.

Supported field types: ``bool``, ``int``, ``float`` (ints accepted), ``str``, ``Path``,
``Literal[...]``, ``X | None``, ``tuple[T, ...]``, ``tuple[A, B]``, ``list[T]``, ``dict[str, T]``
and nested dataclasses; a section declared with :func:`embedded` keeps its keys at its parent's
level (shared sections without inheritance).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from thermact.errors import ConfigError
from thermact.io import write_text_atomic

T = TypeVar("T")


def _suggest(key: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(candidates))}"


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it converted (e.g. list→tuple)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    bad = ConfigError(
        f"config key {key!r}: expected {_type_name(tp)}, got {value!r} ({type(value).__name__})"
    )

    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise bad
        return _build(tp, value, prefix=key + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors: list[ConfigError] = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(err)
        raise bad
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(
            f"config key {key!r}: {value!r} is not one of {', '.join(repr(a) for a in args)}"
            + _suggest(str(value), [str(a) for a in args])
        )
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise bad
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise bad
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"config key {key!r}: expected {len(args)} values, got {len(value)}")
            items = [_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))]
        else:
            item_tp = args[0] if args else Any
            items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise bad
        key_tp, val_tp = args if args else (Any, Any)
        return {_coerce(k, key_tp, f"{key} key"): _coerce(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    raise ConfigError(f"config key {key!r}: unsupported annotation {tp!r}")  # programming error


def embedded(factory: Callable[[], T]) -> T:
    """A dataclass field holding a section whose keys sit at the *parent's* level.

    ``run: RunSection = embedded(RunSection)`` lets two configs share one section (one definition
    of ``run_dir``, ``seed``, ...) while their YAML files and command lines keep writing
    ``run_dir=...``, not ``run.run_dir=...``. ``factory`` gives the section's defaults.
    """
    field: T = dataclasses.field(default_factory=factory, metadata={"embedded": True})
    return field


def _is_embedded(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get("embedded"))


def _embedded_default(f: dataclasses.Field[Any]) -> Any:
    factory = f.default_factory
    assert factory is not dataclasses.MISSING, f"embedded field {f.name!r} needs a default factory"
    return factory()


def _build(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config section {prefix.rstrip('.') or '<root>'!r} must be a mapping, got {data!r}"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    owner: dict[str, str] = {}  # key at this level -> the embedded field holding it ("" = own field)
    for name, f in fields.items():
        if _is_embedded(f):
            owner.update({sub.name: name for sub in dataclasses.fields(hints[name]) if sub.init})
        else:
            owner[name] = ""
    for key in data:
        if key not in owner:
            raise ConfigError(f"unknown config key {prefix + str(key)!r}" + _suggest(str(key), list(owner)))
    kwargs = {
        name: _coerce(data[name], hints[name], prefix + name)
        for name, f in fields.items()
        if name in data and not _is_embedded(f)
    }
    for name, f in fields.items():
        if _is_embedded(f):
            given = {k: v for k, v in data.items() if owner.get(k) == name}
            defaults = config_to_dict(_embedded_default(f))
            kwargs[name] = _build(hints[name], {**defaults, **given}, prefix)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config section {prefix.rstrip('.') or '<root>'!r}: {err}") from err
    return obj


def merge_trees(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``update`` merged into ``base`` recursively (mappings merge, other values replace)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_trees(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[1, 2]"]`` into ``{"a": {"b": 1}, "c": [1, 2]}``.

    Values are parsed as YAML scalars/flow collections, so ``1`` is an int, ``1.5`` a float,
    ``true`` a bool, ``null`` None and ``[1,2]`` a list; anything else stays a string.
    """
    tree: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier override of {part!r}")
            node = child
        node[parts[-1]] = value
    return tree


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` with errors that name the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping at the top level")
    return data


def build_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> T:
    """Build a validated config of dataclass ``cls`` from defaults, a YAML file and overrides."""
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    extra = parse_overrides(overrides) if not isinstance(overrides, Mapping) else dict(overrides)
    return _build(cls, merge_trees(data, extra))


def build_options(cls: type[T], key: str, target: str | None, overrides: Sequence[str]) -> T:
    """Options ``cls`` from ``key=value`` overrides, a positional ``target`` standing for ``key=target``.

    Giving both with different values is a :class:`ConfigError`.
    """
    tree = parse_overrides(overrides)
    if target is not None:
        given = tree.get(key)
        if given is not None and str(given) != target:
            raise ConfigError(f"two values for {key!r} given: {target!r} and {key}={given!r}")
        tree[key] = target
    return _build(cls, tree)


def config_from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Validate a plain mapping (e.g. from a checkpoint) into dataclass ``cls``."""
    return _build(cls, data)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-types view of a config dataclass (tuples→lists, Paths→str), safe for YAML/JSON."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out: dict[str, Any] = {}
            for f in dataclasses.fields(value):
                item = plain(getattr(value, f.name))
                out.update(item if _is_embedded(f) else {f.name: item})
            return out
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    result = plain(cfg)
    assert isinstance(result, dict)
    return result


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    write_text_atomic(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
