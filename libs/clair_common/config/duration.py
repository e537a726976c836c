"""Go `time.Duration` values as Clair's config spells them.

Clair decodes durations with Go's `time.ParseDuration` ("6h", "1h30m", "1.5h", "500ms", "0"); a
JSON number is taken as nanoseconds because the Go type is an int64 underneath. Python's
`timedelta` has microsecond resolution, so sub-microsecond remainders are truncated.

Written here rather than taken from `durationpy`, which rounds sub-microsecond remainders where
Go truncates, accepts durations past Go's int64 range ("3000000h"), words its errors differently
(they reach the user naming the key) and prints "6h" where Go, and so `check-config`, prints
"6h0m0s".
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

__all__ = ["GoDuration", "coerce_duration", "format_go_duration", "parse_go_duration"]

_NANOS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek small letter mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_MAX_NANOS = 2**63 - 1  # Go durations are int64 nanoseconds
_COMPONENT = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]+)")


def parse_go_duration(text: str) -> timedelta:
    """Parse a Go duration string; raises ValueError with Go-like wording on bad input."""
    return _nanos_to_timedelta(_parse_nanos(text))


def _parse_nanos(text: str) -> int:
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"invalid duration {_quote(text)}")
    total = 0
    pos = 0
    while pos < len(rest):
        match = _COMPONENT.match(rest, pos)
        if match is None:
            raise ValueError(f"invalid duration {_quote(text)}")
        whole, frac, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not frac:
            raise ValueError(f"invalid duration {_quote(text)}")
        scale = _NANOS_PER_UNIT.get(unit)
        if scale is None:
            raise ValueError(f"invalid duration {_quote(text)}: unknown unit {_quote(unit)}")
        nanos = int(whole or "0") * scale
        if frac:
            # Go truncates the fractional contribution toward zero.
            nanos += int(frac) * scale // 10 ** len(frac)
        total += nanos
        if total > _MAX_NANOS:
            raise ValueError(f"invalid duration {_quote(text)}: out of range")
        pos = match.end()
    return -total if negative else total


def _nanos_to_timedelta(nanos: int) -> timedelta:
    micros = abs(nanos) // 1_000
    return timedelta(microseconds=-micros if nanos < 0 else micros)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def format_go_duration(value: timedelta) -> str:
    """Render like Go's `Duration.String()`: "6h0m0s", "1m30s", "500ms", "0s"."""
    nanos = (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1_000
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    nanos = abs(nanos)
    if nanos < 1_000_000_000:
        for unit, scale in (("ms", 1_000_000), ("\u00b5s", 1_000), ("ns", 1)):
            if nanos >= scale:
                return sign + _fixed(nanos, scale) + unit
    hours, rem = divmod(nanos, _NANOS_PER_UNIT["h"])
    minutes, rem = divmod(rem, _NANOS_PER_UNIT["m"])
    out = _fixed(rem, 1_000_000_000) + "s"
    if hours or minutes:
        out = f"{minutes}m" + out
    if hours:
        out = f"{hours}h" + out
    return sign + out


def _fixed(nanos: int, scale: int) -> str:
    whole, frac = divmod(nanos, scale)
    if not frac:
        return str(whole)
    digits = len(str(scale)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


def coerce_duration(value: Any) -> timedelta:
    """Pydantic pre-validator: Go duration strings, integer nanoseconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise PydanticCustomError("clair_config", "{detail}", {"detail": _bad(value)})
    if isinstance(value, int):
        if abs(value) > _MAX_NANOS:
            raise PydanticCustomError("clair_config", "{detail}", {"detail": _bad(value)})
        return _nanos_to_timedelta(value)
    if isinstance(value, str):
        if value == "":
            # Clair 4.0-4.3 kept these as strings where "" meant "the default"; configs written
            # then (the Quay operator's) still say so.
            return timedelta(0)
        try:
            return parse_go_duration(value)
        except ValueError as err:
            raise PydanticCustomError("clair_config", "{detail}", {"detail": str(err)}) from None
    raise PydanticCustomError("clair_config", "{detail}", {"detail": _bad(value)})


def _bad(value: object) -> str:
    shown = str(value).lower() if isinstance(value, bool) else str(value)
    return (
        f"invalid duration {_quote(shown)}: want a Go duration string such as "
        '"6h" or "30m", or integer nanoseconds'
    )


GoDuration = Annotated[
    timedelta,
    BeforeValidator(coerce_duration),
    PlainSerializer(format_go_duration, return_type=str, when_used="json"),
]
"""A config field holding a Go duration; serialises back to Go's spelling in JSON mode."""
