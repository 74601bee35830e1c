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

import ast
import dataclasses
import difflib
import inspect
import itertools
import math
import textwrap
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


def check_number(
    name: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ``ValueError("<name>: must be ...")`` unless ``value`` is finite and within the bounds
    (``low_open`` / ``high_open``: the bound itself excluded). For ``__post_init__`` of config
    sections: :func:`build_config` reports it as ``config key '<section>.<name>': must be ...``."""
    bad = not math.isfinite(value)
    bad = bad or (low is not None and (value <= low if low_open else value < low))
    bad = bad or (high is not None and (value >= high if high_open else value > high))
    if not bad:
        return
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    raise ValueError(f"{name}: must be a finite number {' and '.join(parts)}".rstrip() + f", got {value!r}")


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
        name, sep, rest = str(err).partition(": ")
        # "<field>: message" from check_number and the like, or "<section>.<key>: message" from a
        # check across sections (e.g. a run config refusing one augment key)
        if sep and (name in owner or name.partition(".")[0] in fields):
            raise ConfigError(f"config key {prefix + name!r}: {rest}") from err
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping (plain YAML keeps the last
    silently, which would drop a whole section written twice)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line: what is wrong and where (PyYAML's own text spans several lines)."""
    if isinstance(err, yaml.MarkedYAMLError):
        problem = err.problem or err.context or "syntax error"
        mark = err.problem_mark or err.context_mark
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem
    return " ".join(str(err).split())


PRESETS_DIR = Path(__file__).resolve().parent / "configs"
"""The run configs shipped with the package (``config=NAME`` names one of them)."""


def preset_names() -> list[str]:
    """Names of the shipped presets (``thermal_net_live``, ``person_detector``, ...)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def find_config(spec: str | Path) -> Path:
    """The YAML file ``spec`` names: an existing file, else a shipped preset by name (``.yaml``
    optional); a :class:`ConfigError` with a did-you-mean otherwise."""
    path = Path(spec)
    if path.is_file():
        return path
    name = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    if name in preset_names() and (str(spec) == name or str(spec) == path.name or not path.parent.exists()):
        return PRESETS_DIR / f"{name}.yaml"
    if path.exists():
        raise ConfigError(f"config file {str(path)!r} is not a file")
    hint = _suggest(name, preset_names()).replace("valid keys", "presets")
    if path.parent != Path(".") and path.parent.exists():
        raise ConfigError(f"config file {str(path)!r} does not exist{hint}")
    raise ConfigError(f"config {str(spec)!r} is neither a file nor a shipped preset{hint}")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` with errors that name the file (missing, unreadable, not
    UTF-8, not YAML, a key written twice, not a mapping)."""
    p = find_config(path)
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file {str(p)!r} is not UTF-8 text: {err.reason} at byte {err.start}"
        ) from err
    except OSError as err:
        raise ConfigError(f"config file {str(p)!r} cannot be read: {err.strerror or err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {_yaml_problem(err)}") from err
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


@dataclasses.dataclass(frozen=True)
class KeyHelp:
    """One config key as ``--help`` lists it."""

    key: str
    type: str
    default: str
    doc: str


def field_docs(cls: type[Any]) -> dict[str, str]:
    """The documentation of each field of a dataclass, first sentence: its attribute docstring (the
    string literal right after the field), else its entry in the class docstring's ``Attributes:``
    section; empty when the source cannot be read."""
    docs = _attributes_section(inspect.getdoc(cls) or "")
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return docs
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, nxt in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.strip().split("\n\n")[0].split())
    return docs


def _attributes_section(doc: str) -> dict[str, str]:
    """``name: text`` entries of a Google-style ``Attributes:`` section (continuation lines joined)."""
    out: dict[str, str] = {}
    inside, current = False, ""
    for line in doc.splitlines():
        if line.strip() in ("Attributes:", "Args:"):
            inside, current = True, ""
            continue
        if inside and line and not line.startswith(" "):
            inside = False
        if not inside or not line.strip():
            continue
        name, sep, text = line.strip().partition(": ")
        if sep and line.startswith("    ") and not line.startswith("        ") and name.isidentifier():
            current = name
            out[name] = text.strip()
        elif current:
            out[current] += " " + line.strip()
    return out


def _help_type(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return "|".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        names = [_help_type(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin in (tuple, list):
        inner = [_help_type(a) for a in args if a is not Ellipsis]
        return f"[{', '.join(inner)}{', ...' if Ellipsis in args else ''}]"
    if origin is dict:
        return "mapping"
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _help_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_help_value(v) for v in value) + "]"
    return str(value)


def _field_default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def describe_config(cls: type[Any], defaults: Any | None = None, prefix: str = "") -> list[KeyHelp]:
    """Every key of config dataclass ``cls`` (nested sections as dotted keys, embedded sections at
    their parent's level) with its type, its default (the fields' defaults, or the values of
    ``defaults``, e.g. a preset) and the first line of its attribute docstring: what
    ``thermact CMD --help`` prints."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    out: list[KeyHelp] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        value = getattr(defaults, f.name) if defaults is not None else _field_default(f)
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            out += describe_config(tp, value, prefix if _is_embedded(f) else f"{prefix}{f.name}.")
            continue
        shown = "(required)" if value is dataclasses.MISSING or value == "" else _help_value(value)
        out.append(KeyHelp(prefix + f.name, _help_type(tp), shown, docs.get(f.name, "")))
    return out


def format_keys(keys: Sequence[KeyHelp]) -> str:
    """``keys`` as an aligned table: key, type, default, meaning (reST ````code```` marks dropped);
    a cell wider than its column pushes the rest of its line to the right."""
    kw = min(34, max((len(k.key) for k in keys), default=0))
    tw = min(18, max((len(k.type) for k in keys), default=0))
    dw = min(14, max((len(k.default) for k in keys), default=0))
    lines = []
    for k in keys:
        doc = k.doc.replace("``", "")
        lines.append(f"  {k.key:<{kw}}  {k.type:<{tw}}  {k.default:<{dw}}  {doc}".rstrip())
    return "\n".join(lines)


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
