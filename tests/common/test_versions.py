"""clair_common.versions against the real tools' own test tables and generated oracles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clair_common import versions
from clair_common.versions import apk, pep440, rpm

TABLES = [
    ("dpkg", "dpkg.tsv", 43),
    ("dpkg", "dpkg-oracle.generated.tsv", 5000),
    ("rpm", "rpm.tsv", 91),
    ("rpm", "rpm-oracle.generated.tsv", 4500),
    ("apk", "apk.tsv", 738),
    ("pep440", "pep440.tsv", 8464),
]
OPERATORS = {"<": -1, "==": 0, "=": 0, ">": 1}


def read_table(path: Path) -> list[list[str]]:
    """Rows of a vectors/ TSV: line 1 is a provenance comment, line 2 the header."""
    lines = path.read_text(encoding="utf-8").split("\n")[2:]
    return [line.split("\t") for line in lines if line]


def read_op_lines(path: Path) -> list[tuple[str, int, str]]:
    """claircore rpmver testdata lines `a op b`; blank lines and # comments are skipped."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        a, op, b = line.split()
        rows.append((a, OPERATORS[op], b))
    return rows


@pytest.mark.parametrize(("kind", "name", "minimum_rows"), TABLES)
def test_comparison_tables(shared_data: Path, kind: str, name: str, minimum_rows: int) -> None:
    rows = read_table(shared_data / "vectors" / name)
    assert len(rows) >= minimum_rows
    mismatches = []
    for a, b, expected in rows:
        want = int(expected)
        if kind == "apk" and not (apk.is_valid(a) and apk.is_valid(b)):
            # apk-tools still orders invalid strings (by their valid prefix); the strict API
            # refuses them and the lenient one must reproduce apk's answer.
            with pytest.raises(ValueError, match="invalid apk version"):
                versions.compare(kind, a, b)
            got = apk.compare_any(a, b)
        else:
            got = versions.compare(kind, a, b)
        if got != want:
            mismatches.append(f"{a!r} vs {b!r}: want {want}, got {got}")
    assert not mismatches, f"{len(mismatches)} of {len(rows)} rows differ:\n" + "\n".join(
        mismatches[:50]
    )


def test_apk_tables_contain_few_invalid_rows(shared_data: Path) -> None:
    rows = read_table(shared_data / "vectors" / "apk.tsv")
    invalid = [(a, b) for a, b, _ in rows if not (apk.is_valid(a) and apk.is_valid(b))]
    assert invalid == [("23_foo", "4_beta"), ("1.0", "1.0bc")]


def test_apk_validity_table(shared_data: Path) -> None:
    rows = read_table(shared_data / "vectors" / "apk-validity.tsv")
    assert len(rows) == 31
    mismatches = []
    for version, expected in rows:
        want = expected == "1"
        if versions.is_valid("apk", version) != want:
            mismatches.append(version)
        if not want:
            with pytest.raises(ValueError, match="invalid apk version"):
                versions.sort_key("apk", version)
    assert not mismatches, f"validity differs for {mismatches}"


def test_claircore_rpmvercmp_table(shared_data: Path) -> None:
    rows = read_op_lines(shared_data / "other/claircore/internal/rpmver/testdata/rpmvercmp")
    assert len(rows) > 100
    mismatches = [(a, want, b) for a, want, b in rows if rpm.vercmp(a, b) != want]
    assert not mismatches


def test_claircore_rpm_evr_lines(shared_data: Path) -> None:
    # The compare file mixes NEVRAs with names and arches; lines without letters are EVRs.
    rows = read_op_lines(shared_data / "other/claircore/internal/rpmver/testdata/compare")
    evr_rows = [row for row in rows if not any(c.isalpha() for c in row[0] + row[2])]
    assert len(evr_rows) >= 3
    for a, want, b in evr_rows:
        assert versions.compare("rpm", a, b) == want, (a, b)


