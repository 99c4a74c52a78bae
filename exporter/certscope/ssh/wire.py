"""SSH transport codec: identification line, binary packets, KEXINIT and the key-exchange reply.
No I/O.

Modelled on h11 and on :mod:`certscope.tls.hello`: the caller owns the socket; this module
turns parameters into bytes (:func:`identification`, :func:`build_packet`,
:func:`build_kexinit`, :func:`build_kex_init`) and the server's bytes into typed events
(:class:`ServerParser`). Only the unencrypted start of the transport (RFC 4253 sections 4-8)
is spoken: certscope never sends NEWKEYS, so no packet is ever encrypted or MACed.

Events produced by :class:`ServerParser`::

    Event
    ├── Identification     the server's "SSH-protoversion-softwareversion comments" line
    ├── KexInit            the server's algorithm lists (RFC 4253 section 7.1)
    ├── KexReply           KEXDH_REPLY / KEX_ECDH_REPLY: host key, server value, signature
    ├── Disconnect         SSH_MSG_DISCONNECT with its reason code and description
    ├── OtherMessage       any other message (IGNORE and DEBUG are skipped silently)
    ├── ConnectionClosed   end of stream
    ├── ProtocolError      not SSH, or SSH that breaks the rules; ``reason`` is a stable label
    └── NeedMoreData       nothing to report yet

After a ``ProtocolError``, ``Disconnect`` or ``ConnectionClosed`` the parser discards input, so
memory stays bounded however much the peer sends.
"""

from __future__ import annotations

import os
import re
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from ..errors import SSHWireFailure

__all__ = [
    "MAX_IDENTIFICATION_LINE",
    "MAX_PACKET",
    "ConnectionClosed",
    "Disconnect",
    "Event",
    "Identification",
    "KexInit",
    "KexReply",
    "Message",
    "NeedMoreData",
    "OtherMessage",
    "ProtocolError",
    "SSHWireFailure",
    "ServerParser",
    "build_disconnect",
    "build_kex_init",
    "build_kexinit",
    "build_packet",
    "identification",
    "mpint",
    "name_list",
    "string",
]

#: RFC 4253 4.2: the identification line is at most 255 characters including CR LF.
MAX_IDENTIFICATION_LINE = 255
#: Lines a server may send before its identification (RFC 4253 4.2 allows any number; a
#: bound keeps a hostile peer from feeding us for ever).
MAX_PREAMBLE_LINES = 32
#: OpenSSH's own limit on a packet (PACKET_MAX_SIZE); RFC 4253 6.1 requires at least 35000.
MAX_PACKET = 256 * 1024
#: Each name-list and string inside KEXINIT is bounded by the packet; names are at most 64
#: characters (RFC 4251 6) but real servers exceed that, so only the packet bound applies.
_BLOCK = 8


class Message(IntEnum):
    DISCONNECT = 1
    IGNORE = 2
    UNIMPLEMENTED = 3
    DEBUG = 4
    KEXINIT = 20
    NEWKEYS = 21
    KEX_INIT = 30  # KEXDH_INIT (RFC 4253 8) and KEX_ECDH_INIT (RFC 5656 4) share the number
    KEX_REPLY = 31  # KEXDH_REPLY and KEX_ECDH_REPLY


# --- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identification:
    """``SSH-2.0-OpenSSH_9.6p1 Ubuntu-3`` → proto ``2.0``, software ``OpenSSH_9.6p1``."""

    proto: str
    software: str
    comments: str
    line: bytes  # without CR LF: it goes into the exchange hash as V_S

    @property
    def banner(self) -> str:
        return self.line.decode("utf-8", "replace")


@dataclass(frozen=True)
class KexInit:
    cookie: bytes
    kex: tuple[str, ...]
    host_key: tuple[str, ...]
    ciphers_c2s: tuple[str, ...]
    ciphers_s2c: tuple[str, ...]
    macs_c2s: tuple[str, ...]
    macs_s2c: tuple[str, ...]
    compression_c2s: tuple[str, ...]
    compression_s2c: tuple[str, ...]
    languages_c2s: tuple[str, ...]
    languages_s2c: tuple[str, ...]
    first_kex_follows: bool
    payload: bytes  # the whole message: it goes into the exchange hash as I_S


@dataclass(frozen=True)
class KexReply:
    host_key: bytes  # K_S: the public host key or certificate blob
    server_value: bytes  # f (DH, as mpint bytes) or Q_S (ECDH, as string bytes)
    signature: bytes  # signature blob over the exchange hash


@dataclass(frozen=True)
class Disconnect:
    code: int
    description: str


@dataclass(frozen=True)
class OtherMessage:
    number: int


