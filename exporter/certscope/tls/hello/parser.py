"""The server's first answer, parsed: bytes in, :mod:`.events` out. No I/O.

Every event except ``NeedMoreData`` and a warning ``Alert`` is final: after it the parser
discards input, so memory stays bounded however much the peer sends.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from .events import (
    NEED_MORE_DATA,
    Alert,
    ConnectionClosed,
    Event,
    HelloFailure,
    ProtocolError,
    ServerHello,
    SSLv2Error,
    SSLv2ServerHello,
)
from .wire import (
    CT_ALERT,
    CT_APPLICATION_DATA,
    CT_CHANGE_CIPHER_SPEC,
    CT_HANDSHAKE,
    CT_HEARTBEAT,
    HRR_RANDOM,
    HT_HELLO_REQUEST,
    HT_SERVER_HELLO,
    MAX_RECORD,
    SSL2_ERRORS,
    SSL2_MT_ERROR,
    SSL2_MT_SERVER_HELLO,
    ExtensionType,
    Malformed,
    Reader,
    alert_name,
    find_extension,
    preview,
    read_extensions,
)

__all__ = ["MAX_BUFFER", "ServerHelloParser", "parse_server_hello", "parse_sslv2"]

#: Most bytes the parser keeps between calls. A ServerHello is well under 1 KiB; a server
#: that has not produced one within 64 KiB is not going to.
MAX_BUFFER: Final = 64 * 1024


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
        if not self._buf and not self._hs and self._whole_server_hello(data):
            return
        self._buf += data
        try:
            self._process()
        except Malformed as exc:
            self._fail(HelloFailure.MALFORMED, str(exc))
        if not self._done and self.buffered > self._max_buffer:
            self._fail(HelloFailure.BUFFER_LIMIT, f"no answer within {self._max_buffer} bytes")

    def _whole_server_hello(self, data: bytes) -> bool:
        """The usual answer, parsed without buffering: ``data`` opens with a handshake
        record whose first message is a whole ServerHello. Exactly what :meth:`_process`
        would make of it (the checks are the same); False, having done nothing, otherwise."""
        if len(data) < 9 or data[0] != CT_HANDSHAKE or data[1] != 3 or data[2] > 4:
            return False
        length = (data[3] << 8) | data[4]
        size = (data[6] << 16) | (data[7] << 8) | data[8]
        if (
            data[5] != HT_SERVER_HELLO
            or not 0 < length <= MAX_RECORD
            or len(data) < 5 + length
            or size + 4 > min(length, self._max_buffer)
        ):
            return False
        try:
            self._emit(parse_server_hello(data[9 : 9 + size]))
        except Malformed as exc:
            self._fail(HelloFailure.MALFORMED, str(exc))
        return True

    def next_event(self) -> Event:
        return self._events.popleft() if self._events else NEED_MORE_DATA

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

    def _fail(self, reason: HelloFailure, detail: str) -> None:
        self._emit(ProtocolError(reason, detail))

    def _finish_eof(self) -> None:
        if self._buf or self._hs:
            self._fail(HelloFailure.TRUNCATED, f"stream ended with {self.buffered} bytes pending")
        else:
            self._emit(ConnectionClosed())

    def _process(self) -> None:
        while not self._done and self._buf:
            first = self._buf[0]
            if first & 0x80:
                if not self._process_sslv2():
                    return
            elif first in (
                CT_CHANGE_CIPHER_SPEC,
                CT_ALERT,
                CT_HANDSHAKE,
                CT_APPLICATION_DATA,
                CT_HEARTBEAT,
            ):
                if not self._process_record():
                    return
            else:
                self._fail(HelloFailure.NOT_TLS, f"starts with {preview(self._buf)}")

    def _process_record(self) -> bool:
        """Consume one TLS record if complete; False when more bytes are needed."""
        buf = self._buf
        if len(buf) >= 2 and buf[1] != 3:
            self._fail(HelloFailure.UNSUPPORTED_VERSION, f"record version {bytes(buf[1:3]).hex()}")
            return False
        if len(buf) >= 3 and buf[2] > 4:
            self._fail(HelloFailure.UNSUPPORTED_VERSION, f"record version 03{buf[2]:02x}")
            return False
        if len(buf) < 5:
            return False
        content_type = buf[0]
        length = int.from_bytes(buf[3:5], "big")
        if content_type not in (CT_ALERT, CT_HANDSHAKE):
            # Before the ServerHello nothing else is legal: CCS and application data only
            # follow it, and heartbeats need a negotiated extension.
            self._fail(HelloFailure.UNEXPECTED_CONTENT_TYPE, f"content type {content_type}")
            return False
        if length > MAX_RECORD:
            self._fail(HelloFailure.RECORD_OVERFLOW, f"record of {length} bytes")
            return False
        if length == 0:
            self._fail(HelloFailure.MALFORMED, "empty record")
            return False
        if len(buf) < 5 + length:
            return False
        fragment = bytes(buf[5 : 5 + length])
        del buf[: 5 + length]
        if content_type == CT_ALERT:
            self._process_alerts(fragment)
        else:
            self._hs += fragment
            self._process_handshake()
        return True

    def _process_alerts(self, fragment: bytes) -> None:
        if len(fragment) % 2:
            self._fail(HelloFailure.MALFORMED, f"alert record of {len(fragment)} bytes")
            return
        for i in range(0, len(fragment), 2):
            level, description = fragment[i], fragment[i + 1]
            if level not in (1, 2):
                self._fail(HelloFailure.MALFORMED, f"alert level {level}")
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
            if msg_type == HT_HELLO_REQUEST and length == 0:
                del hs[:4]  # harmless before a ServerHello; skip it
                continue
            if msg_type != HT_SERVER_HELLO:
                self._fail(HelloFailure.UNEXPECTED_MESSAGE, f"handshake message type {msg_type}")
                return
            if length + 4 > self._max_buffer:
                self._fail(HelloFailure.BAD_LENGTH, f"ServerHello claims {length} bytes")
                return
            if len(hs) < 4 + length:
                return
            body = bytes(hs[4 : 4 + length])
            self._emit(parse_server_hello(body))

    def _process_sslv2(self) -> bool:
        buf = self._buf
        if len(buf) >= 3 and buf[2] not in (SSL2_MT_SERVER_HELLO, SSL2_MT_ERROR):
            self._fail(HelloFailure.NOT_TLS, f"starts with {preview(buf)}")
            return False
        if len(buf) < 2:
            return False
        length = ((buf[0] & 0x7F) << 8) | buf[1]
        if len(buf) < 2 + length:
            return False
        self._emit(parse_sslv2(bytes(buf[2 : 2 + length])))
        return True


def parse_server_hello(body: bytes) -> ServerHello:
    r = Reader(body)
    version = r.u16()
    random = r.take(32)
    session_id = r.vec8()
    if len(session_id) > 32:
        raise Malformed(f"session id of {len(session_id)} bytes")
    cipher_suite = r.u16()
    compression = r.u8()
    extensions = read_extensions(r) if r.remaining else ()
    hrr = random == HRR_RANDOM

    selected: int | None = None
    raw = find_extension(extensions, ExtensionType.SUPPORTED_VERSIONS)
    if raw is not None:
        if len(raw) != 2:
            raise Malformed("supported_versions in ServerHello is not one version")
        selected = int.from_bytes(raw, "big")
    group: int | None = None
    raw = find_extension(extensions, ExtensionType.KEY_SHARE)
    if raw is not None:
        ks = Reader(raw)
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


def parse_sslv2(body: bytes) -> SSLv2ServerHello | SSLv2Error:
    r = Reader(body)
    msg_type = r.u8()
    if msg_type == SSL2_MT_ERROR:
        code = r.u16()
        r.end()
        return SSLv2Error(code, SSL2_ERRORS.get(code, f"unknown_{code}"))
    hit = r.u8()
    cert_type = r.u8()
    version = r.u16()
    cert_len, specs_len, conn_len = r.u16(), r.u16(), r.u16()
    certificate = r.take(cert_len)
    specs = r.take(specs_len)
    connection_id = r.take(conn_len)
    r.end()
    if specs_len % 3:
        raise Malformed(f"SSLv2 cipher specs of {specs_len} bytes")
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
