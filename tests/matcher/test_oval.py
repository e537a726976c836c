"""The shared OVAL reader and fetcher against real OVAL documents (Photon, Oracle, Ubuntu).

Expected values are read from the same documents here with a plain whole-document parse.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import zstandard

from clair_matcher.updaters import ConfigProblem, FeedError, FetchResult, Unchanged
from clair_matcher.updaters._oval.document import (
    Criterion,
    ExtendDefinition,
    OvalDocument,
    issued_time,
    links,
)
from clair_matcher.updaters._oval.fetch import (
    decode_fingerprint,
    encode_fingerprint,
    fetch_oval,
    parse_compression,
)
from tests.fixtures.feeds import FeedServer

PHOTON3 = "feeds/claircore/photon/testdata/com.vmware.phsa-photon3.xml.xz"
ELSA_ALL = (
    "feeds/vuls-data-update/pkg/fetch/oracle/linux/testdata/fixtures/com.oracle.elsa-all.xml.bz2"
)
UBUNTU = "feeds/vulnerablecode/vulnerabilities/tests/test_data/ubuntu_oval_data.xml"
NS = "{http://oval.mitre.org/XMLSchema/oval-definitions-5}"


@pytest.fixture(scope="module")
def photon3(shared_data: Path) -> bytes:
    return lzma.decompress((shared_data / PHOTON3).read_bytes())


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _write(tmp_path: Path, data: bytes, name: str = "doc.xml") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_photon_tables_and_definitions_match_a_plain_parse(photon3: bytes, tmp_path: Path) -> None:
    doc = OvalDocument(_write(tmp_path, photon3), "photon")
    root = ET.fromstring(photon3)
    section = {child.tag.rpartition("}")[2]: child for child in root}
    assert len(doc.tests) == len(section["tests"])
    assert len(doc.objects) == len(section["objects"])
    assert len(doc.states) == len(section["states"])
    defs = list(doc.definitions())
    assert len(defs) == len(section["definitions"]) == doc.definition_count == 222

    first = defs[0]
    assert first.id == "oval:com.vmware.phsa:def:2020300001"
    assert first.def_class == "patch"
    assert first.title == "PHSA-2020:00001 sqlite Security Update. (Important)"
    assert first.platforms == ["Photon 3"]
    assert first.advisory.severity == "Important"
    assert issued_time(first.advisory.issued) == "2019-10-23T00:00:00Z"
    assert [c.name for c in first.advisory.cves] == ["CVE-2019-16168"]
    assert links(first) == (
        "https://github.com/vmware/photon/wiki/Security-Updates-3.0-0036"
        " https://nvd.nist.gov/vuln/detail?vulnId=CVE-2019-16168"
    )
    # Nested criteria first, then the node's own criterion (claircore's walk order).
    walked = [c.comment for c in first.criteria.walk()]
    assert walked[0] == "sqlite is earlier than 0:3.27.2-5.ph3"
    assert walked[-1] == "Photon OS 3 is installed"
    assert len(walked) == 7
    assert first.criteria.operator == "AND"
    assert [c.operator for c in first.criteria.criterias] == ["OR"]

    test = doc.test("oval:com.vmware.phsa:tst:202030000112")
    assert test is not None and test.kind == "rpminfo_test"
    assert test.object_refs == ("oval:com.vmware.phsa:obj:202030000111",)
    obj = doc.object(test.object_refs[0])
    assert obj is not None and obj.kind == "rpminfo_object"
    name = obj.get("name")
    assert name is not None and doc.values(name) == ["sqlite"]
    state = doc.state(test.state_refs[0])
    assert state is not None
    evr = state.get("evr")
    assert evr is not None
    assert (evr.body, evr.operation, evr.datatype) == ("0:3.27.2-5.ph3", "less than", "evr_string")
    keyed = doc.state("oval:com.vmware.phsa:ste:202030000113")
    assert keyed is not None and keyed.get("evr") is None and keyed.get("signature_keyid")


def test_oracle_mixed_families_and_namespaces(shared_data: Path, tmp_path: Path) -> None:
    data = bz2.decompress((shared_data / ELSA_ALL).read_bytes())
    doc = OvalDocument(_write(tmp_path, data), "oracle")
    module_test = doc.test("oval:com.oracle.elsa:tst:202312342003")
    assert module_test is not None
    assert module_test.kind == "textfilecontent54_test"
    assert module_test.comment == "Module virt:kvm_utils is enabled"
    module_obj = doc.object(module_test.object_refs[0])
    assert module_obj is not None and module_obj.kind == "textfilecontent54_object"
    filepath = module_obj.get("filepath")
    assert filepath is not None and filepath.body == "/etc/dnf/modules.d/virt.module"
    arch = doc.state("oval:com.oracle.elsa:ste:20070057003")
    assert arch is not None
    arch_field = arch.get("arch")
    assert arch_field is not None
    assert (arch_field.body, arch_field.operation) == ("x86_64", "pattern match")
    defs = {d.id: d for d in doc.definitions()}
    bind = defs["oval:com.oracle.elsa:def:20070057"]
    assert bind.title.strip() == "ELSA-2007-0057:  Moderate: bind security update  (MODERATE)"
    assert bind.advisory.cves[0].attrs["cvss2"] == "7.8/AV:N/AC:L/Au:N/C:N/I:N/A:C"
    # ELSA lists each CVE as a reference and as an advisory cve: links name it once.
    assert links(bind).split() == [
        "https://linux.oracle.com/errata/ELSA-2007-0057.html",
        "https://linux.oracle.com/cve/CVE-2007-0493.html",
        "https://linux.oracle.com/cve/CVE-2007-0494.html",
    ]
    criteria = defs["oval:com.oracle.elsa:def:202312342"].criteria
    assert any(c.comment == "Module virt:kvm_utils is enabled" for c in criteria.walk())


def test_dpkginfo_names_through_constant_variables(shared_data: Path) -> None:
    doc = OvalDocument(shared_data / UBUNTU, "ubuntu")
    obj = doc.object("oval:com.ubuntu.bionic:obj:2017115650000000")
    assert obj is not None and obj.kind == "dpkginfo_object"
    name = obj.get("name")
    assert name is not None and name.var_ref == "oval:com.ubuntu.bionic:var:2017115650000000"
    root = ET.parse(shared_data / UBUNTU).getroot()
    want = [
        v.text
        for var in root.iter(f"{NS}constant_variable")
        if var.get("id") == name.var_ref
        for v in var
    ]
    assert want and doc.values(name) == want
    state = doc.state("oval:com.ubuntu.bionic:ste:201686860000000")
    assert state is not None and state.kind == "dpkginfo_state"
    evr = state.get("evr")
    assert evr is not None and (evr.body, evr.datatype) == ("1.14-2", "debian_evr_string")
    titles = [d.title for d in doc.definitions()]
    assert titles[0] == "CVE-2016-8703 on Ubuntu 18.04 LTS (bionic) - medium."


def test_criterion_negation_and_extend_definition(tmp_path: Path) -> None:
    xml = b"""<oval_definitions xmlns="http://oval.mitre.org/XMLSchema/oval-definitions-5">
