"""OSV updater for the Go ecosystem and the gobin matcher, on the full Go vulnerability database.

Every verdict is checked against the OSV schema's SEMVER rule read independently
(tests/fixtures/govulndb.py, with the `semver` library's ordering).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import semver as semver_lib
from hypothesis import given
from hypothesis import strategies as st

from clair_common.models import Package, Repository, Vulnerability
from clair_common.versions import semver
from clair_common.vulnerable import IndexRecord, default_matchers
from clair_common.vulnerable.matchers import GoMatcher
from clair_matcher.updaters import FetchResult
from clair_matcher.updaters.osv import OsvFactory, OsvUpdater
from tests.fixtures.feeds import FeedServer, osv_zip
from tests.fixtures.govulndb import affects, go_vulndb  # noqa: F401

GO = Repository(id="1", name="go", uri="https://pkg.go.dev/")


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(scope="module")
def go_vulns(
    tmp_path_factory: pytest.TempPathFactory,
    go_vulndb: list[dict[str, Any]],  # noqa: F811
) -> list[Vulnerability]:
    """The whole database parsed once per module (the HTTP path: test_full_go_database)."""
    path = tmp_path_factory.mktemp("osv-go") / "all.zip"
    path.write_bytes(osv_zip(go_vulndb))
    fetched = FetchResult(path=path, fingerprint="", url="Go/all.zip")
    return list(OsvUpdater("go", "Go/all.zip").parse(fetched))


async def test_factory_maps_go(feed_server: FeedServer, client: aiohttp.ClientSession) -> None:
    feed_server.put("ecosystems.txt", b"Go\nPyPI\nnpm\n")
    factory = OsvFactory()
    factory.configure({"url": feed_server.url})
    found = [(u.name, getattr(u, "url", "")) for u in await factory.updater_set(client)]
    assert found == [
        ("osv/go", feed_server.url + "Go/all.zip"),
        ("osv/pypi", feed_server.url + "PyPI/all.zip"),
    ]


async def test_full_go_database(
    feed_server: FeedServer,
    client: aiohttp.ClientSession,
    go_vulns: list[Vulnerability],
    go_vulndb: list[dict[str, Any]],  # noqa: F811
) -> None:
    feed_server.put("Go/all.zip", osv_zip(go_vulndb))
    updater = OsvUpdater("go", feed_server.url + "Go/all.zip")
    fetched = await updater.fetch(client, "")
    assert isinstance(fetched, FetchResult)
    try:
        fetched_ids = {v.name for v in updater.parse(fetched)}
    finally:
        fetched.discard()
    ids = {v.name for v in go_vulns}
    assert fetched_ids == ids
    withdrawn = {d["id"] for d in go_vulndb if d.get("withdrawn")}
    assert withdrawn and not ids & withdrawn
    assert len(ids) > 4000
    http2 = sorted(
        (v.package.name, v.fixed_in_version)
        for v in go_vulns
        if v.name == "GO-2023-1571" and v.package is not None
    )
    # stdlib: two ranges; golang.org/x/net: one (OSV events as the Go database writes them).
    assert http2 == [
        ("golang.org/x/net", "fixed=0.7.0"),
        ("stdlib", "fixed=1.19.6"),
        ("stdlib", "fixed=1.20.1&introduced=1.20.0-0"),
    ]
    sample = next(v for v in go_vulns if v.name == "GO-2023-1571")
    assert sample.repository is not None
    assert (sample.repository.name, sample.repository.uri) == ("go", "https://pkg.go.dev/")
    assert sample.distribution is None
    assert "https://osv.dev/vulnerability/CVE-2022-41723" in sample.links


def _record(name: str, version: str) -> IndexRecord:
    return IndexRecord(Package(id="1", name=name, version=version, kind="binary"), None, GO)


def _matched(vulns: list[Vulnerability], name: str, version: str) -> set[str]:
    matcher = GoMatcher()
    record = _record(name, version)
    assert matcher.filter(record)
    return {
        v.name
        for v in vulns
        if v.package is not None and v.package.name == name and matcher.vulnerable(record, v)
    }


@pytest.mark.parametrize(
    ("name", "version", "must", "must_not"),
    [
        # Debian's Go 1.19.8: fixed in 1.19.9 and later, but not what 1.19.6 fixed.
        ("stdlib", "go1.19.8", {"GO-2023-1751", "GO-2023-1753"}, {"GO-2023-1571"}),
        ("golang.org/x/net", "v0.7.0", {"GO-2023-1988"}, {"GO-2023-1571", "GO-2022-1144"}),
        ("golang.org/x/net", "v0.0.1", {"GO-2023-1571", "GO-2022-1144"}, set()),
        ("golang.org/x/text", "v0.3.6", {"GO-2021-0113", "GO-2022-1059"}, {"GO-2020-0015"}),
        # A `(devel)` main module and a devel toolchain match nothing.
        ("example.com/app", "(devel)", set(), set()),
        ("stdlib", "devel go1.23-abcdef", set(), {"GO-2023-1571"}),
    ],
)
def test_matching_agrees_with_an_independent_reading(
    go_vulns: list[Vulnerability],
    go_vulndb: list[dict[str, Any]],  # noqa: F811
    name: str,
    version: str,
    must: set[str],
    must_not: set[str],
) -> None:
    found = _matched(go_vulns, name, version)
    assert must <= found
    assert not found & must_not
    if semver.is_valid(version) or semver.toolchain_semver(version):
        expected = {a["id"] for a in go_vulndb if affects(a, name, version)}
        assert found == expected


def test_gobin_is_a_default_matcher() -> None:
    assert "gobin" in [m.name for m in default_matchers()]


def test_toolchain_versions() -> None:
    cases = {
        "go1.19.8": "1.19.8",
        "go1.21": "1.21.0",
        "go1.21rc2": "1.21.0-rc.2",
        "go1.19beta1": "1.19.0-beta.1",
        "go1.22.1 X:boringcrypto": "1.22.1",
        "go1": "1.0.0",
    }
    for text, want in cases.items():
        assert semver.toolchain_semver(text) == want, text
    assert semver.toolchain_semver("devel go1.23-abc") is None
    # The toolchain's pre-releases sort before its release, as the database's `1.21.0-0`.
    order = ["1.20.14", "1.21.0-0", "1.21.0-rc.2", "1.21.0", "1.21.1"]
    assert sorted(order, key=semver.sort_key) == order


_IDENT = st.one_of(
    st.integers(0, 30).map(str), st.text("abrc-", min_size=1, max_size=4).filter(str.isascii)
).filter(lambda s: not (s.isdigit() and s != str(int(s))))
_VERSION = st.builds(
    lambda a, b, c, pre: f"{a}.{b}.{c}" + (("-" + ".".join(pre)) if pre else ""),
    st.integers(0, 3),
    st.integers(0, 3),
    st.integers(0, 3),
    st.lists(_IDENT, max_size=3),
)


@given(_VERSION, _VERSION)
def test_semver_order_matches_the_semver_library(a: str, b: str) -> None:
    ours = (semver.sort_key(a) > semver.sort_key(b)) - (semver.sort_key(a) < semver.sort_key(b))
    theirs = semver_lib.Version.parse(a).compare(b)
    assert ours == theirs, (a, b)
    assert semver.sort_key("v" + a) == semver.sort_key(a + "+incompatible")
