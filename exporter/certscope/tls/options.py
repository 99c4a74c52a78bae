"""How to talk to one TLS endpoint: plain frozen data shared by the configuration (targets,
``/probe`` modules), ``certscope scan`` and the handshake.

It lives below :mod:`certscope.config` so that the handshake can use it without importing the
configuration; :mod:`certscope.config` re-exports every name.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

DEFAULT_TIMEOUT = 10.0
#: Most bytes a server may send during one handshake (chain, stapled OCSP, key exchange).
DEFAULT_MAX_HANDSHAKE_BYTES = 1024 * 1024
MAX_HANDSHAKE_BYTES_RANGE = (64 * 1024, 16 * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class RevocationOptions:
    """Whether and how a target's leaf is checked for revocation (see docs/configuration.md).

    A stapled OCSP response is always judged when the server sends one; ``ocsp`` and ``crl``
    allow fetching from the responder (AIA) and the CRL distribution points.
    """

    ocsp: bool = True
    crl: bool = True
    timeout: float = 5.0  # per fetch; the probe's own timeout bounds the whole check
    max_crl_bytes: int = 10 * 1024 * 1024
    #: Not configured here: a ``/probe`` target outside the configured ones carries
    #: ``probe.allowed_networks``, so the responder and CRL URLs in a certificate that any
    #: server can present are held to the same networks as the target itself.
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.ocsp or self.crl


#: Stored certificates are checked for revocation only when their source asks (fetching from
#: every CA a file tree names is not something to do unasked).
STORED_REVOCATION_OFF: Final = RevocationOptions(ocsp=False, crl=False)


@dataclass(frozen=True, slots=True)
class TLSOptions:
    """How to talk to one endpoint: shared by configured targets, /probe modules and ``scan``."""

    sni: str | None = None  # None: the host name (no SNI for IP addresses)
    starttls: str | None = None
    alpn: tuple[str, ...] = ()
    ca_file: str | None = None  # None: the system trust store
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_handshake_bytes: int = DEFAULT_MAX_HANDSHAKE_BYTES
    revocation: RevocationOptions = RevocationOptions()
