"""What every benchmark shares: interleaved runs, medians, and a printed goal with its verdict.

Runs are interleaved (a, b, a, b, ...) so that a machine that slows down or speeds up during a
bench (other tenants, thermal limits) weighs on both sides alike, and the median of each side is
compared: a best-of-N flatters whichever side got the one quiet moment.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from pathlib import Path

_verdicts: list[bool] = []


def interleaved(cases: Mapping[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Call each case once per round, in order, `rounds` times; each call returns its seconds."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            samples[name].append(case())
    return samples


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def percentile(samples: list[float], p: int) -> float:
    """The p-th percentile (1..99) of `samples`, inclusive method."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


def goal(label: str, value: float, limit: float, *, at_most: bool = True, unit: str = "") -> bool:
    """Print one goal line with its verdict; remembered for `summary()`."""
    met = value <= limit if at_most else value >= limit
    relation = "<=" if at_most else ">="
    print(
        f"GOAL {label}: {value:.2f}{unit} (goal {relation} {limit:g}{unit}) "
        f"{'MET' if met else 'NOT MET'}"
    )
    _verdicts.append(met)
    return met


def summary() -> int:
    """Print the count of goals met; the exit status a bench returns (0 even when a goal is
    missed: a bench reports, `make bench` goes on to the next one)."""
    met = sum(_verdicts)
    print(f"goals met: {met}/{len(_verdicts)}")
    return 0


def peak_rss_mib(pid: int | str = "self") -> float:
    """VmHWM of a process: its own peak, where ru_maxrss would carry a parent's over exec."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
