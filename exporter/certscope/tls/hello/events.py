"""What the server's first answer can be: the events :class:`~.parser.ServerHelloParser` emits.

Small frozen dataclasses, as in h11's ``_events``::

    Event
    ├── ServerHello        the server's choice (or a HelloRetryRequest)
    ├── Alert              the server refused (fatal) or warned (warning; parsing continues)
    ├── SSLv2ServerHello   SSLv2 SERVER-HELLO: the shared cipher kinds and the certificate
    ├── SSLv2Error         SSLv2 ERROR message (e.g. NO-CIPHER-ERROR)
    ├── ConnectionClosed   end of stream before any answer
    ├── ProtocolError      not TLS, or TLS that breaks the rules; ``reason`` is a stable label
    └── NeedMoreData       nothing to report yet
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ...errors import HelloFailure
from .wire import DOWNGRADE_TLS11, DOWNGRADE_TLS12, VERSIONS, find_extension, protocol_name

__all__ = [
    "NEED_MORE_DATA",
    "Alert",
    "ConnectionClosed",
    "Event",
    "HelloFailure",
    "NeedMoreData",
    "ProtocolError",
    "SSLv2Error",
    "SSLv2ServerHello",
    "ServerHello",
]


@dataclass(frozen=True, slots=True)
class ServerHello:
    """A ServerHello or (``is_hello_retry_request``) a HelloRetryRequest."""

    version: int
    """legacy_version from the message body."""
    cipher_suite: int
    selected_version: int | None
    """From the supported_versions extension (TLS 1.3), else ``None``."""
    key_share_group: int | None
    session_id: bytes
    extensions: tuple[tuple[int, bytes], ...]
    is_hello_retry_request: bool
    random: bytes = bytes(32)
    compression_method: int = 0

    @property
    def negotiated_version(self) -> int:
        """supported_versions wins over legacy_version (RFC 8446 4.2.1)."""
        return self.selected_version if self.selected_version is not None else self.version

    @property
    def protocol(self) -> str | None:
        return protocol_name(self.negotiated_version)

    @property
    def downgrade_sentinel(self) -> str | None:
        """``"TLSv1.2"``/``"TLSv1.1"`` when the random carries RFC 8446's downgrade marker:
        the server speaks TLS 1.3 but chose a lower version (1.1 meaning 1.1 or lower)."""
        if self.random.endswith(DOWNGRADE_TLS12):
            return "TLSv1.2"
        if self.random.endswith(DOWNGRADE_TLS11):
            return "TLSv1.1"
        return None

    def extension(self, ext_type: int) -> bytes | None:
        return find_extension(self.extensions, ext_type)


@dataclass(frozen=True, slots=True)
class Alert:
    level: int
    description: int
    name: str

    @property
    def fatal(self) -> bool:
        # Only an explicit warning lets the handshake go on (the parser keeps reading
        # after one); level 2 ends it.
        return self.level != 1


@dataclass(frozen=True, slots=True)
class SSLv2ServerHello:
    cipher_kinds: tuple[int, ...]
    certificate: bytes
    version: int = VERSIONS["SSLv2"]
    session_id_hit: bool = False
    certificate_type: int = 1
    connection_id: bytes = b""


@dataclass(frozen=True, slots=True)
class SSLv2Error:
    code: int
    name: str


@dataclass(frozen=True, slots=True)
class NeedMoreData:
    pass


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The stream ended cleanly before the server answered."""


@dataclass(frozen=True, slots=True)
class ProtocolError:
    reason: HelloFailure
    detail: str = ""


Event = (
    ServerHello
    | Alert
    | SSLv2ServerHello
    | SSLv2Error
    | ConnectionClosed
    | ProtocolError
    | NeedMoreData
)

NEED_MORE_DATA: Final = NeedMoreData()
