"""`clair serve` and `clairctl check-config` as real processes.

One PSK-protected combo server (external database, config from a YAML file plus `CLAIR_`
environment overrides) is shared by the module; the embedded-database path and the config-error
paths start processes of their own.
"""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
import yaml
from clair_dev.ports import free_port
from openapi_spec_validator import validate as validate_openapi
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from clair_common.http.auth import sign
from tests.fixtures.postgres import create_test_database, drop_test_database

PSK_KEY = b"clair-py test key, 32+ bytes long"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
STATE_PATH = "/indexer/api/v1/index_state"


def command(name: str) -> list[str]:
    """The installed console script, else the module it points at."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", f"clair_common.cli.{name}"]


def child_env(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment without libpq's PG* or any CLAIR_ setting, plus `overrides`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PG") and not k.startswith("CLAIR_")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides or {})
    return env


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def request(
    port: int, path: str, headers: Mapping[str, str] | None = None, method: str = "GET"
) -> Response:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=dict(headers or {}))
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


@dataclass
class ClairProcess:
    """A `clair serve` child with its output in files (no pipe to fill up and stall it)."""

    args: list[str]
    env: dict[str, str]
    workdir: Path
    launcher: list[str] = field(default_factory=lambda: [*command("clair"), "serve"])
    api_port: int = field(default_factory=free_port)
    intro_port: int = field(default_factory=free_port)
    startup_seconds: float = 0.0
    statuses_before_ready: list[int | None] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.env["CLAIR_HTTP_LISTEN_ADDR"] = f"127.0.0.1:{self.api_port}"
        self.env["CLAIR_INTROSPECTION_ADDR"] = f"127.0.0.1:{self.intro_port}"
        self.env.setdefault("CLAIR_LAYER_CACHE", str(self.workdir / "layers"))
        started = time.monotonic()
        with (
            (self.workdir / "stdout").open("wb") as out,
            (self.workdir / "stderr").open("wb") as err,
        ):
            self.process = subprocess.Popen(
                [*self.launcher, *self.args], env=self.env, stdout=out, stderr=err
            )
        self._wait_ready(started)

    def _wait_ready(self, started: float) -> None:
        assert self.process is not None
        while time.monotonic() - started < READY_TIMEOUT:
            if self.process.poll() is not None:
                pytest.fail(f"clair serve exited with {self.process.returncode}:\n{self.stderr}")
            try:
                status: int | None = request(self.intro_port, "/readyz").status
            except OSError:
                status = None  # not listening yet
            if status == 200:
                self.startup_seconds = time.monotonic() - started
                return
            self.statuses_before_ready.append(status)
            time.sleep(0.05)
        pytest.fail(f"clair serve not ready after {READY_TIMEOUT} s:\n{self.stderr}")

    def stop(self) -> tuple[int, float]:
        """SIGTERM; the exit code and how long the process took to go."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(STOP_TIMEOUT)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    @property
    def stdout(self) -> str:
        return (self.workdir / "stdout").read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return (self.workdir / "stderr").read_text(errors="replace")


def token_headers(issuer: str = "clairctl") -> dict[str, str]:
    return {"Authorization": f"Bearer {sign(PSK_KEY, issuer)}"}


# -- the shared server: external database, PSK, YAML file + environment -----------------------


@pytest.fixture(scope="module")
async def module_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    dsn = await create_test_database(pg_server_dsn)
    yield dsn
    await drop_test_database(pg_server_dsn, dsn)


@pytest.fixture(scope="module")
def clair(module_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClairProcess]:
    workdir = tmp_path_factory.mktemp("clair-serve")
    config = workdir / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "http_listen_addr": ":6060",  # the environment overrides it
                "log_level": "info",
                "auth": {"psk": {"key": base64.b64encode(PSK_KEY).decode(), "iss": ["clairctl"]}},
            }
        )
    )
    env = child_env(
        {
            "CLAIR_INDEXER__CONNSTRING": module_dsn,
            "CLAIR_MATCHER__CONNSTRING": module_dsn,
            "CLAIR_INDEXER__MIGRATIONS": "true",
            "CLAIR_MATCHER__MIGRATIONS": "true",
        }
    )
    server = ClairProcess(["--config", str(config)], env, workdir)
    try:
        server.start()
        yield server
    finally:
        server.kill()


