"""What a server's answer means relative to the ClientHello that provoked it. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from .. import suites
from .client import ClientHello
from .events import ServerHello, SSLv2ServerHello
from .wire import SCSVS, VERSIONS, protocol_name

__all__ = ["Negotiation", "evaluate"]


@dataclass(frozen=True, slots=True)
class Negotiation:
    """What a server answer means relative to the hello that provoked it."""

    protocol: str | None
    """Protocol really negotiated; ``None`` for a version number we do not know."""
    cipher_suite: int | None
    """Chosen suite; ``None`` for SSLv2, where the server lists every shared kind."""
    suite_offered: bool
    """The chosen suite (SSLv2: every returned kind) was in our offer."""
    violations: tuple[str, ...]
    """Rule breaks found, as short sentences; empty when the answer is consistent."""

    @property
    def ok(self) -> bool:
        return not self.violations


def evaluate(
    client_hello: ClientHello, server_hello: ServerHello | SSLv2ServerHello
) -> Negotiation:
    """Check ``server_hello`` against ``client_hello``.

    A suite we did not offer is a protocol violation (``suite_offered`` False), which an
    enumerator should take as the end of its loop rather than as a supported suite. The
    negotiated protocol comes from supported_versions when present; a TLS 1.3 hello
    answered without it was negotiated at the ServerHello's legacy version (usually TLS
    1.2), never at 1.3.
    """
    if isinstance(server_hello, SSLv2ServerHello):
        return _evaluate_sslv2(client_hello, server_hello)
    violations: list[str] = []
    protocol = _version(client_hello, server_hello, violations)
    chosen = server_hello.cipher_suite
    offered = chosen in client_hello.cipher_suites and chosen not in SCSVS
    if not offered:
        violations.append(f"cipher suite {chosen:#06x} was not offered")
    suite = suites.by_code(chosen)
    if offered and protocol is not None and suite is not None and protocol not in suite.protocols:
        violations.append(f"{suite.name} cannot be used with {protocol}")
    if server_hello.compression_method != 0:
        violations.append(f"compression method {server_hello.compression_method} not offered")
    if protocol == "TLSv1.3":
        _tls13(client_hello, server_hello, violations)
    elif server_hello.is_hello_retry_request:
        violations.append("HelloRetryRequest outside TLS 1.3")
    return Negotiation(
        protocol=protocol,
        cipher_suite=chosen,
        suite_offered=offered,
        violations=tuple(violations),
    )


def _version(
    client_hello: ClientHello, server_hello: ServerHello, violations: list[str]
) -> str | None:
    """The protocol negotiated (None: unknown), adding the version rules it breaks."""
    negotiated = server_hello.negotiated_version
    if client_hello.protocol == "SSLv2":
        violations.append("TLS ServerHello in answer to an SSLv2 hello")
    if server_hello.selected_version is not None:
        if client_hello.protocol != "TLSv1.3":
            violations.append("supported_versions in answer to a hello that did not send it")
        if server_hello.selected_version != VERSIONS["TLSv1.3"]:
            violations.append(
                f"supported_versions selected {server_hello.selected_version:#06x}, not offered"
            )
        if server_hello.version != VERSIONS["TLSv1.2"]:
            violations.append(f"TLS 1.3 legacy_version {server_hello.version:#06x}, not 0x0303")
    elif negotiated > min(client_hello.version, VERSIONS["TLSv1.2"]):
        # Without supported_versions the answer cannot be TLS 1.3 (RFC 8446 4.1.3), and it
        # must not exceed the version we offered.
        violations.append(f"server chose version {negotiated:#06x} above the one offered")
    protocol = protocol_name(negotiated)
    if protocol is None or protocol == "SSLv2":
        violations.append(f"unknown version {negotiated:#06x}")
        return None
    return protocol


def _tls13(client_hello: ClientHello, server_hello: ServerHello, violations: list[str]) -> None:
    """The TLS 1.3 rules: the key share (or HelloRetryRequest) and the echoed session id."""
    group = server_hello.key_share_group
    if group is None:
        violations.append("TLS 1.3 answer without key_share")
    elif group not in client_hello.groups:
        violations.append(f"group {group} was not offered")
    elif server_hello.is_hello_retry_request and group == client_hello.key_share_group:
        violations.append(f"HelloRetryRequest for group {group}, whose share was sent")
    elif not server_hello.is_hello_retry_request and group != client_hello.key_share_group:
        violations.append(f"key_share for group {group}, whose share was not sent")
    if server_hello.session_id != client_hello.session_id:
        violations.append("legacy_session_id not echoed")


def _evaluate_sslv2(client_hello: ClientHello, server_hello: SSLv2ServerHello) -> Negotiation:
    violations: list[str] = []
    if client_hello.protocol != "SSLv2":
        violations.append("SSLv2 SERVER-HELLO in answer to a TLS hello")
    extra = [k for k in server_hello.cipher_kinds if k not in client_hello.cipher_suites]
    if extra:
        violations.append("cipher kinds not offered: " + ", ".join(f"{k:#08x}" for k in extra))
    if server_hello.version != VERSIONS["SSLv2"]:
        violations.append(f"SSLv2 SERVER-HELLO with version {server_hello.version:#06x}")
    return Negotiation(
        protocol="SSLv2",
        cipher_suite=None,
        suite_offered=not extra,
        violations=tuple(violations),
    )
