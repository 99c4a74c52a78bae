"""TLS/SSL hello codec: ClientHello bytes out, ServerHello events in. No I/O.

Modelled on h11: the caller owns the socket; this module only turns parameters into bytes
(:func:`build_client_hello`) and bytes into typed events (:class:`ServerHelloParser`).
It exists for posture scanning, where a real TLS library is the wrong tool: we want to
offer exactly the suites, versions and groups under test (including ones no modern library
will send) and read the server's choice from its first flight, without finishing the
handshake.

Events produced by :class:`ServerHelloParser`::

    Event
    ├── ServerHello        the server's choice (or a HelloRetryRequest)
    ├── Alert              the server refused (fatal) or warned (warning; parsing continues)
    ├── SSLv2ServerHello   SSLv2 SERVER-HELLO: the shared cipher kinds and the certificate
    ├── SSLv2Error         SSLv2 ERROR message (e.g. NO-CIPHER-ERROR)
    ├── ConnectionClosed   end of stream before any answer
    ├── ProtocolError      not TLS, or TLS that breaks the rules; ``reason`` is a stable label
    └── NeedMoreData       nothing to report yet

Every event except ``NeedMoreData`` and a warning ``Alert`` is final: after it the parser
discards input, so memory stays bounded however much the peer sends.

:func:`evaluate` compares a ServerHello with the ClientHello that provoked it: whether the
chosen suite was one we offered, and which protocol was really negotiated.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519

from certscope.certs import a_label
from certscope.tls import suites

__all__ = [
    "ALERT_NAMES",
    "DEFAULT_GROUPS",
    "MAX_BUFFER",
    "MAX_SUITES",
    "SIGNATURE_ALGORITHMS",
    "VERSIONS",
    "Alert",
    "ClientHello",
    "ConnectionClosed",
    "DecodedClientHello",
    "ErrorReason",
    "Event",
    "ExtensionType",
    "HelloFlags",
    "NamedGroup",
    "NeedMoreData",
    "Negotiation",
    "ProtocolError",
    "SSLv2Error",
    "SSLv2ServerHello",
    "ServerHello",
    "ServerHelloParser",
    "alert_name",
    "build_alert",
    "build_client_hello",
    "build_server_hello",
    "build_sslv2_server_hello",
    "decode_client_hello",
    "evaluate",
    "protocol_name",
]

# --------------------------------------------------------------------------------------
# Wire constants
# --------------------------------------------------------------------------------------

#: Protocol name (as in :data:`certscope.tls.suites.PROTOCOLS`) -> wire version.
VERSIONS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "SSLv2": 0x0002,
        "SSLv3": 0x0300,
        "TLSv1.0": 0x0301,
        "TLSv1.1": 0x0302,
        "TLSv1.2": 0x0303,
        "TLSv1.3": 0x0304,
    }
)
_VERSION_NAMES: Final[Mapping[int, str]] = MappingProxyType({v: k for k, v in VERSIONS.items()})

#: Most suites one hello may offer. Several servers (and middleboxes) reject longer lists;
#: an enumerator offering more must split them across connections.
MAX_SUITES: Final = 128

#: Most bytes the parser keeps between calls. A ServerHello is well under 1 KiB; a server
#: that has not produced one within 64 KiB is not going to.
MAX_BUFFER: Final = 64 * 1024

# RFC 5246 6.2.3: a record may carry at most 2^14 bytes plus 2048 of expansion.
_MAX_RECORD: Final = 2**14 + 2048

_CT_CHANGE_CIPHER_SPEC: Final = 20
_CT_ALERT: Final = 21
_CT_HANDSHAKE: Final = 22
_CT_APPLICATION_DATA: Final = 23
_CT_HEARTBEAT: Final = 24

_HT_HELLO_REQUEST: Final = 0
_HT_CLIENT_HELLO: Final = 1
_HT_SERVER_HELLO: Final = 2

_SSL2_MT_ERROR: Final = 0
_SSL2_MT_CLIENT_HELLO: Final = 1
_SSL2_MT_SERVER_HELLO: Final = 4

_SCSV_RENEGOTIATION: Final = 0x00FF
_SCSV_FALLBACK: Final = 0x5600
_SCSVS: Final = frozenset({_SCSV_RENEGOTIATION, _SCSV_FALLBACK})

# RFC 8446 4.1.3: a HelloRetryRequest is a ServerHello whose random is this constant.
_HRR_RANDOM: Final = hashlib.sha256(b"HelloRetryRequest").digest()
# RFC 8446 4.1.3: a TLS 1.3-capable server negotiating less ends its random with these.
_DOWNGRADE_TLS12: Final = b"DOWNGRD\x01"
_DOWNGRADE_TLS11: Final = b"DOWNGRD\x00"

# F5 BIG-IP (and some others) hang on ClientHellos of 256-511 bytes; RFC 7685 padding
# pushes such hellos to 512.
_F5_MIN: Final = 256
_F5_PAD_TO: Final = 512


class ExtensionType(enum.IntEnum):
    SERVER_NAME = 0
    STATUS_REQUEST = 5
    SUPPORTED_GROUPS = 10
    EC_POINT_FORMATS = 11
    SIGNATURE_ALGORITHMS = 13
    ALPN = 16
    PADDING = 21
    ENCRYPT_THEN_MAC = 22
    EXTENDED_MASTER_SECRET = 23
    SESSION_TICKET = 35
    PRE_SHARED_KEY = 41
    EARLY_DATA = 42
    SUPPORTED_VERSIONS = 43
    COOKIE = 44
    PSK_KEY_EXCHANGE_MODES = 45
    KEY_SHARE = 51
    RENEGOTIATION_INFO = 0xFF01


class NamedGroup(enum.IntEnum):
    """Named groups (RFC 8446 4.2.7 and successors) the builder knows by name."""

    SECP256R1 = 23
    SECP384R1 = 24
    SECP521R1 = 25
    X25519 = 29
    X448 = 30
    FFDHE2048 = 256
    FFDHE3072 = 257
    FFDHE4096 = 258
    FFDHE6144 = 259
    FFDHE8192 = 260
    X25519MLKEM768 = 0x11EC


#: Groups offered when the caller does not choose. No FFDHE groups: RFC 7919 lets a server
#: refuse every DHE suite when none of the offered FFDHE groups suits it, which would make
#: DHE suites look unsupported during suite enumeration.
DEFAULT_GROUPS: Final = (
    NamedGroup.X25519,
    NamedGroup.SECP256R1,
    NamedGroup.SECP384R1,
    NamedGroup.SECP521R1,
    NamedGroup.X448,
)

#: signature_algorithms offered in TLS 1.2+ hellos: broad on purpose, so that the server's
#: certificate type never decides which suites look supported. Includes SHA-1 and DSA for
#: old servers, and PSS/EdDSA for new ones.
SIGNATURE_ALGORITHMS: Final = (
    0x0403,  # ecdsa_secp256r1_sha256
    0x0503,  # ecdsa_secp384r1_sha384
    0x0603,  # ecdsa_secp521r1_sha512
    0x0807,  # ed25519
    0x0808,  # ed448
    0x081A,  # ecdsa_brainpoolP256r1tls13_sha256
    0x081B,  # ecdsa_brainpoolP384r1tls13_sha384
    0x081C,  # ecdsa_brainpoolP512r1tls13_sha512
    0x0804,  # rsa_pss_rsae_sha256
    0x0805,  # rsa_pss_rsae_sha384
    0x0806,  # rsa_pss_rsae_sha512
    0x0809,  # rsa_pss_pss_sha256
    0x080A,  # rsa_pss_pss_sha384
    0x080B,  # rsa_pss_pss_sha512
    0x0401,  # rsa_pkcs1_sha256
    0x0501,  # rsa_pkcs1_sha384
    0x0601,  # rsa_pkcs1_sha512
    0x0303,  # ecdsa_sha224
    0x0301,  # rsa_pkcs1_sha224
    0x0302,  # dsa_sha224
    0x0402,  # dsa_sha256
    0x0502,  # dsa_sha384
    0x0602,  # dsa_sha512
    0x0203,  # ecdsa_sha1
    0x0201,  # rsa_pkcs1_sha1
    0x0202,  # dsa_sha1
)

#: Alert descriptions (RFC 8446 6, RFC 5246 7.2, RFC 6101, and later registrations).
ALERT_NAMES: Final[Mapping[int, str]] = MappingProxyType(
    {
        0: "close_notify",
        10: "unexpected_message",
        20: "bad_record_mac",
        21: "decryption_failed",
        22: "record_overflow",
        30: "decompression_failure",
        40: "handshake_failure",
        41: "no_certificate",
        42: "bad_certificate",
        43: "unsupported_certificate",
        44: "certificate_revoked",
        45: "certificate_expired",
        46: "certificate_unknown",
        47: "illegal_parameter",
        48: "unknown_ca",
        49: "access_denied",
        50: "decode_error",
        51: "decrypt_error",
        60: "export_restriction",
        70: "protocol_version",
        71: "insufficient_security",
        80: "internal_error",
        86: "inappropriate_fallback",
        90: "user_canceled",
        100: "no_renegotiation",
        109: "missing_extension",
        110: "unsupported_extension",
        111: "certificate_unobtainable",
        112: "unrecognized_name",
        113: "bad_certificate_status_response",
        114: "bad_certificate_hash_value",
        115: "unknown_psk_identity",
        116: "certificate_required",
        117: "general_error",
        120: "no_application_protocol",
        121: "ech_required",
    }
)

_SSL2_ERRORS: Final[Mapping[int, str]] = MappingProxyType(
    {
        0x0001: "no_cipher",
        0x0002: "no_certificate",
        0x0004: "bad_certificate",
        0x0006: "unsupported_certificate_type",
    }
)


def alert_name(description: int) -> str:
    """The RFC name of an alert description, or ``unknown_<n>``."""
    return ALERT_NAMES.get(description, f"unknown_{description}")


def protocol_name(version: int) -> str | None:
    """``0x0303`` -> ``"TLSv1.2"``; ``None`` for versions outside SSLv2..TLSv1.3."""
    return _VERSION_NAMES.get(version)


# --------------------------------------------------------------------------------------
# ClientHello
# --------------------------------------------------------------------------------------


class HelloFlags(enum.Flag):
    """Optional behaviour of :func:`build_client_hello`."""

    NONE = 0
    #: Add TLS_FALLBACK_SCSV (RFC 7507), to test downgrade protection.
    FALLBACK_SCSV = enum.auto()
    #: Leave out TLS_EMPTY_RENEGOTIATION_INFO_SCSV (normally sent up to TLS 1.2).
    NO_RENEGOTIATION_SCSV = enum.auto()
    #: TLS 1.3: send an empty key_share even when a share could be built, so the server
    #: must answer with a HelloRetryRequest naming the group it prefers.
    EMPTY_KEY_SHARE = enum.auto()


Rng = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class ClientHello:
    """A built hello: the bytes to send plus what they offer, for :func:`evaluate`."""

    protocol: str
    data: bytes
    cipher_suites: tuple[int, ...]
    """Suites offered, as given (signalling values excluded)."""
    groups: tuple[int, ...]
    key_share_group: int | None
    """Group whose key share was sent (TLS 1.3), ``None`` when the key_share list was empty."""
    server_name: str | None
    """Host name sent in SNI, ``None`` when none was sent."""
    session_id: bytes
    random: bytes
    """Client random (TLS) or challenge (SSLv2)."""

    @property
    def version(self) -> int:
        return VERSIONS[self.protocol]


def build_client_hello(
    protocol: str,
    cipher_suites: Sequence[int],
    *,
    server_name: str | None = None,
    groups: Sequence[int] = DEFAULT_GROUPS,
    flags: HelloFlags = HelloFlags.NONE,
    rng: Rng = os.urandom,
) -> ClientHello:
    """Build a ClientHello record for ``protocol`` offering ``cipher_suites``.

    ``protocol`` is one of :data:`VERSIONS`' keys. ``cipher_suites`` are two-byte codes,
    or for SSLv2 three-byte cipher kinds; at most :data:`MAX_SUITES`, no duplicates.
    ``server_name`` goes into SNI unless it is an IP address (RFC 6066 forbids literals).
    ``groups`` is the supported_groups list; in TLS 1.3 the first group also gets a key
    share when one can be made cheaply (X25519, X448, P-256/384/521) and otherwise the
    key_share list is empty, which makes the server answer with a HelloRetryRequest that
    still reveals its group choice. ``rng(n)`` supplies every random byte, so tests can be
    deterministic.

    SSLv3 hellos carry no extensions (beyond padding when needed): SSLv3-only servers
    predate them and some fail on them.
    """
    if protocol not in VERSIONS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {tuple(VERSIONS)}")
    offered = tuple(cipher_suites)
    _check_suites(protocol, offered)
    group_list = tuple(int(g) for g in groups)
    _check_u16_list("group", group_list)
    if protocol == "SSLv2":
        return _build_sslv2_client_hello(offered, rng)

    version = VERSIONS[protocol]
    tls13 = protocol == "TLSv1.3"
    client_random = _take(rng, 32)
    session_id = _take(rng, 32)
    wire_suites = list(offered)
    if not tls13 and HelloFlags.NO_RENEGOTIATION_SCSV not in flags:
        wire_suites.append(_SCSV_RENEGOTIATION)
    if HelloFlags.FALLBACK_SCSV in flags:
        wire_suites.append(_SCSV_FALLBACK)

    sni = _sni_host(server_name) if protocol != "SSLv3" else None
    extensions: list[tuple[int, bytes]] = []
    key_share_group: int | None = None
    if protocol != "SSLv3":
        if sni is not None:
            extensions.append((ExtensionType.SERVER_NAME, _server_name_ext(sni)))
        if not tls13:
            # Some FIPS-mode servers refuse TLS 1.2 handshakes without it.
            extensions.append((ExtensionType.EXTENDED_MASTER_SECRET, b""))
        if group_list:
            extensions.append((ExtensionType.SUPPORTED_GROUPS, _u16_list(group_list)))
        extensions.append((ExtensionType.EC_POINT_FORMATS, _vec8(b"\x00")))
        if version >= VERSIONS["TLSv1.2"]:
            # RFC 5246 7.4.1.4.1: meaningless, and not to be sent, before TLS 1.2.
            extensions.append((ExtensionType.SIGNATURE_ALGORITHMS, _u16_list(SIGNATURE_ALGORITHMS)))
        if tls13:
            extensions.append((ExtensionType.SUPPORTED_VERSIONS, _vec8(_u16(0x0304))))
            share = b""
            if group_list and HelloFlags.EMPTY_KEY_SHARE not in flags:
                public = _key_share(group_list[0], rng)
                if public is not None:
                    key_share_group = group_list[0]
                    share = _u16(group_list[0]) + _vec16(public)
            extensions.append((ExtensionType.KEY_SHARE, _vec16(share)))
            extensions.append((ExtensionType.PSK_KEY_EXCHANGE_MODES, _vec8(b"\x01")))

    # RFC 8446 keeps legacy_version at TLS 1.2 and the record version at TLS 1.0 so that
    # old middleboxes pass the hello; older hellos use the record version a client of that
    # era would, capped at TLS 1.0 for the same reason.
    hello_version = min(version, VERSIONS["TLSv1.2"])
    record_version = min(version, VERSIONS["TLSv1.0"])
    head = (
        _u16(hello_version)
        + client_random
        + _vec8(session_id)
        + _vec16(b"".join(_u16(c) for c in wire_suites))
        + _vec8(b"\x00")  # compression: null only
    )
    body = _with_padding(head, extensions)
    message = _handshake(_HT_CLIENT_HELLO, body)
    return ClientHello(
        protocol=protocol,
        data=_record(_CT_HANDSHAKE, record_version, message),
        cipher_suites=offered,
        groups=group_list,
        key_share_group=key_share_group,
        server_name=sni,
        session_id=session_id,
        random=client_random,
    )


def _check_suites(protocol: str, offered: tuple[int, ...]) -> None:
    if not offered:
        raise ValueError("a hello must offer at least one cipher suite")
    if len(offered) > MAX_SUITES:
        raise ValueError(f"{len(offered)} cipher suites offered; at most {MAX_SUITES} per hello")
    limit = 0xFFFFFF if protocol == "SSLv2" else 0xFFFF
    for code in offered:
        if not 0 <= code <= limit:
            raise ValueError(f"cipher suite code {code:#x} out of range for {protocol}")
    if len(set(offered)) != len(offered):
        raise ValueError("duplicate cipher suite codes")


def _check_u16_list(what: str, values: tuple[int, ...]) -> None:
    for value in values:
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"{what} code {value:#x} out of range")
    if len(set(values)) != len(values):
        raise ValueError(f"duplicate {what} codes")


def _take(rng: Rng, n: int) -> bytes:
    data = rng(n)
    if len(data) != n:
        raise ValueError(f"rng returned {len(data)} bytes, wanted {n}")
    return bytes(data)


def _sni_host(server_name: str | None) -> str | None:
    if not server_name:
        return None
    host = server_name.strip().rstrip(".")
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return host.lower() or None
    return None


def _server_name_ext(host: str) -> bytes:
    # RFC 6066 3: the A-label (IDNA 2008), never the Unicode form nor Python's IDNA 2003 codec.
    encoded = a_label(host).encode("ascii")
    if len(encoded) > 255:  # RFC 1035's limit; anything longer is a caller bug
        raise ValueError(f"server name of {len(encoded)} bytes is too long")
    # ServerNameList with one host_name (type 0) entry.
    return _vec16(b"\x00" + _vec16(encoded))


def _key_share(group: int, rng: Rng) -> bytes | None:
    """A valid public share for ``group`` from ``rng``, or None if it is not cheap to make.

    Deriving the key from rng output (rather than letting ``cryptography`` draw its own)
    keeps hellos reproducible in tests; the private half is thrown away at once, since we
    never finish a handshake.
    """
    if group == NamedGroup.X25519:
        return (
            x25519.X25519PrivateKey.from_private_bytes(_take(rng, 32))
            .public_key()
            .public_bytes_raw()
        )
    if group == NamedGroup.X448:
        return (
            x448.X448PrivateKey.from_private_bytes(_take(rng, 56)).public_key().public_bytes_raw()
        )
    curve: ec.EllipticCurve
    if group == NamedGroup.SECP256R1:
        curve, size = ec.SECP256R1(), 32
    elif group == NamedGroup.SECP384R1:
        curve, size = ec.SECP384R1(), 48
    elif group == NamedGroup.SECP521R1:
        curve, size = ec.SECP521R1(), 66
    else:
        return None
    # One byte short of the field size keeps the scalar below the group order without
    # having to spell the order out; +1 keeps it non-zero.
    scalar = int.from_bytes(_take(rng, size - 1), "big") + 1
    key = ec.derive_private_key(scalar, curve)
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _with_padding(head: bytes, extensions: list[tuple[int, bytes]]) -> bytes:
    """ClientHello body = head + extensions, padded (RFC 7685) out of the F5 range."""
    block = b"".join(_u16(t) + _vec16(d) for t, d in extensions)
    body = head + _vec16(block) if extensions else head
    length = 4 + len(body)  # handshake header included, as the F5 bug counts it
    if not _F5_MIN <= length < _F5_PAD_TO:
        return body
    overhead = 4 + (0 if extensions else 2)  # padding extension header, maybe the block length
    pad = max(0, _F5_PAD_TO - length - overhead)
    block += _u16(ExtensionType.PADDING) + _vec16(bytes(pad))
    return head + _vec16(block)


def _build_sslv2_client_hello(kinds: tuple[int, ...], rng: Rng) -> ClientHello:
    # SSLv2 CLIENT-HELLO: type, version, cipher-specs length, session-id length, challenge
    # length, then the three lists. Challenge of 16 bytes as clients of the time sent.
    challenge = _take(rng, 16)
    specs = b"".join(k.to_bytes(3, "big") for k in kinds)
    body = (
        bytes([_SSL2_MT_CLIENT_HELLO])
        + _u16(VERSIONS["SSLv2"])
        + _u16(len(specs))
        + _u16(0)
        + _u16(len(challenge))
        + specs
        + challenge
    )
    return ClientHello(
        protocol="SSLv2",
        data=_u16(0x8000 | len(body)) + body,  # two-byte header: no padding
        cipher_suites=kinds,
        groups=(),
        key_share_group=None,
        server_name=None,
        session_id=b"",
        random=challenge,
    )


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
        return _find_extension(self.extensions, ext_type)


def decode_client_hello(data: bytes) -> DecodedClientHello:
    """Parse a TLS ClientHello record (one record, one message); ``ValueError`` if malformed."""
    try:
        r = _Reader(data)
        if r.u8() != _CT_HANDSHAKE:
            raise _Malformed("not a handshake record")
        record_version = r.u16()
        fragment = _Reader(r.vec16())
        r.end()
        if fragment.u8() != _HT_CLIENT_HELLO:
            raise _Malformed("not a ClientHello")
        b = _Reader(fragment.vec24())
        fragment.end()
        version = b.u16()
        random = b.take(32)
        session_id = b.vec8()
        raw_suites = b.vec16()
        if len(raw_suites) % 2:
            raise _Malformed("odd cipher suite list")
        compression = b.vec8()
        extensions = _read_extensions(b) if b.remaining else ()
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
    except _Malformed as exc:
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
        exts.append((ExtensionType.SUPPORTED_VERSIONS, _u16(selected_version)))
    if key_share_group is not None:
        share = _u16(key_share_group)
        if not hello_retry_request:
            share += _vec16(key_share)
        exts.append((ExtensionType.KEY_SHARE, share))
    exts.extend(extensions)
    body = (
        _u16(version)
        + (_HRR_RANDOM if hello_retry_request else random)
        + _vec8(session_id)
        + _u16(cipher_suite)
        + bytes([compression_method])
    )
    if exts:
        body += _vec16(b"".join(_u16(t) + _vec16(d) for t, d in exts))
    return _record(_CT_HANDSHAKE, record_version, _handshake(_HT_SERVER_HELLO, body))


def build_alert(description: int, *, level: int = 2, record_version: int = 0x0303) -> bytes:
    """An alert record (level 2 = fatal)."""
    return _record(_CT_ALERT, record_version, bytes([level, description]))


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
        bytes([_SSL2_MT_SERVER_HELLO, int(session_id_hit), certificate_type])
        + _u16(VERSIONS["SSLv2"])
        + _u16(len(certificate))
        + _u16(len(specs))
        + _u16(len(connection_id))
        + certificate
        + specs
        + connection_id
    )
    return _u16(0x8000 | len(body)) + body


# --------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------


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
        if self.random.endswith(_DOWNGRADE_TLS12):
            return "TLSv1.2"
        if self.random.endswith(_DOWNGRADE_TLS11):
            return "TLSv1.1"
        return None

    def extension(self, ext_type: int) -> bytes | None:
        return _find_extension(self.extensions, ext_type)


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


class ErrorReason(enum.StrEnum):
    """Why the server's bytes were rejected; stable, usable as a metric label value."""

    NOT_TLS = "not_tls"
    UNSUPPORTED_VERSION = "unsupported_record_version"
    UNEXPECTED_CONTENT_TYPE = "unexpected_content_type"
    UNEXPECTED_MESSAGE = "unexpected_handshake_message"
    RECORD_OVERFLOW = "record_overflow"
    BAD_LENGTH = "bad_length"
    MALFORMED = "malformed"
    BUFFER_LIMIT = "buffer_limit"
    TRUNCATED = "truncated"


