"""Schema, Clair's defaulting rules and validation errors (documents validated in memory)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest

from clair_common.config import (
    DEFAULT_UPDATER_SETS,
    UNLIMITED,
    Config,
    ConfigError,
    default_config,
    lint_config,
    validate_document,
)


def validate(doc: dict[str, Any]) -> Config:
    return validate_document(doc, "config.yaml")


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(doc)
    return list(info.value.problems)


def test_defaults() -> None:
    cfg = default_config()
    assert cfg.http_listen_addr == ":6060"
    assert cfg.introspection_addr == ":8089"
    assert cfg.log_level == "info"
    assert cfg.tls is None
    assert cfg.auth.psk is None
    assert cfg.indexer.connstring == ""
    assert cfg.indexer.scanlock_retry == 1
    assert cfg.indexer.layer_scan_concurrency == 10
    assert cfg.indexer.migrations is False
    assert cfg.indexer.airgap is False
    assert cfg.matcher.period == timedelta(hours=6)
    assert cfg.matcher.cache_age == timedelta(hours=6)
    assert cfg.matcher.update_retention == 10
    assert cfg.matchers.names is None
    assert cfg.updaters.sets == list(DEFAULT_UPDATER_SETS)
    assert cfg.notifier.poll_interval == timedelta(hours=6)
    assert cfg.notifier.delivery_interval == timedelta(hours=1)
    assert cfg.notifier.delivery is None
    assert cfg.trace.name == ""
    assert cfg.metrics.prometheus_path == "/metrics"
    # The same defaults come out of an empty document.
    assert validate({}) == cfg


def test_default_updater_sets_are_clairs() -> None:
    assert DEFAULT_UPDATER_SETS == (
        "alpine",
        "aws",
        "clair.cvss",
        "debian",
        "oracle",
        "osv",
        "photon",
        "rhel-vex",
        "suse",
        "ubuntu",
    )


def test_null_sections_and_keys_mean_unset() -> None:
    # Clair's own testdata has `notifier: null`; Go leaves the zero value in place.
    cfg = validate({"notifier": None, "matcher": {"period": None}, "updaters": {"sets": None}})
    assert cfg.notifier.delivery is None
    assert cfg.matcher.period == timedelta(hours=6)
    assert cfg.updaters.sets == list(DEFAULT_UPDATER_SETS)


def test_empty_listen_addresses_take_defaults() -> None:
    cfg = validate({"http_listen_addr": "", "introspection_addr": ""})
    assert (cfg.http_listen_addr, cfg.introspection_addr) == (":6060", ":8089")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("6h", timedelta(hours=6)),
        ("30m", timedelta(minutes=30)),
        ("1m", timedelta(minutes=1)),
        ("59s", timedelta(hours=6)),
        ("0", timedelta(hours=6)),
        ("-5m", timedelta(hours=6)),
        (90 * 60 * 10**9, timedelta(minutes=90)),
        (1000, timedelta(hours=6)),
    ],
)
def test_matcher_period(given: Any, expected: timedelta) -> None:
    assert validate({"matcher": {"period": given}}).matcher.period == expected


@pytest.mark.parametrize(
    ("given", "expected"), [(-1, 0), (-50, 0), (0, 10), (1, 10), (2, 2), (7, 7)]
)
def test_matcher_update_retention(given: int, expected: int) -> None:
    assert validate({"matcher": {"update_retention": given}}).matcher.update_retention == expected


def test_matcher_cache_age_defaults_to_period() -> None:
    assert validate({"matcher": {"period": "2h"}}).matcher.cache_age == timedelta(hours=2)
    both = validate({"matcher": {"period": "2h", "cache_age": "10m"}}).matcher
    assert both.cache_age == timedelta(minutes=10)
    # A too-short period is defaulted first, then cache_age follows it.
    assert validate({"matcher": {"period": "1s"}}).matcher.cache_age == timedelta(hours=6)


@pytest.mark.parametrize(
    ("key", "given", "expected"),
    [
        ("poll_interval", "59s", timedelta(hours=6)),
        ("poll_interval", "5m", timedelta(minutes=5)),
        ("delivery_interval", "30s", timedelta(hours=1)),
        ("delivery_interval", "1m", timedelta(minutes=1)),
        ("delivery_interval", "0", timedelta(hours=1)),
    ],
)
def test_notifier_intervals(key: str, given: str, expected: timedelta) -> None:
    assert getattr(validate({"notifier": {key: given}}).notifier, key) == expected


def test_index_report_request_concurrency() -> None:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cpus
    zero = validate({"indexer": {"index_report_request_concurrency": 0}}).indexer
    assert zero.index_report_request_concurrency == cpus * 4
    assert zero.index_report_request_limit == cpus * 4
    negative = validate({"indexer": {"index_report_request_concurrency": -7}}).indexer
    assert negative.index_report_request_concurrency == UNLIMITED
    assert negative.index_report_request_limit is None
    given = validate({"indexer": {"index_report_request_concurrency": 3}}).indexer
    assert given.index_report_request_limit == 3


def test_host_shares_default_to_half_of_their_slots() -> None:
    def indexer(**keys: int) -> Any:
        return validate({"indexer": keys}).indexer

    shares = indexer(index_report_request_concurrency=5, layer_scan_concurrency=3)
    assert (shares.index_report_host_concurrency, shares.layer_host_concurrency) == (3, 2)
    one = indexer(index_report_request_concurrency=1, layer_scan_concurrency=1)
    assert (one.index_report_host_concurrency, one.layer_host_concurrency) == (1, 1)
    unlimited = indexer(index_report_request_concurrency=-1)
    assert unlimited.index_report_host_concurrency == UNLIMITED
    off = indexer(index_report_host_concurrency=-3, layer_host_concurrency=-1)
    assert (off.index_report_host_concurrency, off.layer_host_concurrency) == (UNLIMITED,) * 2
    given = indexer(index_report_host_concurrency=7, layer_host_concurrency=9)
    assert (given.index_report_host_concurrency, given.layer_host_concurrency) == (7, 9)


def test_layer_scan_concurrency_zero_is_ten() -> None:
    assert validate({"indexer": {"layer_scan_concurrency": 0}}).indexer.layer_scan_concurrency == 10
    assert validate({"indexer": {"layer_scan_concurrency": 3}}).indexer.layer_scan_concurrency == 3


def test_callbacks_get_trailing_slash() -> None:
    cfg = validate(
        {
            "notifier": {
                "webhook": {
                    "target": "http://hook/",
                    "callback": "http://n/notifier/api/v1/notification",
                },
                "amqp": {
                    "exchange": {"type": "direct"},
                    "routing_key": "k",
                    "uris": ["amqp://h/"],
                    "callback": "http://n/cb",
                },
                "stomp": {"uris": ["broker:61613"], "callback": "http://n/cb", "direct": True},
            }
        }
    )
    assert cfg.notifier.webhook is not None
    assert cfg.notifier.webhook.callback == "http://n/notifier/api/v1/notification/"
    assert cfg.notifier.amqp is not None
    assert cfg.notifier.amqp.callback == "http://n/cb/"
    assert cfg.notifier.stomp is not None
    assert cfg.notifier.stomp.callback == "http://n/cb"  # direct delivery: callback unused
    assert cfg.notifier.delivery == "webhook"  # webhook > amqp > stomp
    already = validate(
        {"notifier": {"webhook": {"target": "http://h/", "callback": "http://n/x/"}}}
    )
    assert already.notifier.webhook is not None
    assert already.notifier.webhook.callback == "http://n/x/"


def test_updater_sets() -> None:
    assert validate({"updaters": {"sets": ["ubuntu"]}}).updaters.sets == ["ubuntu"]
    assert validate({"updaters": {"sets": []}}).updaters.sets == []
    disabled = validate({"matcher": {"disable_updaters": True}, "updaters": {"sets": ["ubuntu"]}})
    assert disabled.updaters.sets == []
    assert validate({"matcher": {"disable_updaters": True}}).updaters.sets == []


def test_log_level() -> None:
    assert validate({"log_level": "DEBUG"}).log_level == "debug"
    assert validate({"log_level": "debug-color"}).log_level == "debug-color"
    assert validate({"log_level": ""}).log_level == "info"
    assert problems({"log_level": "verbose"}) == [
        "config.yaml: log_level: Input should be 'info', 'debug-color', 'debug', 'warn', "
        "'error', 'fatal' or 'panic' (got \"verbose\")"
    ]


def test_psk_key_is_decoded() -> None:
    cfg = validate({"auth": {"psk": {"key": "c2VjcmV0", "iss": ["quay", "clairctl"]}}})
    assert cfg.auth.psk is not None
    assert cfg.auth.psk.key_bytes == b"secret"
    assert cfg.auth.psk.iss == ["quay", "clairctl"]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not base64!", "key is not valid base64"),
        ("c2VjcmV0PQ", "key is not valid base64"),
        ("", "key is empty"),
    ],
)
def test_psk_bad_key(key: str, message: str) -> None:
    assert problems({"auth": {"psk": {"key": key}}}) == [f"config.yaml: auth.psk.key: {message}"]


def test_keyserver_is_removed() -> None:
    (line,) = problems({"auth": {"keyserver": {"api": "http://ks/", "intraservice": "eA=="}}})
    assert line.startswith("config.yaml: auth.keyserver: removed")


def test_tls_pair() -> None:
    assert validate({"tls": {"cert": "/c.pem", "key": "/k.pem"}}).tls is not None
    assert validate({"tls": {"root_ca": "/ca.pem"}}).tls is not None
    assert problems({"tls": {"cert": "/c.pem"}}) == [
        "config.yaml: tls: both tls cert and key are required (key is missing)"
    ]


@pytest.mark.parametrize("addr", [":6060", "0.0.0.0:80", "localhost:6060", "[::1]:6060", "[::]:0"])
def test_listen_addr_accepts(addr: str) -> None:
    assert validate({"http_listen_addr": addr}).http_listen_addr == addr


@pytest.mark.parametrize("addr", ["6060", "localhost", ":http", ":70000", "::1:80", "[::1]80"])
def test_listen_addr_rejects(addr: str) -> None:
    (line,) = problems({"http_listen_addr": addr})
    assert line.startswith(f"config.yaml: http_listen_addr: address {addr}: ")


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"bogus": 1}, "bogus"),
        ({"indexer": {"bogus": 1}}, "indexer.bogus"),
        ({"indexer": {"scanner": {"packages": {}}}}, "indexer.scanner.packages"),
        ({"notifier": {"webhook": {"target": "http://h/", "sign": True}}}, "notifier.webhook.sign"),
        (
            {
                "notifier": {
                    "amqp": {
                        "exchange": {"type": "x", "durabel": True},
                        "routing_key": "k",
                        "uris": ["amqp://h"],
                    }
                }
            },
            "notifier.amqp.exchange.durabel",
        ),
        (
            {"trace": {"otlp": {"http": {"endpoint": "c:4318", "url": "/v1"}}}},
            "trace.otlp.http.url",
        ),
        ({"matcher": {"updater_set": ["ubuntu"]}}, "matcher.updater_set"),
    ],
)
def test_unknown_key_is_one_line_naming_the_path(doc: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(doc)
    assert str(info.value) == f"config.yaml: {path}: unknown key"


def test_free_form_objects_take_any_keys() -> None:
    cfg = validate(
        {
            "indexer": {
                "scanner": {
                    "package": {"rpm": {"anything": [1, {"x": None}]}},
                    "repo": {"rhel-repository-scanner": {"repo2cpe_mapping_file": "/m"}},
                }
            },
            "matchers": {
                "names": ["ubuntu-matcher"],
                "config": {"rhel": {"ignore_unpatched": True}},
            },
            "updaters": {
                "config": {"rhel-vex": {"url": "https://x/"}, "osv": {"allowlist": ["pypi"]}}
            },
        }
    )
    assert cfg.indexer.scanner.package == {"rpm": {"anything": [1, {"x": None}]}}
    assert cfg.matchers.config["rhel"] == {"ignore_unpatched": True}
    assert cfg.updaters.config["osv"] == {"allowlist": ["pypi"]}


def test_bad_duration_is_one_line_naming_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        validate({"matcher": {"period": "6x"}})
    assert str(info.value) == 'config.yaml: matcher.period: invalid duration "6x": unknown unit "x"'
    for bad in (1.5, True, [1]):
        (line,) = problems({"notifier": {"poll_interval": bad}})
        assert line.startswith("config.yaml: notifier.poll_interval: invalid duration ")


def test_every_problem_is_reported() -> None:
    found = problems(
        {
            "log_level": "loud",
            "indexer": {"bogus": 1, "layer_scan_concurrency": "many"},
            "matcher": {"period": "soon", "cache_age": "1q"},
            "updaters": {"sets": ["ubuntu", 3]},
            "notifier": {"amqp": {"exchange": {}, "uris": []}, "webhook": {"target": "ftp://x"}},
        }
    )
    paths = [line.split(": ")[1] for line in found]
    assert paths == [
        "log_level",
        "indexer.layer_scan_concurrency",
        "indexer.bogus",
        "matcher.period",
        "matcher.cache_age",
        "updaters.sets[1]",
        "notifier.webhook.target",
        "notifier.amqp.exchange.type",
        "notifier.amqp.routing_key",
        "notifier.amqp.uris",
    ]
    assert all("\n" not in line for line in found)


def test_required_delivery_fields() -> None:
    assert problems({"notifier": {"stomp": {"uris": ["no-port"]}}}) == [
        "config.yaml: notifier.stomp.uris: bad host:port: address no-port: missing port in address"
    ]
    assert problems({"notifier": {"webhook": {"callback": "http://n/"}}}) == [
        "config.yaml: notifier.webhook.target: required key is missing"
    ]


def test_trace_and_metrics() -> None:
    cfg = validate(
        {
            "trace": {
                "name": "otlp",
                "probability": 0.5,
                "otlp": {
                    "grpc": {
                        "endpoint": "otel:4317",
                        "insecure": True,
                        "timeout": "5s",
                        "compression": "gzip",
                        "reconnect": "1m",
                    }
                },
            },
            "metrics": {"name": "prometheus", "prometheus": {"endpoint": "/m"}},
        }
    )
    assert cfg.trace.otlp.grpc is not None
    assert cfg.trace.otlp.grpc.timeout == timedelta(seconds=5)
    assert cfg.metrics.prometheus_path == "/m"
    assert validate({"metrics": {"name": "otlp"}}).metrics.prometheus_path is None
    (line,) = problems({"trace": {"probability": 2}})
    assert line.startswith(
        "config.yaml: trace.probability: Input should be less than or equal to 1"
    )


def test_keys_of_earlier_releases_warn_once_and_are_ignored() -> None:
    cfg = validate(
        {
            "matcher": {"updater_sets": ["ubuntu"], "run": "", "max_conn_pool": 100},
            "metrics": {"name": "prometheus", "dogstatsd": {"url": ""}},
            "notifier": {
                "amqp": {
                    "exchange": {"type": "direct", "durable": True},
                    "routing_key": "k",
                    "uris": ["amqp://h"],
                },
                "stomp": {"uris": ["h:61613"], "login": {"login": "u", "passcode": "p"}},
            },
            "trace": {"jaeger": {"agent": {"endpoint": "localhost:6831"}}},
        }
    )
    assert cfg.updaters.sets == list(DEFAULT_UPDATER_SETS)  # ignored, not carried over
    assert cfg.notifier.stomp is not None
    assert cfg.notifier.stomp.user is None
    warnings = lint_config(cfg)
    for key, replacement in [
        ("matcher.updater_sets", "updaters.sets"),
        ("matcher.run", "matcher.period"),
        ("metrics.dogstatsd", 'metrics.name "prometheus" or "otlp"'),
        ("notifier.amqp.exchange.durable", "notifier.amqp.exchange.durability"),
        ("notifier.stomp.login", "notifier.stomp.user"),
        ("trace.jaeger", "trace.otlp"),
    ]:
        (line,) = [w for w in warnings if w.startswith(key + ":")]
        assert line == f"{key}: removed from Clair and ignored; use {replacement} instead"
    assert "matcher.max_conn_pool: ignored; set pool_max_conns in the connstring" in warnings
    assert lint_config(validate({})) == []
