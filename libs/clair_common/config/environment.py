"""`CLAIR_<KEY>__<KEY>...` environment overrides, read through pydantic-settings.

`CLAIR_MATCHER__PERIOD=30m`, `CLAIR_LOG_LEVEL=debug` and
`CLAIR_MATCHERS__CONFIG__RHEL__IGNORE_UNPATCHED=true` set the nested key (names are
case-insensitive). pydantic-settings matches names to fields and builds the nested values; this
module decides how a value is read, as Clair-py always has: as a YAML 1.2 scalar (so `true`, `42`,
`0x10` and `[a, b]` work) except where the schema wants a string, which is taken verbatim; a
list-of-strings key also takes `a,b,c`, and an empty value there is an empty list. `CLAIR_CONF`,
`CLAIR_MODE` and any other variable without `__` that names no top-level key (`CLAIR_API`,
`CLAIR_TEST_DATA`, ...) belong to something else and are ignored.

Setting a key below one that the file or another variable holds as a scalar
(`notifier.webhook: plain` and `CLAIR_NOTIFIER__WEBHOOK__TARGET`) is an error naming the variable.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource

from clair_common.config.documents import parse_yaml_scalar
from clair_common.config.errors import ConfigError

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

__all__ = [
    "DELIMITER",
    "PREFIX",
    "ClairEnvSource",
    "KeyPath",
    "LoadRequest",
    "current_request",
    "loading",
]

PREFIX = "CLAIR_"
DELIMITER = "__"
# Older spellings kept for deployments that set them (the chart, `make up`); the full name wins.
_ALIASES = {"CLAIR_LAYER_CACHE": "CLAIR_INDEXER__LAYER_CACHE_DIR"}
KeyPath = tuple[str, ...]
Kind = Literal["string", "string-list", "other"]


@dataclass
class LoadRequest:
    """One load: the merged file document and the environment it is read with. `origins` is
    filled with the variable that set each key path, for error messages."""

    document: Mapping[str, Any]
    environ: Mapping[str, str]
    origins: dict[KeyPath, str] = field(default_factory=dict)


_CURRENT: ContextVar[LoadRequest | None] = ContextVar("clair_config_load", default=None)


@contextmanager
def loading(request: LoadRequest) -> Iterator[LoadRequest]:
    """Make `request` what the settings sources of `Config()` read, for this context only."""
    token = _CURRENT.set(request)
    try:
        yield request
    finally:
        _CURRENT.reset(token)


def current_request() -> LoadRequest:
    """The load in progress; outside `loading`, no environment at all, so that
    `Config.model_validate(doc)` (which pydantic-settings runs through its sources too)
    validates the document alone."""
    return _CURRENT.get() or LoadRequest({}, {})


def _unwrap(annotation: Any) -> Any:
    """`Annotated[X, ...]` and `X | None` to X."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return _unwrap(rest[0])
    return annotation


def _kind(target: FieldInfo | Any) -> Kind:
    """How a value for `target` (a model field, a raw type below a dict, or None) is read."""
    if not isinstance(target, FieldInfo):
        # Below a free-form object (a dict's value type, or nothing known): YAML unless `str`.
        return "string" if _unwrap(target) is str else "other"
    annotation = _unwrap(target.annotation)
    if annotation is str:
        return "string"
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is Literal and all(isinstance(arg, str) for arg in args):
        return "string"
    if typing.get_origin(annotation) is list and args == (str,):
        return "string-list"
    return "other"


def _decode(text: str, kind: Kind) -> Any:
    if kind == "string":
        return text
    if text == "":
        return [] if kind == "string-list" else text
    value = parse_yaml_scalar(text)
    if kind == "string-list" and isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _blocking_scalar(root: Any, keys: KeyPath) -> int | None:
    """Depth of the first non-object value on the way to `keys`'s parent, if any."""
    node = root
    for depth, key in enumerate(keys[:-1]):
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return None
        if not isinstance(node, dict):
            return depth
    return None


class ClairEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over `request.environ`, reading values as
    Clair-py does (module docstring) and noting which variable set which key.

    Names are matched case-sensitively after lowercasing all but the prefix, so that the file's
    keys (the init source) stay case-sensitive as in Clair while variables are not.
    """

    def __init__(self, settings_cls: type[BaseSettings], request: LoadRequest) -> None:
        self._request = request
        self._problems: list[str] = []
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = self._request.environ
        chosen: dict[str, str] = {}
        for name, value in environ.items():
            canonical = _ALIASES.get(name, name)
            if canonical != name and canonical in environ:
                continue
            if not canonical.startswith(PREFIX):
                continue
            path = tuple(canonical[len(PREFIX) :].lower().split(DELIMITER))
            if len(path) > 1 and not all(path):
                self._problems.append(f"{name}: malformed override name (empty key between '__')")
                continue
            if len(path) > 1 or path[0] in self.settings_cls.model_fields:
                self._request.origins[path] = name
            chosen[PREFIX + DELIMITER.join(path)] = value
        # Sorted so that a whole section (CLAIR_INDEXER) applies before its keys.
        return dict(sorted(chosen.items()))

    def field_is_complex(self, field: FieldInfo) -> bool:
        # Everything but strings goes through `decode_complex_value`, as YAML.
        return _kind(field) != "string"

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        return _decode(value, _kind(field)) if isinstance(value, str) else value

    def explode_env_vars(
        self, field_name: str, field: FieldInfo, env_vars: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """pydantic-settings' nested values, with the leaves it leaves raw read as the others:
        those below a free-form object (`matchers.config.<name>.<key>`) and empty values."""
        result = super().explode_env_vars(field_name, field, env_vars)
        head = f"{self.env_prefix}{field_name}{DELIMITER}"
        for name, text in env_vars.items():
            if text is None or not name.startswith(head):
                continue
            keys = tuple(name[len(head) :].split(DELIMITER))
            depth = _blocking_scalar(result, keys)
            if depth is not None:
                self._cannot_set((field_name, *keys), depth + 1)
                continue
            target: FieldInfo | Any = field
            for key in keys:
                target = self.next_field(target, key, self.case_sensitive)
            if isinstance(target, FieldInfo) and text != "":
                continue  # Decoded by `decode_complex_value` already, or a string.
            node = result
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = _decode(text, _kind(target))
        return result

    def _cannot_set(self, path: KeyPath, blocked_at: int) -> None:
        name = self._request.origins.get(path, PREFIX + DELIMITER.join(path).upper())
        self._problems.append(
            f"{name}: cannot set {'.'.join(path)}: {'.'.join(path[: blocked_at + 1])} "
            "is not an object"
        )

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        fields = self.settings_cls.model_fields
        for path in sorted(self._request.origins):
            if len(path) == 1:
                continue
            head = path[0]
            if head not in fields:
                # An unknown section: kept so that the model reports it as an unknown key.
                node = data.setdefault(head, {})
                for key in path[1:-1]:
                    node = node.setdefault(key, {})
                name = self._request.origins[path]
                node[path[-1]] = _decode(self._request.environ[name], "other")
            elif not self.field_is_complex(fields[head]):
                self._cannot_set(path, 0)
            else:
                depth = _blocking_scalar(self._request.document, path)
                if depth is not None:
                    self._cannot_set(path, depth)
        if self._problems:
            raise ConfigError(self._problems)
        return data