@dataclass(frozen=True)
class ConnectionClosed:
    pass


@dataclass(frozen=True)
class ProtocolError:
    reason: SSHWireFailure
    detail: str


@dataclass(frozen=True)
class NeedMoreData:
    pass


Event = (
    Identification
    | KexInit
    | KexReply
    | Disconnect
    | OtherMessage
    | ConnectionClosed
    | ProtocolError
    | NeedMoreData
)

# --- encoding -------------------------------------------------------------------------------


def string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def name_list(names: Sequence[str]) -> bytes:
    return string(",".join(names).encode("ascii"))


def mpint(n: int) -> bytes:
    """RFC 4251 5: two's complement, big-endian, no unnecessary leading bytes."""
    if n == 0:
        return string(b"")
    raw = n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True)
    return string(raw)


def identification(software: str) -> bytes:
    return f"SSH-2.0-{software}\r\n".encode("ascii")


def build_packet(payload: bytes, padding: bytes | None = None) -> bytes:
    """One unencrypted binary packet (RFC 4253 6): at least 4 bytes of padding, total a
    multiple of 8. ``padding`` fixes the padding bytes (tests); else it is random."""
    pad_len = _BLOCK - (5 + len(payload)) % _BLOCK
    if pad_len < 4:
        pad_len += _BLOCK
    if padding is None:
        padding = os.urandom(pad_len)
    elif len(padding) != pad_len:
        raise ValueError(f"padding must be {pad_len} bytes")
    return struct.pack(">IB", 1 + len(payload) + pad_len, pad_len) + payload + padding


def build_kexinit(
    kex: Sequence[str],
    host_key: Sequence[str],
    ciphers: Sequence[str],
    macs: Sequence[str],
    compression: Sequence[str] = ("none",),
    cookie: bytes | None = None,
) -> bytes:
    """A KEXINIT payload (not yet a packet), the same lists in both directions."""
    cookie = os.urandom(16) if cookie is None else cookie
    if len(cookie) != 16:
        raise ValueError("the cookie is 16 bytes")
    lists = (kex, host_key, ciphers, ciphers, macs, macs, compression, compression, (), ())
    return (
        bytes([Message.KEXINIT])
        + cookie
        + b"".join(name_list(x) for x in lists)
        + b"\x00"  # first_kex_packet_follows: we never guess
        + b"\x00\x00\x00\x00"
    )


def build_kex_init(client_value: bytes, dh: bool) -> bytes:
    """KEXDH_INIT (``e`` as mpint; ``client_value`` is its big-endian magnitude) or
    KEX_ECDH_INIT (``Q_C`` as string)."""
    body = mpint(int.from_bytes(client_value, "big")) if dh else string(client_value)
    return bytes([Message.KEX_INIT]) + body


def build_disconnect(code: int, description: str) -> bytes:
    return (
        bytes([Message.DISCONNECT])
        + struct.pack(">I", code)
        + string(description.encode("utf-8"))
        + string(b"")
    )


# --- decoding -------------------------------------------------------------------------------


#: Bytes that cannot appear in the text before the first packet (RFC 4253 4.2: US-ASCII and
#: UTF-8 text lines); only the current line is looked at, as packets follow it.
_NOT_TEXT = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


#: RFC 4251 5: names are printable US-ASCII without commas, separated by single commas.
_NAME_LIST = re.compile(r"[\x21-\x2b\x2d-\x7e]+(?:,[\x21-\x2b\x2d-\x7e]+)*\Z")


