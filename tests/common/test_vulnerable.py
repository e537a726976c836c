"""The per-ecosystem rules of clair_common.vulnerable, with real version strings."""

from __future__ import annotations

import pytest

from clair_common.models import (
    Distribution,
    Environment,
    IndexReport,
    Package,
    Repository,
    Vulnerability,
)
from clair_common.vulnerable import (
    MATCHER_NAMES,
    Constraint,
    IndexRecord,
    Matcher,
    MatchError,
    cpe,
    default_matchers,
    index_records,
    osv,
    severity_sorted,
)

MATCHERS = {m.name: m for m in default_matchers()}

DEBIAN_12 = Distribution(
    id="1", did="debian", name="Debian GNU/Linux", version="12 (bookworm)", version_id="12"
)
UBUNTU_2004 = Distribution(id="2", did="ubuntu", name="Ubuntu", version_id="20.04")
ALPINE_318 = Distribution(id="3", did="alpine", name="Alpine Linux", pretty_name="Alpine 3.18")
ORACLE_8 = Distribution(id="4", did="ol", name="Oracle Linux Server", version="8.6")
RHEL_BASEOS = Repository(
    id="1",
    name="cpe:/o:redhat:enterprise_linux:8::baseos",
    key="rhel-cpe-repository",
    cpe="cpe:2.3:o:redhat:enterprise_linux:8:*:baseos:*:*:*:*:*",
)
RHEL_APPSTREAM = Repository(
    id="2",
    name="cpe:/a:redhat:enterprise_linux:8::appstream",
    key="rhel-cpe-repository",
    cpe="cpe:2.3:a:redhat:enterprise_linux:8:*:appstream:*:*:*:*:*",
)
PYPI = Repository(id="6", name="pypi", uri="https://pypi.invalid/simple")


def record(
    version: str,
    dist: Distribution | None = None,
    repo: Repository | None = None,
    *,
    arch: str = "",
    normalized: str = "",
) -> IndexRecord:
    package = Package(id="1", name="pkg", version=version, arch=arch, normalized_version=normalized)
    return IndexRecord(package, dist, repo)


def vuln(
    fixed: str = "",
    *,
    package_version: str = "",
    arch: str = "",
    arch_op: str = "",
    repo: Repository | None = None,
) -> Vulnerability:
    return Vulnerability(
        id="1",
        name="CVE-0000-0000",
        package=Package(name="pkg", version=package_version, arch=arch),
        repository=repo,
        fixed_in_version=fixed,
        arch_op=arch_op,
    )


def check(matcher: Matcher, rec: IndexRecord, v: Vulnerability) -> bool:
    return matcher.vulnerable(rec, v)


@pytest.mark.parametrize(
    ("installed", "fixed", "want"),
    [
        ("3.0.11-1~deb12u1", "", True),  # no fix yet
        ("3.0.11-1~deb12u1", "0", False),  # Debian: "0" means not affected
        ("3.0.11-1~deb12u1", "3.0.11-1~deb12u2", True),
        ("3.0.11-1~deb12u2", "3.0.11-1~deb12u2", False),
        ("3.0.11-1", "3.0.11-1~deb12u2", False),  # ~ sorts before the end
        ("1:2.36-9+deb12u4", "2.36-9+deb12u7", False),  # epoch wins
        ("2.36-9+deb12u4", "1:2.36-9+deb12u3", True),
        ("not a version", "1.0-1", False),  # package parse error: not vulnerable
    ],
)
def test_debian(installed: str, fixed: str, want: bool) -> None:
    assert check(MATCHERS["debian-matcher"], record(installed, DEBIAN_12), vuln(fixed)) is want


def test_debian_unparsable_fixed_version_is_an_error() -> None:
    with pytest.raises(MatchError):
        check(MATCHERS["debian-matcher"], record("1.0-1", DEBIAN_12), vuln("1.0 beta"))


@pytest.mark.parametrize(
    ("installed", "fixed", "want"),
    [
        ("1.1.1f-1ubuntu2.16", "", True),
        ("1.1.1f-1ubuntu2.16", "0", True),  # Ubuntu: "0" means unfixed, unlike Debian
        ("1.1.1f-1ubuntu2.16", "0:0", True),  # parses to "0" as well
        ("1.1.1f-1ubuntu2.16", "1.1.1f-1ubuntu2.17", True),
        ("1.1.1f-1ubuntu2.17", "1.1.1f-1ubuntu2.17", False),
        ("1.1.1f-1ubuntu2.20", "1.1.1f-1ubuntu2.17", False),
        ("2.31-0ubuntu9.9", "2.31-0ubuntu9.10", True),
    ],
)
def test_ubuntu(installed: str, fixed: str, want: bool) -> None:
    assert check(MATCHERS["ubuntu-matcher"], record(installed, UBUNTU_2004), vuln(fixed)) is want


