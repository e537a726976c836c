"""Severity helpers shared by updaters: CVSS vectors and free-text labels to Clair's scale.

Clair maps a CVSS vector through its base score with the v3/v4 qualitative table for every
version, v2 included (claircore `toolkit/types/cvss`): 0 None (Negligible), <4 Low, <7 Medium,
<9 High, else Critical.
"""

from __future__ import annotations

import cvss  # type: ignore[import-untyped]

UNKNOWN = "Unknown"

_LABELS = {
    "unknown": "Unknown",
    "negligible": "Negligible",
    "low": "Low",
    "moderate": "Medium",
    "medium": "Medium",
    "high": "High",
    "critical": "Critical",
}


def qualitative(score: float) -> str:
    """Clair's normalized severity for a CVSS base score."""
    if score == 0:
        return "Negligible"
    if score < 4:
        return "Low"
    if score < 7:
        return "Medium"
    if score < 9:
        return "High"
    return "Critical"


def cvss_base_score(kind: str, vector: str) -> float:
    """Base score of a vector; `kind` is OSV's CVSS_V2 / CVSS_V3 / CVSS_V4. Raises ValueError."""
    try:
        if kind == "CVSS_V4":
            return float(cvss.CVSS4(vector).base_score)
        if kind == "CVSS_V3":
            return float(cvss.CVSS3(vector).base_score)
        if kind == "CVSS_V2":
            return float(cvss.CVSS2(vector).base_score)
    except cvss.exceptions.CVSSError as exc:
        raise ValueError(f"bad {kind} vector {vector!r}: {exc}") from None
    raise ValueError(f"unknown severity type {kind!r}")


def from_label(label: str) -> str:
    """A database's own severity word (any case; `moderate` is Medium), else Unknown."""
    return _LABELS.get(label.strip().lower(), UNKNOWN)
