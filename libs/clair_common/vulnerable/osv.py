"""The OSV-style rule of the python matcher: a query string of introduced/fixed/lastAffected.

claircore's python matcher parses versions with its own PEP 440 regex (pkg/pep440,
reproduced in :mod:`clair_common.versions.claircore_pep440`): the match is unanchored, so
anything containing a version is accepted (``"1.0+local.1"``, ``"2.0.0-custom"``), local
labels are dropped, and two versions compare by claircore's ten-integer form. We reproduce
that instead of ``packaging``'s strict parse, which would turn a version claircore tolerates
into an error that fails the whole report.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote_plus

from clair_common.versions import claircore_pep440, semver

__all__ = [
    "Bound",
    "ParsedQuery",
    "SemverBound",
    "parse_query",
    "pep440_bounds",
    "pep440_key",
    "semver_bounds",
]

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")

# claircore's ten-slot form of a PEP 440 version; raises ValueError if none is found.
pep440_key = claircore_pep440.key


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


# A bound's key, the error its version gave (raised only if the rule gets to it), or None.
Bound = tuple[int, ...] | ValueError | None


def _bound(version: str) -> Bound:
    if not version:
        return None
    try:
        return pep440_key(version)
    except ValueError as err:
        return ValueError(str(err))  # without the traceback, which the cache would keep


@lru_cache(maxsize=16384)
def pep440_bounds(text: str) -> tuple[Bound, Bound, Bound]:
    """The (introduced, fixed, lastAffected) bounds of a rule's query.

    A report checks thousands of candidates against a few hundred distinct rules: each is
    parsed once. Raises ValueError for a query Go's url.ParseQuery rejects.
    """
    query = parse_query(text)
    return (
        _bound(query.first("introduced")),
        _bound(query.first("fixed")),
        _bound(query.first("lastAffected")),
    )


SemverBound = semver.SortKey | ValueError | None


def _semver_bound(version: str) -> SemverBound:
    if not version:
        return None
    try:
        return semver.sort_key(version)
    except ValueError as err:
        return ValueError(str(err))


@lru_cache(maxsize=16384)
def semver_bounds(text: str) -> tuple[SemverBound, SemverBound, SemverBound]:
    """:func:`pep440_bounds` for Go's semantic versions (see `versions.semver`)."""
    query = parse_query(text)
    return (
        _semver_bound(query.first("introduced")),
        _semver_bound(query.first("fixed")),
        _semver_bound(query.first("lastAffected")),
    )
