"""Loading a Clair config: file, drop-ins, `CLAIR_` environment overrides, then validation.

The file and its drop-ins become one document (documents.py); `Config`, a pydantic-settings
class, lays the environment (environment.py) over it. Every problem is reported as one line
naming the file (or variable) and the key path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from clair_common.config.documents import merged_document
from clair_common.config.environment import KeyPath, LoadRequest, loading
from clair_common.config.errors import ConfigError
from clair_common.config.models import Config

__all__ = [
    "default_config",
    "dump_config",
    "load_config",
    "validate_document",
]


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
    # A key only variables gave (an unknown section): the first variable below it.
    below = sorted(path for path in sources if path[: len(keys)] == keys)
    return sources[below[0]] if keys and below else None


def _problems(err: ValidationError, source: str, origins: Mapping[KeyPath, str]) -> ConfigError:
    problems = []
    for error in err.errors(include_url=False):
        loc = tuple(error["loc"])
        line = f"{source}: "
        if loc:
            line += f"{_key_path(loc)}: "
        line += _describe(error)
        variable = _env_source(loc, origins)
        if variable is not None:
            line += f" (from {variable})"
        problems.append(line)
    return ConfigError(problems)


def validate_document(doc: Mapping[str, Any], source: str) -> Config:
    """Validate a merged document alone (no environment); every problem becomes one line of the
    ConfigError. Keys earlier Clair releases knew are dropped and kept as warnings
    (`Config.removed_keys`, reported by `lint_config`)."""
    try:
        return Config.model_validate(doc)
    except ValidationError as err:
        raise _problems(err, source, {}) from None


def _settings(doc: Mapping[str, Any], source: str, environ: Mapping[str, str]) -> Config:
    with loading(LoadRequest(doc, environ)) as request:
        try:
            return Config(**doc)
        except ValidationError as err:
            raise _problems(err, source, request.origins) from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load, merge, override and validate a Clair config file.

    `environ` defaults to `os.environ`; pass `{}` to ignore the environment.
    """
    doc = merged_document(path)
    return _settings(doc, str(path), os.environ if environ is None else environ)


def default_config(environ: Mapping[str, str] | None = None) -> Config:
    """All defaults (no file), with `CLAIR_` overrides from `environ` when given."""
    if environ is None:
        return Config.model_validate({})
    return _settings({}, "environment", environ)


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
