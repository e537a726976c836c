"""The match-time half shared by the per-CVE enrichers (clair.kev, clair.epss).

As claircore's kev and epss enrichers do: the CVE ids named anywhere in a reported
vulnerability's description, name or links (OSV aliases are links, so a `GO-`/`PYSEC-`
advisory is found through its CVE aliases) are looked up in one query for the whole report,
and the report gets one map `{<vulnerability id>: [record, ...]}` under the media type.
"""

from __future__ import annotations

from typing import Any

from clair_common.models import VulnerabilityReport
from clair_matcher.enrichers.base import EnrichmentLookup
from clair_matcher.enrichers.cvss import cve_ids


async def enrich_by_cve(
    updater: str, lookup: EnrichmentLookup, report: VulnerabilityReport
) -> list[Any]:
    wanted: dict[str, list[str]] = {}
    for vuln_id, vuln in report.vulnerabilities.items():
        found = cve_ids(vuln.description, vuln.name, vuln.links)
        if found:
            wanted[vuln_id] = found
    if not wanted:
        return []
    records = await lookup(updater, sorted({t for tags in wanted.values() for t in tags}))
    by_tag: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        for tag in record.tags:
            by_tag.setdefault(tag, []).append(index)
    out: dict[str, list[Any]] = {}
    for vuln_id, tags in wanted.items():
        hits = sorted({i for tag in tags for i in by_tag.get(tag, ())})
        if hits:
            out[vuln_id] = [records[i].data for i in hits]
    return [out] if out else []