def test_claircore_rpm_parse_line(shared_data: Path) -> None:
    text = (shared_data / "other/claircore/internal/rpmver/testdata/parse").read_text("utf-8")
    evr_lines = [line.split() for line in text.splitlines() if line.startswith("1:")]
    assert evr_lines, "expected a bare EVR line in the parse table"
    for given, name, epoch, version, release, arch in evr_lines:
        assert (name, arch) == ("''", "''")
        assert rpm.split(given) == rpm.RpmEVR(int(epoch), version, release)


def test_pep440_sorted_list(shared_data: Path) -> None:
    text = (shared_data / "vectors" / "pep440-sorted.txt").read_text("utf-8")
    ordered = [line for line in text.splitlines()[1:] if line]
    assert len(ordered) == 92
    assert sorted(ordered, key=lambda v: versions.sort_key("pep440", v)) == ordered
    assert sorted(versions.parse("pep440", v) for v in ordered) == [
        versions.parse("pep440", v) for v in ordered
    ]


def test_pep440_normalize_table(shared_data: Path) -> None:
    rows = read_table(shared_data / "vectors" / "pep440-normalize.tsv")
    assert len(rows) >= 100
    # A few upstream cases carry whitespace (tabs, newlines, U+2029) that the TSV could not
    # hold; those rows are garbled, so keep only rows with two non-blank fields.
    pairs = [
        (version, canonical) for version, canonical in rows if version.strip() and canonical.strip()
    ]
    assert len(pairs) >= 100
    for version, canonical in pairs:
        assert str(pep440.parse(version)) == canonical
        assert versions.compare("pep440", version, canonical) == 0
    for padded in ["   v1.0\t\n", "\t1.0", "\u202f1.0\u2029", " \t1.0 "]:
        assert str(pep440.parse(padded)) == "1.0"


def test_pep440_invalid_list(shared_data: Path) -> None:
    text = (shared_data / "vectors" / "pep440-invalid.txt").read_text("utf-8")
    invalid = text.split("\n")[1:]
    invalid = [line for line in invalid if line]
    assert len(invalid) == 20
    for version in invalid:
        assert not versions.is_valid("pep440", version)
        with pytest.raises(ValueError, match="invalid pep440 version"):
            versions.compare("pep440", version, "1.0")


def test_pep440_component_tables(shared_data: Path) -> None:
    tables = json.loads((shared_data / "vectors" / "pep440-parts.json").read_text("utf-8"))
    attributes = {
        "test_version_public": "public",
        "test_version_base_version": "base_version",
        "test_version_epoch": "epoch",
        "test_version_release": "release",
        "test_version_local": "local",
        "test_version_pre": "pre",
        "test_version_dev": "dev",
        "test_version_post": "post",
        "test_version_is_prerelease": "is_prerelease",
        "test_version_is_devrelease": "is_devrelease",
        "test_version_is_postrelease": "is_postrelease",
    }
    checked = 0
    for table, attribute in attributes.items():
        for version, expected in tables[table]:
            got = getattr(pep440.parse(version), attribute)
            want = tuple(expected) if isinstance(expected, list) else expected
            assert got == want, (table, version)
            checked += 1
    assert checked > 250


def test_pep440_normalized_matches_claircore_reports(shared_data: Path) -> None:
    reports = [
        "other/claircore/datastore/postgres/testdata/docker.io-mitmproxy-mitmproxy-4.0.1.index.json",
        "other/claircore/python/testdata/indexreport-rhel8-data.json",
    ]
    checked = 0
    for report in reports:
        packages = json.loads((shared_data / report).read_text("utf-8"))["packages"]
        for package in packages.values():
            want = package.get("normalized_version", "")
            if want.startswith("pep440:"):
                assert versions.normalized("pep440", package["version"]) == want
                checked += 1
    assert checked >= 30


