"""Debian (dpkg) version parsing and ordering.

Validity follows dpkg's ``parseversion`` (lib/dpkg/parsehelp.c): both its hard errors and its
warnings are rejected, so anything dpkg would complain about raises :class:`ValueError`.
Ordering follows ``verrevcmp``: each part is split into alternating non-digit / digit runs; a
non-digit run compares character by character with ``~`` below the end of the run, letters
next and every other character after letters; digit runs compare as integers.

Every version is turned once (and cached) into a plain tuple that Python compares natively
with exactly that ordering, so the hot matching path is one tuple comparison.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple, TypeAlias

__all__ = ["DpkgVersion", "is_valid", "sort_key", "split"]

# dpkg keeps its epoch in an int; bigger values are rejected as "too big".
_INT_MAX = 2**31 - 1
# parseversion trims and splits on c_isblank (space, tab) only.
_BLANKS = " \t"
# strtol(3) skips C-locale isspace characters and accepts a sign before the epoch digits.
_EPOCH = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]*)")
_UPSTREAM_CHARS = re.compile(r"[0-9][0-9A-Za-z.+~:-]*")
_REVISION_CHARS = re.compile(r"[0-9A-Za-z.+~]*")
_RUNS = re.compile(r"([^0-9]*)([0-9]*)")
# Marks the end of a part; it sits where a non-digit run would, and no real run has weight 0.
_END: tuple[int, ...] = (0,)

PartKey: TypeAlias = tuple[tuple[int, ...] | int, ...]
DpkgKey: TypeAlias = tuple[int, PartKey, PartKey]


class DpkgVersion(NamedTuple):
    """The three fields of a Debian version; ``revision`` is ``""`` when absent."""

    epoch: int
    upstream: str
    revision: str


def _parse_epoch(text: str, whole: str) -> int:
    match = _EPOCH.match(text)
    assert match is not None  # every group in the pattern may be empty
    sign, digits = match.groups()
    if not digits:
        raise ValueError(f"dpkg version {whole!r}: epoch in version is empty")
    if match.end() != len(text):
        raise ValueError(f"dpkg version {whole!r}: epoch in version is not number")
    epoch = -int(digits) if sign == "-" else int(digits)
    if epoch < 0:
        raise ValueError(f"dpkg version {whole!r}: epoch in version is negative")
    if epoch > _INT_MAX:
        raise ValueError(f"dpkg version {whole!r}: epoch in version is too big")
    return epoch


@lru_cache(maxsize=65536)
def split(version: str) -> DpkgVersion:
    """Split and validate a Debian version the way dpkg's parseversion does.

    Raises :class:`ValueError` for anything dpkg reports as an error or a warning.
    """
    if "\0" in version:
        raise ValueError(f"dpkg version {version!r}: contains a NUL character")
    text = version.strip(_BLANKS)
    if not text:
        raise ValueError(f"dpkg version {version!r}: version string is empty")
    if any(blank in text for blank in _BLANKS):
        raise ValueError(f"dpkg version {version!r}: version string has embedded spaces")
    colon = text.find(":")
    epoch = 0
    if colon >= 0:
        epoch = _parse_epoch(text[:colon], version)
        text = text[colon + 1 :]
        if not text:
            raise ValueError(f"dpkg version {version!r}: nothing after colon in version number")
    upstream, hyphen, revision = text.rpartition("-")
    if not hyphen:
        upstream, revision = text, ""
    elif not revision:
        raise ValueError(f"dpkg version {version!r}: revision number is empty")
    if not upstream:
        raise ValueError(f"dpkg version {version!r}: version number is empty")
    if not _UPSTREAM_CHARS.fullmatch(upstream):
        if not "0" <= upstream[0] <= "9":
            raise ValueError(f"dpkg version {version!r}: version number does not start with digit")
        raise ValueError(f"dpkg version {version!r}: invalid character in version number")
    if not _REVISION_CHARS.fullmatch(revision):
        raise ValueError(f"dpkg version {version!r}: invalid character in revision number")
    return DpkgVersion(epoch, upstream, revision)


def _char_weight(char: str) -> int:
    if char == "~":
        return -1
    if "A" <= char <= "Z" or "a" <= char <= "z":
        return ord(char)
    return ord(char) + 256


@lru_cache(maxsize=4096)
def _run_key(run: str) -> tuple[int, ...]:
    # The trailing 0 stands for "end of run", which sorts after "~" and before anything else.
    return (*(_char_weight(char) for char in run), 0)


@lru_cache(maxsize=65536)
def _part_key(part: str) -> PartKey:
    # Alternating (non-digit run, number) pairs, always at least one pair so that "" == "0",
    # closed by _END so that a shorter part is compared as if padded with empty runs.
    key: list[tuple[int, ...] | int] = []
    pos, length = 0, len(part)
    while True:
        match = _RUNS.match(part, pos)
        assert match is not None  # both groups may be empty
        letters, digits = match.groups()
        key.append(_run_key(letters))
        key.append(int(digits) if digits else 0)
        pos = match.end()
        if pos >= length:
            break
    key.append(_END)
    return tuple(key)


@lru_cache(maxsize=65536)
def sort_key(version: str) -> DpkgKey:
    """A tuple that orders like ``dpkg --compare-versions``; raises ValueError if invalid."""
    epoch, upstream, revision = split(version)
    return (epoch, _part_key(upstream), _part_key(revision))


def is_valid(version: str) -> bool:
    """Whether dpkg accepts ``version`` without an error or a warning."""
    try:
        split(version)
    except ValueError:
        return False
    return True
