"""`notifier` section and its delivery mechanisms (Clair's `config/notifier.go`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from clair_common.config.base import TLS, ConfigModel, config_problem, split_host_port
from clair_common.config.database import DatabaseSection
from clair_common.config.duration import GoDuration

__all__ = [
    "AMQP",
    "DEFAULT_DELIVERY_INTERVAL",
    "DEFAULT_POLL_INTERVAL",
    "STOMP",
    "Exchange",
    "Notifier",
    "StompLogin",
    "Webhook",
]

DEFAULT_POLL_INTERVAL = timedelta(hours=6)
DEFAULT_DELIVERY_INTERVAL = timedelta(hours=1)
_MIN_INTERVAL = timedelta(minutes=1)


def _with_slash(url: str) -> str:
    # Notification ids are appended to the callback, so it must end in "/".
    return url if url.endswith("/") else url + "/"


class Webhook(ConfigModel):
    target: str = Field(min_length=1)
    callback: str = ""
    # HTTP headers sent with each delivery, Go `http.Header` shape: name -> list of values.
    headers: dict[str, list[str]] = Field(default_factory=dict)
    # Deprecated and ignored: deliveries are JWT-signed whenever auth.psk is configured.
    signed: bool = False

    @field_validator("target")
    @classmethod
    def _target_is_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise config_problem(f"target {value!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _normalise(self) -> Webhook:
        self.callback = _with_slash(self.callback)
        return self


class Exchange(ConfigModel):
    name: str = ""
    # "direct", "fanout", "topic" or "headers"; a passive declare checks it exists.
    type: str = Field(min_length=1)
    durability: bool = False
    auto_delete: bool = False


class AMQP(ConfigModel):
    exchange: Exchange
    routing_key: str = Field(min_length=1)
    callback: str = ""
    # amqp:// or amqps:// broker URIs, tried in order.
    uris: list[str] = Field(min_length=1)
    # With `direct`, how many notifications go in one message (0 or 1: no rollup).
    rollup: int = 0
    direct: bool = False
    tls: TLS | None = None

    @model_validator(mode="after")
    def _normalise(self) -> AMQP:
        if not self.direct:
            self.callback = _with_slash(self.callback)
        return self


class StompLogin(ConfigModel):
    login: str = ""
    passcode: str = ""


class STOMP(ConfigModel):
    destination: str = ""
    callback: str = ""
    # host:port pairs (Clair calls them URIs), tried in order; required only when STOMP is the
    # mechanism used (Clair's own sample has a STOMP block without them beside a webhook).
    uris: list[str] = Field(default_factory=list)
    rollup: int = 0
    direct: bool = False
    tls: TLS | None = None
    user: StompLogin | None = None

    @field_validator("uris")
    @classmethod
    def _host_ports(cls, value: list[str]) -> list[str]:
        for uri in value:
            try:
                split_host_port(uri)
            except ValueError as err:
                raise config_problem(f"bad host:port: {err}") from None
        return value

    @model_validator(mode="after")
    def _normalise(self) -> STOMP:
        if not self.direct:
            self.callback = _with_slash(self.callback)
        return self


class Notifier(DatabaseSection):
    # Remote services; required in notifier mode, ignored in combo mode.
    indexer_addr: str = ""
    matcher_addr: str = ""
    poll_interval: GoDuration = DEFAULT_POLL_INTERVAL
    delivery_interval: GoDuration = DEFAULT_DELIVERY_INTERVAL
    disable_summary: bool = False
    webhook: Webhook | None = None
    amqp: AMQP | None = None
    stomp: STOMP | None = None

    @model_validator(mode="after")
    def _apply_defaults(self) -> Notifier:
        if self.poll_interval < _MIN_INTERVAL:
            self.poll_interval = DEFAULT_POLL_INTERVAL
        if self.delivery_interval < _MIN_INTERVAL:
            self.delivery_interval = DEFAULT_DELIVERY_INTERVAL
        if self.delivery == "stomp" and self.stomp is not None and not self.stomp.uris:
            raise config_problem("stomp.uris: required when STOMP delivers notifications")
        return self

    @property
    def delivery(self) -> Literal["webhook", "amqp", "stomp"] | None:
        """The one mechanism used; Clair's precedence is webhook, then AMQP, then STOMP."""
        if self.webhook is not None:
            return "webhook"
        if self.amqp is not None:
            return "amqp"
        if self.stomp is not None:
            return "stomp"
        return None
