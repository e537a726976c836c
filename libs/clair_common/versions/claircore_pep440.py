"""claircore's own PEP 440 (pkg/pep440): its lenient parse, canonical string and ten slots.

claircore does not use a strict PEP 440 parser. It runs the packaging reference regex
*unanchored* and case-sensitively (Go's leftmost-first ``FindStringSubmatch``), so anything
that contains a version is accepted (``"2.0.0-custom"``, ``"v1.0+local.7"``), ``"1.0alpha1"``
stops at the leftmost alternative ``"a"`` and reads as ``1.0a0``, and local labels are
dropped. What it found is written two ways, both reproduced here:

* :attr:`ClaircoreVersion.canonical` is ``Version.String()``, the ``version`` Clair reports
  for a Python package;
* :meth:`ClaircoreVersion.slots` is ``Version.Version()``: ten int32 slots (epoch, five
  release numbers, pre-release label a=-3/b=-2/rc=-1, pre-release number, post, dev), the
  ``normalized_version`` Clair stores as ``"pep440:" + slots``. A dev release with neither pre
  nor post moves into the label slot as ``INT32_MIN + dev`` so it sorts below every
  pre-release; otherwise it is stored as ``-dev``. Numbers wrap like Go's ``int32(n)``, and
  ``dev0`` cannot be told from no dev release.

The python scanner and the python matcher's rule parse with :func:`search` / :func:`key`;
:mod:`clair_common.versions.pep440` fills the slots from ``packaging``'s strict parse instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["INT32_MIN", "KIND", "SLOTS", "ClaircoreVersion", "int32", "key", "search"]

KIND = "pep440"
SLOTS = 10
_RELEASE_SLOTS = 5
INT32_MIN = -(2**31)

# PEP 440's reference regex as claircore compiles it: lower-case labels only, no anchors.
_PATTERN = re.compile(
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
# Spellings of the pre-release labels; c, pre and preview all mean rc.
_PRE_LABELS = {"a": "a", "alpha": "a", "b": "b", "beta": "b"}
_PRE_RANK = {"a": -3, "b": -2, "rc": -1}


def int32(number: int) -> int:
    """Go's int32(n) conversion: keep the low 32 bits, two's complement."""
    return (number - INT32_MIN) % 2**32 + INT32_MIN


@dataclass(frozen=True, slots=True)
class ClaircoreVersion:
    """The parts claircore keeps of a PEP 440 version (no local label)."""

    epoch: int
    release: tuple[int, ...]
    pre_label: str = ""  # "a", "b", "rc", or "" for no pre-release
    pre_number: int = 0
    post: int = 0
    dev: int = 0

    @property
    def canonical(self) -> str:
        """claircore's ``Version.String()``; post0 and dev0 are not written."""
        text = f"{self.epoch}!" if self.epoch else ""
        text += ".".join(str(n) for n in self.release)
        if self.pre_label:
            text += f"{self.pre_label}{self.pre_number}"
        if self.post:
            text += f".post{self.post}"
        if self.dev:
            text += f".dev{self.dev}"
        return text

    def slots(self) -> tuple[int, ...]:
        """The ten int32 slots of claircore's ``Version.Version()``."""
        slots = [0] * SLOTS
        slots[0] = int32(self.epoch)
        for index, number in enumerate(self.release[:_RELEASE_SLOTS]):
            slots[1 + index] = int32(number)
        if self.pre_label:
            slots[6] = _PRE_RANK[self.pre_label]
            slots[7] = int32(self.pre_number)
        slots[8] = int32(self.post)
        if self.dev != 0:
            if self.post != 0 or slots[6] != 0:
                slots[9] = int32(-self.dev)
            else:
                slots[6] = int32(INT32_MIN + self.dev)
        return tuple(slots)

    @property
    def normalized(self) -> str:
        """Clair's ``normalized_version``, e.g. ``"pep440:0.1.2.0.0.0.0.0.0.0"`` for 1.2."""
        return KIND + ":" + ".".join(str(slot) for slot in self.slots())


def search(text: str) -> ClaircoreVersion | None:
    """The first version claircore finds in ``text``, or None where it finds none."""
    match = _PATTERN.search(text)
    if match is None:
        return None
    pre = match["pre_l"]
    return ClaircoreVersion(
        epoch=int(match["epoch"] or 0),
        release=tuple(int(n) for n in match["release"].split(".")),
        pre_label=_PRE_LABELS.get(pre, "rc") if pre else "",
        pre_number=int(match["pre_n"] or 0),
        post=int(match["post_n1"] or match["post_n2"] or 0),
        dev=int(match["dev_n"] or 0),
    )


@lru_cache(maxsize=65536)
def key(text: str) -> tuple[int, ...]:
    """The slots of the version in ``text``, to compare as claircore does; raises ValueError."""
    version = search(text)
    if version is None:
        raise ValueError(f"invalid pep440 version: {text!r}")
    return version.slots()
