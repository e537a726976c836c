"""Version comparison for every package ecosystem the scanner matches.

One entry point per question, all keyed by the version *kind*:

* :func:`compare` orders two versions exactly like the ecosystem's own tool
  (``dpkg --compare-versions``, rpm's ``labelCompare``, ``apk version -t``,
  ``packaging.version.Version``); it returns -1, 0 or 1.
* :func:`sort_key` gives a cached key that Python compares natively with that ordering (use it
  in hot loops and for sorting); :func:`parse` wraps it in a :class:`ParsedVersion`.
* :func:`is_valid` tells whether the tool accepts the version; every other function raises
  :class:`ValueError` for invalid input instead of guessing an order.
* :func:`normalized` gives Clair's ``normalized_version`` column value.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final, TypeAlias

from clair_common.versions import apk, dpkg, pep440, rpm

__all__ = [
    "KINDS",
    "ParsedVersion",
    "SortKey",
    "apk",
    "compare",
    "dpkg",
    "is_valid",
    "normalized",
    "parse",
    "pep440",
    "rpm",
    "sort_key",
]

# Keys differ in shape per kind (nested tuples, or packaging's Version); all that callers may
# rely on is that keys of one kind compare with each other.
SortKey: TypeAlias = Any

_SORT_KEYS: Final[dict[str, Callable[[str], SortKey]]] = {
    "dpkg": dpkg.sort_key,
    "rpm": rpm.sort_key,
    "apk": apk.sort_key,
    "pep440": pep440.parse,
}
_VALIDATORS: Final[dict[str, Callable[[str], bool]]] = {
    "dpkg": dpkg.is_valid,
    "rpm": rpm.is_valid,
    "apk": apk.is_valid,
    "pep440": pep440.is_valid,
}
KINDS: Final[tuple[str, ...]] = tuple(_SORT_KEYS)


def _sort_key_function(kind: str) -> Callable[[str], SortKey]:
    try:
        return _SORT_KEYS[kind]
    except KeyError:
        raise ValueError(f"unknown version kind {kind!r}; expected one of {KINDS}") from None


def sort_key(kind: str, version: str) -> SortKey:
    """A cached key ordering ``version`` among versions of the same kind."""
    return _sort_key_function(kind)(version)


def compare(kind: str, a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is older than, equal to or newer than ``b``."""
    key = _sort_key_function(kind)
    key_a, key_b = key(a), key(b)
    return int(key_a > key_b) - int(key_a < key_b)


def is_valid(kind: str, version: str) -> bool:
    """Whether the ecosystem's tool accepts ``version``."""
    try:
        validator = _VALIDATORS[kind]
    except KeyError:
        raise ValueError(f"unknown version kind {kind!r}; expected one of {KINDS}") from None
    return validator(version)


def normalized(kind: str, version: str) -> str:
    """Clair's ``normalized_version``: ``"pep440:<10 ints>"`` for pep440, ``""`` otherwise.

    Clair only normalises PEP 440 versions, so dpkg, rpm and apk versions are not parsed here.
    """
    _sort_key_function(kind)
    if kind == "pep440":
        return pep440.normalized(version)
    return ""


class ParsedVersion:
    """A version string with its kind, ordered like the ecosystem's tool.

    Versions of different kinds do not compare (ordering raises TypeError, equality is False).
    """

    __slots__ = ("_key", "kind", "text")

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind
        self.text = text
        self._key: SortKey = sort_key(kind, text)

    def _other_key(self, other: object) -> SortKey:
        if not isinstance(other, ParsedVersion) or other.kind != self.kind:
            raise TypeError(f"cannot order a {self.kind} version against {other!r}")
        return other._key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ParsedVersion):
            return NotImplemented
        return bool(self.kind == other.kind and self._key == other._key)

    def __hash__(self) -> int:
        return hash((self.kind, self._key))

    def __lt__(self, other: ParsedVersion) -> bool:
        return bool(self._key < self._other_key(other))

    def __le__(self, other: ParsedVersion) -> bool:
        return bool(self._key <= self._other_key(other))

    def __gt__(self, other: ParsedVersion) -> bool:
        return bool(self._key > self._other_key(other))

    def __ge__(self, other: ParsedVersion) -> bool:
        return bool(self._key >= self._other_key(other))

    def __repr__(self) -> str:
        return f"ParsedVersion({self.kind!r}, {self.text!r})"

    def __str__(self) -> str:
        return self.text


@lru_cache(maxsize=65536)
def parse(kind: str, version: str) -> ParsedVersion:
    """A cached :class:`ParsedVersion`; raises ValueError if ``version`` is invalid."""
    return ParsedVersion(kind, version)
