"""clair_common.versions for dpkg, checked against the real ``dpkg`` binary."""

from __future__ import annotations

import lzma
import random
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from clair_common import versions
from clair_common.versions import dpkg

DPKG = shutil.which("dpkg")
needs_dpkg = pytest.mark.skipif(DPKG is None, reason="dpkg is not installed")

PAIRS = 10_000
SEED = 20250601
_VERSION_FIELD = re.compile(r"^Version: *(\S+) *$", re.MULTILINE)
_RELATION = {-1: "lt", 0: "eq", 1: "gt"}


def real_versions(shared_data: Path) -> list[str]:
    """Distinct real Debian/Ubuntu versions: archive Sources, dpkg status files, the oracle."""
    found: set[str] = set()
    for sources in sorted((shared_data / "feeds" / "debian-archive").rglob("Sources.xz")):
        with lzma.open(sources, "rt", encoding="utf-8") as handle:
            found.update(_VERSION_FIELD.findall(handle.read()))
    for status in sorted((shared_data / "layers").glob("*/var/lib/dpkg/status")):
        found.update(_VERSION_FIELD.findall(status.read_text("utf-8")))
    oracle = shared_data / "vectors" / "dpkg-oracle.generated.tsv"
    for line in oracle.read_text("utf-8").splitlines()[2:]:
        found.update(line.split("\t")[:2])
    return sorted(version for version in found if dpkg.is_valid(version))


def pick_pairs(all_versions: list[str], count: int, rng: random.Random) -> list[tuple[str, str]]:
    """Half random pairs, half near neighbours in our order (where subtle rules decide)."""
    ordered = sorted(all_versions, key=dpkg.sort_key)
    pairs = [tuple(rng.sample(all_versions, 2)) for _ in range(count // 2)]
    while len(pairs) < count:
        index = rng.randrange(len(ordered) - 3)
        pairs.append((ordered[index], ordered[index + rng.randint(1, 3)]))
    pairs = [(b, a) if rng.random() < 0.5 else (a, b) for a, b in pairs]
    return [(str(a), str(b)) for a, b in pairs]


def dpkg_agrees(pairs: list[tuple[str, str, str]]) -> list[bool]:
    """For each (a, relation, b): does ``dpkg --compare-versions a relation b`` hold?

    One shell per half of the pairs, one dpkg per pair; versions are plain [0-9A-Za-z.+~:-]
    so single quotes are safe.
    """
    halves = [pairs[: len(pairs) // 2], pairs[len(pairs) // 2 :]]
    with tempfile.TemporaryDirectory() as tmp:
        processes = []
        for number, half in enumerate(halves):
            script = Path(tmp) / f"compare{number}.sh"
            script.write_text(
                "".join(
                    f"{DPKG} --compare-versions -- '{a}' {relation} '{b}' && echo 1 || echo 0\n"
                    for a, relation, b in half
                )
            )
            processes.append(
                subprocess.Popen(["sh", str(script)], stdout=subprocess.PIPE, text=True)
            )
        answers: list[bool] = []
        for process in processes:
            out, _ = process.communicate(timeout=120)
            assert process.returncode == 0
            answers.extend(line == "1" for line in out.splitlines())
    assert len(answers) == len(pairs)
    return answers


@needs_dpkg
def test_random_real_pairs_agree_with_dpkg(shared_data: Path) -> None:
    all_versions = real_versions(shared_data)
    assert len(all_versions) > 15_000
    pairs = pick_pairs(all_versions, PAIRS, random.Random(SEED))
    claims = [(a, _RELATION[versions.compare("dpkg", a, b)], b) for a, b in pairs]
    assert {relation for _, relation, _ in claims} == {"lt", "eq", "gt"}
    disagreements = [claim for claim, ok in zip(claims, dpkg_agrees(claims), strict=True) if not ok]
    assert not disagreements, (
        f"dpkg disagrees with {len(disagreements)} claims: {disagreements[:20]}"
    )


# Strings dpkg's parseversion accepts silently (True) or complains about (False).
SYNTAX_CASES = [
    ("1.0", True),
    (" 1.0", True),
    ("1.0\t", True),
    ("+1:1.0", True),
    ("00:1", True),
    ("\n1:1.0", True),
    ("2147483647:1", True),
    ("1:2:3", True),
    ("1.0-1-2", True),
    ("1.0~rc1+dfsg-1~bpo1", True),
    ("1.0\n", False),
    ("1 0", False),
    ("1: 1", False),
    ("-1:1.0", False),
    ("2147483648:1", False),
    (" :1", False),
    (":1", False),
    ("1:", False),
    ("a1", False),
    ("1.0-", False),
    ("1:2-3:4", False),
    ("1.0_1", False),
    ("1-a_b", False),
    ("0x1:1", False),
    ("1:-1", False),
    ("1é", False),
    ("   ", False),
]


@pytest.mark.parametrize(("version", "accepted"), SYNTAX_CASES)
def test_validity_follows_parseversion(version: str, accepted: bool) -> None:
    assert dpkg.is_valid(version) is accepted
    if not accepted:
        with pytest.raises(ValueError, match="dpkg version"):
            versions.compare("dpkg", version, "1.0")


@needs_dpkg
def test_validity_cases_agree_with_dpkg() -> None:
    assert DPKG is not None
    wrong = []
    for version, accepted in SYNTAX_CASES:
        result = subprocess.run(
            [DPKG, "--compare-versions", "--", version, "eq", version],
            capture_output=True,
            text=True,
            check=False,
        )
        dpkg_accepts = result.returncode == 0 and not result.stderr
        if dpkg_accepts is not accepted:
            wrong.append((version, result.returncode, result.stderr.strip()))
    assert not wrong


def test_empty_version_is_rejected() -> None:
    # dpkg --compare-versions treats "" as "no version"; parseversion calls it an error.
    assert not dpkg.is_valid("")
    with pytest.raises(ValueError, match="version string is empty"):
        versions.sort_key("dpkg", "")


def test_split_fields() -> None:
    assert dpkg.split("1:2.30-1ubuntu1") == dpkg.DpkgVersion(1, "2.30", "1ubuntu1")
    assert dpkg.split("2.30") == dpkg.DpkgVersion(0, "2.30", "")
    assert dpkg.split("1:2:3-4-5") == dpkg.DpkgVersion(1, "2:3-4", "5")