@pytest.mark.parametrize(
    ("version", "want"),
    [
        ("1.2", "pep440:0.1.2.0.0.0.0.0.0.0"),
        ("2!1.2.3.4.5.6.7", "pep440:2.1.2.3.4.5.0.0.0.0"),
        ("1.0a2", "pep440:0.1.0.0.0.0.-3.2.0.0"),
        ("1.0b1.post3", "pep440:0.1.0.0.0.0.-2.1.3.0"),
        ("1.0rc1.dev4", "pep440:0.1.0.0.0.0.-1.1.0.-4"),
        ("1.0.post2.dev5", "pep440:0.1.0.0.0.0.0.0.2.-5"),
        # A lone dev release moves into the pre-label slot, below every pre-release.
        ("1.0.dev3", "pep440:0.1.0.0.0.0.-2147483645.0.0.0"),
        # claircore cannot see dev0 and drops local labels.
        ("1.0.dev0", "pep440:0.1.0.0.0.0.0.0.0.0"),
        ("1.0+ubuntu.1", "pep440:0.1.0.0.0.0.0.0.0.0"),
        # Go's int32() truncation of a date-like component.
        ("20240101120000", "pep440:0.-2079746048.0.0.0.0.0.0.0.0"),
    ],
)
def test_pep440_normalized_examples(version: str, want: str) -> None:
    assert versions.normalized("pep440", version) == want


def test_normalized_is_empty_for_other_kinds() -> None:
    assert versions.normalized("dpkg", "1:2.30-1") == ""
    assert versions.normalized("rpm", "1:2.30-1.el8") == ""
    assert versions.normalized("apk", "2.30-r1") == ""
    with pytest.raises(ValueError, match="invalid pep440"):
        versions.normalized("pep440", "not a version")


@pytest.mark.parametrize(
    "call",
    [
        lambda: versions.compare("deb", "1", "2"),
        lambda: versions.is_valid("maven", "1"),
        lambda: versions.normalized("semver", "1.0.0"),
        lambda: versions.parse("gem", "1.0"),
        lambda: versions.sort_key("", "1.0"),
    ],
)
def test_unknown_kind_is_rejected(call: object) -> None:
    assert callable(call)
    with pytest.raises(ValueError, match="unknown version kind"):
        call()


def test_rpm_evr_rules() -> None:
    assert versions.compare("rpm", "1.0-1", "0:1.0-1") == 0
    assert versions.compare("rpm", "1:1.0-1", "2.0-1") == 1
    assert versions.compare("rpm", "01:1.0", "1:1.0") == 0
    # labelCompare with a missing release: it sorts below any release, even "~".
    assert versions.compare("rpm", "1.0", "1.0-~1") == -1
    assert versions.compare("rpm", "1.0", "1.0") == 0
    assert versions.compare("rpm", "1.0^git1-1", "1.0-1") == 1
    assert versions.compare("rpm", "1.0~rc1-1", "1.0-1") == -1
    assert rpm.split("2:1.2-3-4.el9") == rpm.RpmEVR(2, "1.2-3", "4.el9")
    for bad in ["", "a:1.0", "1:", "-1", "1:-3", "0x1:2"]:
        assert not versions.is_valid("rpm", bad), bad
        with pytest.raises(ValueError, match="rpm version"):
            versions.sort_key("rpm", bad)


def test_parsed_version_objects() -> None:
    low, high = versions.parse("dpkg", "1.0~rc1-1"), versions.parse("dpkg", "1.0-1")
    assert low < high
    assert low <= high
    assert high > low
    assert high >= low
    assert low != high
    assert versions.parse("dpkg", "1.0-1") is high  # cached
    assert versions.ParsedVersion("dpkg", "1.0-0") == versions.ParsedVersion("dpkg", "1.0")
    assert (
        len({versions.ParsedVersion("dpkg", "1.0-0"), versions.ParsedVersion("dpkg", "1.0")}) == 1
    )
    assert str(high) == "1.0-1"
    assert repr(high) == "ParsedVersion('dpkg', '1.0-1')"
    other_kind = versions.parse("rpm", "1.0-1")
    assert other_kind != high
    with pytest.raises(TypeError):
        _ = other_kind < high
    with pytest.raises(ValueError, match="does not start with digit"):
        versions.parse("dpkg", "v1.0")


def test_compare_is_normalised_to_unit_values() -> None:
    assert versions.compare("dpkg", "1", "1000") == -1
    assert versions.compare("rpm", "1000", "1") == 1
    assert versions.compare("apk", "1.0-r0", "1.0") == 1
    assert versions.compare("pep440", "1.0", "1.0.0") == 0
