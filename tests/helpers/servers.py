"""Real servers on loopback for probe tests: TLS, OpenSSL's s_server, hostile ones.

Import as ``from helpers.servers import tls_server, ...`` (pytest puts ``tests/`` on ``sys.path``; ``helpers`` is a package there).

Every Python server runs on one background event loop in a daemon thread, so a server is
independent of the test's event loop: the same object works in sync tests, async tests,
session-scoped fixtures and CLI subprocess tests. Each factory returns a :class:`Server` that is
both a context manager and an async context manager::

    with tls_server(leaf.chain, leaf.key) as srv:          # or: async with ...
        result = await probe(Target("t", srv.host, srv.port, TLSOptions(sni="web.test")))
        srv.connections[0].server_name                     # what the server saw: "web.test"

A :class:`Server` listens on ``host`` (``"127.0.0.1"`` by default, ``"::1"`` for IPv6) on an
ephemeral ``port``; ``address`` is ``host:port`` (``[::1]:port``). ``connections`` records one
:class:`Connection` per accepted client, filled in as it goes (SNI, version, cipher, ALPN,
client certificate, plaintext commands, error); read them through ``settled()``, which waits
until the server is done with every connection. ``close()`` (or leaving the ``with``) stops
listening and closes every open connection.

Factories:

- :func:`tls_server` — Python ``ssl``: cert chain + key, ``min_version``/``max_version``
  (``ssl.TLSVersion``), ``client_ca`` (require a client certificate issued by it), ``alpn``,
  ``sni_certs`` (server name → (chain, key), chosen by an SNI callback), ``ciphers`` (TLS 1.2
  cipher string). It completes the handshake and closes.
- :func:`http_server` (answers a plain HTTP 400), :func:`garbage_server` (bytes that are not
  TLS), :func:`silent_server` (accepts and never speaks), :func:`dribble_server` (a TLS-looking
  record, one byte per ``interval`` seconds), :func:`hangup_server` (reads the ClientHello,
  then closes or resets the connection without a byte).
- :func:`huge_certificate_server` (a single certificate of about 1 MiB) and
  :func:`long_chain_server` (a chain of ``length`` certificates), both built from a
  :class:`pki.TestPKI`.
- :class:`OpenSSLServer` — ``openssl s_server -www`` on ``127.0.0.1:PORT`` with any extra
  arguments (``-tls1_3``, ``-ciphersuites``, ``-groups``, ``-Verify``...); it waits until the
  port accepts connections and is terminated by PID on exit. It fails with a clear message if
  ``/usr/bin/openssl`` is missing (``make system-deps`` installs it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from .pki import TestPKI

__all__ = [
    "Connection",
    "FileServer",
    "GnuTLSServer",
    "NginxServer",
    "OCSPResponder",
    "OpenSSLServer",
    "Server",
    "dribble_server",
    "garbage_server",
    "http_server",
    "huge_certificate_server",
    "listening_port",
    "long_chain_server",
    "server_context",
    "silent_server",
    "stop_process",
    "tls_server",
]

T = TypeVar("T")
PathLike = str | os.PathLike[str]

#: How long a server waits for a client before giving up on a connection.
CLIENT_GRACE = 30.0


class _Loop:
    """One event loop in a daemon thread that hosts every Python test server."""

    _lock = threading.Lock()
    _instance: _Loop | None = None

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        # Failed handshakes are the point of many tests; keep them out of the log.
        self.loop.set_exception_handler(lambda loop, context: None)
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="test-servers", daemon=True
        )
        self.thread.start()

    @classmethod
    def get(cls) -> _Loop:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
        return self.submit(coro).result(timeout)


@dataclass
class Connection:
    """What a server saw from one client (filled in as the connection goes)."""

    peer: str
    server_name: str | None = None
    version: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    client_cert: bytes | None = None  # DER of the client's certificate, if it sent one
    commands: list[bytes] = field(default_factory=list)  # plaintext lines / packets received
    tls_done: bool = False
    error: str = ""
    closed: bool = False  # the server is done with this connection


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, Connection], Awaitable[None]]


class Server:
    """A server on loopback running ``handler`` for each client; see the module docstring."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.connections: list[Connection] = []
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        peer = writer.get_extra_info("peername")
        conn = Connection(peer=str(peer[0]) if peer else "")
        self.connections.append(conn)
        try:
            async with asyncio.timeout(CLIENT_GRACE):
                await self._handler(reader, writer, conn)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the client hung up, failed the handshake, ...
            conn.error = conn.error or f"{type(exc).__name__}: {exc}"
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)
            conn.closed = True

    def settled(self, count: int = 1, timeout: float = 5.0) -> list[Connection]:
        """Wait until at least ``count`` connections were accepted and all of them are over.

        A client can finish its handshake before the server has processed the last flight
        (TLS 1.3), so read ``connections`` through this after the client is done.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conns = list(self.connections)
            if len(conns) >= count and all(c.closed for c in conns):
                return conns
            time.sleep(0.01)
        raise AssertionError(
            f"server connections not settled after {timeout} s: {self.connections}"
        )

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, 0, backlog=256)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)
        self._server = None

    def start(self) -> Self:
        _Loop.get().run(self._start())
        return self

    def close(self) -> None:
        _Loop.get().run(self._stop())

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        await asyncio.wrap_future(_Loop.get().submit(self._start()))
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.wrap_future(_Loop.get().submit(self._stop()))


# --- TLS -----------------------------------------------------------------------------------


def server_context(
    cert: PathLike,
    key: PathLike,
    *,
    min_version: ssl.TLSVersion | None = None,
    max_version: ssl.TLSVersion | None = None,
    client_ca: PathLike | None = None,
    alpn: Sequence[str] = (),
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A server-side ``ssl.SSLContext`` (``cert`` may hold the whole chain, leaf first)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.fspath(cert), os.fspath(key))
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(os.fspath(client_ca))
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if ciphers:
        ctx.set_ciphers(ciphers)
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


def _record_tls(writer: asyncio.StreamWriter, conn: Connection) -> None:
    obj = writer.get_extra_info("ssl_object")
    conn.tls_done = True
    if obj is None:
        return
    conn.version = obj.version()
    cipher = obj.cipher()
    conn.cipher = cipher[0] if cipher else None
    conn.alpn = obj.selected_alpn_protocol()
    conn.client_cert = obj.getpeercert(binary_form=True)


class _SNI:
    """Records the server name of each handshake and switches certificates by it."""

    def __init__(self, contexts: Mapping[str, ssl.SSLContext]) -> None:
        self.contexts = {k.lower(): v for k, v in contexts.items()}

    def __call__(self, obj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        obj.certscope_sni = name  # type: ignore[attr-defined]
        if name and name.lower() in self.contexts:
            obj.context = self.contexts[name.lower()]


async def _upgrade(writer: asyncio.StreamWriter, ctx: ssl.SSLContext, conn: Connection) -> None:
    try:
        await writer.start_tls(ctx, ssl_handshake_timeout=CLIENT_GRACE)
    finally:
        obj = writer.get_extra_info("ssl_object")
        if obj is not None:
            conn.server_name = getattr(obj, "certscope_sni", None)
    _record_tls(writer, conn)


def _with_sni(
    ctx: ssl.SSLContext, sni_certs: Mapping[str, tuple[PathLike, PathLike]], **kw: Any
) -> ssl.SSLContext:
    others = {name: server_context(c, k, **kw) for name, (c, k) in sni_certs.items()}
    ctx.sni_callback = _SNI(others)
    for other in others.values():
        other.sni_callback = ctx.sni_callback
    return ctx


def tls_server(
    cert: PathLike,
    key: PathLike,
    *,
    host: str = "127.0.0.1",
    min_version: ssl.TLSVersion | None = None,
    max_version: ssl.TLSVersion | None = None,
    client_ca: PathLike | None = None,
    alpn: Sequence[str] = (),
    sni_certs: Mapping[str, tuple[PathLike, PathLike]] | None = None,
    ciphers: str | None = None,
) -> Server:
    """A TLS server that completes the handshake, records it and closes the connection."""
    kw: dict[str, Any] = dict(
        min_version=min_version,
        max_version=max_version,
        client_ca=client_ca,
        alpn=alpn,
        ciphers=ciphers,
    )
    ctx = _with_sni(server_context(cert, key, **kw), sni_certs or {}, **kw)

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Connection
    ) -> None:
        # The TLS layer is started by hand (not start_server(ssl=...)) so that every failed
        # handshake is recorded on the connection instead of logged by asyncio.
        await _upgrade(writer, ctx, conn)

    return Server(handler, host)


def huge_certificate_server(pki: TestPKI, size: int = 1024 * 1024) -> Server:
    """A TLS server presenting one certificate of about ``size`` bytes (plus its issuer)."""
    leaf = pki.leaf("huge.test", pad_bytes=size)
    return tls_server(leaf.chain, leaf.key)


def long_chain_server(pki: TestPKI, length: int = 100) -> Server:
    """A TLS server presenting a chain of ``length`` certificates."""
    leaf = pki.long_chain("long.test", length)
    return tls_server(leaf.chain, leaf.key)


async def _say(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


async def _until_eof(reader: asyncio.StreamReader) -> None:
    while await reader.read(4096):
        pass


# --- hostile servers ------------------------------------------------------------------------


def http_server(host: str = "127.0.0.1") -> Server:
    """A plain HTTP server: reads the request (a ClientHello, really) and answers 400."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, c: Connection) -> None:
        c.commands.append(await r.read(65536))
        body = b"<html><body>400 Bad Request</body></html>\r\n"
        await _say(
            w,
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body,
        )
        await _until_eof(r)

    return Server(handler, host)


