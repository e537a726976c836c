"""CPE names for the whole project: unbinding, the 2.3 formatted-string binding, comparison.

The indexer reports CPEs bound to formatted strings (:func:`to_formatted_string`, what
claircore writes for an os-release ``cpe:/o:redhat:enterprise_linux:8``); the RHEL matcher
unbinds them (:func:`parse`) and compares.

Values are kept in a canonical form: literal characters as themselves, except that a literal
``*`` or ``?`` is written ``\\*`` / ``\\?`` so that an unescaped ``*`` or ``?`` is always a
wildcard. Comparison follows NISTIR 7696 table 6-2 (what claircore's ``cpe.Compare``
implements): ANY is a superset of everything, NA equals only NA, values compare
case-insensitively, and a value with wildcards is a glob over the other value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

__all__ = [
    "ANY",
    "ATTRIBUTES",
    "CPE",
    "NA",
    "CPEError",
    "is_superset",
    "parse",
    "substring_match",
    "to_formatted_string",
]

ATTRIBUTES = 11  # part vendor product version update edition language sw_edition tsw thw other
ANY = "*"
NA = "-"
_FS_SPLIT = re.compile(r"(?<!\\):")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
# Characters bound bare in a formatted string; every other punctuation gets a backslash.
_BARE_IN_FS = frozenset("._-")


class CPEError(ValueError):
    """Text that is not a CPE in URI (``cpe:/``) or formatted-string (``cpe:2.3:``) form."""


@dataclass(frozen=True, slots=True)
class CPE:
    """Eleven attributes, each ANY (``"*"``), NA (``"-"``) or a canonical value."""

    attrs: tuple[str, ...]

    def bind_fs(self) -> str:
        """The CPE 2.3 formatted string, as claircore's ``WFN.String`` writes it."""
        return "cpe:2.3:" + ":".join(_bind_fs_value(a) for a in self.attrs)


def _bind_fs_value(value: str) -> str:
    if value in (ANY, NA):
        return value
    out: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            out.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "*?" or char.isalnum() or char in _BARE_IN_FS:
            out.append(char)
        else:
            out.append("\\" + char)
    return "".join(out)


def _from_fs_value(raw: str) -> str:
    if raw in ("", ANY):
        return ANY
    if raw == NA:
        return NA
    out: list[str] = []
    chars = iter(raw)
    for char in chars:
        if char == "\\":
            quoted = next(chars, "")
            # Keep quoting only where it tells a literal wildcard from a real one.
            out.append("\\" + quoted if quoted in ("*", "?") else quoted)
        else:
            out.append(char)
    return "".join(out)


def _from_uri_value(raw: str) -> str:
    if raw == "":
        return ANY
    if raw == NA:
        return NA

    def decode(match: re.Match[str]) -> str:
        byte = int(match[1], 16)
        if byte == 0x01:
            return "?"
        if byte == 0x02:
            return "*"
        char = chr(byte)
        return "\\" + char if char in "*?\\" else char

    return _PERCENT.sub(decode, raw)


def _fs_fields(text: str) -> list[str] | None:
    """The eleven raw fields of a formatted string (missing ones ``""``), or None if not one.

    Fewer than eleven attributes are padded, as claircore's unbinder does.
    """
    if not text.startswith("cpe:2.3:"):
        return None
    fields = _FS_SPLIT.split(text[len("cpe:2.3:") :])
    if len(fields) > ATTRIBUTES:
        raise CPEError(f"too many attributes in {text!r}")
    return fields + [""] * (ATTRIBUTES - len(fields))


def _uri_fields(text: str) -> list[str]:
    """The eleven raw (still percent-encoded) fields of a ``cpe:/`` URI, edition unpacked."""
    components = text[len("cpe:/") :].split(":")
    if len(components) > 7:
        raise CPEError(f"too many components in {text!r}")
    components += [""] * (7 - len(components))
    part, vendor, product, version, update, edition, language = components
    packed = ["", "", "", ""]
    if edition.startswith("~"):
        # ~edition~sw_edition~target_sw~target_hw~other
        unpacked = (edition[1:].split("~") + [""] * 5)[:5]
        edition, packed = unpacked[0], unpacked[1:]
    return [part, vendor, product, version, update, edition, language, *packed]


@lru_cache(maxsize=4096)
def parse(text: str) -> CPE:
    """Unbind a CPE given as a URI or a formatted string; raises CPEError."""
    fields = _fs_fields(text)
    if fields is not None:
        return CPE(tuple(_from_fs_value(f) for f in fields))
    if text.lower().startswith("cpe:/"):
        return CPE(tuple(_from_uri_value(v) for v in _uri_fields(text)))
    raise CPEError(f"not a CPE: {text!r}")


def _from_uri_literal(raw: str) -> str:
    """A URI value percent-decoded as UTF-8 and taken literally, in the canonical form."""
    if raw == "":
        return ANY
    if raw == NA:
        return NA
    return "".join("\\" + c if c in "*?\\" else c for c in unquote(raw))


def to_formatted_string(text: str) -> str:
    """Bind a CPE given as a URI (``cpe:/...``) or formatted string (``cpe:2.3:...``) to FS.

    This is the indexer's binding, which echoes its input: a formatted string keeps its fields
    as written (empty ones become ANY), and URI values are percent-decoded as UTF-8 and taken
    literally (no ``%01``/``%02`` wildcards); the URI prefix is case-sensitive. Raises CPEError.
    """
    fields = _fs_fields(text)
    if fields is not None:
        return "cpe:2.3:" + ":".join(f or ANY for f in fields)
    if text.startswith("cpe:/"):
        return CPE(tuple(_from_uri_literal(v) for v in _uri_fields(text))).bind_fs()
    raise CPEError(f"not a CPE: {text!r}")


def _has_wildcard(value: str) -> bool:
    return _glob_regex(value) is not None


@lru_cache(maxsize=1024)
def _glob_regex(value: str) -> re.Pattern[str] | None:
    """A case-insensitive regex for a value with unescaped wildcards, else None."""
    parts: list[str] = []
    wild = False
    chars = iter(value)
    for char in chars:
        if char == "\\":
            parts.append(re.escape(next(chars, "")))
        elif char == "*":
            parts.append(".*")
            wild = True
        elif char == "?":
            parts.append(".")
            wild = True
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL) if wild else None


def _attribute_superset(source: str, target: str) -> bool:
    if target not in (ANY, NA) and _has_wildcard(target):
        return False  # a target must be a name, not a pattern
    if source == ANY:
        return True
    if source == NA:
        return target == NA
    if target in (ANY, NA):
        return False
    pattern = _glob_regex(source)
    if pattern is not None:
        return pattern.fullmatch(target) is not None
    return source.casefold() == target.casefold()


def is_superset(source: CPE, target: CPE) -> bool:
    """Whether ``source`` is a (non-proper) superset of ``target``, attribute by attribute."""
    return all(_attribute_superset(s, t) for s, t in zip(source.attrs, target.attrs, strict=True))


def substring_match(record: str, vuln: CPE) -> bool:
    """Red Hat's "CPE pattern" hack: the record's FS starts with the vuln's FS, trailing ANY cut.

    ``cpe:/a:redhat:openshift:4`` thereby matches ``cpe:2.3:a:redhat:openshift:4.13:...``.
    """
    prefix = vuln.bind_fs().rstrip(":*")
    return record.startswith(prefix)