@pytest.mark.parametrize(("installed", "fixed"), [("not a version", "1.0-1"), ("1.0-1", "1.0 b")])
def test_ubuntu_parse_errors_are_errors(installed: str, fixed: str) -> None:
    with pytest.raises(MatchError):
        check(MATCHERS["ubuntu-matcher"], record(installed, UBUNTU_2004), vuln(fixed))


@pytest.mark.parametrize(
    ("installed", "fixed", "want"),
    [
        ("3.1.4-r1", "", True),
        ("3.1.4-r1", "0", False),  # Alpine: "0" means not affected
        ("1.1.1k-r0", "1.1.1l-r0", True),
        ("3.1.4-r1", "3.1.4-r1", False),
        ("3.1.4-r2", "3.1.4-r1", False),
        ("2.4.0_rc1-r0", "2.4.0-r0", True),  # pre-release suffix sorts low
        ("garbage!", "1.0-r0", False),  # parse errors are "not vulnerable", never errors
        ("1.0-r0", "bogus version", False),
    ],
)
def test_alpine(installed: str, fixed: str, want: bool) -> None:
    assert check(MATCHERS["alpine-matcher"], record(installed, ALPINE_318), vuln(fixed)) is want


@pytest.mark.parametrize(
    ("installed", "v", "want"),
    [
        ("1.1.1k-6.el8_5", vuln("1:1.1.1k-7.el8_6"), True),
        ("1:1.1.1k-6.el8_5", vuln("0:1.1.1k-7.el8_6"), False),  # epoch 1 beats 0
        ("1:1.1.1k-7.el8_6", vuln("1:1.1.1k-7.el8_6"), False),  # fixed: strictly less
        # No fixed version: the vulnerability's package version is the last affected one.
        ("2.28-225.0.4.el8", vuln(package_version="2.28-225.0.4.el8"), True),
        ("2.28-225.0.5.el8", vuln(package_version="2.28-225.0.4.el8"), False),
        ("99:1.0-1", vuln(), True),  # neither: compared with 65535:65535-65535
        ("1.0-1.el8~beta", vuln("1.0-1.el8"), True),  # ~ sorts first
    ],
)
def test_rpm_rule_versions(installed: str, v: Vulnerability, want: bool) -> None:
    assert check(MATCHERS["oracle"], record(installed, ORACLE_8), v) is want


@pytest.mark.parametrize(
    ("record_arch", "op", "vuln_arch", "want"),
    [
        ("x86_64", "equals", "x86_64", True),
        ("aarch64", "equals", "x86_64", False),
        ("aarch64", "not equals", "x86_64", True),
        ("x86_64", "not equals", "x86_64", False),
        ("x86_64", "pattern match", "x86_64|noarch", True),
        ("noarch", "pattern match", "^(x86_64|aarch64)$", False),
        ("x86_64", "pattern match", "([", False),  # bad pattern matches nothing
        ("x86_64", "equals", "", True),  # no vulnerability arch: every arch
        ("", "equals", "x86_64", False),  # no package arch: nothing
        ("x86_64", "", "x86_64", False),  # arch set but no operation
    ],
)
def test_rpm_arch_operations(record_arch: str, op: str, vuln_arch: str, want: bool) -> None:
    rec = record("1.0-1.el8", ORACLE_8, arch=record_arch)
    assert check(MATCHERS["oracle"], rec, vuln("1.0-2.el8", arch=vuln_arch, arch_op=op)) is want


def test_rpm_unparsable_version_is_an_error() -> None:
    # claircore's rpmver needs version-release.
    with pytest.raises(MatchError):
        check(MATCHERS["suse"], record("1.0", ORACLE_8), vuln("1.0-2"))