def test_readyz_turns_200_only_when_serving(clair: ClairProcess) -> None:
    print(f"\nclair serve (external database) ready in {clair.startup_seconds:.2f} s")
    assert set(clair.statuses_before_ready) <= {None, 503}
    assert clair.startup_seconds < 30
    assert "clair combo mode is serving" in clair.stdout
    assert request(clair.intro_port, "/healthz").body == b"ok"


def test_index_state_etag_and_304(clair: ClairProcess) -> None:
    resp = request(clair.api_port, STATE_PATH, token_headers())
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/vnd.clair.index_state.v1+json"
    state = orjson.loads(resp.body)["state"]
    assert len(state) == 32
    assert resp.headers["etag"] == f'"{state}"'
    again = request(clair.api_port, STATE_PATH, {**token_headers(), "If-None-Match": f'"{state}"'})
    assert again.status == 304
    assert again.body == b""
    stale = request(clair.api_port, STATE_PATH, {**token_headers(), "If-None-Match": '"old"'})
    assert stale.status == 200


def test_psk_end_to_end(clair: ClairProcess) -> None:
    assert request(clair.api_port, STATE_PATH).status == 401
    assert request(clair.api_port, STATE_PATH, token_headers("quay")).status == 401
    intraservice = request(clair.api_port, STATE_PATH, token_headers("clair-intraservice"))
    assert intraservice.status == 200
    assert request(clair.api_port, "/robots.txt").status == 200


def test_openapi_document_of_the_running_server(clair: ClairProcess) -> None:
    resp = request(clair.api_port, "/openapi/v1", token_headers())
    assert resp.status == 200
    document = orjson.loads(resp.body)
    validate_openapi(document, cls=OpenAPIV31SpecValidator)
    assert "/matcher/api/v1/vulnerability_report/{digest}" in document["paths"]
    assert not any(path.startswith("/notifier/") for path in document["paths"])


def test_metrics_list_http_and_pool_series(clair: ClairProcess) -> None:
    assert request(clair.api_port, STATE_PATH, token_headers()).status == 200
    resp = request(clair.intro_port, "/metrics")
    assert resp.status == 200
    text = resp.body.decode()
    assert (
        'clair_http_indexerv1_request_total{code="200",'
        'handler="/indexer/api/v1/index_state",method="get"}'
    ) in text
    assert 'clair_http_indexerv1_request_total{code="401"' in text
    pool_lines = [line for line in text.splitlines() if line.startswith("pgxpool_")]
    assert any('application_name="libindex"' in line for line in pool_lines)
    assert any('application_name="libvuln"' in line for line in pool_lines)


def test_sigterm_stops_the_server_cleanly(clair: ClairProcess) -> None:
    code, seconds = clair.stop()
    print(f"\nclair serve stopped in {seconds:.2f} s")
    assert code == 0, clair.stderr
    assert seconds < 3  # offline DNS lookups in flight held it 4.9 s (clair_common.dns)
    assert "Traceback" not in clair.stderr


