"""PEP 440 versions (Python packages): ordering by ``packaging``, Clair's normalised form.

``packaging.version.Version`` is the reference implementation of PEP 440 and is exact, so it
is used as is; parses are cached because matching compares the same versions many times.

:func:`normalized` gives claircore's ``normalized_version`` (``"pep440:"`` and the ten int32
slots of :mod:`clair_common.versions.claircore_pep440`), filled from this strict parse: it
raises for what is not PEP 440 and reads ``1.0alpha1`` as ``1.0a1``, where claircore's
lenient, unanchored regex (what the python scanner and matcher use) reads ``1.0a0``.
"""

from __future__ import annotations

from functools import lru_cache

from packaging.version import InvalidVersion, Version

from clair_common.versions.claircore_pep440 import ClaircoreVersion

__all__ = ["is_valid", "normalized", "normalized_slots", "parse"]


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


def _as_claircore(version: str) -> ClaircoreVersion:
    parsed = parse(version)
    pre_label, pre_number = parsed.pre if parsed.pre is not None else ("", 0)
    return ClaircoreVersion(
        epoch=parsed.epoch,
        release=parsed.release,
        pre_label=pre_label,
        pre_number=pre_number,
        post=parsed.post or 0,
        dev=parsed.dev or 0,
    )


def normalized_slots(version: str) -> tuple[int, ...]:
    """The ten integers of claircore's ``Version`` for a PEP 440 version."""
    return _as_claircore(version).slots()


@lru_cache(maxsize=65536)
def normalized(version: str) -> str:
    """Clair's ``normalized_version`` string, e.g. ``"pep440:0.1.2.0.0.0.0.0.0.0"`` for 1.2."""
    return _as_claircore(version).normalized