@pytest.mark.parametrize(
    ("installed", "fixed", "want"),
    [
        # claircore's own python matcher table (python/matcher_test.go).
        ("0.9.8", "fixed=1.0.0&introduced=0.7.0", True),
        ("1.4.3", "fixed=1.4.4&introduced=0", True),
        ("1.4.3", "fixed=1.4.3&introduced=0", False),
        ("1.0a1", "fixed=1.0b1&introduced=0", True),
        ("1.0.post1", "fixed=1.0.post2&introduced=0", True),
        ("1.0+local.1", "fixed=1.0+local.2&introduced=0", False),  # local labels dropped
        # Introduced bounds from below; lastAffected is inclusive.
        ("0.6.9", "fixed=1.0.0&introduced=0.7.0", False),
        ("1.4", "introduced=1.0&lastAffected=1.4", True),
        ("1.4.1", "introduced=1.0&lastAffected=1.4", False),
        ("2.1", "introduced=2.0", True),
        ("1.9", "introduced=2.0", False),
        ("5.1", "", True),
        ("5.1", "fixed=5.2b1&introduced=5.1", True),
        ("5.2", "fixed=5.2b1&introduced=5.1", False),
        ("1.0.dev1", "fixed=1.0a1", True),  # dev sorts below pre-releases
        ("2.0.0-custom", "fixed=2.0.1", True),  # claircore's parse is unanchored
    ],
)
def test_python(installed: str, fixed: str, want: bool) -> None:
    rec = record(installed, None, PYPI, normalized="pep440:0.0.0.0.0.0.0.0.0.0")
    assert check(MATCHERS["python"], rec, vuln(fixed, repo=PYPI)) is want


@pytest.mark.parametrize(
    ("installed", "fixed"), [("no digits", "fixed=1.0"), ("1.0", "fixed=1.1;x=2"), ("1", "a=%zz")]
)
def test_python_errors(installed: str, fixed: str) -> None:
    with pytest.raises(MatchError):
        check(MATCHERS["python"], record(installed, None, PYPI), vuln(fixed))


def test_python_filter_is_the_normalized_kind() -> None:
    python = MATCHERS["python"]
    assert python.filter(record("1.0", normalized="pep440:0.1.0.0.0.0.0.0.0.0"))
    assert not python.filter(record("1.0"))
    assert python.constraints == (Constraint.REPOSITORY_NAME,)


RHEL_VULN_REPO = Repository(
    name="cpe:/o:redhat:enterprise_linux:8::baseos", key="rhel-cpe-repository"
)


@pytest.mark.parametrize(
    ("repo", "vuln_cpe", "want"),
    [
        (RHEL_BASEOS, "cpe:/o:redhat:enterprise_linux:8::baseos", True),  # equal
        (RHEL_BASEOS, "cpe:/o:redhat:enterprise_linux:8", True),  # ANY edition: superset
        (RHEL_APPSTREAM, "cpe:/o:redhat:enterprise_linux:8::baseos", False),
        (RHEL_BASEOS, "cpe:/o:redhat:enterprise_linux:9::baseos", False),
        (RHEL_APPSTREAM, "cpe:2.3:a:redhat:enterprise_linux:8:*:appstream:*:*:*:*:*", True),
        (RHEL_APPSTREAM, "cpe:/a:REDHAT:Enterprise_Linux:8::AppStream", True),  # case-blind
        (
            Repository(
                key="rhel-cpe-repository", cpe="cpe:2.3:a:redhat:openshift:4.13:*:el8:*:*:*:*:*"
            ),
            "cpe:/a:redhat:openshift:4",  # Red Hat's prefix "pattern"
            True,
        ),
        (
            Repository(
                key="rhel-cpe-repository", cpe="cpe:2.3:a:redhat:openshift:4.13:*:el8:*:*:*:*:*"
            ),
            "cpe:2.3:a:redhat:openshift:4.1?:*:el8:*:*:*:*:*",  # a real wildcard
            True,
        ),
        (RHEL_BASEOS, "not a cpe", False),  # unparsable: skipped, not an error
    ],
)
def test_rhel_cpe_matching(repo: Repository, vuln_cpe: str, want: bool) -> None:
    v = vuln("1:1.1.1k-7.el8_6", repo=Repository(name=vuln_cpe, key="rhel-cpe-repository"))
    assert check(MATCHERS["rhel"], record("1:1.1.1k-6.el8_5", None, repo), v) is want


def test_rhel_versions_and_keys() -> None:
    rhel = MATCHERS["rhel"]
    rec = record("1:1.1.1k-6.el8_5", None, RHEL_BASEOS, arch="x86_64")
    assert rhel.filter(rec)
    assert not rhel.filter(record("1.0-1", None, PYPI))
    assert check(rhel, rec, vuln("", repo=RHEL_VULN_REPO))  # unfixed
    assert not check(rhel, rec, vuln("1:1.1.1k-6.el8_5", repo=RHEL_VULN_REPO))
    assert not check(rhel, rec, vuln("1:1.1.1k-7", repo=Repository(name=RHEL_VULN_REPO.name)))
    assert not check(
        rhel, rec, vuln("1:1.1.1k-7", repo=RHEL_VULN_REPO, arch="s390x", arch_op="equals")
    )
    assert check(
        rhel, rec, vuln("1:1.1.1k-7", repo=RHEL_VULN_REPO, arch="x86_64", arch_op="equals")
    )


