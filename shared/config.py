"""Load a run config (YAML), validate it against the schemas, fill defaults.

Schemas are data: ``shared/schema.yaml`` holds the global keys and every
``stages/<name>/schema.yaml`` holds the section of that stage.  A schema leaf
is a mapping with a ``type`` key::

    n_train: {type: int, min: 1, default: 400, help: "training images"}
    source:  {type: str, choices: [synthetic, wider], default: synthetic}
    gamma:   {type: list, items: float, length: 2, default: [2.0, 2.4]}
    root:    {type: str, nullable: true, default: null}

A config file may start from another with ``_base_: other.yaml`` (relative to
the file), as in mmdet configs; its mappings are merged key by key.

Every error is a :class:`ConfigError` naming the file, the line and the dotted
key, e.g. ``configs/demo.yaml:12: dataset.splits.trian: unknown key (did you
mean 'train'?)``.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from shared.errors import ExpectedError

REPO = Path(__file__).resolve().parent.parent
LEAF_TYPES = {"int", "float", "str", "bool", "list", "dict"}


class ConfigError(ExpectedError, ValueError):
    """A config (or schema) problem, with file, line and key in the message."""


# ----------------------------------------------------------------- YAML with lines
def _read_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    """Return (data, {key path tuple: line number}) for a YAML file."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    lines: dict[tuple, int] = {}

    def walk(n, prefix):
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = prefix + (str(k.value),)
                lines[key] = k.start_mark.line + 1
                walk(v, key)

    walk(node, ())
    return ({} if data is None else data), lines


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _load_with_bases(path: Path, seen=()) -> tuple[dict, dict[tuple, str]]:
    """Data merged over its _base_ chain, and {key path: 'file:line'}."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: _base_ cycle ({' -> '.join(map(str, seen + (path,)))})")
    data, lines = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{_rel(path)}:1: top level must be a mapping, got {type(data).__name__}")
    where = {k: f"{_rel(path)}:{n}" for k, n in lines.items()}
    base_name = data.pop("_base_", None)
    if base_name is None:
        return data, where
    if not isinstance(base_name, str):
        raise ConfigError(f"{where[('_base_',)]}: _base_ must be a file name")
    base_data, base_where = _load_with_bases(path.parent / base_name, seen + (path,))
    base_where.update(where)
    return _merge(base_data, data), base_where


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------- schemas
def is_leaf(spec: Any) -> bool:
    return isinstance(spec, dict) and isinstance(spec.get("type"), str) and spec["type"] in LEAF_TYPES


def stage_names() -> list[str]:
    return sorted(p.parent.name for p in (REPO / "stages").glob("*/schema.yaml"))


def load_schema() -> dict:
    """The full schema: globals plus one section per stage that has a schema."""
    schema, _ = _read_yaml(REPO / "shared" / "schema.yaml")
    for name in stage_names():
        section, _ = _read_yaml(REPO / "stages" / name / "schema.yaml")
        schema[name.replace("-", "_")] = section
    return schema


def defaults(schema: dict) -> dict:
    return {k: (copy.deepcopy(s["default"]) if is_leaf(s) else defaults(s)) for k, s in schema.items()}


_PY = {"int": int, "float": (int, float), "str": str, "bool": bool, "list": list, "dict": dict}


def _check_leaf(value, spec, key, where):
    t = spec["type"]
    if value is None:
        if spec.get("nullable"):
            return None
        raise ConfigError(f"{where}: {key}: must be {t}, got null")
    if isinstance(value, bool) and t in ("int", "float"):
        raise ConfigError(f"{where}: {key}: must be {t}, got bool ({value})")
    if not isinstance(value, _PY[t]):
        raise ConfigError(f"{where}: {key}: must be {t}, got {type(value).__name__} ({value!r})")
    if t == "float":
        value = float(value)
    if "choices" in spec and t != "list" and value not in spec["choices"]:
        raise ConfigError(f"{where}: {key}: {value!r} is not one of {spec['choices']}")
    if t in ("int", "float"):
        if "min" in spec and value < spec["min"]:
            raise ConfigError(f"{where}: {key}: {value} is below the minimum {spec['min']}")
        if "max" in spec and value > spec["max"]:
            raise ConfigError(f"{where}: {key}: {value} is above the maximum {spec['max']}")
    if t == "list":
        if "length" in spec and len(value) != spec["length"]:
            raise ConfigError(f"{where}: {key}: needs {spec['length']} items, got {len(value)}")
        if "items" in spec:
            item = {"type": spec["items"], **{k: spec[k] for k in ("choices",) if k in spec}}
            value = [_check_leaf(v, item, f"{key}[{i}]", where) for i, v in enumerate(value)]
    return value


def validate(data: dict, schema: dict, where: dict[tuple, str], source: str, prefix=()) -> dict:
    """Check ``data`` against ``schema``; return it with defaults filled in."""
    out = {}
    for k, v in data.items():
        key = prefix + (str(k),)
        dotted = ".".join(key)
        loc = where.get(key, source)
        if k not in schema:
            hint = difflib.get_close_matches(str(k), [str(s) for s in schema], n=1)
            tip = f" (did you mean '{hint[0]}'?)" if hint else f" (known: {', '.join(map(str, schema))})"
            raise ConfigError(f"{loc}: {dotted}: unknown key{tip}")
        spec = schema[k]
        if is_leaf(spec):
            out[k] = _check_leaf(v, spec, dotted, loc)
        elif not isinstance(v, dict):
            raise ConfigError(f"{loc}: {dotted}: must be a mapping of {sorted(spec)}, got {type(v).__name__}")
        else:
            out[k] = validate(v, spec, where, source, key)
    for k, spec in schema.items():
        if k not in out:
            out[k] = copy.deepcopy(spec["default"]) if is_leaf(spec) else validate({}, spec, where, source, prefix + (k,))
    return out


def _absent_sections() -> set[str]:
    """Stages in stages/pipeline.yaml whose schema is not in this tree.

    A stage image carries only its own stage folder, so the sections of the
    other stages pass through unchecked there; the host, which has every
    schema, has validated them before the stage starts.
    """
    dag = yaml.safe_load((REPO / "stages" / "pipeline.yaml").read_text()) or {}
    have = set(stage_names())
    return {n.replace("-", "_") for n in dag if n not in have}


def load_config(path: str | Path) -> dict:
    """Load, merge ``_base_`` files, validate and fill defaults. Raises ConfigError."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    data, where = _load_with_bases(path)
    source = data.pop("_source", None) or _rel(path)
    passthrough = {k: data.pop(k) for k in _absent_sections() if k in data}
    cfg = validate(data, load_schema(), where, _rel(path))
    cfg.update(passthrough)
    cfg["_source"] = source
    return cfg


# ----------------------------------------------------------------- hashing
def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def sha256_of(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def section(cfg: dict, stage: str, extra: tuple[str, ...] = ()) -> dict:
    """What of the config a stage depends on: its own section, the seed, and the
    shared sections it declares in stages/pipeline.yaml (``sections: [eval]``)."""
    out = {"seed": cfg["seed"], stage: cfg.get(stage.replace("-", "_"), {})}
    out.update({k: cfg[k] for k in extra})
    return out
