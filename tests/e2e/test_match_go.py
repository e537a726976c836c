"""End to end: real Go executables pushed as an image beside an Alpine package database.

The image: Alpine 3.6's package database and release files, Debian's docker-registry binary
(Go 1.19.8, no module information) and a program the Debian toolchain builds here with
module dependencies (one replaced). Feeds: the full Go vulnerability database as OSV's
`Go/all.zip` and Alpine's secdb, through the production updaters. One report holds both;
the Go verdicts are checked against the OSV rule read independently (fixtures/govulndb.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_affected_manifests import added_by, affected
from tests.fixtures.combo import Combo, running_combo, vulnerabilities_by_package
from tests.fixtures.feeds import FeedServer, osv_zip
from tests.fixtures.gobuild import go_app, go_cache  # noqa: F401
from tests.fixtures.govulndb import affects, go_vulndb  # noqa: F401
from tests.fixtures.images import Mode, build_layer, files_from_dir
from tests.fixtures.registry import LocalRegistry

REGISTRY_BINARY = Path("/usr/bin/docker-registry")


def binaries_layer(program: Path) -> bytes:
    """Debian's registry binary and the built program, as a layer."""
    return build_layer(
        {
            "usr/bin/docker-registry": Mode(REGISTRY_BINARY.read_bytes(), 0o755),
            "opt/app/server": Mode(program.read_bytes(), 0o755),
        }
    )


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path, feed_server: FeedServer) -> AsyncIterator[Combo]:
    updaters = {
        "sets": ["osv", "alpine"],
        "config": {"osv": {"url": feed_server.url}, "alpine": {"url": feed_server.url + "/"}},
    }
    async with running_combo(pg_dsn, tmp_path / "cache", updaters=updaters) as c:
        yield c


async def test_go_binaries_and_alpine_packages_in_one_report(
    combo: Combo,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    alpine_secdb: dict[str, bytes],
    go_vulndb: list[dict[str, Any]],  # noqa: F811
    go_app: Path,  # noqa: F811
) -> None:
    feed_server.put("ecosystems.txt", b"Go\n")
    feed_server.put("Go/all.zip", osv_zip(go_vulndb))
    feed_server.put_many(alpine_secdb.items())
    report = await combo.run_updaters()
    assert report.outcomes["osv/go"] == "updated", report.errors

    (alpine,) = (shared_data / "layers").glob("alpine-3.6*")
    manifest = await registry.push_image(
        "go-e2e", [build_layer(files_from_dir(alpine)), binaries_layer(go_app)]
    )
    indexed = await combo.index(manifest)
    vuln_report = await combo.vulnerability_report(manifest.hash)
    found = vulnerabilities_by_package(vuln_report)

    go_packages = {
        (p["name"], p["version"])
        for p in indexed["packages"].values()
        if p["normalized_version"].startswith("semver:") or p["name"] == "example.com/clairtest"
    }
    assert go_packages == {
        ("stdlib", "go1.19.8"),
        ("example.com/clairtest", "(devel)"),
        ("golang.org/x/net", "v0.7.0"),
        ("golang.org/x/text", "v0.3.6"),
    }
    dbs = {env["package_db"] for envs in indexed["environments"].values() for env in envs}
    assert {"go:usr/bin/docker-registry", "go:opt/app/server", "lib/apk/db/installed"} <= dbs
    repos = {(r["name"], r["uri"]) for r in indexed["repository"].values()}
    assert ("go", "https://pkg.go.dev/") in repos

    for name, version in go_packages - {("example.com/clairtest", "(devel)")}:
        expected = {a["id"] for a in go_vulndb if affects(a, name, version)}
        assert found.get((name, version), set()) == expected, name
    # Named: the binaries' stdlib and module advisories, and ones they must not get.
    assert {"GO-2023-1751", "GO-2023-1753"} <= found[("stdlib", "go1.19.8")]
    assert "GO-2023-1571" not in found[("stdlib", "go1.19.8")]  # fixed in Go 1.19.6
    assert "GO-2023-1988" in found[("golang.org/x/net", "v0.7.0")]
    assert "GO-2023-1571" not in found[("golang.org/x/net", "v0.7.0")]  # v0.0.1 was replaced
    assert {"GO-2021-0113", "GO-2022-1059"} <= found[("golang.org/x/text", "v0.3.6")]
    assert not found.get(("example.com/clairtest", "(devel)"))
    # The OS packages are matched in the same report.
    assert found[("musl", "1.1.16-r9")] or found[("busybox", "1.26.2-r4")]

    # The notifier's question, affected_manifest, gives the same verdicts: the Go advisories
    # of the report affect the image; those of the feed it did not list (GO-2023-1571 among
    # them: fixed for both stdlib and golang.org/x/net) affect nothing.
    reported = [v for v in vuln_report["vulnerabilities"].values() if v["updater"] == "osv/go"]
    listed = {v["name"] for v in reported}
    feed = await added_by(combo, "osv/go")
    others = [
        v
        for v in feed
        if v["name"] not in listed
        and v["package"]["name"] in {"stdlib", "golang.org/x/net", "golang.org/x/text"}
    ]
    assert any(v["name"] == "GO-2023-1571" for v in others)
    hits = await affected(combo, reported)
    assert {d: set(ids) for d, ids in hits.items()} == {manifest.hash: {v["id"] for v in reported}}
    assert await affected(combo, others[:200]) == {}
