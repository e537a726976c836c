"""`indexer.airgap`: layers may come only from loopback and private addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from yarl import URL

from clair_indexer.fetch._errors import AirgapError, Transient

_ALLOWED_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)


def is_private_address(address: str) -> bool:
    """Loopback, RFC 1918, RFC 4193 or link-local: the only destinations airgap mode allows."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in _ALLOWED_NETWORKS)


async def check_airgap(url: URL, digest: str) -> None:
    """Raises AirgapError unless every address the URL's host resolves to is private."""
    host = url.host or ""
    try:
        addresses = [ipaddress.ip_address(host).compressed]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, url.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise Transient(f"resolving {host!r}: {exc}") from exc
        addresses = [str(info[4][0]) for info in infos]
    public = [a for a in addresses if not is_private_address(a)]
    if public or not addresses:
        raise AirgapError(
            f"layer {digest}: airgap mode refuses {host!r} "
            f"(not loopback/private: {', '.join(public) or 'no address'})"
        )
