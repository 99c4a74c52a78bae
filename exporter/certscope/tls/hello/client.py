"""The ClientHello encoder: parameters in, the bytes of one hello record out. No I/O.

Posture scanning needs hellos no TLS library would send: exactly the suites, versions and
groups under test, including long-dead ones. What does not vary between hellos of one kind
(the extensions bar the key share, and the SNI name's A-label) is encoded once and cached, so
an enumeration sending hundreds of hellos pays mostly for its random bytes.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519

from ...certs import a_label
from .wire import (
    CT_HANDSHAKE,
    HT_CLIENT_HELLO,
    SCSV_FALLBACK,
    SCSV_RENEGOTIATION,
    SSL2_MT_CLIENT_HELLO,
    VERSIONS,
    ExtensionType,
    NamedGroup,
    u16,
    u16_list,
    vec8,
    vec16,
)

__all__ = [
    "DEFAULT_GROUPS",
    "MAX_SUITES",
    "SIGNATURE_ALGORITHMS",
    "ClientHello",
    "HelloFlags",
    "build_client_hello",
]

#: Most suites one hello may offer. Several servers (and middleboxes) reject longer lists;
#: an enumerator offering more must split them across connections.
MAX_SUITES: Final = 128

# F5 BIG-IP (and some others) hang on ClientHellos of 256-511 bytes; RFC 7685 padding
# pushes such hellos to 512.
_F5_MIN: Final = 256
_F5_PAD_TO: Final = 512


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

_SIGNATURE_ALGORITHMS_LIST: Final = u16_list(SIGNATURE_ALGORITHMS)

# legacy_version, random, session id (always 32 bytes here) and the suites' length; then
# the record and handshake headers in one: type, version, length, and type << 24 | length.
_HEAD: Final = struct.Struct(">H32sB32sH")
_RECORD_HEAD: Final = struct.Struct(">BHHI")


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
    wire = _wire_suites(protocol, offered, flags) if protocol != "SSLv2" else b""
    group_list = _checked_groups(tuple(groups))
    if protocol == "SSLv2":
        return _build_sslv2_client_hello(offered, rng)

    version = VERSIONS[protocol]
    if rng is os.urandom:
        randoms = os.urandom(64)  # one call where two would do: random and session id
        client_random, session_id = randoms[:32], randoms[32:]
    else:
        client_random = _take(rng, 32)
        session_id = _take(rng, 32)
    sni = _sni_host(server_name) if protocol != "SSLv3" else None
    block, key_share_group = _extensions(protocol, group_list, sni, flags, rng)
    # RFC 8446 keeps legacy_version at TLS 1.2 and the record version at TLS 1.0 so that
    # old middleboxes pass the hello; older hellos use the record version a client of that
    # era would, capped at TLS 1.0 for the same reason.
    head = (
        _HEAD.pack(
            min(version, VERSIONS["TLSv1.2"]), client_random, len(session_id), session_id, len(wire)
        )
        + wire
        + b"\x01\x00"  # compression methods: null only
    )
    body = _with_padding(head, block)
    return ClientHello(
        protocol=protocol,
        data=_RECORD_HEAD.pack(
            CT_HANDSHAKE,
            min(version, VERSIONS["TLSv1.0"]),
            len(body) + 4,
            (HT_CLIENT_HELLO << 24) | len(body),
        )
        + body,
        cipher_suites=offered,
        groups=group_list,
        key_share_group=key_share_group,
        server_name=sni,
        session_id=session_id,
        random=client_random,
    )


def _wire_suites(protocol: str, offered: tuple[int, ...], flags: HelloFlags) -> bytes:
    """The cipher_suites vector's content: the offer plus the signalling values asked for,
    packed in one call (which also range-checks every code in C)."""
    if flags is HelloFlags.NONE:  # the usual case, without Flag arithmetic
        codes = offered if protocol == "TLSv1.3" else (*offered, SCSV_RENEGOTIATION)
    else:
        extra = []
        if protocol != "TLSv1.3" and HelloFlags.NO_RENEGOTIATION_SCSV not in flags:
            extra.append(SCSV_RENEGOTIATION)
        if HelloFlags.FALLBACK_SCSV in flags:
            extra.append(SCSV_FALLBACK)
        codes = (*offered, *extra)
    try:
        return _u16_array(len(codes)).pack(*codes)
    except struct.error:
        _out_of_range(protocol, offered, 0xFFFF)
        raise TypeError(f"cipher suite codes must be integers: {offered!r}") from None


@functools.cache
def _u16_array(n: int) -> struct.Struct:
    return struct.Struct(f">{n}H")


def _extensions(
    protocol: str, groups: tuple[int, ...], sni: str | None, flags: HelloFlags, rng: Rng
) -> tuple[bytes, int | None]:
    """The extensions block's content (empty for SSLv3) and the key share's group, if any."""
    if protocol == "SSLv3":
        return b"", None
    block = _fixed_extensions(protocol, groups, sni)
    if protocol != "TLSv1.3":
        return block, None
    share = b""
    key_share_group: int | None = None
    if groups and HelloFlags.EMPTY_KEY_SHARE not in flags:
        public = _key_share(groups[0], rng)
        if public is not None:
            key_share_group = groups[0]
            share = u16(groups[0]) + vec16(public)
    block += _extension(ExtensionType.KEY_SHARE, vec16(share))
    block += _extension(ExtensionType.PSK_KEY_EXCHANGE_MODES, vec8(b"\x01"))
    return block, key_share_group


@functools.lru_cache(maxsize=256)
def _fixed_extensions(protocol: str, groups: tuple[int, ...], sni: str | None) -> bytes:
    """Every extension before the key share, encoded. The same for every hello of one kind,
    hence cached: an enumeration sends hundreds of them."""
    tls13 = protocol == "TLSv1.3"
    out = b""
    if sni is not None:
        out += _extension(ExtensionType.SERVER_NAME, _server_name_ext(sni))
    if not tls13:
        # Some FIPS-mode servers refuse TLS 1.2 handshakes without it.
        out += _extension(ExtensionType.EXTENDED_MASTER_SECRET, b"")
    if groups:
        out += _extension(ExtensionType.SUPPORTED_GROUPS, u16_list(groups))
    out += _extension(ExtensionType.EC_POINT_FORMATS, vec8(b"\x00"))
    if VERSIONS[protocol] >= VERSIONS["TLSv1.2"]:
        # RFC 5246 7.4.1.4.1: meaningless, and not to be sent, before TLS 1.2.
        out += _extension(ExtensionType.SIGNATURE_ALGORITHMS, _SIGNATURE_ALGORITHMS_LIST)
    if tls13:
        out += _extension(ExtensionType.SUPPORTED_VERSIONS, vec8(u16(0x0304)))
    return out


def _extension(ext_type: int, data: bytes) -> bytes:
    return u16(ext_type) + vec16(data)


def _check_suites(protocol: str, offered: tuple[int, ...]) -> None:
    if not offered:
        raise ValueError("a hello must offer at least one cipher suite")
    if len(offered) > MAX_SUITES:
        raise ValueError(f"{len(offered)} cipher suites offered; at most {MAX_SUITES} per hello")
    if protocol == "SSLv2" and (min(offered) < 0 or max(offered) > 0xFFFFFF):
        _out_of_range(protocol, offered, 0xFFFFFF)
    if len(set(offered)) != len(offered):
        raise ValueError("duplicate cipher suite codes")


def _out_of_range(protocol: str, offered: tuple[int, ...], limit: int) -> None:
    code = next((c for c in offered if not 0 <= c <= limit), None)
    if code is None:
        return  # every code in range: not the problem
    raise ValueError(f"cipher suite code {code:#x} out of range for {protocol}")


@functools.lru_cache(maxsize=256)
def _checked_groups(groups: tuple[int, ...]) -> tuple[int, ...]:
    """The groups as plain ints, checked once per distinct list: scans offer few lists."""
    values = tuple(int(g) for g in groups)
    for value in values:
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"group code {value:#x} out of range")
    if len(set(values)) != len(values):
        raise ValueError("duplicate group codes")
    return values


def _take(rng: Rng, n: int) -> bytes:
    data = rng(n)
    if len(data) != n:
        raise ValueError(f"rng returned {len(data)} bytes, wanted {n}")
    return bytes(data)


@functools.lru_cache(maxsize=256)
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
    return vec16(b"\x00" + vec16(encoded))


def _key_share(group: int, rng: Rng) -> bytes | None:
    """A valid public share for ``group``, or None if it is not cheap to make.

    No hello is ever finished, so the private half is never used: with the default rng
    one share per group is made per process and reused, since making an EC key was the
    costliest part of a TLS 1.3 hello. An injected rng gets a share derived from it.
    """
    if rng is os.urandom:
        return _process_share(group)
    return _derive_share(group, rng)


@functools.cache
def _process_share(group: int) -> bytes | None:
    return _derive_share(group, os.urandom)


def _derive_share(group: int, rng: Rng) -> bytes | None:
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


def _with_padding(head: bytes, block: bytes) -> bytes:
    """ClientHello body = head + extensions block, padded (RFC 7685) out of the F5 range.
    An empty ``block`` means no extensions at all (SSLv3) unless padding is needed."""
    body = head + vec16(block) if block else head
    length = 4 + len(body)  # handshake header included, as the F5 bug counts it
    if not _F5_MIN <= length < _F5_PAD_TO:
        return body
    overhead = 4 + (0 if block else 2)  # padding extension header, maybe the block length
    pad = max(0, _F5_PAD_TO - length - overhead)
    block += _extension(ExtensionType.PADDING, bytes(pad))
    return head + vec16(block)


def _build_sslv2_client_hello(kinds: tuple[int, ...], rng: Rng) -> ClientHello:
    # SSLv2 CLIENT-HELLO: type, version, cipher-specs length, session-id length, challenge
    # length, then the three lists. Challenge of 16 bytes as clients of the time sent.
    challenge = _take(rng, 16)
    specs = b"".join(k.to_bytes(3, "big") for k in kinds)
    body = (
        bytes([SSL2_MT_CLIENT_HELLO])
        + u16(VERSIONS["SSLv2"])
        + u16(len(specs))
        + u16(0)
        + u16(len(challenge))
        + specs
        + challenge
    )
    return ClientHello(
        protocol="SSLv2",
        data=u16(0x8000 | len(body)) + body,  # two-byte header: no padding
        cipher_suites=kinds,
        groups=(),
        key_share_group=None,
        server_name=None,
        session_id=b"",
        random=challenge,
    )
