"""The server's first flight up to ServerHelloDone, read in clear. Pure: bytes in, events out.

Up to TLS 1.2 everything the server sends before its Finished travels unencrypted: the
ServerHello, the Certificate chain, the stapled OCSP response (CertificateStatus), the
ServerKeyExchange with its (EC)DHE parameters, and ServerHelloDone. Reading them needs no key
exchange, so a certificate can be captured from a server whose only suites no TLS library
will negotiate any more (NULL, RC4, export), and the Diffie-Hellman group a server uses can be
read from the parameters it signs. TLS 1.3 encrypts everything after the ServerHello; a flight
parser is of no use there.

:class:`FlightParser` reuses the record and message helpers of :mod:`certscope.tls.hello.wire` and,
like :class:`~certscope.tls.hello.ServerHelloParser`, bounds what it holds: a server that
sends more than ``max_bytes`` before ServerHelloDone ends the flight with a
:class:`~certscope.tls.hello.ProtocolError` (``buffer_limit``).

:func:`read_flight` is the one stream adapter (the only I/O here): it feeds a reader into a
parser until the first final event.

Events::

    Flight             the flight up to ServerHelloDone (or up to where the server stopped,
                       with ``complete`` False when it hung up before ServerHelloDone)
    Alert              a fatal alert before any certificate
    SSLv2ServerHello   SSLv2: the SERVER-HELLO carries the certificate itself
    SSLv2Error, ConnectionClosed, ProtocolError   as in the hello codec
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from . import hello as h
from .hello import wire
from .hello.parser import parse_server_hello, parse_sslv2

__all__ = [
    "DHParams",
    "ECParams",
    "Flight",
    "FlightEvent",
    "FlightParser",
    "parse_key_exchange",
    "read_flight",
]

_HT_SERVER_HELLO: Final = 2
_HT_CERTIFICATE: Final = 11
_HT_SERVER_KEY_EXCHANGE: Final = 12
_HT_CERTIFICATE_REQUEST: Final = 13
_HT_SERVER_HELLO_DONE: Final = 14
_HT_CERTIFICATE_STATUS: Final = 22
_CT_CHANGE_CIPHER_SPEC: Final = 20
_CT_ALERT: Final = 21
_CT_HANDSHAKE: Final = 22
_OCSP_STATUS_TYPE: Final = 1
_NAMED_CURVE: Final = 3


@dataclass(frozen=True, slots=True)
class Flight:
    """What the server sent in clear after a ClientHello (TLS 1.2 and older)."""

    server_hello: h.ServerHello
    certificates: tuple[bytes, ...] = ()
    key_exchange: bytes | None = None
    """The ServerKeyExchange body, for :func:`parse_key_exchange`."""
    ocsp_response: bytes | None = None
    """A stapled OCSP response (CertificateStatus), DER."""
    certificate_requested: bool = False
    complete: bool = False
    """ServerHelloDone was seen: nothing of the flight is missing."""


FlightEvent = (
    Flight | h.Alert | h.SSLv2ServerHello | h.SSLv2Error | h.ConnectionClosed | h.ProtocolError
)


class _State(enum.Enum):
    HELLO = "hello"
    FLIGHT = "flight"
    DONE = "done"


class FlightParser:
    """Incremental parser for a server's first flight; :meth:`feed` returns final events.

    At most one final event is produced; afterwards input is ignored. Warning alerts are
    skipped. ``b""`` means end of stream: a flight cut short after its ServerHello is still
    returned (``complete`` False), with whatever it held.
    """

    def __init__(self, *, max_bytes: int) -> None:
        self._max = max_bytes
        self._received = 0
        self._buf = bytearray()
        self._hs = bytearray()
        self._state = _State.HELLO
        self._hello: h.ServerHello | None = None
        self._certs: tuple[bytes, ...] = ()
        self._ske: bytes | None = None
        self._ocsp: bytes | None = None
        self._cert_request = False
        self._out: list[FlightEvent] = []

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    def feed(self, data: bytes) -> list[FlightEvent]:
        if self.done:
            return []
        if not data:
            self._eof()
        else:
            self._received += len(data)
            self._buf += data
            try:
                self._records()
            except wire.Malformed as exc:
                self._emit(h.ProtocolError(h.HelloFailure.MALFORMED, str(exc)))
            if not self.done and self._received > self._max:
                self._emit(
                    h.ProtocolError(
                        h.HelloFailure.BUFFER_LIMIT,
                        f"more than {self._max} bytes before ServerHelloDone",
                    )
                )
        out, self._out = self._out, []
        return out

    # -- internals ---------------------------------------------------------------------

    def _emit(self, event: FlightEvent) -> None:
        if self.done:
            return
        self._out.append(event)
        self._state = _State.DONE
        self._buf.clear()
        self._hs.clear()

    def _flight(self, *, complete: bool) -> Flight:
        assert self._hello is not None
        return Flight(
            server_hello=self._hello,
            certificates=self._certs,
            key_exchange=self._ske,
            ocsp_response=self._ocsp,
            certificate_requested=self._cert_request,
            complete=complete,
        )

    def _eof(self) -> None:
        if self._hello is not None:
            # What arrived is kept: a server may hang up after its ServerHello or Certificate.
            self._emit(self._flight(complete=False))
        elif self._buf or self._hs:
            self._emit(h.ProtocolError(h.HelloFailure.TRUNCATED, "stream ended mid-flight"))
        else:
            self._emit(h.ConnectionClosed())

    def _records(self) -> None:
        buf = self._buf
        while not self.done and buf:
            if self._state is _State.HELLO and buf[0] & 0x80:
                if not self._sslv2():
                    return
                continue
            if len(buf) < 5:
                return
            content_type, major = buf[0], buf[1]
            length = int.from_bytes(buf[3:5], "big")
            if major != 3 or content_type not in (_CT_ALERT, _CT_HANDSHAKE, _CT_CHANGE_CIPHER_SPEC):
                self._emit(h.ProtocolError(h.HelloFailure.NOT_TLS, f"record type {content_type}"))
                return
            if length > wire.MAX_RECORD or length == 0:
                self._emit(h.ProtocolError(h.HelloFailure.RECORD_OVERFLOW, f"record of {length}"))
                return
            if len(buf) < 5 + length:
                return
            fragment = bytes(buf[5 : 5 + length])
            del buf[: 5 + length]
            if content_type == _CT_ALERT:
                self._alerts(fragment)
            elif content_type == _CT_HANDSHAKE:
                self._hs += fragment
                self._messages()
            else:  # ChangeCipherSpec: the rest is encrypted; keep what was seen
                self._stop_early()

    def _stop_early(self) -> None:
        if self._hello is not None and self._certs:
            self._emit(self._flight(complete=False))
        else:
            self._emit(h.ProtocolError(h.HelloFailure.UNEXPECTED_MESSAGE, "flight without a chain"))

    def _alerts(self, fragment: bytes) -> None:
        for i in range(0, len(fragment) - 1, 2):
            level, description = fragment[i], fragment[i + 1]
            alert = h.Alert(level, description, h.alert_name(description))
            if alert.fatal:
                if self._hello is not None and self._certs:
                    self._emit(self._flight(complete=False))
                else:
                    self._emit(alert)
                return

    def _messages(self) -> None:
        hs = self._hs
        while not self.done and len(hs) >= 4:
            msg_type = hs[0]
            length = int.from_bytes(hs[1:4], "big")
            if length > self._max:
                self._emit(h.ProtocolError(h.HelloFailure.BAD_LENGTH, f"message of {length} bytes"))
                return
            if len(hs) < 4 + length:
                return
            body = bytes(hs[4 : 4 + length])
            del hs[: 4 + length]
            self._message(msg_type, body)

    def _message(self, msg_type: int, body: bytes) -> None:
        if self._state is _State.HELLO:
            if msg_type != _HT_SERVER_HELLO:
                self._emit(h.ProtocolError(h.HelloFailure.UNEXPECTED_MESSAGE, f"type {msg_type}"))
                return
            self._hello = parse_server_hello(body)
            self._state = _State.FLIGHT
            if self._hello.selected_version is not None:
                # TLS 1.3: everything that follows is encrypted.
                self._emit(h.ProtocolError(h.HelloFailure.UNEXPECTED_MESSAGE, "TLS 1.3 answer"))
            return
        if msg_type == _HT_CERTIFICATE:
            self._certs = _certificate_list(body)
        elif msg_type == _HT_CERTIFICATE_STATUS:
            r = wire.Reader(body)
            if r.u8() == _OCSP_STATUS_TYPE:
                self._ocsp = r.vec24()
        elif msg_type == _HT_SERVER_KEY_EXCHANGE:
            self._ske = body
        elif msg_type == _HT_CERTIFICATE_REQUEST:
            self._cert_request = True
        elif msg_type == _HT_SERVER_HELLO_DONE:
            self._emit(self._flight(complete=True))

    def _sslv2(self) -> bool:
        buf = self._buf
        if len(buf) < 2:
            return False
        length = ((buf[0] & 0x7F) << 8) | buf[1]
        if len(buf) < 2 + length:
            return False
        self._emit(parse_sslv2(bytes(buf[2 : 2 + length])))
        return True


async def read_flight(
    recv: Callable[[int], Awaitable[bytes]],
    *,
    max_bytes: int,
    read_size: int = 16384,
    head: bytes = b"",
) -> tuple[FlightEvent, int]:
    """The server's first flight, read with ``recv(n)`` (a stream's ``read``, or the loop's
    ``sock_recv`` on a socket; ``b""`` at end of stream), and how many bytes it sent.
    ``head`` is what was read from the stream before (parsed first)."""
    parser = FlightParser(max_bytes=max_bytes)
    received = len(head)
    if head:
        for event in parser.feed(head):
            return event, received
    while True:
        try:
            data = await recv(read_size)
        except ConnectionResetError:
            data = b""  # a reset ends the stream like EOF: keep what arrived
        received += len(data)
        for event in parser.feed(data):
            return event, received
        if not data:
            return h.ConnectionClosed(), received


def _certificate_list(body: bytes) -> tuple[bytes, ...]:
    r = wire.Reader(body)
    block = wire.Reader(r.vec24())
    r.end()
    out: list[bytes] = []
    while block.remaining:
        out.append(block.vec24())
    return tuple(out)


# --------------------------------------------------------------------------------------
# ServerKeyExchange
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DHParams:
    """Finite-field Diffie-Hellman parameters a server signed (RFC 5246 7.4.3)."""

    prime: int
    generator: int
    public_bytes: int
    """Length of the server's public value, in bytes."""

    @property
    def bits(self) -> int:
        return self.prime.bit_length()


@dataclass(frozen=True, slots=True)
class ECParams:
    """The named curve of an ECDHE ServerKeyExchange (RFC 8422 5.4)."""

    group: int


def parse_key_exchange(kex: str, body: bytes) -> DHParams | ECParams | None:
    """The parameters in a ServerKeyExchange for a suite whose key exchange is ``kex``.

    ``kex`` is :attr:`certscope.tls.suites.CipherSuite.kex` (``DHE``, ``DHE_EXPORT``,
    ``ECDHE`` …). None for key exchanges without parameters certscope judges, or for a body
    that does not parse (a malformed message is no group to report).
    """
    try:
        r = wire.Reader(body)
        if kex in ("DHE", "DHE_EXPORT", "DH_anon", "DH_anon_EXPORT"):
            prime = int.from_bytes(r.vec16(), "big")
            generator = int.from_bytes(r.vec16(), "big")
            public = r.vec16()
            return DHParams(prime, generator, len(public)) if prime else None
        if kex in ("ECDHE", "ECDH_anon"):
            if r.u8() != _NAMED_CURVE:
                return None
            return ECParams(r.u16())
    except wire.Malformed:
        return None
    return None
