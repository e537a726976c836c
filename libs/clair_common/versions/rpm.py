"""RPM version parsing and ordering (``rpmvercmp`` and ``labelCompare`` on EVR strings).

``rpmvercmp`` skips every character that is not an ASCII letter, digit, ``~`` or ``^``; what
remains is a sequence of tokens: ``~`` sorts before everything (even the end of the string),
the end sorts next, ``^`` sorts after the end but before any segment, letter segments sort as
strings and below digit segments, which sort as integers. That is a total order on token
sequences, so each string is turned once (cached) into a tuple Python compares natively.

Full EVRs (``[epoch:]version[-release]``) are split the way rpm's ``parseEVR`` does and
compared like python-rpm's ``labelCompare``: epoch (missing = 0), then version, then release,
where a missing release sorts below any present one.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple, TypeAlias

__all__ = ["RpmEVR", "is_valid", "sort_key", "split", "vercmp", "vercmp_key"]

_TOKENS = re.compile(r"~|\^|[0-9]+|[A-Za-z]+")
# Token ranks at one position: tilde < end < caret < letters < digits.
_TILDE = (0,)
_END = (1,)
_CARET = (2,)
_ALPHA_RANK = 3
_DIGIT_RANK = 4

VercmpKey: TypeAlias = tuple[tuple[int] | tuple[int, int] | tuple[int, str], ...]
RpmKey: TypeAlias = tuple[int, VercmpKey, VercmpKey]

# A missing release (labelCompare passes None) sorts below any present release.
_NO_RELEASE: VercmpKey = ((-1,),)


class RpmEVR(NamedTuple):
    """Epoch, version and release of an RPM version; ``release`` is None when absent."""

    epoch: int
    version: str
    release: str | None


@lru_cache(maxsize=65536)
def vercmp_key(segment: str) -> VercmpKey:
    """A tuple ordering ``segment`` (a version or a release) exactly like ``rpmvercmp``."""
    key: list[tuple[int] | tuple[int, int] | tuple[int, str]] = []
    for token in _TOKENS.findall(segment):
        if token == "~":
            key.append(_TILDE)
        elif token == "^":
            key.append(_CARET)
        elif "0" <= token[0] <= "9":
            key.append((_DIGIT_RANK, int(token)))
        else:
            key.append((_ALPHA_RANK, token))
    key.append(_END)
    return tuple(key)


def vercmp(a: str, b: str) -> int:
    """``rpmvercmp(a, b)`` normalised to -1, 0 or 1 (no epoch/release splitting)."""
    key_a, key_b = vercmp_key(a), vercmp_key(b)
    return (key_a > key_b) - (key_a < key_b)


@lru_cache(maxsize=65536)
def split(evr: str) -> RpmEVR:
    """Split ``[epoch:]version[-release]`` like rpm's parseEVR.

    rpm itself accepts almost anything; we reject what cannot be meant as an EVR: an empty
    string, an empty version and an epoch that is not a decimal number (rpm would silently
    fold such a prefix into the version).
    """
    if not evr:
        raise ValueError("rpm version: empty string")
    if "\0" in evr:
        raise ValueError(f"rpm version {evr!r}: contains a NUL character")
    epoch = 0
    head, colon, rest = evr.partition(":")
    if colon:
        if head and not (head.isascii() and head.isdigit()):
            raise ValueError(f"rpm version {evr!r}: epoch is not a number")
        # parseEVR turns an empty epoch ("":1.0) into "0".
        epoch = int(head) if head else 0
    else:
        rest = evr
    version, hyphen, release = rest.rpartition("-")
    if not hyphen:
        return _checked(evr, RpmEVR(epoch, rest, None))
    return _checked(evr, RpmEVR(epoch, version, release))


def _checked(evr: str, parsed: RpmEVR) -> RpmEVR:
    if not parsed.version:
        raise ValueError(f"rpm version {evr!r}: version is empty")
    return parsed


@lru_cache(maxsize=65536)
def sort_key(evr: str) -> RpmKey:
    """A tuple ordering EVR strings like ``rpm.labelCompare``; raises ValueError if invalid."""
    epoch, version, release = split(evr)
    release_key = _NO_RELEASE if release is None else vercmp_key(release)
    return (epoch, vercmp_key(version), release_key)


def is_valid(evr: str) -> bool:
    """Whether ``evr`` is an EVR string :func:`sort_key` accepts."""
    try:
        split(evr)
    except ValueError:
        return False
    return True