@dataclass(frozen=True, slots=True)
class ProtocolError:
    reason: ErrorReason
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

_NEED_MORE_DATA: Final = NeedMoreData()


# --------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------


class ServerHelloParser:
    """Incremental parser for the server's first flight.

    Feed bytes with :meth:`receive_data` (``b""`` meaning end of stream) and collect events
    with :meth:`next_event`, or do both with :meth:`feed`. Parsing happens as data arrives,
    so the parser never holds more than ``max_buffer`` bytes, and nothing after its final
    event.
    """

    def __init__(self, *, max_buffer: int = MAX_BUFFER) -> None:
        self._max_buffer = max_buffer
        self._buf = bytearray()  # unparsed record bytes
        self._hs = bytearray()  # handshake bytes awaiting a complete message
        self._events: deque[Event] = deque()
        self._done = False

    @property
    def done(self) -> bool:
        """True once a final event has been produced; later input is ignored."""
        return self._done

    @property
    def buffered(self) -> int:
        """Bytes currently held."""
        return len(self._buf) + len(self._hs)

    def receive_data(self, data: bytes) -> None:
        if self._done:
            return
        if not data:
            self._finish_eof()
            return
        self._buf += data
        try:
            self._process()
        except _Malformed as exc:
            self._fail(ErrorReason.MALFORMED, str(exc))
        if not self._done and self.buffered > self._max_buffer:
            self._fail(ErrorReason.BUFFER_LIMIT, f"no answer within {self._max_buffer} bytes")

    def next_event(self) -> Event:
        return self._events.popleft() if self._events else _NEED_MORE_DATA

    def feed(self, data: bytes) -> list[Event]:
        """:meth:`receive_data`, then every event now available (empty: need more data)."""
        self.receive_data(data)
        events = list(self._events)
        self._events.clear()
        return events

    # -- internals ---------------------------------------------------------------------

    def _emit(self, event: Event, *, final: bool = True) -> None:
        self._events.append(event)
        if final:
            self._done = True
            self._buf.clear()
            self._hs.clear()

    def _fail(self, reason: ErrorReason, detail: str) -> None:
        self._emit(ProtocolError(reason, detail))

    def _finish_eof(self) -> None:
        if self._buf or self._hs:
            self._fail(ErrorReason.TRUNCATED, f"stream ended with {self.buffered} bytes pending")
        else:
            self._emit(ConnectionClosed())

    def _process(self) -> None:
        while not self._done and self._buf:
            first = self._buf[0]
            if first & 0x80:
                if not self._process_sslv2():
                    return
            elif first in (
                _CT_CHANGE_CIPHER_SPEC,
                _CT_ALERT,
                _CT_HANDSHAKE,
                _CT_APPLICATION_DATA,
                _CT_HEARTBEAT,
            ):
                if not self._process_record():
                    return
            else:
                self._fail(ErrorReason.NOT_TLS, f"starts with {_preview(self._buf)}")

    def _process_record(self) -> bool:
        """Consume one TLS record if complete; False when more bytes are needed."""
        buf = self._buf
        if len(buf) >= 2 and buf[1] != 3:
            self._fail(ErrorReason.UNSUPPORTED_VERSION, f"record version {bytes(buf[1:3]).hex()}")
            return False
        if len(buf) >= 3 and buf[2] > 4:
            self._fail(ErrorReason.UNSUPPORTED_VERSION, f"record version 03{buf[2]:02x}")
            return False
        if len(buf) < 5:
            return False
        content_type = buf[0]
        length = int.from_bytes(buf[3:5], "big")
        if content_type not in (_CT_ALERT, _CT_HANDSHAKE):
            # Before the ServerHello nothing else is legal: CCS and application data only
            # follow it, and heartbeats need a negotiated extension.
            self._fail(ErrorReason.UNEXPECTED_CONTENT_TYPE, f"content type {content_type}")
            return False
        if length > _MAX_RECORD:
            self._fail(ErrorReason.RECORD_OVERFLOW, f"record of {length} bytes")
            return False
        if length == 0:
            self._fail(ErrorReason.MALFORMED, "empty record")
            return False
        if len(buf) < 5 + length:
            return False
        fragment = bytes(buf[5 : 5 + length])
        del buf[: 5 + length]
        if content_type == _CT_ALERT:
            self._process_alerts(fragment)
        else:
            self._hs += fragment
            self._process_handshake()
        return True

    def _process_alerts(self, fragment: bytes) -> None:
        if len(fragment) % 2:
            self._fail(ErrorReason.MALFORMED, f"alert record of {len(fragment)} bytes")
            return
        for i in range(0, len(fragment), 2):
            level, description = fragment[i], fragment[i + 1]
            if level not in (1, 2):
                self._fail(ErrorReason.MALFORMED, f"alert level {level}")
                return
            alert = Alert(level, description, alert_name(description))
            # A warning (e.g. unrecognized_name from old Apache) can precede the
            # ServerHello; keep reading after it.
            self._emit(alert, final=alert.fatal)
            if self._done:
                return

    def _process_handshake(self) -> None:
        hs = self._hs
        while not self._done and len(hs) >= 4:
            msg_type = hs[0]
            length = int.from_bytes(hs[1:4], "big")
            if msg_type == _HT_HELLO_REQUEST and length == 0:
                del hs[:4]  # harmless before a ServerHello; skip it
                continue
            if msg_type != _HT_SERVER_HELLO:
                self._fail(ErrorReason.UNEXPECTED_MESSAGE, f"handshake message type {msg_type}")
                return
            if length + 4 > self._max_buffer:
                self._fail(ErrorReason.BAD_LENGTH, f"ServerHello claims {length} bytes")
                return
            if len(hs) < 4 + length:
                return
            body = bytes(hs[4 : 4 + length])
            self._emit(_parse_server_hello(body))

    def _process_sslv2(self) -> bool:
        buf = self._buf
        if len(buf) >= 3 and buf[2] not in (_SSL2_MT_SERVER_HELLO, _SSL2_MT_ERROR):
            self._fail(ErrorReason.NOT_TLS, f"starts with {_preview(buf)}")
            return False
        if len(buf) < 2:
            return False
        length = ((buf[0] & 0x7F) << 8) | buf[1]
        if len(buf) < 2 + length:
            return False
        self._emit(_parse_sslv2(bytes(buf[2 : 2 + length])))
        return True