@pytest.mark.parametrize(
    ("name", "dist", "want"),
    [
        ("debian-matcher", Distribution(name="Debian GNU/Linux"), True),
        ("debian-matcher", UBUNTU_2004, False),
        ("ubuntu-matcher", Distribution(did="ubuntu"), True),
        ("alpine-matcher", Distribution(name="Alpine Linux"), True),
        ("aws-matcher", Distribution(did="amzn", version_id="2023"), True),
        ("aws-matcher", Distribution(name="Amazon Linux AMI"), True),
        ("oracle", Distribution(did="ol"), True),
        ("photon", Distribution(did="photon"), True),
        ("photon", Distribution(name="VMware Photon OS"), False),  # DID only
        ("suse", Distribution(did="opensuse-leap"), True),
        ("suse", Distribution(name="SLES"), True),
        ("suse", None, False),
    ],
)
def test_distribution_filters(name: str, dist: Distribution | None, want: bool) -> None:
    assert MATCHERS[name].filter(record("1.0-1", dist)) is want


def test_default_matchers_names_and_config() -> None:
    assert [m.name for m in default_matchers()] == list(MATCHER_NAMES)
    assert len(MATCHER_NAMES) == 11
    chosen = default_matchers(["ubuntu-matcher", "java-maven", "nonsense", "gobin", "rhel"])
    assert [m.name for m in chosen] == ["ubuntu-matcher", "gobin", "rhel"]
    assert default_matchers([]) == []
    (rhel,) = default_matchers(["rhel"], {"rhel": {"ignore_unpatched": True}})
    assert rhel.constraints == (
        Constraint.PACKAGE_MODULE,
        Constraint.REPOSITORY_KEY,
        Constraint.HAS_FIXED_IN_VERSION,
    )
    debian = MATCHERS["debian-matcher"]
    assert [c.vuln_column for c in debian.constraints] == ["dist_id", "dist_name", "dist_version"]
    assert [c.record_value(record("1", DEBIAN_12)) for c in debian.constraints] == [
        "debian",
        "Debian GNU/Linux",
        "12 (bookworm)",
    ]


def test_index_records_expand_environments_and_repositories() -> None:
    pkg = Package(id="7", name="openssl", version="1:1.1.1k-6.el8_5")
    report = IndexReport(
        manifest_hash="sha256:" + "0" * 64,
        packages={"7": pkg, "8": Package(id="8", name="orphan")},
        distributions={"1": DEBIAN_12},
        repositories={"1": RHEL_BASEOS, "2": RHEL_APPSTREAM},
        environments={
            "7": [
                Environment(distribution_id="1", repository_ids=["1", "2"]),
                Environment(distribution_id=""),
            ]
        },
    )
    assert index_records(report) == [
        IndexRecord(pkg, DEBIAN_12, RHEL_BASEOS),
        IndexRecord(pkg, DEBIAN_12, RHEL_APPSTREAM),
        IndexRecord(pkg, None, None),
    ]


def test_severity_sorted() -> None:
    vulns = {
        i: Vulnerability(id=i, normalized_severity=s)
        for i, s in [("10", "Low"), ("9", "Critical"), ("100", "Critical"), ("2", "Unknown")]
    }
    assert severity_sorted(["10", "100", "2", "9"], vulns) == ["9", "100", "10", "2"]


def test_cpe_unbinding_and_binding() -> None:
    uri = cpe.parse("cpe:/a:redhat:rhel_eus:8.6::appstream")
    assert uri.bind_fs() == "cpe:2.3:a:redhat:rhel_eus:8.6:*:appstream:*:*:*:*:*"
    assert cpe.parse(uri.bind_fs()) == uri
    packed = cpe.parse("cpe:/a:vendor:product:1.0::~ed~sw~tsw~thw~other")
    assert packed.attrs[5:] == ("ed", "*", "sw", "tsw", "thw", "other")
    assert cpe.parse("cpe:/a:foo%21:bar").bind_fs().startswith("cpe:2.3:a:foo\\!:bar:")
    with pytest.raises(cpe.CPEError):
        cpe.parse("pkg:rpm/openssl")


def test_pep440_key_matches_claircore_slots() -> None:
    assert osv.pep440_key("1.2") == (0, 1, 2, 0, 0, 0, 0, 0, 0, 0)
    assert osv.pep440_key("2!1.0rc2.post3.dev4") == (2, 1, 0, 0, 0, 0, -1, 2, 3, -4)
    assert osv.pep440_key("1.0.dev4")[6] == -(2**31) + 4
    assert osv.pep440_key("1.0alpha1") == osv.pep440_key("1.0a0")  # leftmost-first regex
