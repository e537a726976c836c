"""The worst of the hostile corpus against a real `clair serve --mode indexer` process.

Checks what only a real process shows: its peak resident memory (VmHWM) over bombs, 200k
members and a 200 MB wanted file, and that nothing it did wrote a file outside its layer cache
(TMPDIR points into the test's directory; payload names carry a unique token searched for
everywhere the process could have written).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.fixtures import hostile as h
from tests.fixtures.images import sha256_digest
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.server import clair_server, wait_ready

MEMORY_BOUND_MB = 400
TIME_BOUND = 15.0


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def _files(root: Path) -> set[str]:
    return {
        os.path.relpath(os.path.join(d, f), root)
        for d, _, names in os.walk(root, onerror=lambda _: None)
        for f in names
    }


def _named_like(root: Path, token: str) -> list[str]:
    hits = []
    for d, dirs, names in os.walk(root, onerror=lambda _: None):
        dirs[:] = [x for x in dirs if x not in (".venv", ".git", "node_modules")]
        hits += [os.path.join(d, n) for n in [*dirs, *names] if token in n]
    return hits


def _escapes(token: str) -> bytes:
    """Members that would land outside the layer root if anything ever extracted them."""
    payload = f"payload {token}\n".encode()
    up = "../" * 12
    return h.gzip(
        h.tar(
            h.regular(f"{up}tmp/hostile-{token}/passwd", payload),
            h.regular(f"/tmp/hostile-{token}-abs/passwd", payload),
            h.symlink("escape", "/tmp"),
            h.regular(f"escape/hostile-{token}-via-link", payload),
            h.hardlink(f"hostile-{token}-hard", f"{up}etc/passwd"),
            h.symlink("var/lib/dpkg", f"/tmp/hostile-{token}-dpkg"),
            h.regular("var/lib/dpkg/status", h.dpkg_status(f"pkg-{token}")),
        )
    )


async def test_worst_cases_on_a_real_server(
    pg_dsn: str, registry: LocalRegistry, tmp_path: Path
) -> None:
    token = secrets.token_hex(8)
    workdir = Path(tempfile.mkdtemp(prefix="hostile-server-", dir=tmp_path))
    private_tmp = workdir / "tmp"
    private_tmp.mkdir()
    cases: list[tuple[str, Callable[[], bytes], int, str]] = [
        ("escapes", lambda: _escapes(token), 201, ""),
        ("gzip-bomb", lambda: h.bomb("gzip"), 400, "decompression bomb"),
        ("zstd-bomb", lambda: h.bomb("zstd"), 400, "decompression bomb"),
        ("many-members", lambda: h.many_members(200_000), 201, ""),
        ("huge-wanted-file", h.huge_wanted_file, 400, "over the limit of"),
        ("listing-bomb", h.listing_bomb, 400, "layer lists too many"),
        ("long-link-targets", h.long_link_targets, 201, ""),
    ]
    env = {
        "CLAIR_INDEXER__CONNSTRING": pg_dsn,
        "CLAIR_INDEXER__MIGRATIONS": "true",
        "TMPDIR": str(private_tmp),
    }
    before = _files(workdir)
    peaks: dict[str, float] = {}
    with clair_server(workdir, mode="indexer", env=env, name="hostile") as clair:
        await asyncio.to_thread(wait_ready, clair)
        baseline = _peak_rss_mb(clair.proc.pid)
        async with aiohttp.ClientSession() as http:
            for name, build, status, err in cases:
                blob = await asyncio.to_thread(build)
                digest = await asyncio.to_thread(registry.push_blob_sync, name, blob)
                manifest = {
                    "hash": sha256_digest(f"{token}{name}".encode()),
                    "layers": [{"hash": digest, "uri": registry.blob_url(name, digest)}],
                }
                started = time.monotonic()
                url = f"{clair.api}/indexer/api/v1/index_report"
                async with http.post(url, json=manifest) as resp:
                    body = await resp.json()
                    assert resp.status == status, (name, body)
                elapsed = time.monotonic() - started
                assert elapsed < TIME_BOUND, (name, elapsed)
                if err:
                    assert err in body["message"], (name, body)
                peaks[name] = _peak_rss_mb(clair.proc.pid)
        print(f"indexer peak RSS: baseline {baseline:.0f} MB, after each case {peaks}")
        assert max(peaks.values()) < MEMORY_BOUND_MB, peaks

    await asyncio.to_thread(_assert_only_cache_written, workdir, before, token)


def _assert_only_cache_written(workdir: Path, before: set[str], token: str) -> None:
    created = _files(workdir) - before
    cache = "hostile-cache/"
    stray = sorted(f for f in created if not f.startswith(cache) and f != "hostile.log")
    assert stray == [], stray
    assert all(
        Path(f).parent.name in ("sha256", "sha512") for f in created if f.startswith(cache)
    ), created
    assert list((workdir / "tmp").iterdir()) == []
    for root in (Path("/tmp"), Path(tempfile.gettempdir()), Path.cwd(), Path("/etc")):
        assert _named_like(root, f"hostile-{token}") == [], root
    assert token not in Path("/etc/passwd").read_text()
