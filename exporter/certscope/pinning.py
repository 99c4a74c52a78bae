"""One address to connect to, checked against allowed networks and then used alone.

``/probe`` targets under ``probe.allowed_networks`` and the revocation URLs their certificates
name are resolved once here; the caller connects to the returned address and never resolves
the name again, so DNS rebinding cannot move the connection outside the networks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence

from .net import IPAddress, parse_ip

__all__ = ["Network", "NotAllowed", "checked_address", "in_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def in_networks(ip: IPAddress, networks: Sequence[Network]) -> bool:
    return any(ip.version == n.version and ip in n for n in networks)


class NotAllowed(Exception):
    """The target resolves to no address inside ``allowed_networks``."""


async def checked_address(host: str, port: int, networks: Sequence[Network]) -> str:
    """The one address to connect to for ``host``: inside ``networks``.

    Raises :class:`NotAllowed` when no address is, and ``socket.gaierror`` when the name does
    not resolve. The caller connects to the returned address and nothing else.
    """
    literal = parse_ip(host)
    if literal is not None:
        candidates = [literal]
    else:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        candidates = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for ip in candidates:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 on the wire
        if in_networks(ip, networks):
            return str(ip)
    raise NotAllowed(host)