def _parse_server_hello(body: bytes) -> ServerHello:
    r = _Reader(body)
    version = r.u16()
    random = r.take(32)
    session_id = r.vec8()
    if len(session_id) > 32:
        raise _Malformed(f"session id of {len(session_id)} bytes")
    cipher_suite = r.u16()
    compression = r.u8()
    extensions = _read_extensions(r) if r.remaining else ()
    hrr = random == _HRR_RANDOM

    selected: int | None = None
    raw = _find_extension(extensions, ExtensionType.SUPPORTED_VERSIONS)
    if raw is not None:
        if len(raw) != 2:
            raise _Malformed("supported_versions in ServerHello is not one version")
        selected = int.from_bytes(raw, "big")
    group: int | None = None
    raw = _find_extension(extensions, ExtensionType.KEY_SHARE)
    if raw is not None:
        ks = _Reader(raw)
        group = ks.u16()
        if not hrr:
            ks.vec16()  # the server's share; we never complete the exchange
        ks.end()
    return ServerHello(
        version=version,
        cipher_suite=cipher_suite,
        selected_version=selected,
        key_share_group=group,
        session_id=session_id,
        extensions=extensions,
        is_hello_retry_request=hrr,
        random=random,
        compression_method=compression,
    )


def _parse_sslv2(body: bytes) -> SSLv2ServerHello | SSLv2Error:
    r = _Reader(body)
    msg_type = r.u8()
    if msg_type == _SSL2_MT_ERROR:
        code = r.u16()
        r.end()
        return SSLv2Error(code, _SSL2_ERRORS.get(code, f"unknown_{code}"))
    hit = r.u8()
    cert_type = r.u8()
    version = r.u16()
    cert_len, specs_len, conn_len = r.u16(), r.u16(), r.u16()
    certificate = r.take(cert_len)
    specs = r.take(specs_len)
    connection_id = r.take(conn_len)
    r.end()
    if specs_len % 3:
        raise _Malformed(f"SSLv2 cipher specs of {specs_len} bytes")
    return SSLv2ServerHello(
        cipher_kinds=tuple(
            int.from_bytes(specs[i : i + 3], "big") for i in range(0, len(specs), 3)
        ),
        certificate=certificate,
        version=version,
        session_id_hit=bool(hit),
        certificate_type=cert_type,
        connection_id=connection_id,
    )


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------


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
    offered_version = client_hello.version
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
    elif negotiated > min(offered_version, VERSIONS["TLSv1.2"]):
        # Without supported_versions the answer cannot be TLS 1.3 (RFC 8446 4.1.3), and it
        # must not exceed the version we offered.
        violations.append(f"server chose version {negotiated:#06x} above the one offered")
    protocol = protocol_name(negotiated)
    if protocol is None or protocol == "SSLv2":
        violations.append(f"unknown version {negotiated:#06x}")
        protocol = None

    chosen = server_hello.cipher_suite
    offered = chosen in client_hello.cipher_suites and chosen not in _SCSVS
    if not offered:
        violations.append(f"cipher suite {chosen:#06x} was not offered")
    suite = suites.by_code(chosen)
    if offered and protocol is not None and suite is not None and protocol not in suite.protocols:
        violations.append(f"{suite.name} cannot be used with {protocol}")
    if server_hello.compression_method != 0:
        violations.append(f"compression method {server_hello.compression_method} not offered")

    if protocol == "TLSv1.3":
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
    elif server_hello.is_hello_retry_request:
        violations.append("HelloRetryRequest outside TLS 1.3")
    return Negotiation(
        protocol=protocol,
        cipher_suite=chosen,
        suite_offered=offered,
        violations=tuple(violations),
    )


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


