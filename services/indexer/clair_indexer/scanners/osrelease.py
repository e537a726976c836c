"""os-release(5) parsing shared by the distribution scanners (claircore `osrelease.Parse`).

Clair's rules, kept exactly: lines are trimmed; blank and `#` lines are skipped; a line without
`=` makes the whole file malformed; key and value are trimmed; a value starting with `'` has all
leading/trailing `'` stripped and `'\\''` turned into `'`; one starting with `"` has all
leading/trailing `"` stripped and the escapes \\` \\\\ \\" \\$ undone. Later keys win.
"""

from __future__ import annotations

import contextlib

from clair_common.models import Distribution
from clair_common.vulnerable.cpe import CPEError, to_formatted_string

from .base import LayerFiles, read_file

PATH = "etc/os-release"
FALLBACK_PATH = "usr/lib/os-release"
PATHS = frozenset({PATH, FALLBACK_PATH})

_DQ_ESCAPES = (("\\`", "`"), ("\\\\", "\\"), ('\\"', '"'), ("\\$", "$"))


class OsReleaseError(ValueError):
    """A line without `=`: Clair rejects the whole file."""


def _unescape_double_quoted(value: str) -> str:
    # Go's strings.Replacer scans left to right, trying the escapes at each position.
    out = []
    i = 0
    while i < len(value):
        for escaped, plain in _DQ_ESCAPES:
            if value.startswith(escaped, i):
                out.append(plain)
                i += len(escaped)
                break
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse(data: bytes) -> dict[str, str]:
    """Key/value pairs of an os-release (or lsb-release) file."""
    out: dict[str, str] = {}
    for raw in data.decode("utf-8", "replace").split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise OsReleaseError(f"osrelease: malformed line {raw!r}")
        key, value = key.strip(), value.strip()
        if value.startswith("'"):
            value = value.strip("'").replace("'\\''", "'")
        elif value.startswith('"'):
            value = _unescape_double_quoted(value.strip('"'))
        out[key] = value
    return out


def find(layer: LayerFiles, *, fallback: bool = True) -> bytes | None:
    """Bytes of `etc/os-release` (symlinks followed), else of `usr/lib/os-release`."""
    data = read_file(layer, PATH)
    if data is None and fallback:
        data = read_file(layer, FALLBACK_PATH)
    return data


def load(layer: LayerFiles, *, fallback: bool = True) -> dict[str, str] | None:
    """Parsed os-release of the layer; None when absent or malformed (Clair logs and moves on)."""
    data = find(layer, fallback=fallback)
    if data is None:
        return None
    try:
        return parse(data)
    except OsReleaseError:
        return None


def to_distribution(kv: dict[str, str]) -> Distribution:
    """claircore's generic os-release scanner mapping (`osrelease.toDist`).

    Not in Clair's default scanner set; kept for distributions no dedicated scanner knows.
    Keys are applied in sorted order, so `REDHAT_BUGZILLA_PRODUCT` overrides `PRETTY_NAME`.
    """
    dist = Distribution(did="linux", name="Linux")
    for key in sorted(kv):
        value = kv[key]
        match key:
            case "ID":
                dist.did = value
            case "VERSION_ID":
                dist.version_id = value
            case "CPE_NAME":
                with contextlib.suppress(CPEError):  # Clair logs and keeps going
                    dist.cpe = to_formatted_string(value)
            case "NAME":
                dist.name = value
            case "VERSION":
                dist.version = value
            case "VERSION_CODENAME":
                dist.version_code_name = value
            case "PRETTY_NAME" | "REDHAT_BUGZILLA_PRODUCT":
                dist.pretty_name = value
    return dist
