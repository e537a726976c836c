"""Config files a Clair user already has start every mode they are written for.

Clair's own sample and local-development configs (shared data), and files written the way
Quay's documentation, the Quay operator and community charts write them (`dropin_configs/`),
each start `clair serve` per mode against the real PostgreSQL of the fixtures until /readyz is
200. Only what cannot exist here is overridden from the environment, the way the chart does it:
the database (the files name hosts of their own clusters; the file's own value is still parsed
at start-up), the listen addresses, and updaters (no Internet in tests).
"""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from clair_common.config import Mode, load_config, validate_for_mode
from tests.conftest import data_root
from tests.fixtures.server import clair_server, wait_ready

HERE = Path(__file__).parent / "dropin_configs"
CLAIR_CONFIGS = data_root() / "clair-configs"

CONFIGS: dict[str, tuple[Path, tuple[Mode, ...]]] = {
    "clair-sample": (
        CLAIR_CONFIGS / "config.yaml.sample",
        ("combo", "indexer", "matcher", "notifier"),
    ),
    "clair-local-dev": (
        CLAIR_CONFIGS / "local-dev" / "clair" / "config.yaml",
        ("combo", "indexer", "matcher", "notifier"),
    ),
    "quay-docs": (HERE / "quay-docs.yaml", ("combo", "indexer", "matcher", "notifier")),
    # The operator runs Clair in combo mode; its early config has no notifier section to run.
    "quay-operator-struct": (HERE / "quay-operator-struct.yaml", ("combo", "indexer", "matcher")),
    "quay-operator-map": (HERE / "quay-operator-map.yaml", ("combo", "indexer")),
    "community-chart": (HERE / "community-chart.yaml", ("combo", "indexer", "matcher", "notifier")),
    "url-pgx": (HERE / "url-pgx.yaml", ("combo", "indexer", "matcher", "notifier")),
}

# What each file holds from earlier Clair releases: one warning each, naming the replacement.
EXPECTED_WARNINGS = {
    "clair-sample": (
        "matcher.updater_sets: removed from Clair and ignored; use updaters.sets instead",
        "notifier.amqp.exchange.durable: removed",
        "notifier.stomp.login: removed",
        "trace.jaeger: removed",
    ),
    "quay-docs": ("matcher.run: removed", "matcher.max_conn_pool: ignored"),
    "quay-operator-struct": ("matcher.updater_sets: removed", "metrics.dogstatsd: removed"),
    "community-chart": ("matcher.run: removed", "matcher.updater_sets: removed"),
}


def keyword_form(url: str) -> str:
    parts = urlsplit(url)
    fields = {
        "host": parts.hostname or "",
        "port": str(parts.port or 5432),
        "user": unquote(parts.username or ""),
        "dbname": unquote(parts.path.lstrip("/")),
        "sslmode": "disable",
    }
    if parts.password:
        fields["password"] = unquote(parts.password)
    return " ".join(f"{k}='{v}'" for k, v in fields.items())


def config_file(name: str, tmp_path: Path) -> Path:
    """The config as a user would deploy it (the sample copied to a `.yaml` name)."""
    source = CONFIGS[name][0]
    target = tmp_path / f"{name}.yaml"
    shutil.copyfile(source, target)
    return target


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_loads_and_validates_for_its_modes(name: str, tmp_path: Path) -> None:
    path, modes = config_file(name, tmp_path), CONFIGS[name][1]
    cfg = load_config(path, environ={})
    for mode in modes:
        validate_for_mode(cfg, mode, str(path))  # connection strings parsed as serve will


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_starts_every_mode(name: str, pg_dsn_sync: str, tmp_path: Path) -> None:
    path, modes = config_file(name, tmp_path), CONFIGS[name][1]
    database = keyword_form(pg_dsn_sync)
    env = {
        "CLAIR_CONF": str(path),
        "CLAIR_INDEXER__CONNSTRING": database,
        "CLAIR_MATCHER__CONNSTRING": database,
        "CLAIR_NOTIFIER__CONNSTRING": database,
        "CLAIR_MATCHER__DISABLE_UPDATERS": "true",
    }
    with ExitStack() as stack:
        servers = {
            mode: stack.enter_context(clair_server(tmp_path, mode=mode, env=env, name=mode))
            for mode in modes
        }
        for mode, server in servers.items():
            wait_ready(server, timeout=90)
            log = server.log_text()
            assert "Traceback" not in log, f"{mode}:\n{log}"
            for warning in EXPECTED_WARNINGS.get(name, ()):
                assert log.count(warning) == 1, f"{mode}: {warning!r} not once in:\n{log}"
