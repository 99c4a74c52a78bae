"""A scripted TLS/SSL responder for enumeration tests: it reads one ClientHello per
connection and answers with whatever a script says, built with the codec's server-side
encoders (``build_server_hello``, ``build_alert``, ``build_sslv2_server_hello``).

Import as ``from helpers.tlsresponder import Responder, ServerModel, Reply`` (pytest puts ``tests/``
on ``sys.path``)::

    model = ServerModel({"SSLv3": [0x0003, 0x0004]})            # an SSLv3-only server
    async with Responder(model) as srv:
        scan = await enumerate_posture(srv.host, srv.port, None)
        srv.hellos                                               # every hello it saw

A script is any callable ``(SeenHello) -> Reply``. :class:`ServerModel` is a well-behaved
server (version negotiation, server or client cipher order, TLS 1.3 groups with
HelloRetryRequest, SSLv2 SERVER-HELLO); :func:`misbehave` wraps a script so that hellos of
one protocol get a hostile reply instead. A :class:`Reply` sends bytes and then closes,
hangs (reads until the client leaves), streams a chunk for ever, or dribbles its bytes.

The responder runs on the test's own event loop. ``reset`` holds connection numbers (1 for
the first) to reset right after accepting them, as a rate-limiting server would;
``preamble="smtp"`` speaks an SMTP STARTTLS dialogue first (``refuse_starttls=True`` declines
it). ``connections`` counts accepted connections and ``peak`` the most that were being
answered at once (from accept until the reply is written).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

from certscope.tls import hello as h
from certscope.tls.hello import NamedGroup
from helpers import tls_encoders as enc

__all__ = [
    "Reply",
    "Responder",
    "Script",
    "SeenHello",
    "ServerModel",
    "misbehave",
]

_SCSVS = frozenset({0x00FF, 0x5600})
_MAX_HELLO = 64 * 1024
#: A fake certificate for SSLv2 SERVER-HELLOs: the enumerator never parses it.
FAKE_CERT = b"0\x82\x00\x10certscope-test!!"


@dataclass(frozen=True)
class SeenHello:
    """A ClientHello as the responder understood it."""

    protocol: str
    """Highest version offered: ``SSLv2``, ``SSLv3`` … ``TLSv1.3`` (from supported_versions)."""
    suites: tuple[int, ...]
    """Offered suites (SSLv2: cipher kinds), signalling values removed."""
    legacy_version: int = 0
    groups: tuple[int, ...] = ()
    key_share_group: int | None = None
    session_id: bytes = b""
    server_name: str | None = None


@dataclass(frozen=True)
class Reply:
    """What to do with one connection: send ``data``, then ``after``."""

    data: bytes = b""
    after: Literal["close", "hang", "endless", "dribble"] = "close"
    chunk: bytes = b""
    """For ``endless``: repeated until the client goes away."""
    interval: float = 0.1
    """For ``dribble``: seconds between single bytes of ``data``."""
    delay: float = 0.0
    """Seconds to wait before answering."""


Script = Callable[[SeenHello], Reply]


def alert(description: int, *, record_version: int = 0x0303) -> Reply:
    return Reply(enc.build_alert(description, record_version=record_version))


# --------------------------------------------------------------------------------------
# A well-behaved server
# --------------------------------------------------------------------------------------

_VERSIONS = dict(h.VERSIONS)


@dataclass
class ServerModel:
    """A server that accepts ``suites[protocol]`` (in its preference order).

    ``server_order`` False makes it take the client's first acceptable suite. In TLS 1.3 it
    picks the first of ``groups`` (its preference) that the client offers, answering with a
    HelloRetryRequest when the client sent no share for it.
    """

    suites: Mapping[str, Sequence[int]]
    server_order: bool = True
    groups: Sequence[int] = (NamedGroup.X25519,)

    def __call__(self, hello: SeenHello) -> Reply:
        if hello.protocol == "SSLv2":
            return self._sslv2(hello)
        version = self._negotiate(hello)
        if version is None:
            # An SSLv3-era server answers in the client's record version.
            return alert(70, record_version=min(hello.legacy_version, 0x0303) or 0x0301)
        protocol = h.protocol_name(version)
        assert protocol is not None
        accepted = list(self.suites.get(protocol, ()))
        offered = [c for c in hello.suites if c in accepted]
        if not offered:
            return alert(40, record_version=min(version, 0x0303))
        # Server order: its favourite among those offered; client order: the client's first.
        suite = next(c for c in accepted if c in offered) if self.server_order else offered[0]
        if protocol != "TLSv1.3":
            return Reply(
                enc.build_server_hello(
                    suite,
                    version=version,
                    random=bytes(range(32)),
                    session_id=b"\x01" * 32,
                    record_version=version,
                )
            )
        group = next((g for g in self.groups if g in hello.groups), None)
        if group is None:
            return alert(40)
        hrr = group != hello.key_share_group
        return Reply(
            enc.build_server_hello(
                suite,
                random=bytes(range(32)),
                session_id=hello.session_id,
                selected_version=0x0304,
                key_share_group=group,
                key_share=b"" if hrr else b"\x42" * 32,
                hello_retry_request=hrr,
            )
        )

    def _negotiate(self, hello: SeenHello) -> int | None:
        supported = sorted(_VERSIONS[p] for p, s in self.suites.items() if s and p != "SSLv2")
        if not supported:
            return None
        if hello.protocol == "TLSv1.3" and 0x0304 in supported:
            return 0x0304
        # Without TLS 1.3 a server ignores supported_versions and reads legacy_version.
        below = [v for v in supported if v <= hello.legacy_version and v != 0x0304]
        return max(below) if below else None

    def _sslv2(self, hello: SeenHello) -> Reply:
        kinds = [k for k in self.suites.get("SSLv2", ()) if k in hello.suites]
        if not self.suites.get("SSLv2"):
            return Reply()  # not an SSLv2 server: hang up
        if not kinds:
            return Reply(bytes.fromhex("8003 00 0001"))  # SSLv2 ERROR no-cipher
        return Reply(enc.build_sslv2_server_hello(kinds, FAKE_CERT))


def misbehave(script: Script, protocol: str, reply: Reply | Callable[[SeenHello], Reply]) -> Script:
    """``script``, except that hellos for ``protocol`` get ``reply``."""

    def wrapped(hello: SeenHello) -> Reply:
        if hello.protocol != protocol:
            return script(hello)
        return reply(hello) if callable(reply) else reply

    return wrapped


# --------------------------------------------------------------------------------------
# Reading ClientHellos
# --------------------------------------------------------------------------------------


async def read_hello(reader: asyncio.StreamReader) -> SeenHello:
    first = await reader.readexactly(2)
    if first[0] & 0x80:
        length = ((first[0] & 0x7F) << 8) | first[1]
        body = await reader.readexactly(length)
        return _sslv2_hello(body)
    rest = await reader.readexactly(3)
    length = int.from_bytes(rest[1:3], "big")
    if length > _MAX_HELLO:
        raise ValueError("hello too long")
    record = first + rest + await reader.readexactly(length)
    return _tls_hello(enc.decode_client_hello(record))


def _sslv2_hello(body: bytes) -> SeenHello:
    if body[0] != 1:
        raise ValueError("not an SSLv2 CLIENT-HELLO")
    version, specs_len, sid_len, _challenge_len = struct.unpack("!HHHH", body[1:9])
    specs = body[9 : 9 + specs_len]
    kinds = tuple(int.from_bytes(specs[i : i + 3], "big") for i in range(0, len(specs), 3))
    return SeenHello(
        protocol="SSLv2" if version == 2 else (h.protocol_name(version) or "SSLv2"),
        suites=kinds,
        legacy_version=version,
        session_id=body[9 + specs_len : 9 + specs_len + sid_len],
    )


def _u16s(data: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))


def _tls_hello(d: enc.DecodedClientHello) -> SeenHello:
    version = d.version
    raw = d.extension(h.ExtensionType.SUPPORTED_VERSIONS)
    if raw:
        version = max(_u16s(raw[1 : 1 + raw[0]]))
    groups: tuple[int, ...] = ()
    raw = d.extension(h.ExtensionType.SUPPORTED_GROUPS)
    if raw:
        groups = _u16s(raw[2:])
    share: int | None = None
    raw = d.extension(h.ExtensionType.KEY_SHARE)
    if raw and len(raw) >= 4:
        share = int.from_bytes(raw[2:4], "big")
    name: str | None = None
    raw = d.extension(h.ExtensionType.SERVER_NAME)
    if raw:
        name = raw[5:].decode("ascii")
    return SeenHello(
        protocol=h.protocol_name(version) or f"{version:#06x}",
        suites=tuple(c for c in d.cipher_suites if c not in _SCSVS),
        legacy_version=d.version,
        groups=groups,
        key_share_group=share,
        session_id=d.session_id,
        server_name=name,
    )


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------


@dataclass
class Responder:
    """A loopback server answering each ClientHello with ``script``; an async context manager."""

    script: Script
    reset: frozenset[int] = frozenset()
    preamble: Literal["smtp"] | None = None
    refuse_starttls: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    connections: int = 0
    active: int = 0
    peak: int = 0
    hellos: list[SeenHello] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._client, self.host, 0, backlog=128)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.active += 1
        self.peak = max(self.peak, self.active)
        answering = True
        try:
            if self.connections in self.reset:
                sock = writer.get_extra_info("socket")
                # SO_LINGER 0: close() sends RST, as an overloaded server's kernel would.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            if self.preamble == "smtp" and not await self._smtp(reader, writer):
                return
            hello = await read_hello(reader)
            self.hellos.append(hello)
            reply = self.script(hello)
            if reply.after == "close" and not reply.delay:
                await self._perform(reply, reader, writer)
                self.active -= 1
                answering = False
            else:
                await self._perform(reply, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client left, as the enumerator does right after an answer
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # a broken script must show in the test, not vanish
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            if answering:
                self.active -= 1
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _smtp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"220 responder.test ESMTP\r\n")
        await reader.readline()  # EHLO
        writer.write(b"250-responder.test\r\n250 STARTTLS\r\n")
        await reader.readline()  # STARTTLS
        if self.refuse_starttls:
            writer.write(b"454 TLS not available\r\n")
            await writer.drain()
            return False
        writer.write(b"220 go ahead\r\n")
        await writer.drain()
        return True

    async def _perform(
        self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.after == "dribble":
            for i in range(len(reply.data)):
                writer.write(reply.data[i : i + 1])
                await writer.drain()
                await asyncio.sleep(reply.interval)
            return
        if reply.data:
            writer.write(reply.data)
            await writer.drain()
        if reply.after == "hang":
            while await reader.read(4096):
                pass
        elif reply.after == "endless":
            while True:
                writer.write(reply.chunk)
                await writer.drain()
