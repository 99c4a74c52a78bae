"""SSH posture probe: the transport handshake up to and including key exchange, no login.

One connection reads the server's identification and KEXINIT (every algorithm it offers) and
fetches the first host key; every further host-key type costs one more connection with one
key exchange, as ``ssh-keyscan`` and ``ssh-audit`` do. The RSA signature variants
(``rsa-sha2-512``, ``rsa-sha2-256``, ``ssh-rsa``) name one key, so they share one exchange,
and so do the RSA certificate variants. Each exchange is checked: the host key must sign the
exchange hash (RFC 4253 8), so a reported key is one the server holds. certscope never sends
NEWKEYS: it disconnects politely once it has the server's reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .. import __version__
from ..config import Target, format_duration
from ..errors import ProbeFailure
from ..results import SSHProbeResult
from ..tls.handshake import Failure
from . import kex, keys, wire
from .model import HostKey, ServerInfo, SSHScan

__all__ = ["CLIENT_SOFTWARE", "choose_kex", "plan_host_keys", "probe_target", "scan"]

log = logging.getLogger(__name__)

CLIENT_SOFTWARE = f"certscope_{__version__}"
_READ = 65536
#: Host-key fetches after the first run at most this many connections at once, so a probe
#: stays well inside OpenSSH's default MaxStartups (10 unauthenticated connections).
_PARALLEL = 3
_DISCONNECT_BY_APPLICATION = 11

_RSA = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")
_RSA_CERT = (
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
    "ssh-rsa-cert-v01@openssh.com",
)
_PLAIN = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-dss",
)
_CERT = (
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
)


def plan_host_keys(offered: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(host-key algorithms to fetch, one per key; notes on those that cannot be fetched)."""
    plan: list[str] = []
    notes: list[str] = []
    for family in (_RSA, _RSA_CERT):
        best = next((a for a in family if a in offered), None)
        if best is not None:
            plan.append(best)
    for alg in offered:
        if alg in _PLAIN or alg in _CERT:
            plan.append(alg)
        elif alg not in _RSA and alg not in _RSA_CERT:
            notes.append(f"host-key algorithm {alg} is not fetched (no verifier)")
    order = {a: i for i, a in enumerate(offered)}
    return tuple(sorted(plan, key=order.__getitem__)), tuple(notes)


def choose_kex(offered: Sequence[str]) -> str | None:
    """The cheapest key-exchange method certscope speaks that the server offers."""
    return next((m for m in kex.METHODS if m in offered), None)


class _Abort(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    parser: wire.ServerParser
    client_id: bytes
    server_id: wire.Identification | None = None
    server_kexinit: wire.KexInit | None = None

    async def event(self) -> wire.Event:
        """The next event that is not NeedMoreData; protocol failures raise _Abort."""
        while True:
            ev = self.parser.next_event()
            if not isinstance(ev, wire.NeedMoreData):
                break
            try:
                data = await self.reader.read(_READ)
            except OSError as exc:  # a reset: the server went away as surely as with an EOF
                text = exc.strerror or type(exc).__name__
                raise _Abort(
                    Failure(ProbeFailure.CONNECTION_CLOSED, f"connection lost: {text}")
                ) from None
            if data:
                self.parser.receive_data(data)
            else:
                self.parser.receive_eof()
        if isinstance(ev, wire.ProtocolError):
            reason = (
                ProbeFailure.NOT_SSH
                if ev.reason is wire.SSHWireFailure.NOT_SSH
                else ProbeFailure.SSH_PROTOCOL_ERROR
            )
            raise _Abort(Failure(reason, f"{ev.reason}: {ev.detail}"))
        if isinstance(ev, wire.Disconnect):
            raise _Abort(
                Failure(
                    ProbeFailure.SSH_DISCONNECT,
                    f"server disconnected (code {ev.code}): {_printable(ev.description)}",
                )
            )
        if isinstance(ev, wire.ConnectionClosed):
            raise _Abort(Failure(ProbeFailure.CONNECTION_CLOSED, "server closed the connection"))
        return ev

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.write(
                wire.build_packet(wire.build_disconnect(_DISCONNECT_BY_APPLICATION, "bye"))
            )
        self.writer.close()


def _printable(text: str, limit: int = 120) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text[:limit])


