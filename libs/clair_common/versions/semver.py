"""Semantic versions as Go modules use them, and the Go toolchain's `go1.x.y` names.

Ordering is SemVer 2.0's (golang.org/x/mod/semver): major.minor.patch numerically, a
pre-release before its release, pre-release identifiers compared numerically when both are
digits, else as ASCII, numbers before words, a shorter list first; build metadata (`+...`,
e.g. `+incompatible`) is ignored. A leading `v` is optional (modules write it, the Go
vulnerability database does not); `v1` and `v1.2` mean `v1.0.0` and `v1.2.0` as in Go.

Toolchain versions map onto semver as the Go vulnerability database writes them:
`go1.19.8` → `1.19.8`, `go1.21` → `1.21.0`, `go1.21rc2` → `1.21.0-rc.2`, `go1.19beta1` →
`1.19.0-beta.1`; a suffix after a space (` X:boringcrypto`) is dropped.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["is_valid", "normalized", "sort_key", "toolchain_semver"]

_SEMVER = re.compile(
    r"v?(0|[1-9]\d*)(?:\.(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?)?"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_TOOLCHAIN = re.compile(
    r"go1(?:\.(0|[1-9]\d*))?(?:\.(0|[1-9]\d*))?(?:(alpha|beta|rc)(0|[1-9]\d*))?"
)

# A pre-release identifier's key: numbers (0, n, "") sort before words (1, 0, text).
Identifier = tuple[int, int, str]
SortKey = tuple[int, int, int, int, tuple[Identifier, ...]]


@lru_cache(maxsize=1 << 14)
def sort_key(version: str) -> SortKey:
    """A key ordering versions as SemVer 2.0 does; raises ValueError for anything else."""
    m = _SEMVER.fullmatch(version)
    if m is None:
        raise ValueError(f"invalid semantic version {version!r}")
    if m.group(2) is None and m.group(4) is not None:
        raise ValueError(f"invalid semantic version {version!r}: shorthand with a pre-release")
    major, minor, patch = (int(g) if g is not None else 0 for g in m.group(1, 2, 3))
    pre = m.group(4)
    if pre is None:
        return (major, minor, patch, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (major, minor, patch, 0, ids)


def is_valid(version: str) -> bool:
    try:
        sort_key(version)
    except ValueError:
        return False
    return True


def normalized(version: str) -> str:
    """claircore's `semver` Version: major, minor and patch in slots 1-3 of ten."""
    major, minor, patch, _, _ = sort_key(version)
    return f"semver:0.{major}.{minor}.{patch}.0.0.0.0.0.0"


@lru_cache(maxsize=1024)
def toolchain_semver(version: str) -> str | None:
    """The semver of a Go toolchain version (`go1.21.3`), or None when it has none
    (`devel go1.23-abcdef`, an empty string)."""
    m = _TOOLCHAIN.fullmatch(version.split(" ", 1)[0])
    if m is None:
        return None
    minor, patch, label, number = m.groups()
    out = f"1.{minor or 0}.{patch or 0}"
    return f"{out}-{label}.{number}" if label else out
