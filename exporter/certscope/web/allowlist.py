"""Which targets ``/probe`` may reach, and at which address it connects.

A pattern is ``host:port`` where ``*`` and ``?`` are wildcards. Its host part is one of two
kinds, decided by its spelling, and only matches targets of the same kind:

* an address pattern (digits, dots and wildcards, or ``[…]`` for IPv6) matches IP addresses
  only, so ``10.0.1.*:443`` admits ``10.0.1.7`` but never the host name ``10.0.1.evil``, which
  could resolve anywhere;
* a name pattern (``*.example.com:443``) matches host names only;
* ``*`` alone matches both.

Names are resolved before connecting when ``allowed_networks`` is set (:mod:`certscope.pinning`):
the probe connects to the one address that was checked, never resolving again, so DNS
rebinding cannot move it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import Enum
from functools import lru_cache

from ..net import is_ip, join_address, split_address

_ADDRESS_PATTERN_CHARS = frozenset("0123456789.*?")


class Kind(Enum):
    ADDRESS = "address"
    NAME = "name"
    ANY = "any"


def pattern_kind(host_pattern: str) -> Kind:
    if host_pattern == "*":
        return Kind.ANY
    # A colon only appears in IPv6 addresses, bracketed or not.
    if (
        ":" in host_pattern
        or host_pattern.startswith("[")
        or _ADDRESS_PATTERN_CHARS.issuperset(host_pattern)
    ):
        return Kind.ADDRESS
    return Kind.NAME


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> tuple[Kind, re.Pattern[str]]:
    host_part = pattern.rpartition(":")[0]
    # Only * and ? are wildcards: brackets are literal so that "[::1]:8443" means IPv6.
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern.lower())
    return pattern_kind(host_part), re.compile("".join(parts))


def target_allowed(address: str, patterns: Sequence[str]) -> bool:
    """Whether ``/probe`` may reach ``address`` (``host:port``). Deny unless a pattern matches."""
    try:
        host, port = split_address(address)
    except ValueError:
        return False
    kind = Kind.ADDRESS if is_ip(host) else Kind.NAME
    # An IPv6 target is tried with and without brackets, so "[::1]:*" and "::1:*" both work.
    candidates = {join_address(host.lower(), port), f"{host.lower()}:{port}"}
    for p in patterns:
        pkind, regex = _compiled(p)
        # fullmatch, not match: "10.0.0.1:44" must not admit "10.0.0.1:443".
        if pkind in (kind, Kind.ANY) and any(regex.fullmatch(c) for c in candidates):
            return True
    return False
