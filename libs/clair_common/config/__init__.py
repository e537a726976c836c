"""Clair v4's YAML/JSON config: schema, loading (drop-ins, env overrides), validation, views.

Typical start-up::

    cfg = load_config(path)                 # ConfigError lists every problem, one per line
    validate_for_mode(cfg, mode, str(path))
    view = service_view(cfg, "matcher")     # SharedConfig + the matcher's own sections
"""

from __future__ import annotations

from clair_common.config.base import TLS, split_host_port
from clair_common.config.documents import merged_document
from clair_common.config.duration import GoDuration, format_go_duration, parse_go_duration
from clair_common.config.errors import ConfigError
from clair_common.config.loader import (
    default_config,
    dump_config,
    load_config,
    validate_document,
)
from clair_common.config.models import (
    DEFAULT_UPDATER_SETS,
    PSK,
    UNLIMITED,
    Auth,
    Config,
    Indexer,
    LogLevel,
    Matcher,
    Matchers,
    ScannerConfig,
    SharedConfig,
    Updaters,
)
from clair_common.config.notifier import AMQP, STOMP, Exchange, Notifier, StompLogin, Webhook
from clair_common.config.telemetry import Metrics, OTLPSignal, Prometheus, Trace
from clair_common.config.views import (
    IndexerView,
    MatcherView,
    Mode,
    NotifierView,
    connstring_problems,
    lint_config,
    resolve_connstring,
    service_view,
    validate_for_mode,
)

__all__ = [
    "AMQP",
    "DEFAULT_UPDATER_SETS",
    "PSK",
    "STOMP",
    "TLS",
    "UNLIMITED",
    "Auth",
    "Config",
    "ConfigError",
    "Exchange",
    "GoDuration",
    "Indexer",
    "IndexerView",
    "LogLevel",
    "Matcher",
    "MatcherView",
    "Matchers",
    "Metrics",
    "Mode",
    "Notifier",
    "NotifierView",
    "OTLPSignal",
    "Prometheus",
    "ScannerConfig",
    "SharedConfig",
    "StompLogin",
    "Trace",
    "Updaters",
    "Webhook",
    "connstring_problems",
    "default_config",
    "dump_config",
    "format_go_duration",
    "lint_config",
    "load_config",
    "merged_document",
    "parse_go_duration",
    "resolve_connstring",
    "service_view",
    "split_host_port",
    "validate_document",
    "validate_for_mode",
]
