"""Loading a Clair config: file, drop-ins, `CLAIR_` environment overrides, then validation.

Environment overrides: `CLAIR_<KEY>__<KEY>...=<value>` sets the nested key (names lowercased),
e.g. `CLAIR_MATCHER__PERIOD=30m`, `CLAIR_LOG_LEVEL=debug`,
`CLAIR_MATCHERS__CONFIG__RHEL__IGNORE_UNPATCHED=true`. Values are read as YAML scalars (so
`true`, `42` and `[a, b]` work) except where the schema wants a string, which is taken verbatim;
a list-of-strings key also takes `a,b,c`. `CLAIR_CONF` and `CLAIR_MODE` name the file and mode
and are never overrides; a variable without `__` whose name is not a top-level key (`CLAIR_API`,
`CLAIR_TEST_DATA`, ...) belongs to something else and is ignored.
"""

from __future__ import annotations

import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from clair_common.config.documents import merged_document, parse_yaml_scalar
from clair_common.config.errors import ConfigError
from clair_common.config.models import Config
from clair_common.config.removed import strip_removed_keys

__all__ = [
    "apply_env_overrides",
    "default_config",
    "dump_config",
    "load_config",
    "validate_document",
]

_NOT_OVERRIDES = frozenset({"CLAIR_CONF", "CLAIR_MODE"})
# Older spellings kept for deployments that set them (the chart, `make up`); the full name wins.
_ALIASES = {"CLAIR_LAYER_CACHE": "CLAIR_INDEXER__LAYER_CACHE_DIR"}
_PREFIX = "CLAIR_"
KeyPath = tuple[str, ...]


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap_optional(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return _unwrap_optional(rest[0])
    return annotation


def _schema_kind(path: KeyPath) -> Literal["string", "string-list", "other"]:
    """What the schema expects at `path`, to decide how to read an environment value."""
    model: type[BaseModel] = Config
    annotation: Any = None
    for depth, key in enumerate(path):
        field = model.model_fields.get(key)
        if field is None:
            return "other"
        annotation = _unwrap_optional(field.annotation)
        if depth == len(path) - 1:
            break
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return "other"  # Free-form object: no schema below here.
        model = annotation
    if annotation is str:
        return "string"
    if typing.get_origin(annotation) is Literal and all(
        isinstance(arg, str) for arg in typing.get_args(annotation)
    ):
        return "string"
    if typing.get_origin(annotation) is list and typing.get_args(annotation) == (str,):
        return "string-list"
    return "other"


def _env_value(path: KeyPath, text: str) -> Any:
    kind = _schema_kind(path)
    if kind == "string" or text == "":
        return text if kind != "string-list" else []
    value = parse_yaml_scalar(text)
    if kind == "string-list" and isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def apply_env_overrides(
    doc: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[KeyPath, str]]:
    """Apply `CLAIR_` overrides to a merged document.

    Returns the new document and, for error messages, which variable set which key path.
    """
    result: dict[str, Any] = json.loads(json.dumps(doc))  # deep copy of a JSON document
    sources: dict[KeyPath, str] = {}
    problems: list[str] = []
    # Sorted so that CLAIR_INDEXER (a whole section) applies before CLAIR_INDEXER__CONNSTRING.
    for name in sorted(environ):
        if not name.startswith(_PREFIX) or name in _NOT_OVERRIDES:
            continue
        canonical = _ALIASES.get(name, name)
        if canonical != name and canonical in environ:
            continue
        path: KeyPath = tuple(part.lower() for part in canonical[len(_PREFIX) :].split("__"))
        if len(path) == 1 and path[0] not in Config.model_fields:
            continue
        if not all(path):
            problems.append(f"{name}: malformed override name (empty key between '__')")
            continue
        node = result
        for depth, key in enumerate(path[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                problems.append(f"{name}: cannot set {'.'.join(path)}: {where} is not an object")
                break
            node = child
        else:
            node[path[-1]] = _env_value(path, environ[name])
            sources[path] = name
    if problems:
        raise ConfigError(problems)
    return result, sources


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "clair_config":
        return str(error["msg"])
    if kind in ("string_too_short", "too_short") and error.get("ctx", {}).get("min_length") == 1:
        return "must not be empty"
    return f"{error['msg']} (got {_short(error.get('input'))})"


def _env_source(loc: tuple[int | str, ...], sources: Mapping[KeyPath, str]) -> str | None:
    keys = tuple(str(part) for part in loc)
    for depth in range(len(keys), 0, -1):
        if keys[:depth] in sources:
            return sources[keys[:depth]]
    return None


def validate_document(
    doc: Mapping[str, Any], source: str, env_sources: Mapping[KeyPath, str] | None = None
) -> Config:
    """Validate a merged document; every problem becomes one line of the ConfigError.

    Keys earlier Clair releases knew (removed.py) are dropped first and kept as warnings
    (`Config.removed_keys`, reported by `lint_config`)."""
    doc, removed = strip_removed_keys(doc)
    try:
        cfg = Config.model_validate(doc)
        cfg.note_removed_keys(removed)
        return cfg
    except ValidationError as err:
        problems = []
        for error in err.errors(include_url=False):
            loc = tuple(error["loc"])
            line = f"{source}: "
            if loc:
                line += f"{_key_path(loc)}: "
            line += _describe(error)
            variable = _env_source(loc, env_sources or {})
            if variable is not None:
                line += f" (from {variable})"
            problems.append(line)
        raise ConfigError(problems) from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load, merge, override and validate a Clair config file.

    `environ` defaults to `os.environ`; pass `{}` to ignore the environment.
    """
    doc = merged_document(path)
    env = os.environ if environ is None else environ
    doc, sources = apply_env_overrides(doc, env)
    return validate_document(doc, str(path), sources)


def default_config(environ: Mapping[str, str] | None = None) -> Config:
    """All defaults (no file), with `CLAIR_` overrides from `environ` when given."""
    if environ is None:
        return Config()
    doc, sources = apply_env_overrides({}, environ)
    return validate_document(doc, "environment", sources)


def dump_config(cfg: BaseModel | Mapping[str, Any], fmt: str = "yaml") -> str:
    """Serialise a config as YAML or JSON ("yaml" or "json").

    A validated model is printed with defaults applied; a plain document (such as
    `merged_document`'s, which `clairctl check-config` prints) is printed as it is.
    """
    if isinstance(cfg, BaseModel):
        data: Any = cfg.model_dump(mode="json", exclude_none=True)
    else:
        data = json.loads(json.dumps(cfg))
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    raise ValueError(f"unknown format {fmt!r}: want yaml or json")