class _Malformed(Exception):
    pass


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Malformed(f"truncated at byte {self.pos}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        value: int = struct.unpack(">I", self.take(4))[0]
        return value

    def string(self) -> bytes:
        return self.take(self.u32())

    def name_list(self) -> tuple[str, ...]:
        raw = self.string()
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise _Malformed("a name-list is not ASCII") from None
        if not text:
            return ()
        if not _NAME_LIST.match(text):
            raise _Malformed("a name-list holds an empty or unprintable name")
        return tuple(text.split(","))


def parse_kexinit(payload: bytes) -> KexInit:
    """Raises ValueError for a malformed KEXINIT payload (``payload[0]`` is the message)."""
    try:
        r = _Reader(payload)
        if r.u8() != Message.KEXINIT:
            raise _Malformed("not a KEXINIT")
        cookie = r.take(16)
        kx, hk, c1, c2, m1, m2, z1, z2, l1, l2 = (r.name_list() for _ in range(10))
        follows = r.u8() != 0
        r.u32()  # reserved
    except _Malformed as exc:
        raise ValueError(str(exc)) from None
    return KexInit(cookie, kx, hk, c1, c2, m1, m2, z1, z2, l1, l2, follows, payload)


def _parse_identification(line: bytes) -> Identification | None:
    if not line.startswith(b"SSH-"):
        return None
    text = line.decode("utf-8", "replace")
    _, _, rest = text.partition("-")
    proto, _, rest = rest.partition("-")
    software, _, comments = rest.partition(" ")
    return Identification(proto=proto, software=software, comments=comments, line=line)


class ServerParser:
    """Turns the server's byte stream into events: first the identification, then packets."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._events: deque[Event] = deque()
        self._identified = False
        self._preamble_lines = 0
        self._done = False
        self._eof = False

    def receive_data(self, data: bytes) -> None:
        if not self._done:
            self._buf += data
            self._parse()

    def receive_eof(self) -> None:
        self._eof = True
        if not self._done:
            self._parse()
            if not self._done:
                self._finish(ConnectionClosed())

    def next_event(self) -> Event:
        return self._events.popleft() if self._events else NeedMoreData()

    def _finish(self, event: Event) -> None:
        self._events.append(event)
        self._done = True
        self._buf.clear()

    def _error(self, reason: SSHWireFailure, detail: str) -> None:
        self._finish(ProtocolError(reason, detail))

    def _parse(self) -> None:
        while not self._done:
            progressed = self._parse_line() if not self._identified else self._parse_packet()
            if not progressed:
                return

    def _parse_line(self) -> bool:
        end = self._buf.find(b"\n")
        line_so_far = self._buf[: end if end != -1 else MAX_IDENTIFICATION_LINE]
        if _NOT_TEXT.search(line_so_far) or line_so_far.startswith(b"HTTP/"):
            # Preamble lines and the identification are text; binary bytes (TLS, garbage) or
            # an HTTP status line mean the port speaks something else: say so at once
            # instead of waiting for a line that never comes.
            self._error(SSHWireFailure.NOT_SSH, "the server did not send an SSH identification")
            return False
        if end == -1:
            if len(self._buf) > MAX_IDENTIFICATION_LINE:
                self._too_long()
            return False
        if end + 1 > MAX_IDENTIFICATION_LINE:
            self._too_long()
            return False
        line = bytes(self._buf[:end]).rstrip(b"\r")
        del self._buf[: end + 1]
        ident = _parse_identification(line)
        if ident is not None:
            self._identified = True
            self._events.append(ident)
            return True
        self._preamble_lines += 1
        if self._preamble_lines > MAX_PREAMBLE_LINES:
            self._error(SSHWireFailure.NOT_SSH, f"no identification in {MAX_PREAMBLE_LINES} lines")
            return False
        return True

    def _too_long(self) -> None:
        if self._buf.startswith(b"SSH-"):
            self._error(
                SSHWireFailure.IDENTIFICATION_TOO_LONG,
                f"identification line longer than {MAX_IDENTIFICATION_LINE} bytes",
            )
        else:
            self._error(SSHWireFailure.NOT_SSH, "the server did not send an SSH identification")

    def _parse_packet(self) -> bool:
        if len(self._buf) < 4:
            return False
        length = struct.unpack(">I", self._buf[:4])[0]
        if length > MAX_PACKET:
            self._error(SSHWireFailure.PACKET_TOO_LARGE, f"packet of {length} bytes > {MAX_PACKET}")
            return False
        if length < 5:
            self._error(SSHWireFailure.BAD_PACKET, f"packet length {length} is too short")
            return False
        if len(self._buf) < 4 + length:
            return False
        packet = bytes(self._buf[4 : 4 + length])
        del self._buf[: 4 + length]
        pad = packet[0]
        if pad + 1 >= length:
            self._error(SSHWireFailure.BAD_PACKET, f"padding {pad} leaves no payload")
            return False
        self._message(packet[1 : length - pad])
        return True

    def _message(self, payload: bytes) -> None:
        number = payload[0]
        if number in (Message.IGNORE, Message.DEBUG):
            return
        if number == Message.KEXINIT:
            try:
                self._events.append(parse_kexinit(payload))
            except ValueError as exc:
                self._error(SSHWireFailure.MALFORMED_KEXINIT, str(exc))
            return
        if number == Message.KEX_REPLY:
            try:
                r = _Reader(payload[1:])
                self._events.append(KexReply(r.string(), r.string(), r.string()))
            except _Malformed as exc:
                self._error(SSHWireFailure.MALFORMED_KEX_REPLY, str(exc))
            return
        if number == Message.DISCONNECT:
            try:
                r = _Reader(payload[1:])
                code = r.u32()
                text = r.string().decode("utf-8", "replace")
            except _Malformed:
                code, text = 0, ""
            self._finish(Disconnect(code, text[:256]))
            return
        self._events.append(OtherMessage(number))