# --------------------------------------------------------------------------------------
# Byte helpers
# --------------------------------------------------------------------------------------


class _Malformed(Exception):
    """Internal: a length or field does not fit; becomes ProtocolError(MALFORMED)."""


class _Reader:
    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int) -> bytes:
        if n > self.remaining:
            raise _Malformed(f"field of {n} bytes overruns the {self.remaining} left")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def vec8(self) -> bytes:
        return self.take(self.u8())

    def vec16(self) -> bytes:
        return self.take(self.u16())

    def vec24(self) -> bytes:
        return self.take(int.from_bytes(self.take(3), "big"))

    def end(self) -> None:
        if self.remaining:
            raise _Malformed(f"{self.remaining} unexpected trailing bytes")


def _read_extensions(r: _Reader) -> tuple[tuple[int, bytes], ...]:
    block = _Reader(r.vec16())
    r.end()
    out: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    while block.remaining:
        ext_type = block.u16()
        data = block.vec16()
        if ext_type in seen:
            raise _Malformed(f"extension {ext_type} twice")
        seen.add(ext_type)
        out.append((ext_type, data))
    return tuple(out)


def _find_extension(extensions: tuple[tuple[int, bytes], ...], ext_type: int) -> bytes | None:
    for t, data in extensions:
        if t == ext_type:
            return data
    return None


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def _vec8(data: bytes) -> bytes:
    return bytes([len(data)]) + data


def _vec16(data: bytes) -> bytes:
    return _u16(len(data)) + data


def _u16_list(values: Iterable[int]) -> bytes:
    return _vec16(b"".join(_u16(v) for v in values))


def _handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def _record(content_type: int, version: int, fragment: bytes) -> bytes:
    return bytes([content_type]) + _u16(version) + _vec16(fragment)


def _preview(data: bytes | bytearray) -> str:
    """The first bytes, printable where possible, for ProtocolError details."""
    head = bytes(data[:16])
    if all(32 <= b < 127 for b in head):
        return repr(head.decode("ascii"))
    return head.hex()
