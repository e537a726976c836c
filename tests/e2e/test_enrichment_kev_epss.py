"""End to end: KEV and EPSS enrichments in reports, online and across an airgap.

Feeds through the production updaters: the full Go vulnerability database and PyPA database
(OSV), the full CISA KEV catalog, and claircore's EPSS excerpt (a real daily file's first
rows). The image: Debian's docker-registry (Go 1.19.8, whose advisories alias no KEV CVE:
GO-2023-2102 only names CVE-2023-44487 as related) and two Python distributions: salt 3000.1,
whose advisories PYSEC-2020-102 and -103 alias CVE-2020-11651 and CVE-2020-11652 (both in the
KEV catalog), and nvflare 2.1.2, whose advisory PYSEC-2022-257 aliases CVE-2022-34668, a CVE of
the EPSS excerpt. Then `clairctl
export-updaters` / `import-updaters` carry all three feeds into an empty database, whose
reports must carry the same enrichments.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson

from clair_common.models import Manifest
from clair_matcher.enrichers.epss import MEDIA_TYPE as EPSS_TYPE
from clair_matcher.enrichers.kev import MEDIA_TYPE as KEV_TYPE
from tests.fixtures.combo import Combo, running_combo
from tests.fixtures.feeds import FeedServer, osv_zip
from tests.fixtures.govulndb import go_vulndb  # noqa: F401
from tests.fixtures.images import Mode, build_layer
from tests.fixtures.registry import LocalRegistry
from tests.matcher.test_airgap import clairctl
from tests.matcher.test_enricher_kev_epss import RAPID_RESET, epss_excerpt, kev_catalog

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
SITE = "usr/local/lib/python3.11/site-packages/"


def _metadata(name: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()


def _layers() -> list[bytes]:
    return [
        build_layer({"usr/bin/docker-registry": Mode(REGISTRY_BINARY.read_bytes(), 0o755)}),
        build_layer(
            {
                SITE + "nvflare-2.1.2.dist-info/METADATA": _metadata("nvflare", "2.1.2"),
                SITE + "salt-3000.1.dist-info/METADATA": _metadata("salt", "3000.1"),
            }
        ),
    ]


def _catalog_entry(catalog: dict[str, Any], cve: str) -> dict[str, str]:
    """claircore's kev.Entry of one catalog item, built here from the catalog."""
    (item,) = [v for v in catalog["vulnerabilities"] if v["cveID"] == cve]
    return {
        "cve": cve,
        "vulnerability_name": item["vulnerabilityName"],
        "catalog_version": catalog["catalogVersion"],
        "date_added": item["dateAdded"],
        "short_description": item["shortDescription"],
        "required_action": item["requiredAction"],
        "due_date": item["dueDate"],
        "known_ransomware_campaign_use": item["knownRansomwareCampaignUse"],
    }


def _by_name(report: dict[str, Any], media_type: str) -> dict[str, list[Any]]:
    """Vulnerability name → its records under `media_type`."""
    (values,) = report["enrichments"].get(media_type, [{}])
    names = {vid: v["name"] for vid, v in report["vulnerabilities"].items()}
    out: dict[str, list[Any]] = {}
    for vuln_id, records in values.items():
        out.setdefault(names[vuln_id], []).extend(records)
    return out


async def _report(combo: Combo, manifest: Manifest) -> dict[str, Any]:
    await combo.index(manifest)
    return await combo.vulnerability_report(manifest.hash)


async def test_kev_and_epss_in_reports_and_through_the_airgap(
    pg_dsn: str,
    second_dsn: str,
    tmp_path: Path,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    go_vulndb: list[dict[str, Any]],  # noqa: F811
    pypa_osv: list[dict[str, Any]],
) -> None:
    feed_server.put("ecosystems.txt", b"Go\nPyPI\n")
    feed_server.put("Go/all.zip", osv_zip(go_vulndb))
    feed_server.put("PyPI/all.zip", osv_zip(pypa_osv))
    feed_server.put("kev/known_exploited_vulnerabilities.json", kev_catalog(shared_data))
    feed_server.put("epss/epss_scores-2024-10-25.csv.gz", epss_excerpt(shared_data))
    updaters = {
        "sets": ["osv", "clair.kev", "clair.epss"],
        "config": {
            "osv": {"url": feed_server.url},
            "clair.kev": {
                "feed_root": feed_server.url + "kev/known_exploited_vulnerabilities.json"
            },
            "clair.epss": {"feed_root": feed_server.url + "epss/epss_scores-2024-10-25.csv.gz"},
        },
    }
    manifest = await registry.push_image("kev-epss", _layers())

    async with running_combo(pg_dsn, tmp_path / "online", updaters=updaters) as online:
        run = await online.run_updaters()
        assert not run.errors, run.errors
        assert {"clair.kev", "clair.epss", "osv/go", "osv/pypi"} <= set(run.outcomes)
        report = await _report(online, manifest)

    kev = _by_name(report, KEV_TYPE)
    catalog = orjson.loads(kev_catalog(shared_data))
    # Found through the advisories' CVE aliases (their names are PYSEC/GO ids): the oracle
    # reads the aliases from the feed documents and the catalog directly.
    known = {v["cveID"] for v in catalog["vulnerabilities"]}
    aliases = {str(a["id"]): set(a.get("aliases") or []) for a in [*go_vulndb, *pypa_osv]}
    expected = {}
    for vuln in report["vulnerabilities"].values():
        hits = sorted(aliases.get(vuln["name"], set()) & known)
        if hits:
            expected[vuln["name"]] = [_catalog_entry(catalog, cve) for cve in hits]
    assert kev == expected
    assert kev["PYSEC-2020-102"] == [_catalog_entry(catalog, "CVE-2020-11651")]
    assert kev["PYSEC-2020-103"] == [_catalog_entry(catalog, "CVE-2020-11652")]
    assert "GO-2023-2102" in {v["name"] for v in report["vulnerabilities"].values()}
    epss = _by_name(report, EPSS_TYPE)
    assert epss["PYSEC-2022-257"] == [
        {
            "modelVersion": "v2023.03.01",
            "date": "2024-10-25T00:00:00+0000",
            "cve": "CVE-2022-34668",
            "epss": 0.00311,
            "percentile": 0.70519,
        }
    ]
    assert "PYSEC-2022-257" not in kev

    export = tmp_path / "updates.jsonl.gz"
    status, err = await clairctl({"updaters": updaters}, tmp_path, "export-updaters", str(export))
    assert status == 0, err
    kinds: dict[str, set[str]] = {}
    with gzip.open(export) as fp:
        for line in fp:
            doc = orjson.loads(line)
            kinds.setdefault(doc["Updater"], set()).add(doc["Kind"])
            if doc["Updater"] == "clair.kev" and doc["Enrichment"]["Tags"] == ["CVE-2023-44487"]:
                assert doc["Enrichment"]["Enrichment"] == RAPID_RESET
                assert list(doc) == ["Updater", "Fingerprint", "Date", "Ref", "Enrichment", "Kind"]
    assert kinds["clair.kev"] == kinds["clair.epss"] == {"enrichment"}
    assert kinds["osv/go"] == {"vulnerability"}

    config = {"matcher": {"connstring": second_dsn, "migrations": True}}
    async with running_combo(second_dsn, tmp_path / "airgapped") as airgapped:
        status, err = await clairctl(config, tmp_path, "import-updaters", str(export))
        assert status == 0, err
        imported = await _report(airgapped, manifest)
    for media_type in (KEV_TYPE, EPSS_TYPE):
        assert _by_name(imported, media_type) == _by_name(report, media_type)
