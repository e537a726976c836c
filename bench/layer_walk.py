"""Benchmark: `read_layer` versus decompress-and-walk with tarfile over the same layer blob.

Builds a synthetic layer (mixed file sizes; compressible text, random bytes, a dpkg status
file, links and whiteouts) in a temporary directory, compresses it with isal (gzip) and
zstandard, then times per compression, each case in its own subprocess so peak RSS is its own:

  ours      read_layer(blob, wanted=lambda p: p == "var/lib/dpkg/status")
  baseline  open_decompressed(blob) (same decompressor) + tarfile "r|" header walk

Usage: .venv/bin/python bench/layer_walk.py [--size-mb 320] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import zstandard
from isal import isal_zlib

from clair_indexer.layer import open_decompressed, read_layer

STATUS_PATH = "var/lib/dpkg/status"
_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "package",
    "version",
    "depends",
    "library",
    "debian",
    "usr",
    "lib",
    "share",
    "doc",
    "copyright",
    "license",
    "python",
    "perl",
    "shell",
    "config",
    "default",
    "error",
    "warning",
    "install",
    "remove",
    "upgrade",
    "amd64",
    "arm64",
    "maintainer",
    "description",
    "priority",
    "optional",
    "required",
    "section",
    "utils",
    "admin",
    "libs",
    "net",
]


def _text_pool(rng: random.Random, size: int) -> bytes:
    lines = []
    total = 0
    while total < size:
        line = " ".join(rng.choices(_WORDS, k=rng.randint(4, 14))) + f" {rng.getrandbits(32)}\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


def _dpkg_status(rng: random.Random, packages: int) -> bytes:
    stanzas = []
    for index in range(packages):
        stanzas.append(
            f"Package: pkg{index}\nStatus: install ok installed\nPriority: optional\n"
            f"Section: libs\nInstalled-Size: {rng.randint(10, 90000)}\n"
            f"Maintainer: Someone <someone@example.org>\nArchitecture: amd64\n"
            f"Source: src{index // 3}\nVersion: {rng.randint(0, 9)}.{rng.randint(0, 99)}-{index}\n"
            f"Depends: libc6 (>= 2.36)\nDescription: synthetic package {index}\n"
        )
    return "\n".join(stanzas).encode()


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def build_layer(path: Path, size_bytes: int, seed: int) -> int:
    """Write a plain tar of about `size_bytes`; returns the number of regular files."""
    rng = random.Random(seed)
    pool = _text_pool(rng, 16 << 20)
    written = files = 0
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        for directory in ("usr", "usr/lib", "usr/share", "usr/share/doc", "var", "var/lib"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        _add(archive, STATUS_PATH, _dpkg_status(rng, 600))
        while written < size_bytes:
            size = min(int(rng.lognormvariate(8.3, 1.7)), 8 << 20)  # median 4 KiB, mean 17 KiB
            if rng.random() < 0.6:
                start = rng.randrange(len(pool) - size) if size < len(pool) else 0
                data = pool[start : start + size]
            else:
                data = os.urandom(size)
            name = f"usr/lib/pkg{files % 997}/sub{files % 13}/file{files}.dat"
            _add(archive, name, data)
            written += len(data) + 512
            files += 1
            if files % 500 == 0:
                link = tarfile.TarInfo(f"usr/share/doc/link{files}")
                link.type, link.linkname = tarfile.SYMTYPE, f"../../lib/pkg{files % 997}"
                archive.addfile(link)
                _add(archive, f"usr/share/doc/.wh.gone{files}", b"")
    return files


def compress(plain: Path, directory: Path) -> dict[str, Path]:
    gz, zst = directory / "layer.tar.gz", directory / "layer.tar.zst"
    with plain.open("rb") as src, gz.open("wb") as dst:
        deflate = isal_zlib.compressobj(2, isal_zlib.DEFLATED, 31)  # wbits 31: gzip wrapper
        while chunk := src.read(1 << 20):
            dst.write(deflate.compress(chunk))
        dst.write(deflate.flush())
    with plain.open("rb") as src, zst.open("wb") as dst:
        zstandard.ZstdCompressor(level=3).copy_stream(src, dst)
    return {"gzip": gz, "zstd": zst, "none": plain}


def _run_ours(blob: Path) -> int:
    contents = read_layer(blob, wanted=lambda path: path == STATUS_PATH)
    if STATUS_PATH not in contents.files:
        raise SystemExit("read_layer did not find the dpkg status file")
    return contents.member_count


def _run_baseline(blob: Path) -> int:
    members = 0
    with open_decompressed(blob) as reader, tarfile.open(fileobj=reader, mode="r|") as archive:
        for _member in archive:
            members += 1
    return members


def _run_decompress_only(blob: Path) -> int:
    total = 0
    with open_decompressed(blob) as reader:
        while chunk := reader.read(1 << 20):
            total += len(chunk)
    return total


def run_case(case: str, blob: Path, repeat: int) -> None:
    """Child process entry: time one case `repeat` times, print JSON with best time and RSS."""
    runner = {"ours": _run_ours, "baseline": _run_baseline, "decompress": _run_decompress_only}[
        case
    ]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        runner(blob)
        times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": min(times), "peak_rss_mib": _peak_rss_kib() / 1024}))


def _peak_rss_kib() -> int:
    # Linux carries ru_maxrss over execve, so a child would report this parent's peak;
    # VmHWM belongs to the child's own address space.
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _measure(case: str, blob: Path, repeat: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--run-case", case, "--blob", str(blob)]
    command += ["--repeat", str(repeat)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=320, help="uncompressed layer size")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; best is kept")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument(
        "--run-case", choices=("ours", "baseline", "decompress"), help=argparse.SUPPRESS
    )
    parser.add_argument("--blob", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_case:
        run_case(args.run_case, args.blob, args.repeat)
        return

    with tempfile.TemporaryDirectory(prefix="layer-walk-") as tmp:
        directory = Path(tmp)
        plain = directory / "layer.tar"
        start = time.perf_counter()
        files = build_layer(plain, args.size_mb << 20, args.seed)
        blobs = compress(plain, directory)
        print(
            f"built {plain.stat().st_size / 2**20:.0f} MiB tar, {files} files, in "
            f"{time.perf_counter() - start:.1f}s"
        )
        print(
            f"{'compression':<12}{'blob MiB':>9}{'ours s':>9}{'base s':>9}{'ratio':>7}"
            f"{'ours RSS':>10}{'base RSS':>10}{'decomp s':>10}"
        )
        for compression, blob in blobs.items():
            base = _measure("baseline", blob, args.repeat)
            ours = _measure("ours", blob, args.repeat)
            bare = _measure("decompress", blob, args.repeat)
            print(
                f"{compression:<12}{blob.stat().st_size / 2**20:>9.0f}{ours['seconds']:>9.3f}"
                f"{base['seconds']:>9.3f}{ours['seconds'] / base['seconds']:>7.2f}"
                f"{ours['peak_rss_mib']:>8.0f}Mi{base['peak_rss_mib']:>8.0f}Mi"
                f"{bare['seconds']:>10.3f}"
            )


if __name__ == "__main__":
    main()