#: Not TLS: the first byte is no TLS content type and the high bit is clear.
GARBAGE = b"\x07garbage\x00\x01\x02\xfe\xff not a TLS record at all" * 4


def garbage_server(data: bytes = GARBAGE, host: str = "127.0.0.1") -> Server:
    """Sends ``data`` as soon as a client connects, then waits for it to hang up."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, c: Connection) -> None:
        await _say(w, data)
        await _until_eof(r)

    return Server(handler, host)


def silent_server(host: str = "127.0.0.1") -> Server:
    """Accepts connections, reads whatever comes and never sends a byte."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, c: Connection) -> None:
        await _until_eof(r)

    return Server(handler, host)


#: The start of a TLS handshake record announcing a long ServerHello: it looks like TLS.
DRIBBLE = b"\x16\x03\x03\x40\x00\x02\x00\x3f\xfc\x03\x03" + bytes(range(32))


def dribble_server(interval: float = 1.0, host: str = "127.0.0.1") -> Server:
    """Answers with a TLS-looking record, one byte every ``interval`` seconds."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, c: Connection) -> None:
        for i in range(len(DRIBBLE)):
            await _say(w, DRIBBLE[i : i + 1])
            await asyncio.sleep(interval)
        await _until_eof(r)

    return Server(handler, host)


def hangup_server(reset: bool = False, host: str = "127.0.0.1") -> Server:
    """Reads the client's first bytes, then closes the connection without sending one: with
    ``reset``, abortively (``SO_LINGER`` 0: the client sees a TCP reset, not an end of
    stream). A TLS server that crashes or is killed mid-handshake; no real server can be made
    to do it on cue."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, c: Connection) -> None:
        c.commands.append(await r.read(65536))
        if reset:
            sock = w.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.close()

    return Server(handler, host)


