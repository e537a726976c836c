"""The match-time half shared by the per-CVE enrichers (clair.cvss, clair.kev, clair.epss).

As claircore's kev and epss enrichers do: the CVE ids named anywhere in a reported
vulnerability's description, name or links (OSV aliases are links, so a `GO-`/`PYSEC-`
advisory is found through its CVE aliases) are looked up in one query for the whole report,
and the report gets one map `{<vulnerability id>: [record, ...]}` under the media type.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from clair_common.models import Vulnerability, VulnerabilityReport
from clair_matcher.enrichers.base import EnrichmentLookup

CVE_PATTERN = re.compile(r"(?i:cve)[-_][0-9]{4}[-_][0-9]{4,}")


def cve_ids(*texts: str) -> list[str]:
    """The distinct CVE ids in `texts`, sorted, spelled as found (Clair's tags)."""
    return sorted({m for text in texts for m in CVE_PATTERN.findall(text)})


def _searched(vuln: Vulnerability) -> tuple[str, ...]:
    return (vuln.description, vuln.name, vuln.links)


async def enrich_by_cve(
    updater: str,
    lookup: EnrichmentLookup,
    report: VulnerabilityReport,
    texts: Callable[[Vulnerability], tuple[str, ...]] = _searched,
) -> list[Any]:
    """`texts` picks the fields of a vulnerability searched for CVE ids."""
    wanted: dict[str, list[str]] = {}
    for vuln_id, vuln in report.vulnerabilities.items():
        found = cve_ids(*texts(vuln))
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
