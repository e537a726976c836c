"""Matching index reports against a real matcher database."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from clair_common.models import (
    ZERO_TIME,
    Distribution,
    Environment,
    IndexReport,
    Package,
    Repository,
    Vulnerability,
)
from clair_common.vulnerable import MatchError, default_matchers
from clair_matcher.matching import match_report
from clair_matcher.service import MatcherService
from clair_matcher.store import MatcherStore

GOLDEN = Path("other/claircore/python/testdata/matcher")


async def new_operation(conn: asyncpg.Connection, updater: str) -> int:
    """A new vulnerability operation of `updater`, which becomes its latest."""
    uo = await conn.fetchval(
        "INSERT INTO update_operation (updater, fingerprint) VALUES ($1, '') RETURNING id", updater
    )
    await conn.execute(
        "INSERT INTO latest_update_operation (updater, kind, uo_id)"
        " VALUES ($1, 'vulnerability', $2)"
        " ON CONFLICT (updater, kind) DO UPDATE SET uo_id = EXCLUDED.uo_id",
        updater,
        uo,
    )
    return int(uo)


async def insert_vulnerabilities(
    conn: asyncpg.Connection, uo: int, vulns: Sequence[Vulnerability]
) -> list[int]:
    """Insert rows (keeping numeric ids) linked to operation `uo`; returns their ids."""
    ids = []
    for v in vulns:
        pkg = v.package or Package()
        dist = v.distribution or Distribution()
        repo = v.repository or Repository()
        issued = None if v.issued == ZERO_TIME else datetime.fromisoformat(v.issued)
        values: dict[str, Any] = {
            "hash": hashlib.md5(json.dumps(v.to_json(), sort_keys=True).encode()).digest(),
            "updater": v.updater,
            "name": v.name,
            "description": v.description,
            "issued": issued,
            "links": v.links,
            "severity": v.severity,
            "normalized_severity": v.normalized_severity,
            "package_name": pkg.name,
            "package_version": pkg.version,
            "package_module": pkg.module,
            "package_arch": pkg.arch,
            "package_kind": pkg.kind,
            "dist_id": dist.did,
            "dist_name": dist.name,
            "dist_version": dist.version,
            "dist_version_code_name": dist.version_code_name,
            "dist_version_id": dist.version_id,
            "dist_arch": dist.arch,
            "dist_cpe": dist.cpe,
            "dist_pretty_name": dist.pretty_name,
            "repo_name": repo.name,
            "repo_key": repo.key,
            "repo_uri": repo.uri,
            "fixed_in_version": v.fixed_in_version,
            "arch_operation": v.arch_op,
        }
        if v.id.isdigit():
            values["id"] = int(v.id)
        columns = ", ".join(values)
        marks = ", ".join(f"${n}" for n in range(1, len(values) + 1))
        vid = await conn.fetchval(
            f"INSERT INTO vuln ({columns}) VALUES ({marks}) RETURNING id", *values.values()
        )
        await conn.execute("INSERT INTO uo_vuln (uo, vuln) VALUES ($1, $2)", uo, vid)
        ids.append(int(vid))
    await conn.execute("SELECT setval('vuln_id_seq', (SELECT max(id) FROM vuln))")
    return ids


async def load(pool: asyncpg.Pool, by_updater: Mapping[str, Sequence[Vulnerability]]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for updater, vulns in by_updater.items():
            await insert_vulnerabilities(conn, await new_operation(conn, updater), vulns)


# --- claircore's python golden case -------------------------------------------------------


def parse_txtar(text: str) -> dict[str, str]:
    """Files of a txtar archive: a `-- name --` line starts each file; a leading comment is dropped.

    claircore writes its JSON files as RFC 7464 records, so the record separator is stripped.
    """
    files: dict[str, str] = {}
    name: str | None = None
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\n")
        if stripped.startswith("-- ") and stripped.endswith(" --") and len(stripped) > 6:
            name = stripped[3:-3].strip()
            files[name] = ""
        elif name is not None:
            files[name] += line
    return {k: v.lstrip("\x1e") for k, v in files.items()}


def resolve(doc: Any, files: Mapping[str, str]) -> Any:
    """Replace every {"$ref": "file:<name>"} with the (resolved) JSON of that file."""
    if isinstance(doc, dict):
        ref = doc.get("$ref")
        if isinstance(ref, str) and ref.startswith("file:") and len(doc) == 1:
            return resolve(json.loads(files[ref.removeprefix("file:")]), files)
        return {k: resolve(v, files) for k, v in doc.items()}
    if isinstance(doc, list):
        return [resolve(v, files) for v in doc]
    return doc


def golden_cases(root: Path) -> list[Path]:
    return sorted((root / GOLDEN).glob("*.txtar"))


def instant(text: str) -> datetime | None:
    return None if text == ZERO_TIME else datetime.fromisoformat(text)


async def test_python_golden_cases(matcher_pool: asyncpg.Pool, shared_data: Path) -> None:
    cases = golden_cases(shared_data)
    assert cases, "claircore python matcher cases missing"
    for path in cases:
        files = parse_txtar(path.read_text(encoding="utf-8"))
        database = resolve(json.loads(files["Database"]), files)
        report = IndexReport.from_json(resolve(json.loads(files["IndexReport"]), files))
        want = resolve(json.loads(files["Want"]), files)
        vulns = {
            v["id"]: Vulnerability.from_json(v)
            for found in database["vulnerabilities"].values()
            for v in found
        }
        async with matcher_pool.acquire() as conn:
            await conn.execute("TRUNCATE update_operation, vuln, uo_vuln CASCADE")
        await load(matcher_pool, {"osv/pypi": list(vulns.values())})

        got = await match_report(MatcherStore(matcher_pool), report, default_matchers())

        assert got.package_vulnerabilities == want["package_vulnerabilities"], path.name
        assert set(got.vulnerabilities) == set(want["vulnerabilities"]), path.name
        for vid, expected in want["vulnerabilities"].items():
            actual = got.vulnerabilities[vid].to_json()
            assert instant(actual.pop("issued")) == instant(expected.pop("issued"))
            for key, value in expected.items():
                if key in ("package", "repository"):
                    assert {k: actual[key][k] for k in value if k != "id"} == {
                        k: v for k, v in value.items() if k != "id"
                    }
                else:
                    assert actual[key] == value, (vid, key)
        # The index report's parts are copied through unchanged.
        assert got.to_json()["packages"] == report.to_json()["packages"]
        assert set(got.index.packages) == set(want["packages"])
        assert got.to_json()["environments"] == report.to_json()["environments"]


# --- a hand-built report across ecosystems ------------------------------------------------

DEBIAN_12 = Distribution(
    id="1",
    did="debian",
    name="Debian GNU/Linux",
    version="12 (bookworm)",
    version_code_name="bookworm",
    version_id="12",
    pretty_name="Debian GNU/Linux 12 (bookworm)",
)
DEBIAN_11 = Distribution(
    did="debian", name="Debian GNU/Linux", version="11 (bullseye)", version_id="11"
)
ALPINE = Distribution(
    id="2", did="alpine", name="Alpine Linux", version_id="3.18.4", pretty_name="Alpine Linux v3.18"
)
ORACLE = Distribution(id="3", did="ol", name="Oracle Linux Server", version="8.6", version_id="8.6")
PYPI = Repository(id="9", name="pypi", uri="https://pypi.invalid/simple")
LAYER = "sha256:" + "a" * 64


def pkg(pid: str, name: str, version: str, **kw: Any) -> Package:
    return Package(id=pid, name=name, version=version, kind="binary", **kw)


def src(name: str, version: str) -> Package:
    return Package(name=name, version=version, kind="source")


def mixed_report() -> IndexReport:
    packages = {
        "10": pkg("10", "libssl3", "3.0.11-1~deb12u1", source=src("openssl", "3.0.11-1~deb12u1")),
        "11": pkg("11", "bash", "5.2.15-2+b2", source=src("bash", "5.2.15-2")),
        "20": pkg("20", "busybox", "1.36.1-r2", source=src("busybox", "1.36.1-r2")),
        "30": pkg("30", "glibc", "2.28-211.0.1.el8", arch="x86_64"),
        "40": pkg("40", "pyyaml", "5.1", normalized_version="pep440:0.5.1.0.0.0.0.0.0.0"),
    }
    envs = {
        "10": [Environment("var/lib/dpkg/status", LAYER, "1")],
        "11": [Environment("var/lib/dpkg/status", LAYER, "1")],
        "20": [Environment("lib/apk/db/installed", LAYER, "2")],
        "30": [Environment("var/lib/rpm", LAYER, "3")],
        "40": [Environment("python:usr/lib/python3", LAYER, "", ["9"])],
    }
    return IndexReport(
        manifest_hash="sha256:" + "b" * 64,
        state="IndexFinished",
        packages=packages,
        distributions={"1": DEBIAN_12, "2": ALPINE, "3": ORACLE},
        repositories={"9": PYPI},
        environments=envs,
        success=True,
    )


def v(vid: str, name: str, package: Package, fixed: str, **kw: Any) -> Vulnerability:
    return Vulnerability(id=vid, name=name, package=package, fixed_in_version=fixed, **kw)


SOURCE = Package(name="openssl", kind="source")
DEBIAN = {
    "distribution": Distribution(
        did="debian", name="Debian GNU/Linux", version="12 (bookworm)", version_id="12"
    )
}


async def test_mixed_report(matcher_pool: asyncpg.Pool) -> None:
    await load(
        matcher_pool,
        {
            "debian/updater": [
                v(
                    "1",
                    "CVE-2023-0001",
                    SOURCE,
                    "3.0.11-1~deb12u2",
                    normalized_severity="High",
                    **DEBIAN,
                ),
                v("2", "CVE-2023-0002", SOURCE, "3.0.11-1~deb12u1", **DEBIAN),  # already fixed
                v("3", "CVE-2023-0003", SOURCE, "0", **DEBIAN),  # Debian: not affected
                v("4", "CVE-2023-0004", SOURCE, "", normalized_severity="Critical", **DEBIAN),
                v("5", "CVE-2023-0005", SOURCE, "", distribution=DEBIAN_11),  # other release
                v("6", "CVE-2023-0006", Package(name="bash", kind="binary"), "5.2.15-3", **DEBIAN),
                v("7", "CVE-2023-0007", Package(name="openssl", kind="binary"), "", **DEBIAN),
            ],
            "alpine-main-v3.18": [
                v(
                    "20",
                    "CVE-2023-0020",
                    Package(name="busybox", kind="source"),
                    "1.36.1-r3",
                    distribution=Distribution(
                        did="alpine", name="Alpine Linux", pretty_name="Alpine Linux v3.18"
                    ),
                ),
            ],
            "oracle-8": [
                v(
                    "30",
                    "ELSA-2023-0030",
                    Package(name="glibc", kind="binary", arch="x86_64|aarch64"),
                    "2.28-225.0.4.el8",
                    arch_op="pattern match",
                    distribution=Distribution(did="ol", name="Oracle Linux Server", version="8.6"),
                ),
                v(
                    "31",
                    "ELSA-2023-0031",
                    Package(name="glibc", kind="binary", arch="aarch64"),
                    "2.28-225.0.4.el8",
                    arch_op="equals",
                    distribution=Distribution(did="ol", name="Oracle Linux Server", version="8.6"),
                ),
            ],
            "osv/pypi": [
                v(
                    "40",
                    "GHSA-0040",
                    Package(name="pyyaml", kind="binary"),
                    "fixed=5.4",
                    repository=Repository(name="pypi"),
                    normalized_severity="Critical",
                ),
                v(
                    "41",
                    "GHSA-0041",
                    Package(name="pyyaml", kind="binary"),
                    "fixed=5.1&introduced=4.0",
                    repository=Repository(name="pypi"),
                ),
            ],
        },
    )
    # An older operation's vulnerability must not count once a newer operation exists.
    async with matcher_pool.acquire() as conn, conn.transaction():
        old = await new_operation(conn, "debian/stale")
        await insert_vulnerabilities(conn, old, [v("8", "CVE-2023-0008", SOURCE, "", **DEBIAN)])
        await new_operation(conn, "debian/stale")

    report = mixed_report()
    service = MatcherService(MatcherStore(matcher_pool))
    got = await service.scan(report)

    assert got.package_vulnerabilities == {
        "10": ["4", "1"],  # by the source name; severity order: Critical, High
        "11": ["6"],  # bash 5.2.15-2+b2 < 5.2.15-3
        "20": ["20"],
        "30": ["30"],
        "40": ["40"],
    }
    assert sorted(got.vulnerabilities, key=int) == ["1", "4", "6", "20", "30", "40"]
    doc = got.to_json()
    assert doc["enrichments"] == {}
    assert doc["vulnerabilities"]["1"]["distribution"]["version"] == "12 (bookworm)"
    assert doc["vulnerabilities"]["40"]["repository"] == {"name": "pypi", "cpe": ""}
    assert doc["packages"] == report.to_json()["packages"]

    only_debian = await match_report(
        MatcherStore(matcher_pool), report, default_matchers(["debian-matcher"])
    )
    assert set(only_debian.package_vulnerabilities) == {"10", "11"}


async def test_comparison_errors_fail_the_report(matcher_pool: asyncpg.Pool) -> None:
    ubuntu = Distribution(id="1", did="ubuntu", name="Ubuntu", version_id="22.04")
    await load(
        matcher_pool,
        {
            "ubuntu/updater": [
                v(
                    "1",
                    "CVE-2024-0001",
                    Package(name="zlib", kind="binary"),
                    "1:1.2 bad",
                    distribution=Distribution(did="ubuntu", name="Ubuntu", version_id="22.04"),
                ),
            ]
        },
    )
    report = IndexReport(
        manifest_hash="sha256:" + "c" * 64,
        packages={"1": pkg("1", "zlib", "1:1.2.11.dfsg-2ubuntu9")},
        distributions={"1": ubuntu},
        environments={"1": [Environment("var/lib/dpkg/status", LAYER, "1")]},
    )
    with pytest.raises(MatchError):
        await MatcherService(MatcherStore(matcher_pool)).scan(report)


async def test_nothing_to_match(matcher_pool: asyncpg.Pool) -> None:
    report = mixed_report()
    got = await match_report(MatcherStore(matcher_pool), report, default_matchers())
    assert got.vulnerabilities == {}
    assert got.package_vulnerabilities == {}
    assert (await match_report(MatcherStore(matcher_pool), report, [])).to_json()[
        "vulnerabilities"
    ] == {}
