"""`make up`: Clair distributed on this machine, as it runs behind an ingress in production.

An embedded PostgreSQL (data kept in `--data`), `--indexers` indexer processes, `--matchers`
matcher processes and, when `--config` configures a delivery mechanism, one notifier (`clair serve
--mode ...`), and NGINX with deploy/nginx's config routing each service's prefix to them on
`--port`. Services reach each other through the ingress, as they would from other pods.
Ctrl-C (or SIGTERM) stops everything.

Run from a checkout: deploy/nginx/render.py writes the NGINX config.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from clair_common.config import ConfigError, load_config
from clair_dev.embedded_pg import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    dsn_with_database,
    ensure_database_sync,
)
from clair_dev.ports import free_port
from clair_dev.processes import find_nginx, nginx_user_args, stop_process

ROOT = Path(__file__).resolve().parents[2]
RENDER = ROOT / "deploy" / "nginx" / "render.py"
READY_TIMEOUT = 90.0


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    ready_url: str | None  # introspection /readyz, None for nginx
    log: Path
    api: str = ""  # host:port of a clair process's API


def _nginx() -> str:
    path = find_nginx()
    if path is None:
        raise SystemExit("up: nginx not found: run `make system-deps`")
    return path


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _clair(name: str, mode: str, data: Path, env: dict[str, str]) -> Child:
    api, intro = free_port(), free_port()
    child_env = {
        **env,
        "CLAIR_HTTP_LISTEN_ADDR": f"127.0.0.1:{api}",
        "CLAIR_INTROSPECTION_ADDR": f"127.0.0.1:{intro}",
        "CLAIR_LAYER_CACHE": str(data / f"{name}-layers"),
    }
    command = [sys.executable, "-m", "clair_common.cli.clair", "serve", "--mode", mode]
    log = data / f"{name}.log"
    proc = _spawn(command, child_env, log)
    return Child(name, proc, f"http://127.0.0.1:{intro}/readyz", log, f"127.0.0.1:{api}")


def _wait_ready(children: list[Child], deadline: float) -> None:
    for child in children:
        while True:
            if child.proc.poll() is not None:
                tail = child.log.read_text(errors="replace")[-2000:]
                raise SystemExit(f"up: {child.name} exited ({child.proc.returncode}):\n{tail}")
            if child.ready_url is None:
                break
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(child.ready_url, timeout=2) as resp,
            ):
                if resp.status == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"up: {child.name} not ready; see {child.log}")
            time.sleep(0.1)


def _stop(children: list[Child]) -> None:
    for child in reversed(children):  # all asked first: they shut down side by side
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    for child in reversed(children):
        stop_process(child.proc)


def run(data: Path, port: int, indexers: int, config: Path | None, matchers: int = 1) -> None:
    data = data.absolute()
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o755)  # the embedded PostgreSQL runs as an unprivileged user when we are root
    ingress = f"http://127.0.0.1:{port}"
    pg = EmbeddedPostgres(data / "postgres")
    children: list[Child] = []
    stop = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        dsn_root = pg.start()
        ensure_database_sync(dsn_root, "clair")
        dsn = dsn_with_database(dsn_root, "clair")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAIR_", "PG"))}
        env.update(
            {
                "CLAIR_INDEXER__CONNSTRING": dsn,
                "CLAIR_INDEXER__MIGRATIONS": "true",
                "CLAIR_MATCHER__CONNSTRING": dsn,
                "CLAIR_MATCHER__MIGRATIONS": "true",
                "CLAIR_MATCHER__INDEXER_ADDR": ingress,
                "CLAIR_NOTIFIER__CONNSTRING": dsn,
                "CLAIR_NOTIFIER__MIGRATIONS": "true",
                "CLAIR_NOTIFIER__INDEXER_ADDR": ingress,
                "CLAIR_NOTIFIER__MATCHER_ADDR": ingress,
            }
        )
        notifier = False
        if config is not None:
            env["CLAIR_CONF"] = str(config.absolute())
            # A notifier only with a delivery mechanism to deliver with, as in combo mode.
            notifier = load_config(config, environ={}).notifier.delivery is not None
        deadline = time.monotonic() + READY_TIMEOUT
        # Indexers first: their migrations run before a second replica or the matcher asks.
        children.append(_clair("indexer-1", "indexer", data, env))
        _wait_ready(children, deadline)
        children += [_clair(f"indexer-{n}", "indexer", data, env) for n in range(2, indexers + 1)]
        # Matcher replicas: one process runs Python on one core at a time, and cached reports
        # are CPU-bound; the updaters run under locks, so only one replica updates at a time.
        children += [
            _clair("matcher" if matchers == 1 else f"matcher-{n}", "matcher", data, env)
            for n in range(1, matchers + 1)
        ]
        if notifier:
            children.append(_clair("notifier", "notifier", data, env))
        conf = data / "nginx" / "nginx.conf"
        conf.parent.mkdir(exist_ok=True)
        render = [sys.executable, str(RENDER), "--listen", f"127.0.0.1:{port}"]
        for child in children:
            service = child.name.split("-")[0]
            render += [f"--{service}", child.api]
        render += ["--output", str(conf), *nginx_user_args()]
        subprocess.run(render, check=True)
        nginx_log = data / "nginx.log"
        nginx = [_nginx(), "-e", "stderr", "-p", f"{conf.parent}/", "-c", str(conf)]
        proc = _spawn([*nginx, "-g", "daemon off;"], env, nginx_log)
        children.append(Child("nginx", proc, None, nginx_log))
        _wait_ready(children, deadline)
        services = "a matcher" if matchers == 1 else f"{matchers} matchers"
        services += " and a notifier" if notifier else ""
        print(f"clair: {indexers} indexer(s) and {services} behind {ingress}", flush=True)
        print(f"  index:   POST {ingress}/indexer/api/v1/index_report", flush=True)
        print(f"  report:  GET  {ingress}/matcher/api/v1/vulnerability_report/<digest>", flush=True)
        print(f"  logs:    {data}/*.log; Ctrl-C stops everything", flush=True)
        while not stop:
            for child in children:
                if child.proc.poll() is not None:
                    raise SystemExit(f"up: {child.name} exited; see {child.log}")
            time.sleep(0.2)
    finally:
        _stop(children)
        pg.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="up", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(".clair-up"))
    parser.add_argument("--port", type=int, default=6060, help="the ingress port (127.0.0.1)")
    parser.add_argument("--indexers", type=int, default=2)
    parser.add_argument("--matchers", type=int, default=1)
    parser.add_argument("--config", type=Path, help="a Clair config file for every process")
    args = parser.parse_args(argv)
    if args.indexers < 1 or args.matchers < 1:
        parser.error("--indexers and --matchers: at least 1")
    try:
        run(args.data, args.port, args.indexers, args.config, args.matchers)
    except (EmbeddedPostgresError, ConfigError) as exc:
        raise SystemExit(f"up: {exc}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
