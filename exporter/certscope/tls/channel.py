"""The byte channel a probe's handshake runs over: a bare non-blocking socket, or streams when
a STARTTLS preamble needs line reads first.

A plain TLS probe sends a ClientHello, reads the server's flight and sends its Finished: two
writes and a few reads. Driving the bare socket from the event loop's callbacks
(:mod:`.driver`) avoids the transport, protocol and stream objects (and their bounded close)
that ``open_connection`` builds per connection, which measured about a tenth of a probe's CPU
(``bench/probe_steps.py``). STARTTLS keeps asyncio streams: its preambles read lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Callable
from functools import lru_cache

from ..certs import a_label
from ..errors import ProbeFailure
from . import starttls
from .failure import Abort, Failure

#: How long closing a stream channel may wait for the transport to finish (STARTTLS only).
_CLOSE_WAIT = 0.5


class Channel:
    """A connected bare socket; the handshake drives it from the loop's callbacks
    (:func:`~.driver.drive_socket`)."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def close(self) -> None:
        self.sock.close()


class StreamChannel(Channel):
    """The same channel over asyncio streams, for a STARTTLS preamble and what follows it."""

    __slots__ = ("reader", "writer")

    def __init__(
        self, sock: socket.socket, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(sock)
        self.reader = reader
        self.writer = writer

    async def recv(self, size: int) -> bytes:
        return await self.reader.read(size)

    async def send(self, data: bytes) -> None:
        # A server that has already hung up may have sent an alert first: the next recv
        # reads it (or the end of the stream), which says more than this send's error.
        self.writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CLOSE_WAIT):  # not wait_for: that costs a task
                await self.writer.wait_closed()


async def streams(channel: Channel) -> StreamChannel:
    """``channel`` with asyncio streams over its socket (bounded lines for STARTTLS)."""
    reader, writer = await asyncio.open_connection(sock=channel.sock, limit=starttls._MAX_LINE)
    return StreamChannel(channel.sock, reader, writer)


@lru_cache(maxsize=1024)
def _ip_family(host: str) -> socket.AddressFamily | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


async def _addresses(host: str, port: int) -> list[tuple[socket.AddressFamily, str]]:
    literal = _ip_family(host)
    if literal is not None:
        # An address needs no resolver: getaddrinfo runs in a thread pool, which costs more
        # than the rest of the connect for loopback and LAN targets.
        return [(literal, host)]
    loop = asyncio.get_running_loop()
    try:
        # IDNA 2008 A-label: the resolver must not apply Python's IDNA 2003 codec.
        infos = await loop.getaddrinfo(a_label(host), port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Abort(Failure(ProbeFailure.DNS, f"cannot resolve {host}: {exc.strerror}")) from None
    except ValueError as exc:
        raise Abort(Failure(ProbeFailure.DNS, f"cannot resolve {exc}")) from None
    if not infos:
        raise Abort(Failure(ProbeFailure.DNS, f"{host} has no addresses"))
    return [(family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos]


async def _connect_one(family: socket.AddressFamily, ip: str, port: int) -> Channel:
    loop = asyncio.get_running_loop()
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        # As asyncio's transports do: the Finished must not wait for an ACK (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.sock_connect(sock, (ip, port))
    except BaseException:
        sock.close()  # a cancelled or failed connect must not leak the descriptor
        raise
    return Channel(sock)


async def connect(host: str, port: int, mark: Callable[[str], None]) -> tuple[Channel, str]:
    """A channel to the first address of ``host`` that accepts, and that address; ``mark``
    is called as each phase (resolve, connect) ends. Raises :class:`Abort` otherwise."""
    addrs = await _addresses(host, port)
    mark("resolve")
    last: Failure | None = None
    for family, ip in addrs:
        try:
            channel = await _connect_one(family, ip, port)
        except ConnectionRefusedError:
            last = Failure(ProbeFailure.CONNECT_REFUSED, f"connection to {ip} port {port} refused")
            continue
        except OSError as exc:
            last = Failure(
                ProbeFailure.CONNECT_ERROR,
                f"cannot connect to {ip} port {port}: {exc.strerror or exc}",
            )
            continue
        mark("connect")
        return channel, ip
    assert last is not None
    raise Abort(last)