# --- openssl s_server ------------------------------------------------------------------------


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc`` (by its PID, nothing else), then kill it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class OpenSSLServer:
    """``openssl s_server -www`` on loopback; a context manager. See the module docstring."""

    def __init__(
        self,
        cert: PathLike,
        key: PathLike,
        *args: str,
        chain: PathLike | None = None,
        host: str = "127.0.0.1",
        openssl: str = "/usr/bin/openssl",
    ) -> None:
        if not os.access(openssl, os.X_OK):
            found = shutil.which("openssl")
            if found is None:
                raise RuntimeError(
                    f"{openssl} not found: install the Debian package 'openssl' (make system-deps)"
                )
            openssl = found
        self.host = host
        self.port = 0
        self.args = [openssl, "s_server", "-www", "-cert", os.fspath(cert), "-key", os.fspath(key)]
        if chain is not None:
            self.args += ["-cert_chain", os.fspath(chain)]
        self.args += list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def _launch(self) -> bool:
        self.port = _free_port(self.host)
        accept = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        self.proc = subprocess.Popen(
            [*self.args, "-accept", accept],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.02)
        self._terminate()
        raise RuntimeError(f"openssl s_server did not listen within 10 s:\n{self.output()}")

    def __enter__(self) -> Self:
        try:
            for _ in range(3):  # the free port may be taken between probing and binding
                if self._launch():
                    return self
            raise RuntimeError(f"openssl s_server exited: {self.args}\n{self.output()}")
        except BaseException:
            self._terminate()
            self._log.close()
            raise

    def _terminate(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._terminate()
        self._log.close()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.__exit__, et, e, tb)


# --- gnutls-serv and nginx -------------------------------------------------------------------


def _tool(name: str, package: str) -> str:
    found = shutil.which(name) or (
        f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None
    )
    if found is None:
        raise RuntimeError(
            f"{name} not found: install the Debian package {package!r} (make system-deps)"
        )
    return found


