"""Reading config files and drop-ins into plain JSON values, the way `clair/cmd/config.go` does.

Clair converts YAML to JSON with Go's yaml.v3, which follows the YAML 1.2 core schema: `yes`,
`on` and `off` are strings, `010` is ten and there are no sexagesimal numbers or timestamps.
PyYAML implements YAML 1.1, so the scalar resolvers are replaced to match.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from clair_common.config.errors import ConfigError
from clair_common.config.jsonpatch import PatchError, apply_json_patch, merge_patch

__all__ = ["SUPPORTED_EXTENSIONS", "load_json_value", "merged_document", "parse_yaml_scalar"]

SUPPORTED_EXTENSIONS = (".yaml", ".json")

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _CoreSchemaLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema booleans and numbers, and no timestamps."""


_CoreSchemaLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CoreSchemaLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_CoreSchemaLoader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_CoreSchemaLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    if digits.startswith("0o"):
        return sign * int(digits[2:], 8)
    return sign * int(digits, 10)


_CoreSchemaLoader.add_constructor(_INT, _construct_int)


def _to_json_value(value: Any, where: str) -> Any:
    """Check a decoded YAML value is representable as JSON, as Clair's conversion requires."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"non-string key {key!r} in {where or 'document'}")
            out[key] = _to_json_value(item, f"{where}.{key}" if where else key)
        return out
    if isinstance(value, list):
        return [_to_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value} cannot be represented in JSON")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"{where}: unsupported YAML value of type {type(value).__name__}")


def parse_yaml_scalar(text: str) -> Any:
    """Parse one environment value as YAML (booleans, numbers, flow lists); else the text."""
    try:
        value = yaml.load(text, Loader=_CoreSchemaLoader)
        return _to_json_value(value, "")
    except (yaml.YAMLError, ValueError):
        return text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_json_value(path: Path) -> Any:
    """Read a config file or drop-in as a JSON value, checking the shape its extension implies."""
    suffix = path.suffix
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        if suffix in (".json", ".json-patch"):
            value = json.loads(raw, parse_constant=_reject_constant)
        else:
            value = _to_json_value(yaml.load(raw, Loader=_CoreSchemaLoader), "")
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{path}: malformed YAML: {where}{err.problem}") from None
    except (yaml.YAMLError, ValueError) as err:
        raise ConfigError(f"{path}: malformed file: {err}") from None
    if suffix.endswith("-patch"):
        if not isinstance(value, list):
            raise ConfigError(f"{path}: not a patch document (want an array of operations)")
        return value
    if value is None and suffix == ".yaml":
        return {}  # An empty YAML file is an empty config, as in Clair.
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: not a config document (want a mapping of keys)")
    return value


def merged_document(path: str | Path) -> dict[str, Any]:
    """The config file with its `<file>.d/` drop-ins applied, before defaults or env overrides.

    Drop-ins with the file's extension are merge-patched (RFC 7386) and ones with the extension
    plus `-patch` applied as JSON patches (RFC 6902), all in lexical order; other files and
    subdirectories are ignored. Every broken drop-in is reported, not just the first.
    """
    path = Path(path)
    ext = path.suffix
    if ext not in SUPPORTED_EXTENSIONS:
        shown = ext or "(none)"
        raise ConfigError(f'{path}: unknown config kind "{shown}": use .yaml or .json')
    doc: Any = load_json_value(path)
    problems: list[str] = []
    dropins = Path(f"{path}.d")
    entries = sorted(dropins.iterdir(), key=lambda p: p.name) if dropins.is_dir() else []
    for entry in entries:
        if entry.is_dir() or entry.suffix not in (ext, ext + "-patch"):
            continue
        try:
            fragment = load_json_value(entry)
        except ConfigError as err:
            problems.extend(err.problems)
            continue
        if entry.suffix == ext:
            doc = merge_patch(doc, fragment)
            continue
        try:
            patched = apply_json_patch(doc, fragment)
        except PatchError as err:
            problems.append(f"{entry}: cannot apply patch: {err}")
            continue
        if not isinstance(patched, dict):
            problems.append(f"{entry}: patch leaves a document that is not a mapping")
            continue
        doc = patched
    if problems:
        raise ConfigError(problems)
    return dict(doc)
