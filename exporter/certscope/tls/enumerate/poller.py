"""Readiness of one scan's sockets: on Linux, one epoll instance of the scan's own.

A scan registers a socket with the event loop and drops it again for every connection, and
asyncio's ``add_reader``/``remove_reader`` are costly for that: a handle object, a selector
key looked up (raising ``KeyError`` on every first registration) and rebuilt, per call. On
Linux the scan's sockets go into an epoll instance of their own instead, whose descriptor the
loop watches once for the whole scan: registering a socket is one ``epoll_ctl``, and when
the loop finds the instance readable, one ``epoll_wait`` without blocking says which sockets
are ready. Level-triggered, so nothing ready is ever lost. Elsewhere the loop's own
``add_reader``/``add_writer`` serve (:class:`LoopPoller`).
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable

__all__ = ["EpollPoller", "LoopPoller", "Poller", "new_poller"]

Callback = Callable[[], None]


class EpollPoller:
    """The scan's sockets in one epoll instance, which the event loop watches."""

    __slots__ = ("_callbacks", "_epoll", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._epoll = select.epoll()
        self._callbacks: dict[int, Callback] = {}
        loop.add_reader(self._epoll.fileno(), self._dispatch)

    def watch(self, fd: int, writing: bool, callback: Callback) -> None:
        """Call ``callback`` whenever ``fd`` is readable (or, ``writing``, writable)."""
        events = select.EPOLLOUT if writing else select.EPOLLIN
        if fd in self._callbacks:
            self._epoll.modify(fd, events)
        else:
            self._epoll.register(fd, events)
        self._callbacks[fd] = callback

    def unwatch(self, fd: int) -> None:
        if self._callbacks.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def _dispatch(self) -> None:
        for fd, _ in self._epoll.poll(0):
            callback = self._callbacks.get(fd)
            if callback is not None:  # unwatched by an earlier callback of this round
                callback()

    def close(self) -> None:
        if not self._epoll.closed:
            self._loop.remove_reader(self._epoll.fileno())
            self._epoll.close()
        self._callbacks.clear()


class LoopPoller:
    """The same on the event loop's own reader and writer registrations."""

    __slots__ = ("_loop", "_writing")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._writing: dict[int, bool] = {}

    def watch(self, fd: int, writing: bool, callback: Callback) -> None:
        self.unwatch(fd)
        if writing:
            self._loop.add_writer(fd, callback)
        else:
            self._loop.add_reader(fd, callback)
        self._writing[fd] = writing

    def unwatch(self, fd: int) -> None:
        writing = self._writing.pop(fd, None)
        if writing:
            self._loop.remove_writer(fd)
        elif writing is not None:
            self._loop.remove_reader(fd)

    def close(self) -> None:
        for fd in list(self._writing):
            self.unwatch(fd)


Poller = EpollPoller | LoopPoller


def new_poller(loop: asyncio.AbstractEventLoop) -> Poller:
    return EpollPoller(loop) if hasattr(select, "epoll") else LoopPoller(loop)
