"""Which hosts a manifest may make the indexer fetch from.

A manifest names the URLs the indexer requests, which makes the indexer a proxy into whatever
network it sits in. Clair fetches anything; so do we by default. With a policy configured:
- `indexer.layer_fetch_allow`: host names (`registry.example.com`, `*.example.com`) or
  networks (`10.1.0.0/16`, `2001:db8::/32`); a URL must name an allowed host or resolve only
  to allowed addresses;
- `indexer.layer_fetch_deny_internal`: loopback, link-local (cloud metadata services live at
  169.254.169.254), unspecified and multicast addresses are refused, whatever the allow-list.
Every hop is checked, redirects included, and a refused or failed fetch is reported without
the remote side's answer (status, content type, digest read), so the indexer's errors cannot
be used to map the internal network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from yarl import URL

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PolicyRefused(Exception):
    """The URL's host is outside the fetch policy."""


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    hosts: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()
    deny_internal: bool = False

    @classmethod
    def parse(cls, allow: Sequence[str], deny_internal: bool) -> FetchPolicy:
        hosts: list[str] = []
        networks: list[Network] = []
        for entry in allow:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.append(entry.strip().lower().rstrip("."))
        return cls(tuple(hosts), tuple(networks), deny_internal)

    @property
    def enabled(self) -> bool:
        return bool(self.hosts or self.networks or self.deny_internal)

    def _host_allowed(self, host: str) -> bool:
        for entry in self.hosts:
            if entry.startswith("*.") and host.endswith(entry[1:]):
                return True
            if host == entry:
                return True
        return False

    def _address_refused(self, address: Address, named: bool) -> str | None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        internal = (
            address.is_loopback
            or address.is_link_local
            or address.is_unspecified
            or address.is_multicast
        )
        if self.deny_internal and internal:
            return "an internal address"
        listed = any(address.version == n.version and address in n for n in self.networks)
        if (self.hosts or self.networks) and not named and not listed:
            return "not in indexer.layer_fetch_allow"
        return None

    async def check(self, url: URL) -> None:
        """Raise PolicyRefused unless every address `url`'s host resolves to is allowed."""
        if not self.enabled:
            return
        host = (url.host or "").lower().rstrip(".")
        named = self._host_allowed(host)
        try:
            addresses: list[Address] = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, url.port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise PolicyRefused(f"{host!r} does not resolve") from exc
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        for address in addresses:
            why = self._address_refused(address, named)
            if why is not None:
                raise PolicyRefused(f"{host!r} is refused by the fetch policy ({why})")