async def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), host
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _Abort(Failure(ProbeFailure.DNS, f"cannot resolve {host}: {exc.strerror}")) from None
    if not infos:
        raise _Abort(Failure(ProbeFailure.DNS, f"{host} has no addresses"))
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])


async def _open(family: socket.AddressFamily, ip: str, port: int) -> _Conn:
    try:
        reader, writer = await asyncio.open_connection(ip, port, family=family)
    except ConnectionRefusedError:
        raise _Abort(
            Failure(ProbeFailure.CONNECT_REFUSED, f"connection to {ip} port {port} refused")
        ) from None
    except OSError as exc:
        raise _Abort(
            Failure(
                ProbeFailure.CONNECT_ERROR,
                f"cannot connect to {ip} port {port}: {exc.strerror or exc}",
            )
        ) from None
    ident = wire.identification(CLIENT_SOFTWARE)
    conn = _Conn(reader, writer, wire.ServerParser(), ident.rstrip(b"\r\n"))
    try:
        writer.write(ident)
        await _handshake_start(conn)
    except BaseException:
        conn.close()
        raise
    return conn


async def _handshake_start(conn: _Conn) -> None:
    while conn.server_kexinit is None:
        ev = await conn.event()
        if isinstance(ev, wire.Identification):
            if ev.proto not in ("2.0", "1.99"):
                raise _Abort(
                    Failure(
                        ProbeFailure.SSH_VERSION,
                        f"server speaks SSH protocol {_printable(ev.proto)} only",
                    )
                )
            conn.server_id = ev
        elif isinstance(ev, wire.KexInit):
            conn.server_kexinit = ev


def _info(ident: wire.Identification, ki: wire.KexInit) -> ServerInfo:
    ciphers = tuple(dict.fromkeys((*ki.ciphers_c2s, *ki.ciphers_s2c)))
    macs = tuple(dict.fromkeys((*ki.macs_c2s, *ki.macs_s2c)))
    compression = tuple(dict.fromkeys((*ki.compression_c2s, *ki.compression_s2c)))
    return ServerInfo(
        banner=_printable(ident.banner, 255),
        proto=ident.proto,
        software=_printable(ident.software),
        comments=_printable(ident.comments),
        kex=ki.kex,
        host_key_algorithms=ki.host_key,
        ciphers=ciphers,
        macs=macs,
        compression=compression,
    )


async def _exchange(conn: _Conn, host_key_alg: str, method: str) -> HostKey:
    """One key exchange on an open connection, for one host-key algorithm."""
    assert conn.server_id is not None
    assert conn.server_kexinit is not None
    ski = conn.server_kexinit
    kexinit = wire.build_kexinit(
        [method],
        [host_key_alg],
        # Mirroring the server's own lists makes the negotiation succeed whatever it offers;
        # none of them is ever used, as certscope stops before NEWKEYS.
        ski.ciphers_c2s,
        ski.macs_c2s,
        ski.compression_c2s or ("none",),
    )
    state = kex.start(method)
    conn.writer.write(wire.build_packet(kexinit) + wire.build_packet(state.message()))
    while True:
        ev = await conn.event()
        if isinstance(ev, wire.KexReply):
            break
    return _check_reply(conn, host_key_alg, state, kexinit, ev)


def _check_reply(
    conn: _Conn, alg: str, state: kex.KexState, kexinit: bytes, reply: wire.KexReply
) -> HostKey:
    assert conn.server_id is not None
    assert conn.server_kexinit is not None
    method = state.method.name
    try:
        facts = keys.parse_blob(reply.host_key)
    except ValueError as exc:
        return HostKey(alg, None, method, error=f"unreadable host key: {exc}")
    if facts.blob_type != _blob_type_for(alg):
        return HostKey(
            alg, facts, method, error=f"asked for {alg}, the server sent {facts.blob_type}"
        )
    try:
        shared = state.shared_secret(reply.server_value)
        h = kex.exchange_hash(
            state,
            conn.client_id,
            conn.server_id.line,
            kexinit,
            conn.server_kexinit.payload,
            reply,
            shared,
        )
        assert facts.key is not None
        sig_alg = keys.verify_signature(facts.key, reply.signature, h)
    except ValueError as exc:
        return HostKey(alg, facts, method, error=f"key exchange failed: {exc}")
    return HostKey(alg, facts, method, signature_algorithm=sig_alg)


