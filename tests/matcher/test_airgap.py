"""Airgap: `clairctl export-updaters` then `import-updaters` into an empty matcher database.

The export runs the real updaters over the local feed server in a `clairctl` process; a combo
whose updaters ran online and a combo fed only by the import must give the same reports.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import itertools
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
import yaml
import zstandard

from clair_common.models import Manifest
from clair_matcher.airgap import AirgapError, Progress, import_updaters, open_source
from clair_matcher.store import MatcherStore
from tests.fixtures.combo import Combo, findings, running_combo
from tests.fixtures.feeds import FeedServer
from tests.fixtures.images import build_layer, files_from_dir
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.server import clair_env

_CONFIG_NAMES = itertools.count()
GO_FIELD_ORDER = ["Updater", "Fingerprint", "Date", "Ref", "Vuln", "Kind"]


async def clairctl(
    config: Mapping[str, Any], tmp: Path, *args: str, stdin: bytes | None = None
) -> tuple[int, str]:
    """Runs the installed clairctl (entry-point dispatch included); returns (status, stderr)."""
    path = tmp / f"config-{next(_CONFIG_NAMES)}.yaml"
    path.write_text(yaml.safe_dump(dict(config)))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "clair_common.cli.clairctl",
        "-c",
        str(path),
        *args,
        env=clair_env({}),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def reports(combo: Combo, manifests: list[Manifest]) -> list[dict[tuple[str, str], Any]]:
    out = []
    for manifest in manifests:
        await combo.index(manifest)
        out.append(findings(await combo.vulnerability_report(manifest.hash)))
    return out


async def operation_count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM matcher.update_operation"))
    finally:
        await conn.close()


async def test_export_then_import_gives_the_same_reports(
    pg_dsn: str,
    second_dsn: str,
    tmp_path: Path,
    feed_server: FeedServer,
    registry: LocalRegistry,
    shared_data: Path,
    alpine_secdb: dict[str, bytes],
    pypa_osv: list[dict[str, Any]],
) -> None:
    feed_server.put_many(alpine_secdb.items())
    feed_server.put_pypi_osv(pypa_osv)
    updaters = {
        "sets": ["osv", "alpine"],
        "config": {"osv": {"url": feed_server.url}, "alpine": {"url": feed_server.url}},
    }
    export = tmp_path / "updates.jsonl.gz"
    status, err = await clairctl({"updaters": updaters}, tmp_path, "export-updaters", str(export))
    assert status == 0, err

    # Clair's line format: Go's field order, one Ref per updater run, Kind last.
    refs: dict[str, set[str]] = {}
    with gzip.open(export) as fp:
        for line in fp:
            doc = orjson.loads(line)
            assert list(doc) == GO_FIELD_ORDER
            assert doc["Kind"] == "vulnerability"
            assert doc["Vuln"]["updater"] == doc["Updater"]
            refs.setdefault(doc["Updater"], set()).add(doc["Ref"])
    assert "osv/pypi" in refs
    assert "alpine-main-v3.6-updater" in refs
    assert all(len(r) == 1 for r in refs.values()), refs

    root = shared_data / "layers"
    (alpine_root,) = root.glob("alpine-3.6*")
    manifests = [
        await registry.push_image("airgap-alpine", [build_layer(files_from_dir(alpine_root))]),
        await registry.push_image(
            "airgap-pypi", [build_layer(files_from_dir(root / "pypi-wheels-dist-info"))]
        ),
    ]
    async with running_combo(pg_dsn, tmp_path / "online", updaters=updaters) as online:
        run = await online.run_updaters()
        assert not run.errors, run.errors
        expected = await reports(online, manifests)
    assert any(v for (name, _), v in expected[0].items() if name == "musl"), expected[0].keys()
    assert any(expected[1].values()), "the pypi image should have findings"

    config = {"matcher": {"connstring": second_dsn, "migrations": True}}
    async with running_combo(second_dsn, tmp_path / "airgapped") as airgapped:
        assert await operation_count(second_dsn) == 0
        status, err = await clairctl(config, tmp_path, "import-updaters", str(export))
        assert status == 0, err
        imported = await operation_count(second_dsn)
        assert imported == len(refs)
        assert await reports(airgapped, manifests) == expected

        # Same fingerprints again: nothing new.
        status, err = await clairctl(config, tmp_path, "import-updaters", str(export))
        assert status == 0, err
        assert await operation_count(second_dsn) == imported

    # A failing updater leaves nothing in the output; --strict turns it into a failure.
    feed_server.status_overrides["PyPI/all.zip"] = 500
    partial = tmp_path / "partial.jsonl"
    status, err = await clairctl(
        {"updaters": updaters}, tmp_path, "export-updaters", "--strict", str(partial)
    )
    assert status == 1
    assert "osv/pypi" in err
    names = {orjson.loads(line)["Updater"] for line in partial.read_bytes().splitlines()}
    assert "osv/pypi" not in names
    assert "alpine-main-v3.6-updater" in names


def _go_line(ref: str, fingerprint: str, vuln: dict[str, Any]) -> bytes:
    # What Go's encoder writes: nanosecond dates, untagged fields leaking into the Vuln JSON.
    return (
        b'{"Updater":"alpine-main-v3.6-updater","Fingerprint":'
        + orjson.dumps(fingerprint)
        + b',"Date":"2024-05-01T10:11:12.123456789Z","Ref":"'
        + ref.encode()
        + b'","Vuln":'
        + orjson.dumps(vuln)
        + b',"Kind":"vulnerability"}\n'
    )


def _go_vuln(name: str) -> dict[str, Any]:
    return {
        "id": "",
        "updater": "alpine-main-v3.6-updater",
        "name": name,
        "description": "",
        "issued": "0001-01-01T00:00:00Z",
        "links": f"https://security.alpinelinux.org/vuln/{name}",
        "severity": "",
        "normalized_severity": "Unknown",
        "package": {
            "id": "",
            "name": "musl",
            "version": "",
            "kind": "source",
            "normalized_version": "",
            "cpe": "",
        },
        "distribution": {
            "id": "",
            "did": "alpine",
            "name": "Alpine Linux",
            "version": "",
            "version_code_name": "",
            "version_id": "3.6",
            "arch": "",
            "cpe": "",
            "pretty_name": "Alpine Linux v3.6",
        },
        "fixed_in_version": "1.1.16-r15",
        "Self": None,
        "Aliases": None,
    }


async def test_go_written_file_imports_and_bad_lines_roll_back_their_group(
    matcher_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    ref_a, ref_b = "6f1c1b6e-8a52-4c3e-9d0e-0a4c3b2d1e0f", "0b7f1a9c-2d3e-4f50-8a6b-7c8d9e0f1a2b"
    good = _go_line(ref_a, '"etag-1"', _go_vuln("CVE-2019-14697")) + _go_line(
        ref_a, '"etag-1"', _go_vuln("CVE-2020-28928")
    )
    # No suffix and no flag: the compression is sniffed.
    path = tmp_path / "go-export"
    path.write_bytes(zstandard.ZstdCompressor().compress(good))
    stream, closers = open_source(str(path), None, Progress("imported", enabled=False))
    try:
        report = await import_updaters(MatcherStore(matcher_pool), stream)
    finally:
        for f in closers:
            f.close()
    assert [(h.updater, n) for h, n in report.imported] == [("alpine-main-v3.6-updater", 2)]
    rows = await matcher_pool.fetch(
        "SELECT v.name, v.dist_version_id, v.package_kind, u.fingerprint FROM vuln v"
        " JOIN uo_vuln l ON l.vuln = v.id JOIN update_operation u ON u.id = l.uo ORDER BY 1"
    )
    assert [tuple(r) for r in rows] == [
        ("CVE-2019-14697", "3.6", "source", '"etag-1"'),
        ("CVE-2020-28928", "3.6", "source", '"etag-1"'),
    ]

    # A new fingerprint whose second line is cut short: that group is rolled back.
    broken = _go_line(ref_b, '"etag-2"', _go_vuln("CVE-2021-1")) + b'{"Updater":"alpine-ma\n'
    with pytest.raises(AirgapError, match="line 2: invalid JSON"):
        await import_updaters(MatcherStore(matcher_pool), io.BytesIO(broken))
    assert await matcher_pool.fetchval("SELECT count(*) FROM update_operation") == 1


async def test_import_from_a_url_and_from_stdin(
    pg_dsn: str, tmp_path: Path, feed_server: FeedServer
) -> None:
    ref_a, ref_b = "1f1c1b6e-8a52-4c3e-9d0e-0a4c3b2d1e0f", "2b7f1a9c-2d3e-4f50-8a6b-7c8d9e0f1a2b"
    config = {"matcher": {"connstring": pg_dsn, "migrations": True}}
    served = _go_line(ref_a, '"etag-url"', _go_vuln("CVE-2019-14697"))
    feed_server.put("mirror/updates.jsonl.zst", zstandard.ZstdCompressor().compress(served))
    url = f"{feed_server.url}/mirror/updates.jsonl.zst"
    status, err = await clairctl(config, tmp_path, "import-updaters", url)
    assert status == 0, err
    assert await operation_count(pg_dsn) == 1

    piped = gzip.compress(_go_line(ref_b, '"etag-stdin"', _go_vuln("CVE-2020-28928")))
    status, err = await clairctl(config, tmp_path, "import-updaters", "-", stdin=piped)
    assert status == 0, err
    assert await operation_count(pg_dsn) == 2

    feed_server.status_overrides["mirror/missing.jsonl"] = 404
    status, err = await clairctl(
        config, tmp_path, "import-updaters", f"{feed_server.url}/mirror/missing.jsonl"
    )
    assert status != 0
    assert f"{feed_server.url}/mirror/missing.jsonl: HTTP 404" in err, err
    assert await operation_count(pg_dsn) == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_live_line_only_on_a_terminal() -> None:
    screen = _Terminal()
    progress = Progress("imported", screen)
    progress.bytes_read = 3_500_000
    progress.add(1500)
    progress.note("osv/pypi (vulnerability): imported 1,500 records")
    progress.finish()
    text = screen.getvalue()
    assert "\r\x1b[Kimported 1,500 records (" in text
    assert "3.5 MB read" in text
    assert "\r\x1b[Kosv/pypi (vulnerability): imported 1,500 records\n" in text
    assert text.endswith("\n")

    pipe = io.StringIO()  # not a terminal: nothing drawn
    quiet = Progress("imported", pipe)
    quiet.add(10)
    quiet.finish()
    assert pipe.getvalue() == ""