def listening_port(pid: int) -> int | None:
    """The IPv4 port a process listens on, from /proc (gnutls-serv does not print it)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    with open("/proc/net/tcp") as f:
        lines = f.read().splitlines()[1:]
    for line in lines:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
            return int(fields[1].split(":")[1], 16)
    return None


class _Process:
    """A server process on loopback, stopped by PID; subclasses say how to start it."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def output(self) -> str:
        # pread: the child shares the file offset, which a seek would move under its writes.
        fd = self._log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _find_port(self) -> int | None:
        return self.port or None

    def _accepts(self, port: int) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.host, port), 0.5):
            return True
        return False

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(
            self._command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            port = self._find_port()
            if port and self._accepts(port):
                self.port = port
                return self
            time.sleep(0.02)
        log = self.output()
        self.__exit__(None, None, None)
        raise RuntimeError(f"{self._command()[0]} did not start:\n{log}")

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None
        self._log.close()


class GnuTLSServer(_Process):
    """``gnutls-serv`` with a priority string (``NONE:+VERS-TLS1.2:+ARCFOUR-128:…``): GnuTLS
    still serves RC4, 3DES and NULL suites, which OpenSSL 3 no longer does."""

    def __init__(self, cert: PathLike, key: PathLike, priority: str, *args: str) -> None:
        super().__init__()
        self.args = [
            _tool("gnutls-serv", "gnutls-bin"),
            "-p",
            "0",
            "--echo",
            "-q",
            "-a",
            "--priority",
            priority,
            "--x509certfile",
            os.fspath(cert),
            "--x509keyfile",
            os.fspath(key),
            *args,
        ]

    def _command(self) -> list[str]:
        return self.args

    def _find_port(self) -> int | None:
        return listening_port(self.proc.pid) if self.proc is not None else None


class NginxServer(_Process):
    """nginx serving one TLS ``server`` block on loopback. ``directives`` go into that block
    (``ssl_dhparam``, ``ssl_stapling``, ``ssl_ciphers`` …); files live in ``directory``."""

    def __init__(
        self, directory: Path, cert: PathLike, key: PathLike, directives: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.cert, self.key, self.directives = cert, key, tuple(directives)

    def _command(self) -> list[str]:
        self.port = _free_port(self.host)
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        conf = d / f"nginx-{self.port}.conf"
        block = "\n".join(f"    {line};" for line in self.directives)
        conf.write_text(
            f"""pid {d}/nginx-{self.port}.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen {self.host}:{self.port} ssl;
    ssl_certificate {os.fspath(self.cert)};
    ssl_certificate_key {os.fspath(self.key)};
{block}
    location / {{ return 200 "ok"; }}
  }}
}}
"""
        )
        return [
            _tool("nginx", "nginx"),
            "-p",
            str(d),
            "-c",
            str(conf),
            "-g",
            "daemon off; master_process off;",
        ]


class OCSPResponder(_Process):
    """``openssl ocsp`` as a responder on loopback, answering from an OpenSSL CA ``index``
    (``V``/``R`` lines), signing with the issuer itself; ``-nmin`` sets nextUpdate."""

    def __init__(
        self, index: PathLike, issuer: PathLike, key: PathLike, *, next_update_minutes: int = 5
    ) -> None:
        super().__init__()
        self.index, self.issuer, self.key = index, issuer, key
        self.minutes = next_update_minutes

    def _find_port(self) -> int | None:
        match = re.search(r"ACCEPT \S*:(\d+)", self.output())
        return int(match.group(1)) if match else None

    def _accepts(self, port: int) -> bool:
        # It says ACCEPT once listening. No test connection: the responder serves one
        # connection at a time and would wait for a request on it.
        return True

    def _command(self) -> list[str]:
        return [
            _tool("openssl", "openssl"),
            "ocsp",
            "-index",
            os.fspath(self.index),
            # OpenSSL 3.0's responder takes a port only (it binds every address, as
            # gnutls-serv does); clients here connect to 127.0.0.1.
            "-port",
            "0",
            "-rsigner",
            os.fspath(self.issuer),
            "-rkey",
            os.fspath(self.key),
            "-CA",
            os.fspath(self.issuer),
            "-nmin",
            str(self.minutes),
            "-ignore_err",
            "-text",  # one "OCSP Request Data:" per request: tests count them
        ]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class FileServer(_Process):
    """Python's ``http.server`` serving ``directory`` on loopback: a plain static file server
    (CRLs, caIssuers certificates), the way a CA publishes them."""

    def __init__(self, directory: PathLike) -> None:
        super().__init__()
        self.directory = directory

    def _command(self) -> list[str]:
        self.port = _free_port(self.host)
        return [
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            self.host,
            "--directory",
            os.fspath(self.directory),
            str(self.port),
        ]
