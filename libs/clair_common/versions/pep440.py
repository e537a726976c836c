"""PEP 440 versions (Python packages): ordering by ``packaging``, Clair's normalised form.

``packaging.version.Version`` is the reference implementation of PEP 440 and is exact, so it
is used as is; parses are cached because matching compares the same versions many times.

:func:`normalized` reproduces claircore's ``pep440.Version.Version()`` (pkg/pep440), which
packs a version into the ten int32 slots of ``claircore.Version`` so the database can filter
ranges without knowing the scheme. The slots are: epoch, five release components (missing ones
0, extra ones dropped), pre-release label (a=-3, b=-2, rc=-1), pre-release number, post
number, dev number. A dev release without pre or post moves into the label slot as
``INT32_MIN + dev`` so it sorts below every pre-release; otherwise it is stored as ``-dev``.
Numbers are truncated to int32 exactly like Go's ``int32(n)``.
"""

from __future__ import annotations

from functools import lru_cache

from packaging.version import InvalidVersion, Version

__all__ = ["is_valid", "normalized", "normalized_slots", "parse"]

_KIND = "pep440"
_SLOTS = 10
_RELEASE_SLOTS = 5
_PRE_LABEL = {"a": -3, "b": -2, "rc": -1}
_INT32_MIN = -(2**31)


@lru_cache(maxsize=65536)
def parse(version: str) -> Version:
    """The ``packaging`` Version for ``version``; raises ValueError if it is not PEP 440."""
    try:
        return Version(version)
    except InvalidVersion as err:
        raise ValueError(f"invalid pep440 version {version!r}") from err


def is_valid(version: str) -> bool:
    """Whether ``version`` is a valid PEP 440 version."""
    try:
        parse(version)
    except ValueError:
        return False
    return True


def _int32(number: int) -> int:
    """Go's int32(n) conversion: keep the low 32 bits, two's complement."""
    return (number - _INT32_MIN) % 2**32 + _INT32_MIN


def normalized_slots(version: str) -> tuple[int, ...]:
    """The ten integers of claircore's ``Version`` for a PEP 440 version."""
    parsed = parse(version)
    slots = [0] * _SLOTS
    slots[0] = _int32(parsed.epoch)
    for index, number in enumerate(parsed.release[:_RELEASE_SLOTS]):
        slots[1 + index] = _int32(number)
    if parsed.pre is not None:
        label, number = parsed.pre
        slots[6] = _PRE_LABEL[label]
        slots[7] = _int32(number)
    post = parsed.post or 0
    slots[8] = _int32(post)
    # claircore cannot tell "dev0" from "no dev release"; neither can its slots.
    dev = parsed.dev or 0
    if dev != 0:
        if post != 0 or slots[6] != 0:
            slots[9] = _int32(-_int32(dev))
        else:
            slots[6] = _int32(_INT32_MIN + _int32(dev))
    return tuple(slots)


@lru_cache(maxsize=65536)
def normalized(version: str) -> str:
    """Clair's ``normalized_version`` string, e.g. ``"pep440:0.1.2.0.0.0.0.0.0.0"`` for 1.2."""
    return _KIND + ":" + ".".join(str(slot) for slot in normalized_slots(version))
