"""Files, drop-ins, environment overrides, dumping and per-service views."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from clair_common.config import (
    Config,
    ConfigError,
    IndexerView,
    MatcherView,
    NotifierView,
    default_config,
    dump_config,
    lint_config,
    load_config,
    merged_document,
    resolve_connstring,
    service_view,
    validate_document,
    validate_for_mode,
)

# Shaped like quay/clair's local-dev/clair/config.yaml, with OTLP tracing instead of Jaeger.
LOCAL_DEV = """\
---
log_level: debug-color
introspection_addr: ":8089"
http_listen_addr: ":6060"
updaters:
  sets:
    - ubuntu
    - debian
    - rhel-vex
    - alpine
    - osv
  config:
    rhel-vex:
      url: https://security.access.redhat.com/data/csaf/v2/vex/
auth:
  psk:
    key: 'c2VjcmV0'
    iss:
      - quay
      - clairctl
indexer:
  connstring: host=clair-database user=clair dbname=indexer sslmode=disable
  scanlock_retry: 10
  layer_scan_concurrency: 5
  migrations: true
matcher:
  indexer_addr: http://clair-indexer:6060/
  connstring: host=clair-database user=clair dbname=matcher sslmode=disable
  max_conn_pool: 100
  migrations: true
matchers: {}
notifier:
  indexer_addr: http://clair-indexer:6060/
  matcher_addr: http://clair-matcher:6060/
  connstring: host=clair-database user=clair dbname=notifier sslmode=disable
  migrations: true
  delivery_interval: 30s
  poll_interval: 1m
  webhook:
    target: "http://webhook-target/"
    callback: "http://clair-notifier:6060/notifier/api/v1/notification"
    headers:
      X-Clair-Env: [local-dev]
  # amqp:
  #   direct: true
trace:
  name: "otlp"
  probability: 1
  otlp:
    http:
      endpoint: "clair-otel-collector:4318"
      insecure: true
metrics:
  name: "prometheus"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_realistic_local_dev_config_loads_cleanly(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "config.yaml", LOCAL_DEV), environ={})
    assert cfg.log_level == "debug-color"
    assert cfg.indexer.connstring.endswith("dbname=indexer sslmode=disable")
    assert (cfg.indexer.scanlock_retry, cfg.indexer.layer_scan_concurrency) == (10, 5)
    assert cfg.matcher.indexer_addr == "http://clair-indexer:6060/"
    assert cfg.matcher.max_conn_pool == 100
    assert cfg.notifier.poll_interval == timedelta(minutes=1)
    assert cfg.notifier.delivery_interval == timedelta(hours=1)  # 30s is under the minimum
    assert cfg.notifier.webhook is not None
    assert cfg.notifier.webhook.callback.endswith("/notification/")
    assert cfg.notifier.webhook.headers == {"X-Clair-Env": ["local-dev"]}
    assert cfg.updaters.sets == ["ubuntu", "debian", "rhel-vex", "alpine", "osv"]
    assert cfg.auth.psk is not None
    assert cfg.auth.psk.key_bytes == b"secret"
    assert cfg.trace.probability == 1.0
    assert cfg.trace.otlp.http is not None
    assert cfg.trace.otlp.http.endpoint == "clair-otel-collector:4318"
    assert cfg.metrics.prometheus_path == "/metrics"
    for mode in ("combo", "indexer", "matcher", "notifier"):
        validate_for_mode(cfg, mode)
    assert lint_config(cfg) == [
        "matcher.max_conn_pool: ignored; set pool_max_conns in the connstring"
    ]


def test_json_config(tmp_path: Path) -> None:
    doc = {"matcher": {"period": 30 * 60 * 10**9}, "indexer": {"airgap": True}}
    cfg = load_config(write(tmp_path / "config.json", json.dumps(doc)), environ={})
    assert cfg.matcher.period == timedelta(minutes=30)
    assert cfg.indexer.airgap is True


@pytest.mark.parametrize("name", ["config.yml", "config.toml", "config"])
def test_unsupported_extensions_rejected(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, "indexer: {}\n")
    with pytest.raises(ConfigError, match=r"unknown config kind .*use \.yaml or \.json"):
        load_config(path, environ={})


def test_empty_yaml_is_all_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path / "c.yaml", ""), environ={}) == default_config()


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.yaml", "indexer: [unclosed\n", "malformed YAML: line 2"),
        ("c.yaml", "- a\n- b\n", "not a config document"),
        ("c.json", '{"indexer": ', "malformed file"),
        ("c.json", "[1]", "not a config document"),
        ("c.yaml", "1: x\n", "non-string key"),
    ],
)
def test_malformed_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path / name, text), environ={})


