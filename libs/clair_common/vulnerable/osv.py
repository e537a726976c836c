"""The OSV-style rule of the python matcher: a query string of introduced/fixed/lastAffected.

claircore's python matcher parses versions with its own PEP 440 regex (pkg/pep440): the
match is unanchored, so anything containing a version is accepted (``"1.0+local.1"``,
``"2.0.0-custom"``), local labels are dropped, and two versions compare by claircore's
ten-integer form. We reproduce that instead of ``packaging``'s strict parse, which would turn
a version claircore tolerates into an error that fails the whole report.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote_plus

__all__ = ["ParsedQuery", "parse_query", "pep440_key"]

# PEP 440's reference regex as claircore uses it: lower case, no anchors.
_PEP440 = re.compile(
    r"v?"
    r"(?:"
    r"(?:(?P<epoch>[0-9]+)!)?"
    r"(?P<release>[0-9]+(?:\.[0-9]+)*)"
    r"(?P<pre>[-_\.]?(?P<pre_l>(a|b|c|rc|alpha|beta|pre|preview))[-_\.]?(?P<pre_n>[0-9]+)?)?"
    r"(?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_\.]?(?P<post_l>post|rev|r)[-_\.]?(?P<post_n2>[0-9]+)?))?"
    r"(?P<dev>[-_\.]?(?P<dev_l>dev)[-_\.]?(?P<dev_n>[0-9]+)?)?"
    r")"
    r"(?:\+(?P<local>[a-z0-9]+(?:[-_\.][a-z0-9]+)*))?"
)
_PRE_LABELS = {
    "a": -3,
    "alpha": -3,
    "b": -2,
    "beta": -2,
    "c": -1,
    "rc": -1,
    "pre": -1,
    "preview": -1,
}
_INT32_MIN = -(2**31)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _int32(number: int) -> int:
    """Go's int32(n): keep the low 32 bits, two's complement."""
    return (number - _INT32_MIN) % 2**32 + _INT32_MIN


@lru_cache(maxsize=65536)
def pep440_key(version: str) -> tuple[int, ...]:
    """claircore's ten-slot form of a PEP 440 version; raises ValueError if none is found.

    Slots: epoch, five release numbers, pre-release label and number, post, dev. A dev
    release with neither pre nor post moves into the label slot so it sorts below every
    pre-release.
    """
    match = _PEP440.search(version)
    if match is None:
        raise ValueError(f"invalid pep440 version: {version!r}")
    slots = [0] * 10
    slots[0] = _int32(int(match["epoch"] or 0))
    for index, number in enumerate(match["release"].split(".")[:5]):
        slots[1 + index] = _int32(int(number))
    if match["pre_l"]:
        slots[6] = _PRE_LABELS[match["pre_l"]]
        slots[7] = _int32(int(match["pre_n"] or 0))
    post = int(match["post_n1"] or match["post_n2"] or 0)
    slots[8] = _int32(post)
    dev = int(match["dev_n"] or 0)
    if dev != 0:
        if post != 0 or slots[6] != 0:
            slots[9] = _int32(-_int32(dev))
        else:
            slots[6] = _int32(_INT32_MIN + _int32(dev))
    return tuple(slots)


class ParsedQuery(dict[str, list[str]]):
    """Decoded ``key=value&...`` pairs; :meth:`first` is Go's ``url.Values.Get``."""

    def first(self, key: str) -> str:
        values = self.get(key)
        return values[0] if values else ""


@lru_cache(maxsize=16384)
def parse_query(text: str) -> ParsedQuery:
    """Parse like Go's ``url.ParseQuery``; raises ValueError where Go returns an error."""
    out = ParsedQuery()
    for pair in text.split("&"):
        if not pair:
            continue
        if ";" in pair:
            raise ValueError(f"invalid semicolon separator in query {text!r}")
        key, _, value = pair.partition("=")
        if _BAD_ESCAPE.search(key) or _BAD_ESCAPE.search(value):
            raise ValueError(f"invalid URL escape in query {text!r}")
        out.setdefault(unquote_plus(key), []).append(unquote_plus(value))
    return out
