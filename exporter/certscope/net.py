"""Addresses and host names: validation in linear time, splitting and joining ``host:port``.

Every host name that reaches certscope from outside (the config file, ``CERTSCOPE_TARGETS``,
``certscope scan``, ``/probe?target=`` and ``sni=``) is checked here. The check walks the name
label by label, so its cost is proportional to the length of the input (which is capped
first): a regular expression with a repeated group can backtrack exponentially on a name such
as ``aaaa…a-``, and one request would then freeze the event loop. Pure functions, no I/O.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

import idna

#: RFC 1035: at most 253 characters in the written form of a name, 63 in one label.
MAX_HOSTNAME = 253
MAX_LABEL = 63
#: Longest ``host:port`` accepted anywhere: a maximal name, brackets, colon and port.
MAX_ADDRESS = MAX_HOSTNAME + 8

_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PortError(ValueError):
    def __init__(self, port: int) -> None:
        super().__init__(f"must be 1-65535, got {port}")


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress | None:
    """The address ``text`` spells in its standard form (``[v6]`` brackets allowed), else None.

    Cached: a probe asks for its host and every SAN of the certificate, every time. Most are
    DNS names, which an IPv4 address (digits and dots) or an IPv6 one (a colon) cannot be.
    """
    if len(text) > 64:  # the longest IPv6 address with a zone index is shorter
        return None
    if ":" not in text and not text.strip("[]").replace(".", "").isdigit():
        return None
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def is_ip(text: str) -> bool:
    return parse_ip(text) is not None


def a_label(name: str) -> str:
    """A host name in the ASCII form certificates carry: ``ѕрооғ.example`` -> ``xn--….example``.

    IDNA 2008 with the UTS #46 mapping (case folding, full-width dots), as browsers apply
    it; ASCII names (punycode included) are only lower-cased. Raises ValueError for a name
    IDNA 2008 rejects.
    """
    name = name.strip().rstrip(".")
    if name.isascii():
        return name.lower()
    try:
        return idna.encode(name, uts46=True).decode("ascii").lower()
    except idna.IDNAError as exc:
        raise ValueError(f"{name!r} is not a valid internationalised host name: {exc}") from None


def hostname_problem(name: str) -> str | None:
    """Why ``name`` is not a usable DNS host name, or None when it is.

    Letters, digits, ``-`` and ``_`` (service names such as ``_dmarc`` exist), labels of 1-63
    characters that neither start nor end with ``-``, one optional trailing dot. Unicode names
    are checked in their IDNA (punycode) form, the form sent in SNI. A name the C resolver would
    read as an IPv4 address in a legacy form (``127.1``, ``0x7f000001``, ``2130706433``) is not
    a host name: allowing it would let a name-shaped input reach an address.
    """
    if not name or len(name) > MAX_HOSTNAME:
        return f"must be 1-{MAX_HOSTNAME} characters"
    ascii_name = name
    if not name.isascii():
        try:
            # IDNA 2008 (a_label), as names are sent in SNI and compared with SANs.
            ascii_name = a_label(name)
        except ValueError:
            return "is not a valid internationalised domain name"
        if len(ascii_name) > MAX_HOSTNAME:
            return f"must be at most {MAX_HOSTNAME} characters in its IDNA form"
    labels = ascii_name[:-1].split(".") if ascii_name.endswith(".") else ascii_name.split(".")
    for label in labels:
        if not 1 <= len(label) <= MAX_LABEL:
            return f"each dot-separated label must be 1-{MAX_LABEL} characters"
        if not _LABEL_CHARS.issuperset(label):
            return "may contain only letters, digits, '-', '_' and dots"
        if label[0] == "-" or label[-1] == "-":
            return "a label may not start or end with '-'"
    if labels[-1].isdigit() or _legacy_ipv4(ascii_name):
        return "is neither an IP address in standard form nor a host name"
    return None


def _legacy_ipv4(name: str) -> bool:
    try:
        socket.inet_aton(name)
    except OSError:
        return False
    return True


def is_hostname(name: str) -> bool:
    return hostname_problem(name) is None


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port). Raises ValueError with a readable reason."""
    address = address.strip()
    if len(address) > MAX_ADDRESS:
        raise ValueError(f"must be at most {MAX_ADDRESS} characters")
    if address.startswith("["):
        end = address.find("]")
        if end == -1 or address[end + 1 : end + 2] != ":":
            raise ValueError("IPv6 addresses are written [addr]:port")
        host, port_s = address[1:end], address[end + 2 :]
        if not isinstance(parse_ip(host), ipaddress.IPv6Address):
            raise ValueError(f"{host!r} is not an IPv6 address")
    else:
        host, sep, port_s = address.rpartition(":")
        if not sep or not host:
            raise ValueError("must be host:port (IPv6 as [addr]:port)")
        if ":" in host:
            raise ValueError("IPv6 addresses are written [addr]:port")
        if not is_ip(host) and (why := hostname_problem(host)) is not None:
            raise ValueError(f"{host!r} is not a valid host name: it {why}")
    return host, parse_port(port_s)


def parse_port(text: str) -> int:
    # isdigit() alone accepts other scripts' digits ("١٢٣"), which int() would then read.
    if not (text.isascii() and text.isdigit() and len(text) <= 5):
        raise ValueError(f"port {text[:16]!r} is not a number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise PortError(port)
    return port


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