def test_yaml_is_read_with_yaml_1_2_scalars(tmp_path: Path) -> None:
    # yaml.v3 (YAML 1.2) keeps `on`/`no` as strings; YAML 1.1 would turn them into booleans.
    text = "updaters:\n  sets: [on, no]\nmatchers:\n  config:\n    x: {n: 010, t: 2001-12-14}\n"
    cfg = load_config(write(tmp_path / "c.yaml", text), environ={})
    assert cfg.updaters.sets == ["on", "no"]
    assert cfg.matchers.config["x"] == {"n": 10, "t": "2001-12-14"}


def test_dropins_merge_and_patch_in_lexical_order(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", LOCAL_DEV)
    dropins = tmp_path / "config.yaml.d"
    write(
        dropins / "10-secrets.yaml", "auth:\n  psk:\n    key: 'b3RoZXI='\nnotifier:\n  amqp: null\n"
    )
    write(
        dropins / "20-period.yaml-patch",
        "- {op: add, path: /matcher/period, value: 2h}\n"
        "- {op: replace, path: /auth/psk/iss, value: [quay]}\n"
        "- {op: remove, path: /notifier/webhook/headers}\n"
        "- {op: test, path: /indexer/layer_scan_concurrency, value: 5}\n",
    )
    write(dropins / "30-override.yaml", "matcher:\n  period: 3h\nindexer:\n  connstring: null\n")
    # Ignored: another format, a different patch kind, a subdirectory.
    write(dropins / "00-ignored.json", '{"bogus": 1}')
    write(dropins / "05-ignored.json-patch", '[{"op": "add", "path": "/bogus", "value": 1}]')
    write(dropins / "nested" / "x.yaml", "bogus: 1\n")
    doc = merged_document(path)
    assert doc["matcher"]["period"] == "3h"
    assert doc["auth"]["psk"] == {"key": "b3RoZXI=", "iss": ["quay"]}
    assert "connstring" not in doc["indexer"]
    assert "headers" not in doc["notifier"]["webhook"]
    cfg = load_config(path, environ={})
    assert cfg.matcher.period == timedelta(hours=3)
    assert cfg.auth.psk is not None
    assert cfg.auth.psk.key_bytes == b"other"
    assert cfg.indexer.connstring == ""


def test_json_dropins(tmp_path: Path) -> None:
    path = write(tmp_path / "config.json", '{"matcher": {"period": "1h"}}')
    write(tmp_path / "config.json.d" / "a.json", '{"matcher": {"update_retention": 4}}')
    write(
        tmp_path / "config.json.d" / "b.json-patch",
        '[{"op": "copy", "from": "/matcher/period", "path": "/matcher/cache_age"}]',
    )
    write(tmp_path / "config.json.d" / "c.yaml", "bogus: 1\n")
    cfg = load_config(path, environ={})
    assert (cfg.matcher.period, cfg.matcher.cache_age) == (timedelta(hours=1), timedelta(hours=1))
    assert cfg.matcher.update_retention == 4


def test_broken_dropins_all_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "matcher: {}\n")
    dropins = tmp_path / "config.yaml.d"
    write(dropins / "a.yaml-patch", "- {op: test, path: /matcher, value: 1}\n")
    write(dropins / "b.yaml", "matcher: [\n")
    write(dropins / "c.yaml-patch", "op: add\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    lines = info.value.problems
    assert len(lines) == 3
    assert lines[0] == (
        f"{dropins / 'a.yaml-patch'}: cannot apply patch: "
        "operation 0 (test /matcher): test failed: value differs"
    )
    assert lines[1].startswith(f"{dropins / 'b.yaml'}: malformed YAML")
    assert lines[2].startswith(f"{dropins / 'c.yaml-patch'}: not a patch document")


def test_env_overrides(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", LOCAL_DEV)
    env = {
        "CLAIR_INDEXER__CONNSTRING": "postgres://u:p@db:5432/idx?sslmode=disable",
        "CLAIR_MATCHER__PERIOD": "30m",
        "CLAIR_MATCHER__DISABLE_ENRICHMENT": "true",
        "CLAIR_LOG_LEVEL": "debug",
        "CLAIR_INDEXER__LAYER_SCAN_CONCURRENCY": "3",
        "CLAIR_MATCHERS__CONFIG__RHEL__IGNORE_UNPATCHED": "true",
        "CLAIR_NOTIFIER__WEBHOOK__TARGET": "https://hooks.example/clair",
        "CLAIR_AUTH__PSK__ISS": "quay, other",
        "CLAIR_HTTP_LISTEN_ADDR": "127.0.0.1:7070",
        # Never overrides: the file/mode selectors and other programs' variables.
        "CLAIR_CONF": "/etc/clair/config.yaml",
        "CLAIR_MODE": "combo",
        "CLAIR_API": "http://localhost:6060/",
        "CLAIR_TEST_DATA": "/data",
        "OTHER__INDEXER": "x",
    }
    cfg = load_config(path, environ=env)
    assert cfg.indexer.connstring == "postgres://u:p@db:5432/idx?sslmode=disable"
    assert cfg.matcher.period == timedelta(minutes=30)
    assert cfg.matcher.disable_enrichment is True
    assert cfg.log_level == "debug"
    assert cfg.indexer.layer_scan_concurrency == 3
    assert cfg.matchers.config == {"rhel": {"ignore_unpatched": True}}
    assert cfg.notifier.webhook is not None
    assert cfg.notifier.webhook.target == "https://hooks.example/clair"
    assert cfg.auth.psk is not None
    assert cfg.auth.psk.iss == ["quay", "other"]
    assert cfg.http_listen_addr == "127.0.0.1:7070"


def test_env_values_stay_strings_where_the_schema_wants_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "{}\n")
    env = {
        "CLAIR_INDEXER__CONNSTRING": "123",
        "CLAIR_AUTH__PSK__KEY": "c2VjcmV0",
        "CLAIR_UPDATERS__SETS": "[ubuntu, debian]",
        "CLAIR_MATCHER__UPDATE_RETENTION": "0x10",
        "CLAIR_MATCHER__DISABLE_UPDATERS": "maybe",
    }
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=env)
    assert str(info.value) == (
        f"{path}: matcher.disable_updaters: Input should be a valid boolean, unable to interpret "
        'input (got "maybe") (from CLAIR_MATCHER__DISABLE_UPDATERS)'
    )
    del env["CLAIR_MATCHER__DISABLE_UPDATERS"]
    cfg = load_config(path, environ=env)
    assert cfg.indexer.connstring == "123"
    assert cfg.updaters.sets == ["ubuntu", "debian"]
    assert cfg.matcher.update_retention == 16
    assert load_config(path, environ={"CLAIR_UPDATERS__SETS": ""}).updaters.sets == []


