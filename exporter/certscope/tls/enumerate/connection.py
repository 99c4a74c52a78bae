"""The connections of one scan: limit, timeout and retry, backoff, counters, abort.

One :class:`Endpoint` per scan; every check sends its hellos through it. A connection ends
as soon as the server's answer is in: the ServerHello (or an alert), or, for key-exchange
checks, the rest of the first flight up to ServerHelloDone.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from ...certs import a_label
from ...errors import ScanFailure
from .. import hello as h
from .. import starttls as preambles
from ..flight import Flight
from .answer import MAX_ANSWER_BYTES, MAX_FLIGHT_BYTES, MAX_WARNINGS, Reader, Reading, reader_for
from .base import Answer, Stop
from .exchange import READ_SIZE, Exchange
from .poller import Poller, new_poller

__all__ = ["BACKOFF_MAX", "MAX_ANSWER_BYTES", "MAX_FLIGHT_BYTES", "MAX_WARNINGS", "Endpoint"]

#: Longest pause between connections when the server seems to rate-limit us.
BACKOFF_MAX: Final = 4.0
_BACKOFF_START: Final = 0.2
#: Attempts per hello when connects are refused after earlier successes (rate limiting).
_RATE_LIMIT_ATTEMPTS: Final = 5

#: Hellos refused by reset (twice each) before a server that never sent a byte is taken
#: for a filter and the scan stops.
_RESETS_BEFORE_GIVING_UP: Final = 3

#: Reads at most n bytes; b"" at end of stream.
Recv = Callable[[int], Awaitable[bytes]]

_STARTTLS_FAILURES: Final = (preambles.StartTLSRefused, preambles.StartTLSError)


class _Reset(Exception):
    """The connection was reset before the server said anything."""


@dataclass
class _Failures:
    """Failed attempts at one hello, by kind: each kind has its own retry budget."""

    timeouts: int = 0
    resets: int = 0
    refusals: int = 0
    starttls: int = 0


class Endpoint:
    """Every connection of one scan: limit, timeout and retry, backoff, counters, abort.

    :meth:`exchange` returns the server's final answer to a hello, or raises :class:`Stop`
    when none can be had; once :attr:`abort` is set every later call raises it at once.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        starttls_name: str | None,
        preamble_host: str,
        timeout: float,
        limiter: asyncio.Semaphore,
    ) -> None:
        self.host = host
        self.port = port
        self.starttls_name = starttls_name
        self.preamble_host = preamble_host
        self.timeout = timeout
        self.limiter = limiter
        self.addresses: list[tuple[int, str]] = []
        self.connections = 0
        self.connected = False  # some TCP connect succeeded
        self.answered = False  # some hello got a final answer
        self.spoke = False  # the server sent at least one byte after a hello
        self.reset_refusals = 0  # hellos taken as refused because of two resets
        self.abort: Stop | None = None
        self._pause_until = 0.0
        self._backoff = _BACKOFF_START
        self._poller: Poller | None = None

    def poller(self, loop: asyncio.AbstractEventLoop) -> Poller:
        """Where this scan's bare sockets wait for readiness (one per scan, see
        :mod:`.poller`); :meth:`close` releases it."""
        if self._poller is None:
            self._poller = new_poller(loop)
        return self._poller

    def close(self) -> None:
        if self._poller is not None:
            self._poller.close()
            self._poller = None

    def stop_all(self, reason: str, detail: str) -> Stop:
        if self.abort is None:
            self.abort = Stop(reason, detail)
        return self.abort

    async def resolve(self) -> None:
        literal = _ip_literal(self.host)
        if literal is not None:
            self.addresses.append(literal)  # what getaddrinfo would say, without a thread
            return
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                infos = await loop.getaddrinfo(
                    a_label(self.host), self.port, type=socket.SOCK_STREAM
                )
        except TimeoutError:
            raise self.stop_all(ScanFailure.DNS, f"resolving {self.host} timed out") from None
        except (socket.gaierror, UnicodeError, ValueError) as exc:
            raise self.stop_all(ScanFailure.DNS, f"cannot resolve {self.host}: {exc}") from None
        seen: set[tuple[int, str]] = set()
        for family, _, _, _, sockaddr in infos:
            address = (int(family), str(sockaddr[0]))
            if address not in seen:
                seen.add(address)
                self.addresses.append(address)
        if not self.addresses:
            raise self.stop_all(ScanFailure.DNS, f"{self.host} has no addresses")

    async def exchange(self, client_hello: h.ClientHello) -> Answer:
        """Send ``client_hello`` on a fresh connection and return the final answer."""
        answer = await self._exchange(client_hello, False)
        assert not isinstance(answer, Flight)
        return answer

    async def exchange_flight(self, client_hello: h.ClientHello) -> Answer | Flight:
        """Like :meth:`exchange`, reading the server's whole first flight (TLS 1.2 and
        older: the Certificate and the ServerKeyExchange follow the ServerHello in clear);
        a :class:`~certscope.tls.flight.Flight` comes back instead of a ServerHello."""
        return await self._exchange(client_hello, True)

    async def exchange_then_flight(
        self, client_hello: h.ClientHello, wanted: Callable[[h.ServerHello], bool]
    ) -> Answer | Flight:
        """Like :meth:`exchange`; when ``wanted(server_hello)``, the rest of the first flight
        is read too, on the same connection, and a complete
        :class:`~certscope.tls.flight.Flight` comes back instead of the ServerHello (which
        comes back alone when the flight cannot be had)."""
        return await self._exchange(client_hello, wanted)

    async def _exchange(self, client_hello: h.ClientHello, flight: Reading) -> Answer | Flight:
        failures = _Failures()
        while True:
            if self.abort is not None:
                raise self.abort
            async with self.limiter:
                await self._wait_pause()
                if self.abort is not None:
                    raise self.abort
                try:
                    answer = await self._once(client_hello, flight)
                except (TimeoutError, _Reset, OSError, *_STARTTLS_FAILURES) as exc:
                    given_up = self._failed(exc, failures)
                    if given_up is None:
                        continue
                    return given_up
            self.answered = True
            self._backoff = _BACKOFF_START
            return answer

    def _failed(self, exc: Exception, failures: _Failures) -> Answer | None:
        """After a failed attempt: None to try again, an answer to take instead, or
        :class:`~.base.Stop` raised (scan-wide through :meth:`stop_all` when every later
        connection would fail the same way)."""
        if isinstance(exc, TimeoutError):
            failures.timeouts += 1
            if failures.timeouts < 2:
                return None
            detail = f"no answer within {self.timeout:g} s (twice)"
            if not self.answered:
                raise self.stop_all(ScanFailure.TIMEOUT, detail) from None
            raise Stop(ScanFailure.TIMEOUT, detail) from None
        if isinstance(exc, _Reset):
            return self._reset(failures)
        if isinstance(exc, _STARTTLS_FAILURES):
            return self._starttls_failed(exc, failures)
        if isinstance(exc, ConnectionRefusedError):
            return self._refused(failures)
        assert isinstance(exc, OSError)
        text = exc.strerror or str(exc) or type(exc).__name__
        if not self.connected:
            raise self.stop_all(
                ScanFailure.CONNECT_ERROR,
                f"cannot connect to {self.host} port {self.port}: {text}",
            ) from None
        failures.resets += 1
        self._slow_down()
        if failures.resets < 2:
            return None
        raise Stop(ScanFailure.CONNECT_ERROR, f"connection failed: {text}") from None

    def _reset(self, failures: _Failures) -> Answer | None:
        # A reset instead of an answer is either a refusal or rate limiting; pause, ask
        # once more, and take a second reset as a refusal.
        failures.resets += 1
        self._slow_down()
        if failures.resets < 2:
            return None
        self.reset_refusals += 1
        if not self.spoke and self.reset_refusals >= _RESETS_BEFORE_GIVING_UP:
            raise self.stop_all(
                ScanFailure.CONNECTION_RESET,
                "every connection was reset before the server said anything",
            ) from None
        return h.ConnectionClosed()

    def _refused(self, failures: _Failures) -> Answer | None:
        if not self.connected:
            raise self.stop_all(
                ScanFailure.CONNECT_REFUSED, f"connection to {self.host} port {self.port} refused"
            ) from None
        failures.refusals += 1
        self._slow_down()
        if failures.refusals < _RATE_LIMIT_ATTEMPTS:
            return None
        raise Stop(
            ScanFailure.CONNECT_REFUSED,
            f"connections refused {failures.refusals} times after earlier successes",
        ) from None

    def _starttls_failed(
        self, exc: preambles.StartTLSRefused | preambles.StartTLSError, failures: _Failures
    ) -> Answer | None:
        failures.starttls += 1
        self._slow_down()
        if failures.starttls < 2:
            return None
        reason = (
            ScanFailure.STARTTLS_REFUSED
            if isinstance(exc, preambles.StartTLSRefused)
            else ScanFailure.STARTTLS_ERROR
        )
        raise self.stop_all(reason, f"STARTTLS: {exc}") from None

    def _slow_down(self) -> None:
        # Concurrent connections fail together; count them as one signal per pause, or a
        # burst of four failures would pause for the sum of four doublings.
        now = time.monotonic()
        if now < self._pause_until:
            return
        self._pause_until = now + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    async def _wait_pause(self) -> None:
        # One sleep, not a loop: a pause extended meanwhile applies to the next connection.
        delay = self._pause_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def pin(self, family: int, address: str) -> None:
        """A connect to ``address`` worked: stay on the first that does (one scan, one
        server)."""
        if not self.connected:
            self.connected = True
            self.addresses = [(family, address)]

    def next_address(self, tried: int, addresses: list[tuple[int, str]]) -> bool:
        """After the connect to ``addresses[tried]`` failed: whether to try the next one
        (only while no address has worked yet)."""
        return not self.connected and tried < len(addresses) - 1

    async def _once(self, client_hello: h.ClientHello, reading: Reading) -> Answer | Flight:
        """One connection: connect, preamble, hello, answer, all within ``timeout``.

        Without STARTTLS the connection is a bare non-blocking socket driven by loop
        callbacks (:class:`~.exchange.Exchange`): a hello out and one answer in need no
        transport, protocol or stream objects, nor a future per socket call. STARTTLS
        preambles speak a line protocol and get asyncio streams.
        """
        reader = reader_for(reading)
        try:
            if self.starttls_name is None:
                loop = asyncio.get_running_loop()
                return await Exchange(self, loop, client_hello.data, reader, self.timeout).answer()
            return await self._once_starttls(client_hello, reader)
        except (ConnectionResetError, BrokenPipeError):
            raise _Reset from None

    async def _once_starttls(self, client_hello: h.ClientHello, reader: Reader) -> Answer | Flight:
        assert self.starttls_name is not None
        sock: socket.socket | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.timeout) as limit:
                sock = await self._connect()
                stream, writer = await asyncio.open_connection(sock=sock, limit=preambles._MAX_LINE)
                await preambles.PREAMBLES[self.starttls_name](stream, writer, self.preamble_host)
                writer.write(client_hello.data)
                await writer.drain()
                return await self._read_stream(stream.read, reader, limit.when() or 0.0)
        finally:
            if writer is not None:
                await _close_stream(writer)
            elif sock is not None:
                sock.close()

    async def _connect(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        addresses = self.addresses
        for i, (family, address) in enumerate(addresses):
            self.connections += 1
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, (address, self.port))
            except BaseException as exc:
                sock.close()
                if not isinstance(exc, OSError) or not self.next_address(i, addresses):
                    raise
                continue
            self.pin(family, address)
            return sock
        raise AssertionError("no address to connect to")  # resolve() leaves one at least

    async def _read_stream(self, recv: Recv, reader: Reader, when: float) -> Answer | Flight:
        """The answer through a stream; the rest of a flight, when the reader reads on
        after the ServerHello, within half the time left to ``when`` (the connection's
        deadline on the loop's clock)."""
        answer = await self._pump(recv, reader)
        if answer is not None:
            return answer
        assert reader.hello is not None
        left = when - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(max(0.0, left / 2)):
                answer = await self._pump(recv, reader)
        except TimeoutError:
            return reader.hello
        assert answer is not None
        return answer

    async def _pump(self, recv: Recv, reader: Reader) -> Answer | Flight | None:
        """Feed ``reader`` until it answers, or (None) starts reading the rest of a flight."""
        resting = reader.hello is not None
        while True:
            try:
                data = await recv(READ_SIZE)
            except ConnectionResetError:
                answer = reader.reset()
            else:
                if data and reader.spoke_on_data:
                    self.spoke = True
                answer = reader.feed(data)
            if answer is not None:
                if reader.received:
                    self.spoke = True
                return answer
            if not resting and reader.hello is not None:
                return None


def _ip_literal(host: str) -> tuple[int, str] | None:
    """(family, address) for an IP address without a scope; None for anything else."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6 and "%" in host:
        return None  # scoped: let getaddrinfo say how to reach it
    return int(socket.AF_INET6 if ip.version == 6 else socket.AF_INET), str(ip)


async def _close_stream(writer: asyncio.StreamWriter) -> None:
    # Outside the timeout, so that it cannot expire during the clean-up and turn an answer
    # already read into a retry; skipped when the scan is being cancelled (deadline), which
    # must not wait for anything.
    writer.close()
    task = asyncio.current_task()
    if task is None or not task.cancelling():
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 0.2)
