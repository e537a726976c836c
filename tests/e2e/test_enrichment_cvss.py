"""End to end: CVSS enrichment of a vulnerability report (clair-api.md 6.4).

NVD's real 2016 excerpt (claircore's fixture, with its real `.meta`) is served as the year
feed of `clair.cvss`; a tiny OSV document names its CVEs as aliases of advisories for wheels
of a real PyPI layer. The report must carry, under each advisory's id, exactly the cvssData
the NVD document gives those CVEs.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fixtures.combo import Combo, running_combo
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import build_layer, files_from_dir
from tests.fixtures.registry import LocalRegistry

MEDIA_TYPE = (
    "message/vnd.clair.map.vulnerability; enricher=clair.cvss"
    " schema=https://csrc.nist.gov/schema/nvd/api/2.0/cve_api_json_2.0.schema"
)
NVD = "feeds/claircore/enricher/cvss/testdata"
LAYER = "layers/pypi-wheels-dist-info"


def advisory(osv_id: str, package: str, aliases: list[str]) -> dict[str, Any]:
    return {
        "id": osv_id,
        "modified": "2024-01-01T00:00:00Z",
        "published": "2024-01-01T00:00:00Z",
        "aliases": aliases,
        "summary": f"test advisory for {package}",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
    }


ADVISORIES = [
    advisory("PYSEC-0000-1", "flask", ["CVE-2016-3674", "CVE-2016-2781"]),
    advisory("PYSEC-0000-2", "jinja2", ["CVE-2016-3197"]),  # Rejected at NVD: no record
    advisory("PYSEC-0000-3", "idna", []),
]


def nvd_cvss(document: bytes) -> dict[str, Any]:
    """CVE id → cvssData of its first Primary v3.1 metric, else v3.0 (Rejected ones left out)."""
    out = {}
    for item in orjson.loads(document)["vulnerabilities"]:
        cve = item["cve"]
        if cve.get("vulnStatus") == "Rejected":
            continue
        for key in ("cvssMetricV31", "cvssMetricV30"):
            primary = [m for m in cve.get("metrics", {}).get(key, []) if m["type"] == "Primary"]
            if primary:
                out[cve["id"]] = primary[0]["cvssData"]
                break
    return out


@pytest.fixture
async def combo(pg_dsn: str, tmp_path: Path, feed_server: FeedServer) -> AsyncIterator[Combo]:
    updaters = {
        "sets": ["osv", "clair.cvss"],
        "config": {
            "osv": {"url": feed_server.url},
            "clair.cvss": {
                "feed_root": feed_server.url + "nvd/",
                "first_year": 2016,
                "last_year": 2016,
            },
        },
    }
    async with running_combo(pg_dsn, tmp_path / "cache", updaters=updaters) as c:
        yield c


async def test_report_carries_the_cvss_of_named_cves(
    combo: Combo, feed_server: FeedServer, registry: LocalRegistry, shared_data: Path
) -> None:
    document = (shared_data / NVD / "feed.json").read_bytes()
    feed_server.put("nvd/nvdcve-2.0-2016.meta", (shared_data / NVD / "feed.meta").read_bytes())
    feed_server.put("nvd/nvdcve-2.0-2016.json.gz", gzip.compress(document))
    feed_server.put_pypi_osv(ADVISORIES)
    run = await combo.run_updaters()
    assert run.outcomes == {"osv/pypi": "updated", "clair.cvss": "updated"}, run.errors
    ops = await combo.client.get("/matcher/api/v1/internal/update_operation?kind=enrichment")
    assert ops.status_code == 200 and list(ops.json()) == ["clair.cvss"]

    manifest = await registry.push_image(
        "cvss-e2e", [build_layer(files_from_dir(shared_data / LAYER))]
    )
    await combo.index(manifest)
    report = await combo.vulnerability_report(manifest.hash)
    ids = {v["name"]: vid for vid, v in report["vulnerabilities"].items()}
    assert set(ids) == {"PYSEC-0000-1", "PYSEC-0000-2", "PYSEC-0000-3"}

    cvss = nvd_cvss(document)
    assert report["enrichments"] == {
        MEDIA_TYPE: [{ids["PYSEC-0000-1"]: [cvss["CVE-2016-2781"], cvss["CVE-2016-3674"]]}]
    }
    # The v3.1 metric of CVE-2016-2781 is NVD's Secondary one: the Primary v3.0 one is used.
    assert cvss["CVE-2016-2781"]["version"] == "3.0"
