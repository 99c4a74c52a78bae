"""How an enumeration's connections are driven: loop callbacks on bare sockets, the scan's own
epoll instance, the fallback to the event loop's readers, the next address after a failed
connect, a connect still under way, and a reader bug. Real loopback servers throughout.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Literal

import pytest

from certscope.tls import hello as h
from certscope.tls.enumerate import ScanFailure, enumerate_posture
from certscope.tls.enumerate import connection as conn
from certscope.tls.enumerate.answer import AnswerReader
from certscope.tls.enumerate.base import Stop
from certscope.tls.enumerate.poller import EpollPoller, LoopPoller
from helpers import tls_encoders as enc
from helpers.tlsresponder import Responder, ServerModel

GOOD = ServerModel({"TLSv1.2": (0xC02F, 0x002F), "TLSv1.3": (0x1301,)})
TLS12_HELLO = enc.build_server_hello(0xC02F)


def _endpoint(port: int, *, starttls: str | None = None, timeout: float = 2.0) -> conn.Endpoint:
    return conn.Endpoint(
        "127.0.0.1",
        port,
        starttls_name=starttls,
        preamble_host="mx.test",
        timeout=timeout,
        limiter=asyncio.Semaphore(4),
    )


def _hello() -> h.ClientHello:
    return h.build_client_hello("TLSv1.2", [0xC02F, 0x002F])


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("poller", [EpollPoller, LoopPoller])
async def test_both_pollers_give_the_same_scan(
    poller: type[EpollPoller | LoopPoller], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conn, "new_poller", poller)
    async with Responder(GOOD) as srv:
        before = _open_fds()
        result = await enumerate_posture(srv.host, srv.port, None, timeout=2)
        after = _open_fds()
    assert result.complete, result.notes
    assert dict(result.suites) == {"TLSv1.2": (0xC02F, 0x002F), "TLSv1.3": (0x1301,)}
    assert result.connections == srv.connections
    assert after == before  # every socket closed, and the scan's epoll instance too


@pytest.mark.parametrize("starttls", [None, "smtp"])
async def test_a_refused_address_moves_on_to_the_next(starttls: Literal["smtp"] | None) -> None:
    # Nothing listens on 127.0.0.2 at the responder's port (it is bound to 127.0.0.1).
    async with Responder(lambda hello: GOOD(hello), preamble=starttls) as srv:
        ep = _endpoint(srv.port, starttls=starttls)
        ep.addresses = [(socket.AF_INET, "127.0.0.2"), (socket.AF_INET, "127.0.0.1")]
        try:
            answer = await ep.exchange(_hello())
        finally:
            ep.close()
    assert isinstance(answer, h.ServerHello)
    assert answer.cipher_suite == 0xC02F
    assert ep.connections == 2
    assert ep.connected
    assert ep.addresses == [(socket.AF_INET, "127.0.0.1")]  # the scan stays on it


async def test_once_an_address_worked_a_refusal_is_not_moved_past() -> None:
    async with Responder(GOOD) as srv:
        ep = _endpoint(srv.port)
        await ep.resolve()
        try:
            await ep.exchange(_hello())
            ep.addresses = [(socket.AF_INET, "127.0.0.2"), (socket.AF_INET, "127.0.0.1")]
            with pytest.raises(Stop) as stopped:
                await ep.exchange(_hello())
        finally:
            ep.close()
    assert stopped.value.reason == ScanFailure.CONNECT_REFUSED
    assert ep.connections == 1 + 5  # refused five times (rate limiting?), never moved on


@pytest.fixture
def full_backlog() -> Iterator[tuple[socket.socket, int]]:
    """A listening socket whose accept queue is full: the next connect stays under way
    (its SYN is dropped) until the queue has room and the SYN is sent again."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())
    try:
        yield listener, filler.getsockname()[1]
    finally:
        filler.close()
        listener.close()


def _serve_after(listener: socket.socket, delay: float, answers: list[bytes]) -> None:
    time.sleep(delay)
    first, _ = listener.accept()  # the filler: room for the connect under way
    first.close()
    sock, _ = listener.accept()
    with sock:
        sock.settimeout(5)
        answers.append(sock.recv(16384))
        sock.sendall(TLS12_HELLO)


async def test_a_connect_under_way_waits_for_the_socket_to_be_writable(
    full_backlog: tuple[socket.socket, int],
) -> None:
    listener, _ = full_backlog
    seen: list[bytes] = []
    server = threading.Thread(target=_serve_after, args=(listener, 0.2, seen), daemon=True)
    server.start()
    ep = _endpoint(listener.getsockname()[1], timeout=4)
    await ep.resolve()
    hello = _hello()
    started = time.perf_counter()
    try:
        answer = await ep.exchange(hello)
    finally:
        ep.close()
    elapsed = time.perf_counter() - started
    await asyncio.to_thread(server.join, 5)
    assert isinstance(answer, h.ServerHello)
    assert seen == [hello.data]  # sent whole, once the connect completed
    assert elapsed > 0.5  # the SYN had to be sent again: it did wait
    assert ep.connections == 1


async def test_a_connect_that_never_completes_times_out(
    full_backlog: tuple[socket.socket, int],
) -> None:
    listener, _ = full_backlog
    ep = _endpoint(listener.getsockname()[1], timeout=0.3)
    await ep.resolve()
    ep.connected = True  # an earlier hello worked: a timeout now ends this hello only
    started = time.perf_counter()
    try:
        with pytest.raises(Stop) as stopped:
            await ep.exchange(_hello())
    finally:
        ep.close()
    assert stopped.value.reason == ScanFailure.TIMEOUT
    assert ep.connections == 2  # one retry
    assert time.perf_counter() - started < 1.5


async def test_a_bug_in_the_reader_is_an_internal_error_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: AnswerReader, data: bytes) -> None:
        raise RuntimeError("reader bug")

    monkeypatch.setattr(AnswerReader, "feed", broken)
    loop = asyncio.get_running_loop()
    logged: list[str] = []
    loop.set_exception_handler(lambda _, context: logged.append(str(context.get("exception"))))
    try:
        async with Responder(GOOD) as srv:
            result = await enumerate_posture(srv.host, srv.port, None, timeout=5)
    finally:
        loop.set_exception_handler(None)
    assert result.error == ScanFailure.INTERNAL
    assert any("RuntimeError: reader bug" in n for n in result.notes), result.notes
    assert result.duration < 2  # not a timeout
    assert "reader bug" in logged
