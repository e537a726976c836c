"""End to end: Debian images against the security tracker, through the production updater.

The tracker excerpts in the shared data (vunnel, vuls-data-update, vulnerablecode) name
packages the 88-package Debian 12 image does not have, and only a few bookworm entries (all
fixed, urgency "not yet assigned"); "0" (not affected), unfixed and most urgencies appear only
for bullseye and buster. So the test builds three images, one per release (os-release of
Debian 12 from the debootstrap layer, of 10 and 11 from claircore's test data), whose dpkg
status holds, for every source package the tracker lists for that release, one binary before
every fix and one at the newest fix (named through `Source:`). The expected findings are
computed here from the served JSON with `dpkg --compare-versions`.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.combo import Combo, running_combo
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import Entry, Symlink, build_layer
from tests.fixtures.registry import LocalRegistry
from tests.matcher.test_updaters_debian import debian_config, serve_debian

OS_RELEASE = {
    "bookworm": "layers/debian-12-bookworm-minbase-debootstrap/usr/lib/os-release",
    "bullseye": "layers/claircore/debian/testdata/dist/11/etc/os-release",
    "buster": "layers/claircore/debian/testdata/dist/10/etc/os-release",
}
BEFORE = "0.1-1"
# Clair's urgency table, one level up from the words (claircore debian/severity.go).
SHIFTED = {"unimportant": "Low", "low": "Medium", "medium": "High", "high": "Critical"}


@functools.cache
def dpkg_less(a: str, b: str) -> bool:
    run = subprocess.run(["dpkg", "--compare-versions", a, "lt", b], check=False)
    return run.returncode == 0


def newest(versions: list[str]) -> str:
    return functools.reduce(lambda a, b: b if dpkg_less(a, b) else a, versions)


def release_entries(doc: dict[str, Any], codename: str) -> dict[str, dict[str, dict[str, Any]]]:
    """source → CVE → this release's entry."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for src, cves in doc.items():
        for cve, data in cves.items():
            entry = (data.get("releases") or {}).get(codename)
            if entry is not None:
                out.setdefault(src, {})[cve] = entry
    return out


def status_file(entries: dict[str, dict[str, dict[str, Any]]]) -> tuple[bytes, dict[str, str]]:
    """A dpkg status and binary name → source name."""
    stanzas = [("base-files", "", "12.4+deb12u5")]
    for src, cves in sorted(entries.items()):
        fixes = [
            e["fixed_version"] for e in cves.values() if e.get("fixed_version") not in (None, "0")
        ]
        after = newest(fixes) if fixes else "99.0-1"
        stanzas.append((src, "", BEFORE))  # no Source field: the source is named like it
        stanzas.append((f"{src}-fixed", f"{src} ({after})", after))
    text = []
    sources = {}
    for name, source, version in stanzas:
        lines = [f"Package: {name}", "Status: install ok installed", "Architecture: amd64"]
        if source:
            lines.append(f"Source: {source}")
        lines += [f"Version: {version}", f"Description: {name} for the tracker test", ""]
        text.append("\n".join(lines) + "\n")
        sources[name] = source.split(" ")[0] if source else name
    return "".join(text).encode(), sources


def expected_findings(
    entries: dict[str, dict[str, dict[str, Any]]], source: str, version: str
) -> set[str]:
    found = set()
    for cve, entry in entries.get(source, {}).items():
        fixed = entry.get("fixed_version") or ""
        if fixed == "" or (fixed != "0" and dpkg_less(version, fixed)):
            found.add(cve)
    return found


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path, feed_server: FeedServer) -> AsyncIterator[Combo]:
    updaters = {"sets": ["debian"], "config": {"debian": debian_config(feed_server)}}
    async with running_combo(pg_dsn, tmp_path / "cache", updaters=updaters) as c:
        yield c