def test_env_override_errors_name_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "matcher:\n  period: 6h\nnotifier:\n  webhook: plain\n")
    env = {"CLAIR_MATCHER__PERIOD": "6x", "CLAIR_INDEXER__BOGUS": "1"}
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=env)
    assert info.value.problems == (
        f"{path}: indexer.bogus: unknown key (from CLAIR_INDEXER__BOGUS)",
        f'{path}: matcher.period: invalid duration "6x": unknown unit "x"'
        " (from CLAIR_MATCHER__PERIOD)",
        f"{path}: notifier.webhook: Input should be a valid dictionary or instance of Webhook"
        ' (got "plain")',
    )
    with pytest.raises(ConfigError, match=r"^CLAIR_NOTIFIER__WEBHOOK__TARGET: cannot set "):
        load_config(path, environ={"CLAIR_NOTIFIER__WEBHOOK__TARGET": "http://x/"})


def test_default_config_with_environment() -> None:
    cfg = default_config({"CLAIR_MATCHER__PERIOD": "12h", "CLAIR_NOTIFIER__POLL_INTERVAL": "5m"})
    assert cfg.matcher.period == timedelta(hours=12)
    assert cfg.notifier.poll_interval == timedelta(minutes=5)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_dump_round_trips(tmp_path: Path, fmt: str) -> None:
    cfg = load_config(write(tmp_path / "config.yaml", LOCAL_DEV), environ={})
    text = dump_config(cfg, "yaml" if fmt == "yaml" else "json")
    assert "period: 6h0m0s" in text or '"period": "6h0m0s"' in text
    again = load_config(write(tmp_path / f"dumped.{fmt}", text), environ={})
    assert again == cfg


def test_merged_document_is_before_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", "matcher:\n  update_retention: 0\n")
    write(tmp_path / "config.yaml.d" / "x.yaml", "matcher:\n  period: 1h\n")
    merged = merged_document(path)
    assert merged == {"matcher": {"update_retention": 0, "period": "1h"}}
    # As clairctl check-config prints it: the document itself, no defaults.
    assert dump_config(merged) == "matcher:\n  update_retention: 0\n  period: 1h\n"
    assert json.loads(dump_config(merged, "json")) == merged
    with pytest.raises(ValueError, match="unknown format"):
        dump_config(merged, "toml")


