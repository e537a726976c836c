"""Hypothesis fuzzing of the text package-database parsers: garbage in, no crash, no hang.

Each parser gets random bytes and, more usefully, random documents assembled from the tokens it
looks for (keys, separators, quotes, escapes, blank lines, invalid UTF-8).  The only exceptions
allowed are the documented ones: `OsReleaseError` from `osrelease.parse` and ValueError from a
content manifest that is JSON but not the expected shape.  The rpm parsers are fuzzed in
test_rpmdb_hostile.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clair_indexer.scanners import apk, distributions, dpkg, osrelease, python
from clair_indexer.scanners import rpm_distributions as rpmd
from clair_indexer.scanners.base import resolve
from clair_indexer.scanners.rhel_repositories import content_sets

FUZZ = settings(
    max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow], database=None
)


def _document(tokens: list[bytes]) -> st.SearchStrategy[bytes]:
    """Lines made of the parser's own vocabulary, glued with its separators."""
    piece = st.one_of(
        st.sampled_from(tokens),
        st.binary(max_size=12),
        st.text(max_size=12).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )
    line = st.lists(piece, max_size=6).map(b"".join)
    glue = st.sampled_from([b"\n", b"\n\n", b"\r\n", b" ", b"\t", b"\n \n", b""])
    return st.lists(st.tuples(line, glue), max_size=40).map(
        lambda parts: b"".join(a + b for a, b in parts)
    )


DPKG = _document(
    [b"Package: ", b"Status: install ok installed", b"Version: ", b"Architecture: ",
     b"Source: ", b" (", b")", b"1:2.3-4", b"ok", b"installed", b":", b"\n"]
)  # fmt: skip
APK = _document(
    [b"P:", b"V:", b"A:", b"c:", b"o:", b"C:", b"\n", b"\n\n", b"musl", b"1.2.3-r0", b"x"]
)
METADATA = _document(
    [b"Name: ", b"Version: ", b"Metadata-Version: 2.1", b" ", b"\t", b":", b"1.0", b"!",
     b"rc1", b".post", b".dev", b"+local", b"v", b"a", b"b", b"99999999999999999999"]
)  # fmt: skip
OS_RELEASE = _document(
    [b"ID=", b"VERSION_ID=", b"VERSION_CODENAME=", b"VERSION=", b"PRETTY_NAME=", b"CPE_NAME=",
     b"NAME=", b"DISTRIB_ID=Ubuntu", b"DISTRIB_RELEASE=", b"DISTRIB_CODENAME=", b"UBUNTU_CODENAME=",
     b"debian", b"ubuntu", b"alpine", b"rhel", b"sles", b"photon", b"amzn", b"ol", b"edge",
     b"'", b'"', b"\\", b"\\`", b"'\\''", b"#", b"=", b"(", b")", b", ", b"12", b"3.18",
     b"cpe:/o:redhat:enterprise_linux:8", b"cpe:2.3:o:", b"-99999999999999999999"]
)  # fmt: skip
RELEASE_TEXT = _document(
    [b"Red Hat Enterprise Linux", b"CentOS Linux", b"Oracle Linux Server", b"release ",
     b"SUSE Linux Enterprise Server", b"openSUSE Leap", b"Alpine Linux", b"(edge)",
     b"Amazon Linux", b"VERSION = ", b"PATCHLEVEL = ", b"8.9", b"15", b" ", b"."]
)  # fmt: skip


@given(DPKG | st.binary(max_size=2000))
@FUZZ
def test_dpkg_status(data: bytes) -> None:
    for pkg in dpkg.parse_status(data, "var/lib/dpkg/status"):
        assert pkg.kind == "binary" and pkg.source is not None
    for pkg in dpkg.parse_status_d_file(data, "var/lib/dpkg/status.d/x"):
        assert pkg.kind == "binary"


@given(APK | st.binary(max_size=2000))
@FUZZ
def test_apk_installed(data: bytes) -> None:
    for pkg in apk.parse_installed(data):
        assert pkg.name, "garbage records name no package"


@given(METADATA | st.binary(max_size=2000))
@FUZZ
def test_python_metadata(data: bytes) -> None:
    headers = python.read_headers(data)
    assert all(key == key.lower() for key in headers)
    parsed = python.parse_pep440(headers.get("version", ""))
    if parsed is not None:
        assert parsed[1].startswith("pep440:") and len(parsed[1].split(".")) == 10


@given(st.text(max_size=80) | st.from_regex(r"v?[0-9]{1,25}(\.[0-9]{1,25}){0,8}[a-z0-9.+_-]{0,20}"))
@FUZZ
def test_pep440(text: str) -> None:
    parsed = python.parse_pep440(text)
    if parsed is not None:
        slots = [int(n) for n in parsed[1].removeprefix("pep440:").split(".")]
        assert all(-(2**31) <= n < 2**31 for n in slots)


def _os_release_or_none(data: bytes) -> dict[str, str] | None:
    try:
        return osrelease.parse(data)
    except osrelease.OsReleaseError:
        return None


@given(OS_RELEASE | st.binary(max_size=2000))
@FUZZ
def test_os_release_and_distributions(data: bytes) -> None:
    kv = _os_release_or_none(data)
    if kv is not None:
        osrelease.to_distribution(kv)
        distributions.debian_from_os_release(kv)
        distributions.ubuntu_from_os_release(kv)
        distributions.ubuntu_from_lsb_release(kv)
        distributions.alpine_from_os_release(kv)
        rpmd.suse_from_os_release(kv)
        rpmd.photon_from_os_release(kv)
    distributions.alpine_from_issue(data)
    rpmd.aws_from_os_release_text(data)


@given(RELEASE_TEXT | st.binary(max_size=1000))
@FUZZ
def test_release_files(data: bytes) -> None:
    rpmd.rhel_from_release_text(data)
    rpmd.oracle_from_text(data)
    rpmd.suse_from_release_text(data)
    distributions.alpine_from_issue(data)


@dataclass
class _Layer:
    files: dict[str, bytes] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    probed: dict[str, bytes] = field(default_factory=dict)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)


@given(
    st.one_of(
        st.binary(max_size=500),
        _JSON.map(lambda doc: json.dumps(doc).encode()),
        st.lists(st.text(max_size=20)).map(lambda s: json.dumps({"content_sets": s}).encode()),
    )
)
@FUZZ
def test_content_manifest(data: bytes) -> None:
    layer = _Layer({"root/buildinfo/content_manifests/x.json": data})
    failure = ""
    try:
        sets = content_sets(layer)
    except ValueError as err:  # JSON of the wrong shape: documented
        failure, sets = str(err), None
    assert not failure or "content manifest" in failure
    assert sets is None or all(isinstance(s, str) for s in sets)


_SEGMENT = st.sampled_from(["a", "b", "etc", "..", ".", "", "os-release", "/", "var"])
_PATH = st.lists(_SEGMENT, max_size=8).map("/".join)


@given(st.dictionaries(_PATH, _PATH, max_size=12), _PATH)
@FUZZ
def test_symlink_resolution_terminates(links: dict[str, str], path: str) -> None:
    layer = _Layer(symlinks={k.strip("/"): v for k, v in links.items() if k.strip("/")})
    result = resolve(layer, path)
    assert result is None or not result.startswith(("/", "../"))
