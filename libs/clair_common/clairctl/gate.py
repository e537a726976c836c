"""Filters and the CI gate: --severity, --ignore-unfixed, --vex, --fail-on."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from clair_common.clairctl.findings import Finding, ImageResult, findings_of
from clair_common.clairctl.vex import VexDocument
from clair_common.models import SEVERITY_RANK

EXIT_OK = 0
EXIT_ERROR = 1  # argparse uses 2 for usage errors
EXIT_FINDINGS = 3  # --fail-on: a finding at or above the threshold remains


@dataclass(frozen=True)
class Gate:
    severities: frozenset[str] | None = None  # shown severities; None: all
    ignore_unfixed: bool = False
    fail_on: str | None = None
    vex: Sequence[VexDocument] = ()
    kev_only: bool = False  # only findings in CISA's KEV catalog
    min_epss: float | None = None  # only findings whose EPSS probability reaches this


def apply_gate(result: ImageResult, gate: Gate) -> None:
    """Fills `result.findings` (what is shown and gated), `suppressed` and `filtered`."""
    kept = []
    for finding in findings_of(result.report, result.purls):
        if any(doc.clears(finding, result.digest) for doc in gate.vex):
            result.suppressed += 1
        elif _hidden(finding, gate):
            result.filtered += 1
        else:
            kept.append(finding)
    result.findings = kept


def _hidden(finding: Finding, gate: Gate) -> bool:
    if gate.severities is not None and finding.severity not in gate.severities:
        return True
    if gate.ignore_unfixed and not finding.fixable:
        return True
    if gate.kev_only and not finding.kev:
        return True
    return gate.min_epss is not None and (finding.epss is None or finding.epss < gate.min_epss)


def gate_fails(results: Iterable[ImageResult], fail_on: str | None) -> bool:
    if fail_on is None:
        return False
    threshold = SEVERITY_RANK[fail_on]
    return any(f.rank >= threshold for r in results for f in r.findings)
