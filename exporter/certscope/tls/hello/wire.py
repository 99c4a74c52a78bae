"""The TLS/SSL wire vocabulary shared by the hello codec: constants, names and byte helpers.

Everything here is pure data or a pure function on bytes. The client encoder, the parser and
the flight reader (:mod:`certscope.tls.flight`) build on it, as do the server-side encoders
that tests use to play a server.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "ALERT_NAMES",
    "MAX_RECORD",
    "VERSIONS",
    "ExtensionType",
    "Malformed",
    "NamedGroup",
    "Reader",
    "alert_name",
    "find_extension",
    "handshake",
    "preview",
    "protocol_name",
    "read_extensions",
    "record",
    "u16",
    "u16_list",
    "vec8",
    "vec16",
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

# RFC 5246 6.2.3: a record may carry at most 2^14 bytes plus 2048 of expansion.
MAX_RECORD: Final = 2**14 + 2048

CT_CHANGE_CIPHER_SPEC: Final = 20
CT_ALERT: Final = 21
CT_HANDSHAKE: Final = 22
CT_APPLICATION_DATA: Final = 23
CT_HEARTBEAT: Final = 24

HT_HELLO_REQUEST: Final = 0
HT_CLIENT_HELLO: Final = 1
HT_SERVER_HELLO: Final = 2

SSL2_MT_ERROR: Final = 0
SSL2_MT_CLIENT_HELLO: Final = 1
SSL2_MT_SERVER_HELLO: Final = 4

SCSV_RENEGOTIATION: Final = 0x00FF
SCSV_FALLBACK: Final = 0x5600
SCSVS: Final = frozenset({SCSV_RENEGOTIATION, SCSV_FALLBACK})

# RFC 8446 4.1.3: a HelloRetryRequest is a ServerHello whose random is this constant.
HRR_RANDOM: Final = hashlib.sha256(b"HelloRetryRequest").digest()
# RFC 8446 4.1.3: a TLS 1.3-capable server negotiating less ends its random with these.
DOWNGRADE_TLS12: Final = b"DOWNGRD\x01"
DOWNGRADE_TLS11: Final = b"DOWNGRD\x00"


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

SSL2_ERRORS: Final[Mapping[int, str]] = MappingProxyType(
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
# Byte helpers
# --------------------------------------------------------------------------------------


class Malformed(Exception):
    """A length or field does not fit; the parsers turn it into ProtocolError(MALFORMED)."""


class Reader:
    """Reads fields off a bytes object, raising :class:`Malformed` when one overruns it.

    Every server answer of an enumeration goes through here, so the fixed-size reads index
    the bytes directly rather than slicing and converting."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self._end = len(data)

    @property
    def remaining(self) -> int:
        return self._end - self._pos

    def _overrun(self, n: int) -> Malformed:
        return Malformed(f"field of {n} bytes overruns the {self._end - self._pos} left")

    def take(self, n: int) -> bytes:
        pos = self._pos
        stop = pos + n
        if stop > self._end:
            raise self._overrun(n)
        self._pos = stop
        return self._data[pos:stop]

    def u8(self) -> int:
        pos = self._pos
        if pos >= self._end:
            raise self._overrun(1)
        self._pos = pos + 1
        return self._data[pos]

    def u16(self) -> int:
        pos = self._pos
        if pos + 2 > self._end:
            raise self._overrun(2)
        self._pos = pos + 2
        data = self._data
        return (data[pos] << 8) | data[pos + 1]

    def vec8(self) -> bytes:
        return self.take(self.u8())

    def vec16(self) -> bytes:
        return self.take(self.u16())

    def vec24(self) -> bytes:
        return self.take(int.from_bytes(self.take(3), "big"))

    def end(self) -> None:
        if self._pos != self._end:
            raise Malformed(f"{self._end - self._pos} unexpected trailing bytes")


def read_extensions(r: Reader) -> tuple[tuple[int, bytes], ...]:
    block = Reader(r.vec16())
    r.end()
    out: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    while block.remaining:
        ext_type = block.u16()
        data = block.vec16()
        if ext_type in seen:
            raise Malformed(f"extension {ext_type} twice")
        seen.add(ext_type)
        out.append((ext_type, data))
    return tuple(out)


def find_extension(extensions: tuple[tuple[int, bytes], ...], ext_type: int) -> bytes | None:
    for t, data in extensions:
        if t == ext_type:
            return data
    return None


def u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def vec8(data: bytes) -> bytes:
    return bytes([len(data)]) + data


def vec16(data: bytes) -> bytes:
    return u16(len(data)) + data


def u16_list(values: Iterable[int]) -> bytes:
    return vec16(b"".join(u16(v) for v in values))


def handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def record(content_type: int, version: int, fragment: bytes) -> bytes:
    return bytes([content_type]) + u16(version) + vec16(fragment)


def preview(data: bytes | bytearray) -> str:
    """The first bytes, printable where possible, for ProtocolError details."""
    head = bytes(data[:16])
    if all(32 <= b < 127 for b in head):
        return repr(head.decode("ascii"))
    return head.hex()
