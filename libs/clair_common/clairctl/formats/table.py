"""The human table: one block per image, most severe first, columns sized to their content.

Widths come from the cells, never from the terminal, so the same report prints the same table
on any terminal and in any pipe; colour (severity only) is used on a terminal alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TextIO

from clair_common.clairctl.findings import Finding, ImageResult
from clair_common.models import SEVERITIES

HEADERS = ("SEVERITY", "PACKAGE", "INSTALLED", "FIXED IN", "ADVISORY", "LINK")
NO_FIX = "(no fix)"
_COLOURS = {
    "Critical": "\x1b[1;31m",
    "High": "\x1b[31m",
    "Medium": "\x1b[33m",
    "Low": "\x1b[36m",
    "Negligible": "\x1b[2m",
    "Unknown": "\x1b[2m",
}
_RESET = "\x1b[0m"


def _row(f: Finding, exploit: bool) -> tuple[str, ...]:
    row: tuple[str, ...] = (f.severity, f.package, f.installed, f.fixed_in or NO_FIX, f.advisory)
    if exploit:  # only when the report carries KEV or EPSS data
        marks = (["KEV"] if f.kev else []) + ([f"epss={f.epss:.3g}"] if f.epss is not None else [])
        row += (" ".join(marks) or "-",)
    return (*row, f.link)


def summary(result: ImageResult) -> str:
    counts = Counter(f.severity for f in result.findings)
    parts = [f"{counts[s]} {s}" for s in reversed(SEVERITIES) if counts[s]]
    fixable = sum(1 for f in result.findings if f.fixable)
    text = f"{len(result.findings)} vulnerabilities"
    if parts:
        text += f" ({', '.join(parts)}), {fixable} fixable"
    if result.suppressed:
        text += f"; {result.suppressed} suppressed by VEX"
    if result.filtered:
        text += f"; {result.filtered} hidden by filters"
    return text


def write_table(results: Sequence[ImageResult], out: TextIO, color: bool = False) -> None:
    for n, result in enumerate(results):
        if n:
            out.write("\n")
        packages = len(result.report.get("packages") or {})
        out.write(f"{result.name} ({result.digest}): {packages} packages\n")
        exploit = any(f.kev or f.epss is not None for f in result.findings)
        headers = (*HEADERS[:5], "EXPLOIT", HEADERS[5]) if exploit else HEADERS
        rows = [_row(f, exploit) for f in result.findings]
        if rows:
            widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
            out.write(_line(headers, widths, None) + "\n")
            for finding, row in zip(result.findings, rows, strict=True):
                colour = _COLOURS.get(finding.severity) if color else None
                out.write(_line(row, widths, colour) + "\n")
        out.write(summary(result) + "\n")


def _line(cells: Sequence[str], widths: Sequence[int], colour: str | None) -> str:
    padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
    if colour:
        padded[0] = f"{colour}{padded[0]}{_RESET}"
    return "  ".join(padded).rstrip()