def _blob_type_for(alg: str) -> str:
    """The key blob type a host-key algorithm presents (RSA signature variants share one)."""
    if alg in _RSA:
        return "ssh-rsa"
    if alg in _RSA_CERT:
        return "ssh-rsa-cert-v01@openssh.com"
    return alg


async def _fetch(
    family: socket.AddressFamily, ip: str, port: int, alg: str, sem: asyncio.Semaphore
) -> HostKey:
    async with sem:
        try:
            conn = await _open(family, ip, port)
        except _Abort as exc:
            return HostKey(alg, None, error=exc.failure.message)
        try:
            assert conn.server_kexinit is not None
            method = choose_kex(conn.server_kexinit.kex)
            if method is None or alg not in conn.server_kexinit.host_key:
                return HostKey(alg, None, error="the server no longer offers it")
            return await _exchange(conn, alg, method)
        except _Abort as exc:
            return HostKey(alg, None, error=exc.failure.message)
        finally:
            conn.close()


async def scan(host: str, port: int) -> SSHScan:
    """Probe one server. Never raises for network or protocol trouble: it is in the result.
    The caller bounds the time (``asyncio.timeout``)."""
    try:
        family, ip = await _resolve(host, port)
        conn = await _open(family, ip, port)
    except _Abort as exc:
        return SSHScan(info=None, error=exc.failure)
    connections = 1
    try:
        assert conn.server_id is not None
        assert conn.server_kexinit is not None
        info = _info(conn.server_id, conn.server_kexinit)
        plan, notes = plan_host_keys(info.host_key_algorithms)
        method = choose_kex(info.kex)
        if method is None:
            failure = Failure(
                ProbeFailure.SSH_KEX_UNSUPPORTED,
                "no key-exchange method certscope speaks: " + ",".join(info.kex),
            )
            return SSHScan(info, (), failure, ip, connections, notes)
        if not plan:
            return SSHScan(info, (), None, ip, connections, notes)
        try:
            first = await _exchange(conn, plan[0], method)
        except _Abort as exc:
            first = HostKey(plan[0], None, method, error=exc.failure.message)
    finally:
        conn.close()
    sem = asyncio.Semaphore(_PARALLEL)
    rest = await asyncio.gather(*(_fetch(family, ip, port, alg, sem) for alg in plan[1:]))
    connections += len(rest)
    found = (first, *rest)
    bad = [k for k in found if k.error]
    error = None
    if bad:
        error = Failure(
            ProbeFailure.SSH_HOST_KEY_INVALID,
            "; ".join(f"{k.algorithm}: {k.error}" for k in bad),
        )
    return SSHScan(info, found, error, ip, connections, notes)


async def probe_target(target: Target, last_success: float | None = None) -> SSHProbeResult:
    """Probe one configured SSH target within its timeout; every outcome is a result."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(target.tls.timeout):
            # connect_host: the address already checked against probe.allowed_networks, if any
            result = await scan(target.connect_host, target.port)
    except TimeoutError:
        result = SSHScan(
            info=None,
            error=Failure(
                ProbeFailure.TIMEOUT,
                f"no complete SSH key exchange within {format_duration(target.tls.timeout)}",
            ),
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # A bug must cost one probe, not the exporter; the type is enough to find it.
        log.exception("SSH probe of %s failed unexpectedly", target.name)
        result = SSHScan(
            info=None,
            error=Failure(ProbeFailure.INTERNAL, f"internal error: {type(exc).__name__}"),
        )
    now = time.time()
    ok = result.info is not None and result.error is None
    return SSHProbeResult(
        name=target.name,
        address=target.address,
        labels=target.labels,
        timestamp=now,
        duration=time.perf_counter() - started,
        scan=result,
        last_success=now if ok else last_success,
    )