async def _scan(
    combo: Combo, registry: LocalRegistry, shared_data: Path, codename: str, status: bytes
) -> tuple[dict[str, Any], dict[str, Any]]:
    os_release = (shared_data / OS_RELEASE[codename]).read_bytes()
    files: dict[str, Entry] = {
        "usr/lib/os-release": os_release,
        "etc/os-release": Symlink("../usr/lib/os-release"),
        "var/lib/dpkg/status": status,
    }
    manifest = await registry.push_image(f"debian-{codename}-e2e", [build_layer(files)])
    indexed = await combo.index(manifest)
    return indexed, await combo.vulnerability_report(manifest.hash)


async def test_debian_releases_against_the_tracker(
    combo: Combo, feed_server: FeedServer, registry: LocalRegistry, shared_data: Path
) -> None:
    doc = serve_debian(feed_server, shared_data)
    run = await combo.run_updaters()
    assert run.outcomes == {"debian/updater": "updated"}, run.errors

    found: dict[str, dict[str, set[str]]] = {}
    severities: set[tuple[str, str, str]] = set()
    for codename in OS_RELEASE:
        entries = release_entries(doc, codename)
        status, sources = status_file(entries)
        indexed, report = await _scan(combo, registry, shared_data, codename, status)
        (dist,) = indexed["distributions"].values()
        assert dist["version_code_name"] == codename

        by_name: dict[str, set[str]] = {}
        for pkg_id, pkg in indexed["packages"].items():
            name, version = pkg["name"], pkg["version"]
            source = sources[name]
            assert pkg["source"]["name"] == source
            vulns = [
                report["vulnerabilities"][v]
                for v in report["package_vulnerabilities"].get(pkg_id, [])
            ]
            names = {v["name"] for v in vulns}
            assert names == expected_findings(entries, source, version), (codename, name)
            for v in vulns:
                entry = entries[source][v["name"]]
                assert v["package"]["name"] == source
                assert v["fixed_in_version"] == (entry.get("fixed_version") or "")
                assert v["severity"] == entry["urgency"]
                assert v["normalized_severity"] == SHIFTED.get(entry["urgency"], "Unknown")
                assert v["links"] == "https://security-tracker.debian.org/tracker/" + v["name"]
                severities.add((v["name"], v["severity"], v["normalized_severity"]))
            by_name[name] = names
        assert set(by_name) == set(sources)
        found[codename] = by_name

    bookworm, bullseye, buster = found["bookworm"], found["bullseye"], found["buster"]
    # Fixed versions: matched before the fix, not at it.
    assert bookworm["atomicparsley"] == {"CVE-2021-37231", "CVE-2021-37232"}
    assert bookworm["atomicparsley-fixed"] == set()
    assert bookworm["sope"] == {"CVE-2025-53603"} and bookworm["sope-fixed"] == set()
    assert buster["mimetex"] == {"CVE-2009-1382", "CVE-2009-2459", "TEMP-0000000-A2EB44"}
    assert buster["mimetex-fixed"] == set()
    # "0" never matches: prototypejs CVE-2007-2383, 389-ds-base CVE-2012-0833, wordpress.
    assert buster["prototypejs"] == {"CVE-2008-7220"}
    assert bullseye["389-ds-base"] == {"CVE-2016-5405", "CVE-2016-5416"}
    assert bullseye["wordpress"] == bullseye["wordpress-fixed"] == set()
    # Unfixed entries match at any version.
    assert buster["librsync"] == buster["librsync-fixed"] == {"CVE-2014-8242"}
    assert bullseye["389-ds-base-fixed"] == {"CVE-2016-5416"}
    assert bullseye["atomicparsley-fixed"] == {"CVE-2021-37231", "CVE-2021-37232"}
    # Each release sees only its own entries (atomicparsley is fixed in bookworm only).
    assert bookworm["base-files"] == bullseye["base-files"] == buster["base-files"] == set()
    # Severities one level up from the tracker's words; marked urgencies are Unknown.
    assert ("CVE-2009-1382", "medium", "High") in severities  # mimetex
    assert ("CVE-2005-3111", "medium", "High") in severities  # backupninja
    assert ("CVE-2014-8242", "low", "Medium") in severities  # librsync, unfixed
    assert ("CVE-2008-7220", "high**", "Unknown") in severities  # prototypejs
    assert ("CVE-2013-1444", "low**", "Unknown") in severities  # txt2man
