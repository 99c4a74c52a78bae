"""What an SSH probe learns about one server: plain frozen data, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..tls.handshake import Failure
from .keys import KeyFacts

_VERSION_RE = re.compile(r"^(?P<product>[A-Za-z][A-Za-z0-9.+-]*?)[_-]v?(?P<version>\d+(?:\.\d+)*)")


@dataclass(frozen=True)
class ServerInfo:
    """The identification line and the algorithm lists of the server's KEXINIT."""

    banner: str  # the whole identification line, e.g. "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u6"
    proto: str  # "2.0" (or "1.99")
    software: str  # "OpenSSH_9.2p1"
    comments: str  # "Debian-2+deb12u6"
    kex: tuple[str, ...]
    host_key_algorithms: tuple[str, ...]
    ciphers: tuple[str, ...]  # client-to-server, then any others the server offers the other way
    macs: tuple[str, ...]
    compression: tuple[str, ...]

    @property
    def product_version(self) -> tuple[str, tuple[int, ...]] | None:
        """``OpenSSH_9.2p1`` → (``OpenSSH``, (9, 2)); ``dropbear_2022.83`` → (``dropbear``,
        (2022, 83)); None when the software string names no version."""
        m = _VERSION_RE.match(self.software)
        if not m:
            return None
        return m["product"], tuple(int(x) for x in m["version"].split("."))

    def algorithms(self) -> tuple[tuple[str, str], ...]:
        """(kind, algorithm) for every offered algorithm; kinds as in the metrics."""
        return (
            *(("kex", a) for a in self.kex),
            *(("host_key", a) for a in self.host_key_algorithms),
            *(("cipher", a) for a in self.ciphers),
            *(("mac", a) for a in self.macs),
            *(("compression", a) for a in self.compression),
        )


@dataclass(frozen=True)
class HostKey:
    """The host key the server presented for one host-key algorithm.

    ``facts`` is None when the exchange for that algorithm failed (``error`` says why); a key
    whose signature over the exchange hash does not verify is kept, with the error, because
    a server presenting a key it cannot sign with is itself a finding.
    """

    algorithm: str  # the host-key algorithm negotiated for this exchange
    facts: KeyFacts | None
    kex: str = ""  # the key-exchange method used to fetch it
    signature_algorithm: str = ""
    error: str = ""


@dataclass(frozen=True)
class SSHScan:
    """One probe of one SSH server."""

    info: ServerInfo | None
    host_keys: tuple[HostKey, ...] = ()
    error: Failure | None = None
    peer_address: str = ""
    connections: int = 0
    notes: tuple[str, ...] = ()  # host-key algorithms certscope cannot fetch, and why
