"""Benchmark: the indexer's layer reader against a lean decompress-and-walk of the same blob.

Builds a realistic layer (a tar of this machine's `/usr`, see bench/_layers.py), compresses it
with isal (gzip) and zstandard, then per compression times, interleaved, each run in its own
subprocess so that peak RSS is its own:

  ours      read_layer(blob, wanted=dpkg status): decompress, walk, keep the wanted file
  lean      the same decompressor in 1 MiB reads and a bare tar header loop (the baseline)
  decomp    decompression alone, for scale

and prints the medians and ours/lean (goal: at most 1.25 for every compression).

Usage: .venv/bin/python bench/layer_walk.py [--size-mb 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._harness import goal, interleaved, median, peak_rss_mib, summary  # noqa: E402
from bench._layers import (  # noqa: E402
    STATUS_PATH,
    build_system_layer,
    compress_all,
    decompress_only,
    lean_walk,
)
from clair_indexer.layer import read_layer  # noqa: E402

GOAL_RATIO = 1.25


def _run_ours(blob: Path) -> int:
    contents = read_layer(blob, wanted=lambda path: path == STATUS_PATH)
    if STATUS_PATH not in contents.files:
        raise SystemExit("read_layer did not find the dpkg status file")
    return contents.member_count


_CASES = {"ours": _run_ours, "lean": lean_walk, "decomp": decompress_only}


def run_case(case: str, blob: Path) -> None:
    """Child process entry: time one case once, print JSON with seconds and peak RSS.

    Blob "-": standard input, once "ready" was printed (a pipe a download is fed into)."""
    if str(blob) == "-":
        print("ready", flush=True)
        blob = Path("/dev/stdin")
    start = time.perf_counter()
    _CASES[case](blob)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_rss_mib()}))


def measure(case: str, blob: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--run-case", case, "--blob", str(blob)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=300, help="file data in the layer")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved runs per case")
    parser.add_argument("--run-case", choices=tuple(_CASES), help=argparse.SUPPRESS)
    parser.add_argument("--blob", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_case:
        run_case(args.run_case, args.blob)
        return 0

    with tempfile.TemporaryDirectory(prefix="layer-walk-") as tmp:
        directory = Path(tmp)
        plain = directory / "layer.tar"
        start = time.perf_counter()
        members, data = build_system_layer(plain, args.size_mb << 20)
        blobs = compress_all(plain, directory)
        print(
            f"layer: tar of /usr, {plain.stat().st_size / 2**20:.0f} MiB, {members} members,"
            f" {data / 2**20:.0f} MiB of file data; built in {time.perf_counter() - start:.1f}s"
        )
        print(
            f"{'compression':<12}{'blob MiB':>9}{'ours s':>9}{'lean s':>9}{'ratio':>7}"
            f"{'decomp s':>10}{'ours RSS':>10}"
        )
        ratios = {}
        for compression, blob in blobs.items():
            rss: list[float] = []

            def case(name: str, blob: Path = blob, rss: list[float] = rss) -> float:
                result = measure(name, blob)
                if name == "ours":
                    rss.append(result["peak_rss_mib"])
                return result["seconds"]

            samples = interleaved(
                {name: functools.partial(case, name) for name in _CASES}, args.rounds
            )
            ours, lean, decomp = (median(samples[name]) for name in _CASES)
            ratios[compression] = ours / lean
            print(
                f"{compression:<12}{blob.stat().st_size / 2**20:>9.0f}{ours:>9.3f}{lean:>9.3f}"
                f"{ours / lean:>7.2f}{decomp:>10.3f}{max(rss):>8.0f}Mi"
            )
        for compression, ratio in ratios.items():
            goal(f"layer reader / lean walk, {compression}", ratio, GOAL_RATIO)
    return summary()


if __name__ == "__main__":
    raise SystemExit(main())
