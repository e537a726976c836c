"""PSK-signed requests (--config, --issuer) against a server requiring them; the progress line."""

from __future__ import annotations

import asyncio
import base64
import io
import tempfile
from pathlib import Path

import yaml

from clair_common.clairctl.progress import Progress
from tests.clairctl.stack import run_clairctl
from tests.fixtures.server import clair_server, wait_ready

KEY = base64.b64encode(b"clairctl-test-key-0123456789abcdef").decode()


async def test_psk_signing(pg_dsn: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="clairctl-psk-"))
    config = {
        "indexer": {"connstring": pg_dsn, "migrations": True},
        "auth": {"psk": {"key": KEY, "iss": ["ci"]}},
    }
    (workdir / "server.yaml").write_text(yaml.safe_dump(config))
    # The client's copy: only the key matters to clairctl.
    (workdir / "client.yaml").write_text(yaml.safe_dump({"auth": config["auth"]}))
    digest = "sha256:" + "c" * 64
    with clair_server(
        workdir, mode="indexer", args=("--config", str(workdir / "server.yaml"))
    ) as clair:
        await asyncio.to_thread(wait_ready, clair)
        delete = ("delete", "--host", clair.api, digest)
        code, _, err = await run_clairctl(*delete, cwd=workdir)
        assert code == 1
        assert "--config" in err and "401" in err
        code, _, err = await run_clairctl("-c", "client.yaml", *delete, cwd=workdir)
        assert code == 1 and "401" in err  # `clairctl` is not an allowed issuer there
        code, out, err = await run_clairctl(
            "-c", "client.yaml", *delete[:1], "--issuer", "ci", *delete[1:], cwd=workdir
        )
        assert code == 0, err
        # ./config.yaml is picked up as Clair's clairctl does.
        (workdir / "config.yaml").write_text((workdir / "client.yaml").read_text())
        code, out, err = await run_clairctl(*delete[:1], "--iss", "ci", *delete[1:], cwd=workdir)
        assert code == 0, err
        assert out == ""  # nothing was indexed, so nothing was deleted


def test_progress_on_a_terminal_only() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    progress = Progress(tty)
    progress.status("img", "FetchLayers")
    progress.indexer_state("img")("ScanLayers")
    progress.clear()
    assert tty.getvalue() == ("\r\x1b[Kimg: fetching layers\r\x1b[Kimg: scanning layers\r\x1b[K")
    pipe = io.StringIO()
    quiet = Progress(pipe)
    quiet.status("img", "FetchLayers")
    quiet.clear()
    assert pipe.getvalue() == ""
