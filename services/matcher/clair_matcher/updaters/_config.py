"""Typed `updaters.config.<name>` blocks.

Each updater and set factory declares its block as a frozen dataclass whose fields are the keys
it reads, each with the reader that checks and converts the value (`setting(reader, default)`).
A value of the wrong type is a ConfigProblem naming `updaters.config.<name>.<key>`. A key the
block does not declare is logged once and ignored: Clair decodes these blocks with Go's
encoding/json, which ignores unknown fields too, so a config written for Clair keeps working.
Plain dataclasses, so the blocks fit whatever model loads the whole file.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from clair_common.config.duration import coerce_duration
from clair_matcher.updaters.base import ConfigProblem

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
C = TypeVar("C", bound="DataclassInstance")

# (value as written, "updaters.config.<name>.<key>") → the typed value; raises ConfigProblem.
Reader = Callable[[Any, str], T]

log = logging.getLogger("clair.matcher.updaters")

_warned: set[tuple[str, str]] = set()  # discovery reads the blocks every run: warn once


def setting(read: Reader[T], default: T) -> T:
    """A dataclass field read from the key of the same name by `read`; `default` when absent."""
    return dataclasses.field(default=default, metadata={"read": read})


def read_config(kind: type[C], config: Mapping[str, Any], name: str) -> C:
    """`updaters.config.<name>` as a `kind` (a dataclass whose fields are `setting`s)."""
    declared = {f.name: f for f in dataclasses.fields(kind)}
    for key in config:
        if key not in declared and (name, str(key)) not in _warned:
            _warned.add((name, str(key)))
            log.warning(
                "updaters.config.%s.%s: unknown key ignored (known: %s)",
                name,
                key,
                ", ".join(declared) or "none",
            )
    values = {
        key: f.metadata["read"](config[key], f"updaters.config.{name}.{key}")
        for key, f in declared.items()
        if key in config
    }
    return kind(**values)


# -- readers -----------------------------------------------------------------------------------
def text(value: Any, where: str) -> str:
    """A string; null is empty (Go leaves the string unset)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigProblem(f"{where}: expected a string")
    return value


def texts(value: Any, where: str) -> tuple[str, ...]:
    """A list of strings; null or empty is none."""
    value = value or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigProblem(f"{where}: expected a list of strings")
    return tuple(value)


def flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigProblem(f"{where}: expected a boolean")
    return value


def optional_flag(value: Any, where: str) -> bool | None:
    """A boolean, or null for "not set"."""
    return None if value is None else flag(value, where)


def duration(value: Any, where: str) -> timedelta | None:
    """A Go duration (`2m`, `90s`) or seconds; null or empty is "not set"."""
    if not value:
        return None
    try:
        return coerce_duration(value)
    except Exception as exc:
        raise ConfigProblem(f"{where}: {exc}") from None


def url_ending(suffix: str, problem: str) -> Reader[str]:
    """A URL string that, when set, ends with `suffix` (what the feed at it must be); else a
    ConfigProblem `<where>: <problem> '<url>'`."""

    def read(value: Any, where: str) -> str:
        url = text(value, where)
        if url and not url.endswith(suffix):
            raise ConfigProblem(f"{where}: {problem} {url!r}")
        return url

    return read


def refused(why: str) -> Reader[None]:
    """A key Clair knows that we do not support: any non-empty value is a ConfigProblem."""

    def read(value: Any, where: str) -> None:
        if value:
            raise ConfigProblem(f"{where}: {why}")

    return read


# -- helpers ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UrlConfig:
    """A block whose one key is `url`; updaters subclass it to say what the URL is of."""

    url: str = setting(text, "")


def with_trailing_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
