"""`make up`: the local distributed deployment starts, serves through its ingress, and stops."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests.fixtures.images import build_layer
from tests.fixtures.registry import LocalRegistry
from tests.fixtures.server import clair_env, free_port

SITE = "usr/lib/python3.11/site-packages"


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(stat[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _request(url: str, body: object | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_up_serves_through_the_ingress_and_stops_cleanly(registry: LocalRegistry) -> None:
    # Not under pytest's 0700 tmp_path: as root, PostgreSQL runs as another user.
    data = Path(tempfile.mkdtemp(prefix="clair-up-"))
    data.chmod(0o755)
    port = free_port()
    config = data / "config.yaml"  # a delivery mechanism: a notifier process joins
    hook = {"target": "http://127.0.0.1:9/", "callback": "http://clair/notifier/api/v1/"}
    config.write_text(json.dumps({"notifier": {"webhook": hook}}))  # JSON is YAML too
    command = [sys.executable, "-m", "clair_dev.up", "--data", str(data)]
    command += ["--config", str(config), "--matchers", "2"]
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        env=clair_env({}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        want = b"2 indexer(s) and 2 matchers and a notifier behind http://127.0.0.1:"
        assert want in banner, banner + proc.stdout.read()
        spawned = _descendants(proc.pid)
        # PostgreSQL, 2 indexers, 2 matchers, notifier, nginx (+ their children)
        assert len(spawned) >= 7, spawned

        layer = build_layer({f"{SITE}/idna-2.7.dist-info/METADATA": b"Name: idna\nVersion: 2.7\n"})
        manifest = registry.push_image_sync("up", [layer])
        ingress = f"http://127.0.0.1:{port}"
        status, body = _request(f"{ingress}/indexer/api/v1/index_report", manifest.to_json())
        assert status == 201, body
        report = json.loads(body)
        assert [p["name"] for p in report["packages"].values()] == ["idna"]
        # The matcher asks the indexers through the ingress: 202 until feeds are loaded (none
        # here: no network), else the report; never an error.
        status, body = _request(f"{ingress}/matcher/api/v1/vulnerability_report/{manifest.hash}")
        assert status in (200, 202), body
        status, body = _request(f"{ingress}/notifier/api/v1/notification/{uuid.uuid4()}")
        assert (status, json.loads(body)["notifications"]) == (200, []), body
    finally:
        proc.send_signal(signal.SIGINT)
        status = proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert status == 0
    deadline = time.monotonic() + 10
    left = spawned
    while left and time.monotonic() < deadline:
        left = {p for p in left if Path(f"/proc/{p}").exists()}
        time.sleep(0.1)
    assert not left, f"left running: {left}"
    shutil.rmtree(data, ignore_errors=True)
