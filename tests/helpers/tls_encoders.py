"""TLS encoders for tests that play a server: a ServerHello, an alert, an SSLv2 SERVER-HELLO,
and a ClientHello decoder to read what the client sent.

certscope itself only builds ClientHellos and parses server answers
(:mod:`certscope.tls.hello`); these are the other direction, built on the same wire helpers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from certscope.tls.hello.wire import (
    CT_ALERT,
    CT_HANDSHAKE,
    HRR_RANDOM,
    HT_CLIENT_HELLO,
    HT_SERVER_HELLO,
    SSL2_MT_SERVER_HELLO,
    VERSIONS,
    ExtensionType,
    Malformed,
    Reader,
    find_extension,
    handshake,
    read_extensions,
    record,
    u16,
    vec8,
    vec16,
)

__all__ = [
    "DecodedClientHello",
    "build_alert",
    "build_server_hello",
    "build_sslv2_server_hello",
    "decode_client_hello",
]


@dataclass(frozen=True, slots=True)
class DecodedClientHello:
    """A ClientHello read back from the wire (for tests and fake servers)."""

    record_version: int
    version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    compression_methods: bytes
    extensions: tuple[tuple[int, bytes], ...]
    handshake_length: int
    """Length of the handshake message including its 4-byte header."""

    def extension(self, ext_type: int) -> bytes | None:
        return find_extension(self.extensions, ext_type)


def decode_client_hello(data: bytes) -> DecodedClientHello:
    """Parse a TLS ClientHello record (one record, one message); ``ValueError`` if malformed."""
    try:
        r = Reader(data)
        if r.u8() != CT_HANDSHAKE:
            raise Malformed("not a handshake record")
        record_version = r.u16()
        fragment = Reader(r.vec16())
        r.end()
        if fragment.u8() != HT_CLIENT_HELLO:
            raise Malformed("not a ClientHello")
        b = Reader(fragment.vec24())
        fragment.end()
        version = b.u16()
        random = b.take(32)
        session_id = b.vec8()
        raw_suites = b.vec16()
        if len(raw_suites) % 2:
            raise Malformed("odd cipher suite list")
        compression = b.vec8()
        extensions = read_extensions(b) if b.remaining else ()
        return DecodedClientHello(
            record_version=record_version,
            version=version,
            random=random,
            session_id=session_id,
            cipher_suites=tuple(
                int.from_bytes(raw_suites[i : i + 2], "big") for i in range(0, len(raw_suites), 2)
            ),
            compression_methods=compression,
            extensions=extensions,
            handshake_length=len(data) - 5,
        )
    except Malformed as exc:
        raise ValueError(str(exc)) from None


# --------------------------------------------------------------------------------------
# Server side encoders (tests, fake servers)
# --------------------------------------------------------------------------------------


def build_server_hello(
    cipher_suite: int,
    *,
    version: int = 0x0303,
    random: bytes = bytes(32),
    session_id: bytes = b"",
    compression_method: int = 0,
    selected_version: int | None = None,
    key_share_group: int | None = None,
    key_share: bytes = b"",
    hello_retry_request: bool = False,
    extensions: Iterable[tuple[int, bytes]] = (),
    record_version: int = 0x0303,
) -> bytes:
    """A ServerHello record, for tests and fake servers. Extensions are written in order:
    supported_versions, key_share, then ``extensions``; with none, the block is omitted."""
    exts: list[tuple[int, bytes]] = []
    if selected_version is not None:
        exts.append((ExtensionType.SUPPORTED_VERSIONS, u16(selected_version)))
    if key_share_group is not None:
        share = u16(key_share_group)
        if not hello_retry_request:
            share += vec16(key_share)
        exts.append((ExtensionType.KEY_SHARE, share))
    exts.extend(extensions)
    body = (
        u16(version)
        + (HRR_RANDOM if hello_retry_request else random)
        + vec8(session_id)
        + u16(cipher_suite)
        + bytes([compression_method])
    )
    if exts:
        body += vec16(b"".join(u16(t) + vec16(d) for t, d in exts))
    return record(CT_HANDSHAKE, record_version, handshake(HT_SERVER_HELLO, body))


def build_alert(description: int, *, level: int = 2, record_version: int = 0x0303) -> bytes:
    """An alert record (level 2 = fatal)."""
    return record(CT_ALERT, record_version, bytes([level, description]))


def build_sslv2_server_hello(
    cipher_kinds: Sequence[int],
    certificate: bytes,
    *,
    connection_id: bytes = bytes(16),
    session_id_hit: bool = False,
    certificate_type: int = 1,
) -> bytes:
    """An SSLv2 SERVER-HELLO record (two-byte header), for tests and fake servers."""
    specs = b"".join(k.to_bytes(3, "big") for k in cipher_kinds)
    body = (
        bytes([SSL2_MT_SERVER_HELLO, int(session_id_hit), certificate_type])
        + u16(VERSIONS["SSLv2"])
        + u16(len(certificate))
        + u16(len(specs))
        + u16(len(connection_id))
        + certificate
        + specs
        + connection_id
    )
    return u16(0x8000 | len(body)) + body


# --------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------