# -- the embedded database -------------------------------------------------------------------


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(proc.name))
    return pids


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    # Not tmp_path: when tests run as root the server runs as an unprivileged account, which
    # must be able to traverse the directory.
    path = Path(tempfile.mkdtemp(prefix="clair-serve-embedded-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for pid in processes_mentioning(str(path)):  # only after a failed test
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)


def test_embedded_database_serves_and_stops(embedded_dir: Path) -> None:
    """`make run`: clair_dev.run starts the embedded cluster for `clair serve` and stops it."""
    launcher = [sys.executable, "-m", "clair_dev.run", "--data", str(embedded_dir), "serve"]
    server = ClairProcess([], child_env(), embedded_dir, launcher=launcher)
    try:
        server.start()
        print(f"\nmake run's server ready in {server.startup_seconds:.2f} s")
        assert set(server.statuses_before_ready) <= {None, 503}
        assert f"{embedded_dir / 'postgres'} (embedded PostgreSQL)" in server.stdout
        assert server.process is not None
        clair_pid = server.process.pid
        postgres = [pid for pid in processes_mentioning(str(embedded_dir)) if pid != clair_pid]
        assert postgres, "no PostgreSQL process for the data directory"
        resp = request(server.api_port, STATE_PATH)
        assert resp.status == 200
        assert resp.headers["etag"] == '"' + orjson.loads(resp.body)["state"] + '"'
        code, seconds = server.stop()
        print(f"make run's server stopped in {seconds:.2f} s")
        assert code == 0, server.stderr
    finally:
        server.kill()
    assert processes_mentioning(str(embedded_dir)) == []
    assert not list(embedded_dir.glob("postgres/**/postmaster.pid"))


# -- configuration errors and clairctl check-config ------------------------------------------


@pytest.mark.parametrize(
    ("document", "key"),
    [("indexer:\n  bogus: 1\n", "indexer.bogus"), ("matcher:\n  period: 6x\n", "matcher.period")],
)
def test_config_errors_stop_serve_with_one_line(tmp_path: Path, document: str, key: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(document)
    started = time.monotonic()
    result = subprocess.run(
        [*command("clair"), "serve", "--config", str(config)],
        env=child_env(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert time.monotonic() - started < 10
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert key in lines[0]
    assert str(config) in lines[0]


@pytest.mark.parametrize("key", ["http_listen_addr", "introspection_addr"])
def test_port_in_use_stops_serve_with_one_line(module_dsn: str, tmp_path: Path, key: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        ports = {"http_listen_addr": f"127.0.0.1:{free_port()}"}
        ports["introspection_addr"] = f"127.0.0.1:{free_port()}"
        ports[key] = busy
        result = subprocess.run(
            [*command("clair"), "serve"],
            env=child_env(
                {
                    "CLAIR_HTTP_LISTEN_ADDR": ports["http_listen_addr"],
                    "CLAIR_INTROSPECTION_ADDR": ports["introspection_addr"],
                    "CLAIR_INDEXER__CONNSTRING": module_dsn,
                    "CLAIR_MATCHER__CONNSTRING": module_dsn,
                    "CLAIR_MATCHER__DISABLE_UPDATERS": "true",
                    "CLAIR_LOG_LEVEL": "warn",
                }
            ),
            capture_output=True,
            timeout=60,
            check=False,
        )
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if key in line]
    assert len(lines) == 1 and busy in lines[0] and "in use" in lines[0], stderr


def clairctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command("clairctl"), *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_clairctl_check_config(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("http_listen_addr: ':6061'\nindexer:\n  connstring: host=db user=clair\n")
    dropin = tmp_path / "good.yaml.d"
    dropin.mkdir()
    (dropin / "10-matcher.yaml").write_text("matcher:\n  period: 30m\n")
    result = clairctl("check-config", str(good))
    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)
    assert merged["http_listen_addr"] == ":6061"
    assert merged["indexer"]["connstring"] == "host=db user=clair"
    assert merged["matcher"]["period"] == "30m"
    as_json = clairctl("check-config", "-o", "json", str(good))
    assert as_json.returncode == 0
    assert orjson.loads(as_json.stdout) == merged

    bad = tmp_path / "bad.yaml"
    bad.write_text("indexer:\n  bogus: 1\nmatcher:\n  period: 6x\n")
    result = clairctl("check-config", str(bad))
    assert result.returncode != 0
    assert result.stdout == ""
    assert "indexer.bogus" in result.stderr
    assert "matcher.period" in result.stderr