<definitions><definition id="d1" class="vulnerability"><metadata><title>t</title></metadata>
<criteria operator="OR"><extend_definition definition_ref="d0" negate="true"/>
<criterion test_ref="a" negate="true" comment="x"/></criteria></definition></definitions>
</oval_definitions>"""
    (defn,) = OvalDocument(_write(tmp_path, xml), "t").definitions()
    assert list(defn.criteria.walk()) == [Criterion("a", "x", True)]
    assert defn.criteria.children[0] == ExtendDefinition("d0", "", True)


@pytest.mark.parametrize("where", ["definitions", "states"])
def test_truncated_document_names_line_and_column(
    photon3: bytes, tmp_path: Path, where: str
) -> None:
    cut = photon3.index(b"<definition ", 50_000) if where == "definitions" else len(photon3) - 500
    broken = photon3[:cut]
    line = broken.count(b"\n") + 1
    path = _write(tmp_path, broken)
    with pytest.raises(FeedError) as caught:
        list(OvalDocument(path, "photon-updater-3.0 (x)").definitions())
    message = str(caught.value)
    assert message.startswith("photon-updater-3.0 (x): malformed XML at line ")
    assert f"line {line}, column " in message


def test_not_an_oval_document(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="not an OVAL definitions document"):
        OvalDocument(_write(tmp_path, b"<html><body>nope</body></html>"), "t")


def _peak_memory(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        doc = OvalDocument(path, "big")
        count = sum(1 for _ in doc.definitions())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, peak


def test_memory_does_not_grow_with_the_definitions(photon3: bytes, tmp_path: Path) -> None:
    # Ten copies of the definitions (ids made unique): peak memory is the lookup tables plus
    # one definition, so it barely moves although the document is four times larger.
    start, end = photon3.index(b"<definitions>") + 13, photon3.index(b"</definitions>")
    body = photon3[start:end]
    copies = [body.replace(b'id="oval:', f'id="c{i}:oval:'.encode()) for i in range(10)]
    big = photon3[:start] + b"".join(copies) + photon3[end:]
    assert len(big) > 3 * len(photon3)
    one_count, one_peak = _peak_memory(_write(tmp_path, photon3, "one.xml"))
    big_count, big_peak = _peak_memory(_write(tmp_path, big, "big.xml"))
    assert (one_count, big_count) == (222, 2220)
    assert big_peak < one_peak * 1.3, (one_peak, big_peak)


def test_compression_names_and_fingerprint_text() -> None:
    assert [parse_compression(v, "u") for v in ("", "gz", "BZ2", "zstd", "auto")] == [
        "none",
        "gzip",
        "bzip2",
        "zstd",
        "auto",
    ]
    with pytest.raises(ConfigProblem, match=r"updaters.config.u.compression: 'xz'"):
        parse_compression("xz", "u")
    text = encode_fingerprint('"abc"', "Mon, 01 Jan 2024 00:00:10 GMT")
    assert text == '{"Etag":"\\"abc\\"","Date":"Mon, 01 Jan 2024 00:00:10 GMT"}'
    assert encode_fingerprint("", "d") == '{"Date":"d"}'
    assert encode_fingerprint("<&>", "") == '{"Etag":"\\u003c\\u0026\\u003e"}'
    assert decode_fingerprint(text) == ('"abc"', "Mon, 01 Jan 2024 00:00:10 GMT")
    assert decode_fingerprint("not json") == ("", "")


def _zstd(data: bytes) -> bytes:
    out: bytes = zstandard.ZstdCompressor().compress(data)
    return out


_COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "none": bytes,
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "zstd": _zstd,
}


@pytest.mark.parametrize("kind", sorted(_COMPRESS))
async def test_fetch_decompresses_each_kind_and_auto_sniffs(
    feed_server: FeedServer, client: aiohttp.ClientSession, photon3: bytes, kind: str
) -> None:
    feed_server.put("doc", _COMPRESS[kind](photon3))
    fingerprint = ""
    for compression in (kind, "auto"):
        got = await fetch_oval(
            client, feed_server.url + "doc", "", feed="t", compression=compression
        )
        assert isinstance(got, FetchResult)
        try:
            assert got.path.read_bytes() == photon3
        finally:
            got.discard()
        fingerprint = got.fingerprint
    assert json.loads(fingerprint) == {
        "Etag": feed_server.etag("doc"),
        "Date": "Mon, 01 Jan 2024 00:00:10 GMT",
    }


async def test_fetch_concatenated_streams(
    feed_server: FeedServer, client: aiohttp.ClientSession, photon3: bytes
) -> None:
    half = len(photon3) // 2
    feed_server.put("doc.bz2", bz2.compress(photon3[:half]) + bz2.compress(photon3[half:]))
    got = await fetch_oval(client, feed_server.url + "doc.bz2", "", feed="t", compression="bzip2")
    assert isinstance(got, FetchResult)
    assert got.path.read_bytes() == photon3
    got.discard()


async def test_conditional_fetch_by_etag_and_by_date(
    feed_server: FeedServer, client: aiohttp.ClientSession, photon3: bytes
) -> None:
    feed_server.put("doc", photon3)
    url = feed_server.url + "doc"
    first = await fetch_oval(client, url, "", feed="t", compression="none")
    assert isinstance(first, FetchResult)
    first.discard()
    assert await fetch_oval(client, url, first.fingerprint, feed="t", compression="none") is (
        Unchanged
    )
    feed_server.send_etag = False  # If-Modified-Since alone
    dated = await fetch_oval(client, url, "", feed="t", compression="none")
    assert isinstance(dated, FetchResult)
    dated.discard()
    assert "Etag" not in json.loads(dated.fingerprint)
    assert await fetch_oval(client, url, dated.fingerprint, feed="t", compression="none") is (
        Unchanged
    )
    feed_server.put("doc", photon3 + b"\n")
    changed = await fetch_oval(client, url, dated.fingerprint, feed="t", compression="none")
    assert isinstance(changed, FetchResult)
    changed.discard()
    assert feed_server.count("doc") == 5


async def test_broken_compressed_streams(
    feed_server: FeedServer, client: aiohttp.ClientSession, photon3: bytes
) -> None:
    packed = bz2.compress(photon3)
    feed_server.put("cut.bz2", packed[: len(packed) // 2])
    with pytest.raises(FeedError, match=r"^t: GET .*cut.bz2: bzip2 stream truncated after \d+"):
        await fetch_oval(client, feed_server.url + "cut.bz2", "", feed="t", compression="bzip2")
    feed_server.put("plain.xml", photon3)
    with pytest.raises(FeedError, match=r"gzip data corrupt within compressed bytes 0\.\."):
        await fetch_oval(client, feed_server.url + "plain.xml", "", feed="t", compression="gzip")
    feed_server.status_overrides["gone"] = 404
    with pytest.raises(FeedError, match="unexpected status 404"):
        await fetch_oval(client, feed_server.url + "gone", "", feed="t", compression="none")
