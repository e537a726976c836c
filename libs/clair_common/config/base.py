"""Building blocks shared by every config model: strict decoding, errors, TLS, addresses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

__all__ = ["TLS", "ConfigModel", "check_host_port", "config_problem", "split_host_port"]


def config_problem(message: str) -> PydanticCustomError:
    """A validation error whose text is shown verbatim after the key path."""
    return PydanticCustomError("clair_config", "{detail}", {"detail": message})


class ConfigModel(BaseModel):
    """Base of every config object: unknown keys are errors, JSON `null` means "not set".

    Go's JSON decoder leaves a struct field untouched when it meets `null`, so a YAML key with no
    value (`notifier:`) is the same as an absent key. Dropping those keys before validation gives
    the same result because every default here is Go's zero value or Clair's default for it.
    """

    model_config = ConfigDict(extra="forbid", validate_default=False)

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class TLS(ConfigModel):
    """File paths of a certificate pair; `root_ca` is deprecated (use the system trust store)."""

    cert: str = ""
    key: str = ""
    root_ca: str = ""

    @model_validator(mode="after")
    def _pair(self) -> TLS:
        if bool(self.cert) != bool(self.key):
            missing = "key" if self.cert else "cert"
            raise config_problem(f"both tls cert and key are required ({missing} is missing)")
        return self


def split_host_port(addr: str) -> tuple[str, int]:
    """Split like Go's `net.SplitHostPort` ("[::1]:80", ":6060", "host:8080"), numeric port."""
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise ValueError(f"address {addr}: missing ']' in address")
        host, rest = addr[1:end], addr[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError(f"address {addr}: missing port in address")
        port_text = rest[1:]
    else:
        host, sep, port_text = addr.rpartition(":")
        if not sep:
            raise ValueError(f"address {addr}: missing port in address")
        if ":" in host:
            raise ValueError(f"address {addr}: too many colons in address")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"address {addr}: invalid port {port_text!r}")
    return host, int(port_text)


def check_host_port(addr: str) -> str:
    """Field-validator body for `*_addr` listen keys."""
    try:
        split_host_port(addr)
    except ValueError as err:
        raise config_problem(str(err)) from None
    return addr
