"""Benchmark: what the Go binary scanner adds to scanning a layer full of executables.

The layer: the executable regular files under this machine's /usr/bin, /usr/sbin, /usr/lib,
Go programs first (the Go toolchain's tools, Debian's docker-registry, any other), then the
rest (C programs, scripts), up to --size-mb of file data, as a tar compressed with isal
(gzip level 3) and zstandard (level 3). Interleaved, per round and compression, in this process:

  without  read_layer + scan with the default scanner set minus `gobin` (the baseline)
  with     the same with `gobin` probing every executable as it streams by

and prints medians, how many Go binaries and packages were found, and with/without (goal: at
most 1.10, i.e. the Go scanner adds under 10% to the layer's index time).

Usage: .venv/bin/python bench/gobin.py [--size-mb 400] [--rounds 9]
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import stat
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._harness import goal, interleaved, median, summary  # noqa: E402
from bench._layers import compress_all  # noqa: E402
from clair_indexer.layer import read_layer  # noqa: E402
from clair_indexer.scanners import Scanner, default_scanners  # noqa: E402
from clair_indexer.scanners.base import probe_chain  # noqa: E402
from clair_indexer.scanners.gobin_probe import MAGIC  # noqa: E402

GOAL_RATIO = 1.10
_ROOTS = ("/usr/bin", "/usr/sbin", "/usr/lib")


def executables(limit: int) -> tuple[list[Path], int]:
    """Executable regular files (not symlinks), each real file once, up to `limit` bytes: the
    Go programs first, then the others; also returns how many are Go programs."""
    seen: set[tuple[int, int]] = set()
    found: list[tuple[Path, int]] = []
    for root in _ROOTS:
        for directory, subdirs, files in os.walk(root):
            subdirs.sort()
            for name in sorted(files):
                path = Path(directory, name)
                try:
                    info = path.lstat()
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o111:
                    continue
                if (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    found.append((path, info.st_size))
    go = [(p, n) for p, n in found if _is_go(p)]
    others = [(p, n) for p, n in found if (p, n) not in go]
    out: list[Path] = []
    total = go_count = 0
    for path, size in go + others:
        if total + size <= limit:
            out.append(path)
            total += size
            go_count += (path, size) in go
    return out, go_count


def _is_go(path: Path) -> bool:
    try:
        return MAGIC in path.read_bytes()
    except OSError:
        return False


def build_layer(files: list[Path], plain: Path) -> int:
    """A plain tar of `files` at `plain`; returns its size."""
    with tarfile.open(plain, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in files:
            try:
                archive.add(path, arcname=str(path).lstrip("/"), recursive=False)
            except OSError:
                continue
    return plain.stat().st_size


def scan(blob: Path, scanners: list[Scanner]) -> tuple[float, int, int]:
    """CPU seconds to read and scan the layer (all of it runs in this thread, decompression
    included, so other processes on the machine do not count); Go binaries and packages."""
    wants = [s.wants for s in scanners]
    prober = probe_chain(scanners)
    gc.collect()
    start = time.process_time()
    contents = read_layer(blob, lambda p: any(w(p) for w in wants), prober=prober)
    packages = sum(len(s.scan(contents).packages) for s in scanners)
    seconds = time.process_time() - start
    return seconds, len(contents.probed), packages


def _case(
    found: dict[str, tuple[int, int]], name: str, scanners: list[Scanner], blob: Path
) -> float:
    seconds, binaries, packages = scan(blob, scanners)
    found[name] = (binaries, packages)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    files, go_count = executables(args.size_mb << 20)
    without = [s for s in default_scanners() if s.name != "gobin"]
    with_go = default_scanners()
    with tempfile.TemporaryDirectory(prefix="bench-gobin-") as tmp:
        size = build_layer(files, Path(tmp) / "layer.tar")
        print(f"layer: {len(files)} executables ({go_count} Go), {size >> 20} MiB of tar")
        blobs = compress_all(Path(tmp) / "layer.tar", Path(tmp))
        for compression in ("gzip", "zstd"):
            blob = blobs[compression]
            found: dict[str, tuple[int, int]] = {}
            samples = interleaved(
                {
                    "without": functools.partial(_case, found, "without", without, blob),
                    "with": functools.partial(_case, found, "with", with_go, blob),
                },
                args.rounds,
            )
            base, ours = median(samples["without"]), median(samples["with"])
            binaries = found["with"][0]
            packages = found["with"][1] - found["without"][1]
            print(
                f"{compression}: {blob.stat().st_size >> 20} MiB; without gobin {base:.3f}s CPU,"
                f" with {ours:.3f}s; {binaries} Go binaries, {packages} Go packages"
            )
            goal(f"{compression} with/without gobin", ours / base, GOAL_RATIO)
    return summary()


if __name__ == "__main__":
    raise SystemExit(main())
