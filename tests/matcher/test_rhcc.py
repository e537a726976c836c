"""rhcc: container records from real Red Hat VEX data, and the rhel-container-matcher rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from clair_common.models import Package, Repository, Vulnerability
from clair_common.vulnerable import IndexRecord, default_matchers, rhcc
from clair_common.vulnerable.matchers import MATCHER_NAMES
from tests.matcher.test_updaters_rhel_vex import VEX_DATA, documents, records

GOLD = ("Red Hat Container Catalog", "rhcc-container-repository")


def test_container_records_of_cve_2022_38752(shared_data: Path) -> None:
    got = [
        r
        for r in records(documents(shared_data, f"{VEX_DATA}/cve-2022-38752.json"))
        if r.repository is not None and r.repository.key == rhcc.REPOSITORY_KEY
    ]
    assert all((r.repository.name, r.repository.key) == GOLD for r in got if r.repository)
    fixed = [r for r in got if r.fixed_in_version]
    # Three per-arch images of one tag: one record listing the arches as a pattern.
    (sso,) = fixed
    assert sso.package is not None
    assert (sso.package.name, sso.package.kind) == ("rh-sso-7/sso76-openshift-rhel8", "binary")
    assert sso.fixed_in_version == "7.6-22"
    assert sso.arch_op == "pattern match"
    assert set(sso.package.arch.split("|")) == {"amd64", "x86_64", "ppc64le", "s390x"}
    assert sso.name == "CVE-2022-38752"
    assert sso.normalized_severity == "Medium"
    affected = {
        (r.package.name, r.package.kind) for r in got if not r.fixed_in_version and r.package
    }
    assert affected == {
        ("openshift3/metrics-cassandra", "source"),
        ("openshift3/metrics-hawkular-metrics", "source"),
        ("openshift3/ose-metrics-cassandra", "source"),
        ("openshift3/ose-metrics-hawkular-metrics", "source"),
        ("devspaces/idea-rhel8", "source"),
        ("devspaces/udi-rhel8", "source"),
    }
    # known_not_affected (openshift-logging/elasticsearch6-rhel8) makes no record
    assert len(got) == 7


def test_rpm_records_unchanged_by_containers(shared_data: Path) -> None:
    got = records(documents(shared_data, f"{VEX_DATA}/cve-2022-38752.json"))
    assert all(
        r.repository is not None
        and r.repository.key in ("rhel-cpe-repository", rhcc.REPOSITORY_KEY)
        for r in got
    )
    assert any(r.repository and r.repository.key == "rhel-cpe-repository" for r in got)


def _record(version: str, repo_key: str = rhcc.REPOSITORY_KEY) -> IndexRecord:
    return IndexRecord(
        Package(
            name="rh-sso-7/sso76-openshift-rhel8", version=version, kind="binary", arch="x86_64"
        ),
        None,
        Repository(name=GOLD[0], key=repo_key),
    )


def _vuln(fixed: str) -> Vulnerability:
    return Vulnerability(
        package=Package(arch="amd64|x86_64|ppc64le|s390x"),
        repository=Repository(name=GOLD[0], key=rhcc.REPOSITORY_KEY),
        fixed_in_version=fixed,
        arch_op="pattern match",
    )


def test_matcher_is_enabled_and_filters_on_the_rhcc_key() -> None:
    assert "rhel-container-matcher" in MATCHER_NAMES
    (matcher,) = default_matchers(["rhel-container-matcher"])
    assert matcher.filter(_record("7.6-21"))
    assert not matcher.filter(_record("7.6-21", "rhel-cpe-repository"))
    assert not matcher.filter(IndexRecord(Package(name="x", version="1-1")))
    assert [c.vuln_column for c in matcher.constraints] == ["repo_key"]


@pytest.mark.parametrize(
    ("installed", "fixed", "affected"),
    [
        ("7.6-21", "7.6-22", True),
        ("7.6-22", "7.6-22", False),
        ("7.6-23", "7.6-22", False),
        ("7.5-40", "7.6-22", True),
        ("v4.6.0-202112132021.p0", "v4.6.0-202112140036.p0", True),
        ("v4.6.0-202112140036.p0", "v4.6.0-202112132021.p0", False),
        ("1.16", "1.16-1", True),  # a bare tag reads as release 0
        ("1.16-1", "1.16", False),
        ("7.6-21", "", True),  # no fix: every image is affected
    ],
)
def test_matcher_rule(installed: str, fixed: str, affected: bool) -> None:
    (matcher,) = default_matchers(["rhel-container-matcher"])
    assert matcher.vulnerable(_record(installed), _vuln(fixed)) is affected
