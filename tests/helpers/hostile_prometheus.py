"""A hand-written HTTP server that misbehaves as a real Prometheus cannot be made to.

A real Prometheus neither drips its answer a byte at a time, nor answers 300 MB, nor sends JSON
of the wrong shape; ``certscope evidence`` must survive a server (or a proxy in front of one)
that does. Each connection is answered according to ``behaviour`` (a function of the request
path and body), on loopback, port 0, in a thread that the context manager stops.

    with HostilePrometheus(drip(b"HTTP/1.1 200 OK\\r\\n", every=1.0)) as url: ...
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Self

#: One answer: the pieces to send and the pause before each piece.
Answer = Iterator[tuple[float, bytes]]
Behaviour = Callable[[str, bytes], Answer]


def ok_json(body: bytes, content_type: str = "application/json") -> Answer:
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    yield 0.0, head + body


def drip(payload: bytes, every: float) -> Behaviour:
    """Send ``payload`` one byte every ``every`` seconds (never finishing in time)."""

    def answer(path: str, body: bytes) -> Answer:
        for i in range(len(payload)):
            yield every, payload[i : i + 1]

    return answer


def huge(total: int, piece: int = 1 << 20) -> Behaviour:
    """A 200 answer of ``total`` bytes of JSON-looking text, sent as fast as possible."""

    def answer(path: str, body: bytes) -> Answer:
        yield (
            0.0,
            (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {total}\r\nConnection: close\r\n\r\n"
            ).encode(),
        )
        chunk = b'{"status":"success","data":{"resultType":"matrix","result":['
        filler = b" " * piece
        sent = len(chunk)
        yield 0.0, chunk
        while sent < total:
            n = min(piece, total - sent)
            yield 0.0, filler[:n]
            sent += n

    return answer


def fixed(body: bytes) -> Behaviour:
    def answer(path: str, request: bytes) -> Answer:
        return ok_json(body)

    return answer


def _read_request(conn: socket.socket) -> bytes:
    """Headers and, after them, as many body bytes as Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return data
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        piece = conn.recv(65536)
        if not piece:
            break
        body += piece
    return head + b"\r\n\r\n" + body


def forward(upstream: str, fail: Callable[[str, bytes], bool]) -> Behaviour:
    """A proxy to a real Prometheus that answers 503 to the requests ``fail`` picks."""

    def answer(path: str, request: bytes) -> Answer:
        if fail(path, request):
            body = b'{"status":"error","errorType":"unavailable","error":"injected failure"}'
            yield (
                0.0,
                (
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                ).encode()
                + body,
            )
            return
        head, _, body = request.partition(b"\r\n\r\n")
        method = head.split(b" ", 1)[0].decode()
        req = urllib.request.Request(
            upstream + path,
            data=body if method == "POST" else None,
            method=method,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        yield (
            0.0,
            (
                f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
            ).encode()
            + payload,
        )

    return answer


class HostilePrometheus:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stopping = threading.Event()
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                request = _read_request(conn)
                line = request.split(b"\r\n", 1)[0].decode("latin-1")
                path = line.split(" ")[1] if " " in line else ""
                self.requests.append(path)
                for pause, piece in self.behaviour(path, request):
                    if self.stopping.wait(pause):
                        return
                    conn.sendall(piece)
            except OSError:
                return  # the client gave up: that is what the tests want

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()
        time.sleep(0)
