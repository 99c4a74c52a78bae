"""One hello and its answer on a bare non-blocking socket, driven by loop callbacks.

An enumeration makes dozens of connections per endpoint, each one hello out and one answer
in, so what a connection costs beyond its system calls is most of the scan's CPU. Awaiting
the loop's ``sock_connect``, ``sock_sendall`` and ``sock_recv`` under an
``asyncio.timeout`` cost three futures, two reader/writer registrations, a timer context
and a task switch per step. Here one :class:`Exchange` per connection registers with the
loop once, sets one timer (``loop.call_at``) and completes one future; the task awaiting
it wakes up once, when the answer is in.

Steps, each a callback::

    connect_ex ── send at once ──(sent)──────────────────── reader ── recv, feed ── answer
                      └ not connected yet ── writer ── SO_ERROR, send ┘
                                    ─ timer ─ TimeoutError

On loopback, and often elsewhere, a non-blocking connect has completed by the time
``connect_ex`` returns, so the hello goes out straight away; otherwise ``send`` fails with
``EAGAIN`` (the kernel does not queue data before the handshake) and the socket waits to
become writable, as ``sock_connect`` would. A connect that fails before any address has
worked moves on to the next address of the host within the same time limit.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from typing import TYPE_CHECKING, Final

from ..flight import Flight
from .answer import Reader
from .base import Answer

if TYPE_CHECKING:
    from .connection import Endpoint

__all__ = ["READ_SIZE", "Exchange"]

READ_SIZE: Final = 16384

#: connect_ex's answers for a connect under way (what sock_connect takes for BlockingIOError).
_PENDING: Final = frozenset(
    {errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK, errno.EALREADY, errno.EINTR}
)

_IDLE: Final = 0
_WRITING: Final = 1
_READING: Final = 2


class Exchange:
    """Send ``data`` to the endpoint on a fresh connection and read the answer with
    ``reader``, within ``timeout`` seconds from now.

    ``await exchange.answer()`` returns the final answer, or raises what the connection
    raised (``OSError``, ``TimeoutError``, a reset the reader re-raises). The socket is closed
    as soon as the answer is in, and in any case when :meth:`answer` returns.
    """

    __slots__ = (
        "_addresses",
        "_data",
        "_ep",
        "_fd",
        "_future",
        "_index",
        "_loop",
        "_poller",
        "_reader",
        "_sock",
        "_timer",
        "_watching",
        "_when",
        "established",
        "resting",
    )

    def __init__(
        self,
        ep: Endpoint,
        loop: asyncio.AbstractEventLoop,
        data: bytes,
        reader: Reader,
        timeout: float,
    ) -> None:
        self._ep = ep
        self._loop = loop
        self._poller = ep.poller(loop)
        self._data = data
        self._reader = reader
        self._future: asyncio.Future[Answer | Flight] = loop.create_future()
        self._when = loop.time() + timeout
        self._timer = loop.call_at(self._when, self._expired)
        self._sock: socket.socket | None = None
        self._fd = -1
        self._watching = _IDLE
        # ep.addresses is replaced, not changed, once a connect works: iterate this one.
        self._addresses = ep.addresses
        self._index = 0
        self.established = False
        self.resting = False  # reading the rest of the flight, on a shorter limit
        try:
            self._connect()
        except BaseException:
            self._close()  # a bad address or port: nothing may be left on the loop
            raise

    async def answer(self) -> Answer | Flight:
        try:
            return await self._future
        finally:
            self._close()

    # -- connecting ----------------------------------------------------------------------

    def _connect(self) -> None:
        family, address = self._addresses[self._index]
        self._ep.connections += 1
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # no socket to be had (EMFILE): not a matter of this address
            self._fail(exc)
            return
        self._sock = sock
        self._fd = sock.fileno()
        try:
            sock.setblocking(False)
            err = sock.connect_ex((address, self._ep.port))
        except OSError as exc:
            self._connect_failed(exc)
            return
        if err and err not in _PENDING:
            self._connect_failed(OSError(err, os.strerror(err)))
            return
        self._send()

    def _connect_failed(self, exc: OSError) -> None:
        self._close_socket()
        if not self._ep.next_address(self._index, self._addresses):
            self._fail(exc)
            return
        self._index += 1
        self._connect()

    def _established(self) -> None:
        self.established = True
        self._ep.pin(*self._addresses[self._index])

    # -- sending -------------------------------------------------------------------------

    def _send(self) -> None:
        assert self._sock is not None
        try:
            sent = self._sock.send(self._data)
        except (BlockingIOError, InterruptedError):
            self._watch(_WRITING)  # not connected yet, or the send buffer is full
            return
        except OSError as exc:
            if self.established:
                self._fail(exc)
            else:
                self._connect_failed(exc)  # what sock_connect would have raised
            return
        if not self.established:
            self._established()
        self._data = self._data[sent:]
        self._watch(_WRITING if self._data else _READING)

    def _writable(self) -> None:
        if not self.established:
            assert self._sock is not None
            try:
                err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            except OSError as exc:
                self._fail(exc)
                return
            if err:
                self._connect_failed(OSError(err, os.strerror(err)))
                return
            self._established()
        self._send()

    # -- reading -------------------------------------------------------------------------

    def _readable(self) -> None:
        assert self._sock is not None
        reader = self._reader
        try:
            data: bytes | None = self._sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError:
            data = None
        except OSError as exc:
            self._fail(exc)
            return
        try:
            if data is None:
                answer = reader.reset()
            else:
                if data and reader.spoke_on_data:
                    self._ep.spoke = True
                answer = reader.feed(data)
        except ConnectionResetError as exc:  # reset before the server said anything
            self._fail(exc)
            return
        except BaseException as exc:
            # A bug in the reader: the awaiting task re-raises it, and the scan reports it
            # as an internal error instead of waiting for the timer; the loop logs it too.
            self._fail(exc)
            raise
        if answer is not None:
            self._done(answer)
        elif reader.hello is not None and not self.resting:
            # The ServerHello answered the question asked; a flight that does not follow
            # within half the time left must not turn it into a timeout.
            now = self._loop.time()
            self._timer.cancel()
            self._timer = self._loop.call_at(
                now + max(0.0, (self._when - now) / 2), self._flight_late
            )
            self.resting = True

    # -- ending --------------------------------------------------------------------------

    def _done(self, answer: Answer | Flight) -> None:
        if self._reader.received:
            self._ep.spoke = True
        if not self._future.done():
            self._future.set_result(answer)
        self._close()

    def _fail(self, exc: BaseException) -> None:
        if not self._future.done():
            self._future.set_exception(exc)
        self._close()

    def _expired(self) -> None:
        self._fail(TimeoutError())

    def _flight_late(self) -> None:
        assert self._reader.hello is not None
        self._done(self._reader.hello)

    def _watch(self, what: int) -> None:
        if what != self._watching:
            writing = what == _WRITING
            self._poller.watch(self._fd, writing, self._writable if writing else self._readable)
            self._watching = what

    def _unwatch(self) -> None:
        if self._watching != _IDLE:
            self._poller.unwatch(self._fd)
            self._watching = _IDLE

    def _close_socket(self) -> None:
        self._unwatch()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _close(self) -> None:
        self._timer.cancel()
        self._close_socket()
