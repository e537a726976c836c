"""Filters and the CI gate: --severity, --ignore-unfixed, --vex, --fail-on."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from clair_common.clairctl.findings import ImageResult, findings_of
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


def apply_gate(result: ImageResult, gate: Gate) -> None:
    """Fills `result.findings` (what is shown and gated), `suppressed` and `filtered`."""
    kept = []
    for finding in findings_of(result.report, result.purls):
        if any(doc.clears(finding, result.digest) for doc in gate.vex):
            result.suppressed += 1
        elif (gate.severities is not None and finding.severity not in gate.severities) or (
            gate.ignore_unfixed and not finding.fixable
        ):
            result.filtered += 1
        else:
            kept.append(finding)
    result.findings = kept


def gate_fails(results: Iterable[ImageResult], fail_on: str | None) -> bool:
    if fail_on is None:
        return False
    threshold = SEVERITY_RANK[fail_on]
    return any(f.rank >= threshold for r in results for f in r.findings)
