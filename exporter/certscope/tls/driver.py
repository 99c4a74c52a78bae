"""Moving a pyOpenSSL handshake's bytes: what the server sent is checked, then fed to OpenSSL;
what OpenSSL wrote is sent.

Two drivers share :class:`Inbound`'s checks (the first bytes look like TLS, the total stays
under the limit). :func:`drive_socket` runs a plain probe's handshake from the event loop's
reader callback on a bare socket: one future for the whole handshake instead of an awaited
``sock_recv``/``sock_sendall`` per flight (``bench/probe_steps.py`` measures the difference).
:func:`drive_channel` awaits a :class:`~.channel.StreamChannel`, for STARTTLS streams.
"""

from __future__ import annotations

import asyncio
import socket

from OpenSSL import SSL

from ..errors import ProbeFailure
from .channel import StreamChannel
from .failure import Abort, Failure
from .starttls import printable

READ_SIZE = 16384


def _looks_like_tls(first: bytes) -> bool:
    # A TLS record starts with a content type 20..24 and major version 3; an SSLv2 server
    # hello starts with the two-byte header's high bit set.
    if not first:
        return True
    if first[0] & 0x80:
        return True
    if 20 <= first[0] <= 24:
        return len(first) < 2 or first[1] == 3
    return False


class Inbound:
    """What the server has sent so far: raises :class:`Abort` for an end of stream, bytes
    that are not TLS, or more than ``limit`` bytes."""

    __slots__ = ("first", "limit", "received")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.received = 0
        self.first = True

    def check(self, data: bytes) -> None:
        if not data:
            raise Abort(
                Failure(
                    ProbeFailure.CONNECTION_CLOSED,
                    "server closed the connection during the handshake",
                )
            )
        if self.first:
            self.first = False
            if not _looks_like_tls(data):
                raise Abort(
                    Failure(
                        ProbeFailure.NOT_TLS,
                        f"server does not speak TLS; it sent {printable(data, 40)!r}",
                    )
                )
        self.received += len(data)
        if self.received > self.limit:
            raise Abort(
                Failure(
                    ProbeFailure.RESPONSE_TOO_LARGE,
                    f"server sent more than {self.limit // 1024} KiB during the handshake",
                )
            )


def _outbound(conn: SSL.Connection) -> bytes:
    """Everything OpenSSL has written and not yet sent."""
    try:
        out = conn.bio_read(READ_SIZE)
    except SSL.WantReadError:
        return b""  # nothing to send: the common case after a read
    chunk = out
    while len(chunk) == READ_SIZE:  # a flight over one read (a large client chain)
        try:
            chunk = conn.bio_read(READ_SIZE)
        except SSL.WantReadError:
            break
        out += chunk
    return out


def _step(conn: SSL.Connection) -> bool:
    """One ``do_handshake``: True once the handshake is complete."""
    try:
        conn.do_handshake()
    except SSL.WantReadError:
        return False
    return True


async def drive_channel(conn: SSL.Connection, channel: StreamChannel, limit: int) -> None:
    """The handshake over an awaited channel (STARTTLS streams)."""
    inbound = Inbound(limit)
    while True:
        done = _step(conn)
        out = _outbound(conn)
        if out:
            await channel.send(out)
        if done:
            return
        data = await channel.recv(READ_SIZE)
        inbound.check(data)
        conn.bio_write(data)


class _SocketDriver:
    """The handshake on a bare non-blocking socket, advanced by the loop's callbacks.

    Errors end the future: :class:`Abort`, OpenSSL's ``SSL.Error`` and ``OSError`` reach the
    awaiting handshake as they would from awaited calls. A send the server refuses because
    it has hung up is dropped: the next read shows why (an alert, or the end of the stream).
    """

    __slots__ = ("conn", "done", "fut", "inbound", "loop", "pending", "sock", "writing")

    def __init__(self, conn: SSL.Connection, sock: socket.socket, limit: int) -> None:
        self.conn = conn
        self.sock = sock
        self.inbound = Inbound(limit)
        self.loop = asyncio.get_running_loop()
        self.fut: asyncio.Future[None] = self.loop.create_future()
        self.pending = b""
        self.done = False
        self.writing = False

    def advance(self) -> None:
        self.done = _step(self.conn)
        self.pending += _outbound(self.conn)
        self.flush()

    def flush(self) -> None:
        while self.pending:
            try:
                sent = self.sock.send(self.pending)
            except (BlockingIOError, InterruptedError):
                if not self.writing:
                    self.writing = True
                    self.loop.add_writer(self.sock.fileno(), self.on_writable)
                return
            except ConnectionError:
                sent = len(self.pending)
            self.pending = self.pending[sent:]
        if self.writing:
            self.writing = False
            self.loop.remove_writer(self.sock.fileno())
        if self.done:
            self.fut.set_result(None)

    def on_readable(self) -> None:
        if self.fut.done():
            return
        try:
            data = self.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except (OSError, SSL.Error, Abort) as exc:
            self.fut.set_exception(exc)
            return
        self._fed(data)

    def _fed(self, data: bytes) -> None:
        try:
            self.inbound.check(data)
            self.conn.bio_write(data)
            self.advance()
        except (OSError, SSL.Error, Abort) as exc:
            if not self.fut.done():
                self.fut.set_exception(exc)

    def on_writable(self) -> None:
        if self.fut.done():
            return
        try:
            self.flush()
        except OSError as exc:
            self.fut.set_exception(exc)


async def drive_socket(conn: SSL.Connection, sock: socket.socket, limit: int) -> None:
    """The handshake over the bare socket ``sock``; returns when it is complete."""
    driver = _SocketDriver(conn, sock, limit)
    driver.advance()  # the ClientHello; raises at once if OpenSSL cannot build one
    if driver.fut.done():
        return await driver.fut
    fd = sock.fileno()
    driver.loop.add_reader(fd, driver.on_readable)
    try:
        await driver.fut
    finally:
        driver.loop.remove_reader(fd)
        if driver.writing:
            driver.loop.remove_writer(fd)