def test_service_views(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "config.yaml", LOCAL_DEV), environ={})
    indexer = service_view(cfg, "indexer")
    matcher = service_view(cfg, "matcher")
    notifier = service_view(cfg, "notifier")
    assert isinstance(indexer, IndexerView)
    assert isinstance(matcher, MatcherView)
    assert isinstance(notifier, NotifierView)
    assert indexer.indexer is cfg.indexer
    assert matcher.updaters is cfg.updaters
    assert notifier.notifier is cfg.notifier
    shared = indexer.shared
    assert not isinstance(shared, Config)
    assert shared.auth.psk is not None
    assert shared.auth.psk.key_bytes == b"secret"
    assert (shared.http_listen_addr, shared.log_level) == (":6060", "debug-color")
    assert shared.trace.name == "otlp"
    assert not hasattr(shared, "indexer")


def test_validate_for_mode() -> None:
    cfg = default_config()
    validate_for_mode(cfg, "combo")
    validate_for_mode(cfg, "indexer")
    with pytest.raises(
        ConfigError, match=r"^c.yaml: matcher.indexer_addr: required in matcher mode$"
    ):
        validate_for_mode(cfg, "matcher", "c.yaml")
    with pytest.raises(ConfigError) as info:
        validate_for_mode(cfg, "notifier", "c.yaml")
    assert len(info.value.problems) == 3
    amqp = {"exchange": {"name": "", "type": "direct"}, "uris": ["amqp://127.0.0.1:5672/"]}
    amqp |= {"routing_key": "k", "callback": "http://clair/notifier/api/v1/notification/"}
    stomp = {"destination": "/queue/clair", "uris": ["127.0.0.1:61613"]}
    peers = {"indexer_addr": "http://indexer:6060", "matcher_addr": "http://matcher:6060"}
    for key, section in (("amqp", amqp), ("stomp", stomp)):
        queued = validate_document({"notifier": {key: section}}, "c.yaml")
        assert queued.notifier.delivery == key
        validate_for_mode(queued, "combo", "c.yaml")
        # A delivery mechanism is there: only the peers are missing in notifier mode.
        with pytest.raises(ConfigError) as info:
            validate_for_mode(queued, "notifier", "c.yaml")
        assert [p.split(": ")[1] for p in info.value.problems] == [
            "notifier.indexer_addr",
            "notifier.matcher_addr",
        ]
        remote = validate_document({"notifier": {key: section, **peers}}, "c.yaml")
        validate_for_mode(remote, "notifier", "c.yaml")


def test_resolve_connstring() -> None:
    assert resolve_connstring("host=db", {"PGHOST": "x"}) == "host=db"
    assert resolve_connstring("", {"PGHOST": "db"}) == ""
    assert resolve_connstring("", {"PGSERVICE": "clair"}) == ""
    assert resolve_connstring("", {"PGHOST": "", "PATH": "/bin"}) is None
    assert resolve_connstring("", {}) is None


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read: No such file or directory$"):
        load_config(path, environ={})


def test_env_is_a_settings_source_over_the_file(tmp_path: Path) -> None:
    """The model is pydantic-settings': the environment lies over the file's document, a whole
    section given as one variable merges like a merge-patch drop-in (`null` removes a key), and a
    key below a scalar is refused naming the variable."""
    path = write(
        tmp_path / "config.yaml",
        "indexer:\n  connstring: host=db\n  airgap: true\nlog_level: debug\n",
    )
    env = {"CLAIR_INDEXER": "{migrations: true, airgap: null}", "CLAIR_INDEXER__AIRGAP": "false"}
    cfg = load_config(path, environ=env)
    assert (cfg.indexer.connstring, cfg.indexer.migrations) == ("host=db", True)
    assert cfg.indexer.airgap is False
    cfg = load_config(path, environ={"CLAIR_INDEXER": "{airgap: null}"})
    assert (cfg.indexer.connstring, cfg.indexer.airgap) == ("host=db", False)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"CLAIR_LOG_LEVEL__X": "1", "CLAIR_BOGUS__X": "1"})
    assert info.value.problems == (
        "CLAIR_LOG_LEVEL__X: cannot set log_level.x: log_level is not an object",
    )
    with pytest.raises(ConfigError, match=r"bogus: unknown key \(from CLAIR_BOGUS__X\)$"):
        load_config(path, environ={"CLAIR_BOGUS__X": "1"})
    with pytest.raises(ConfigError, match=r"^CLAIR_INDEXER____X: malformed override name"):
        load_config(path, environ={"CLAIR_INDEXER____X": "1"})
    # Outside a load, validating a document reads no environment at all.
    assert validate_document({}, "c.yaml") == default_config()
