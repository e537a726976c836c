"""SARIF 2.1.0 for code-scanning dashboards: a rule per advisory, a result per finding.

Levels follow the severity (Critical/High → error, Medium → warning, the rest → note) and
`security-severity` carries the score code-scanning tools sort by. Each result points at the
package database the package was found in, inside the image. The tests validate the output
against the published OASIS schema.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO

from clair_common.clairctl.findings import Finding, ImageResult

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
_LEVELS = {"Critical": "error", "High": "error", "Medium": "warning"}
# GitHub's security-severity bands: critical ≥ 9, high ≥ 7, medium ≥ 4, low > 0.
_SCORES = {"Critical": "9.5", "High": "8.0", "Medium": "5.5", "Low": "2.0"}


def _rule(f: Finding) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": f.advisory,
        "name": f.advisory,
        "shortDescription": {"text": f"{f.advisory} ({f.severity})"},
        "fullDescription": {"text": f.description or f.advisory},
        "properties": {"tags": ["security", "vulnerability"], "precision": "very-high"},
    }
    if f.severity in _SCORES:
        rule["properties"]["security-severity"] = _SCORES[f.severity]
    if f.link:
        rule["helpUri"] = f.link
        rule["help"] = {"text": f"See {f.link}"}
    return rule


def _location(result: ImageResult, f: Finding) -> str:
    envs = (result.report.get("environments") or {}).get(f.package_id) or []
    db = str(envs[0].get("package_db") or "") if envs else ""
    return db.removeprefix("python:") or "image"


def _result(result: ImageResult, f: Finding, rule_index: int) -> dict[str, Any]:
    fix = f"fixed in {f.fixed_in}" if f.fixable else "no fix available"
    return {
        "ruleId": f.advisory,
        "ruleIndex": rule_index,
        "level": _LEVELS.get(f.severity, "note"),
        "message": {
            "text": f"{f.package} {f.installed} is affected by {f.advisory}"
            f" ({f.severity}); {fix}. Image: {result.name}"
        },
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {"uri": _location(result, f)}},
                "logicalLocations": [{"name": result.name, "kind": "module"}],
            }
        ],
        "partialFingerprints": {
            "clairFinding/v1": f"{result.digest}:{f.purl or f.package}:{f.advisory}"
        },
        "properties": {
            "purl": f.purl,
            "installedVersion": f.installed,
            "fixedIn": f.fixed_in,
            "knownExploited": f.kev,
            **({"epss": f.epss} if f.epss is not None else {}),
        },
    }


def sarif_document(results: Sequence[ImageResult]) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    for result in results:
        for f in result.findings:
            if f.advisory not in index:
                index[f.advisory] = len(rules)
                rules.append(_rule(f))
            out.append(_result(result, f, index[f.advisory]))
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "clairctl",
                        "informationUri": "https://github.com/quay/clair",
                        "rules": rules,
                    }
                },
                "results": out,
            }
        ],
    }


def write_sarif(results: Sequence[ImageResult], out: TextIO, color: bool = False) -> None:
    out.write(json.dumps(sarif_document(results), indent=2) + "\n")
