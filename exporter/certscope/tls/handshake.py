"""One full TLS handshake on asyncio that captures the chain whatever its validity.

OpenSSL runs on memory BIOs (pyOpenSSL), and asyncio streams move the bytes. Verification is
off during the handshake on purpose: an expired, self-signed or mismatched certificate must
still be captured and reported, and :mod:`certscope.verify` judges it afterwards.

Failures never escape as exceptions: :func:`handshake` returns an :class:`Outcome` whose
``error`` carries a :class:`~certscope.errors.ProbeFailure` reason.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from OpenSSL import SSL, crypto

from ..certs import a_label, shared, shared_der
from ..errors import ProbeFailure
from . import starttls
from .channel import Channel, StreamChannel, connect, streams
from .driver import drive_channel, drive_socket
from .failure import Abort
from .failure import Failure as Failure  # part of Outcome, which callers import from here
from .options import TLSOptions
from .suites import iana_name

log = logging.getLogger(__name__)

#: Only this many certificates of a presented chain are parsed and exported as slots (a chain
#: of 100 is an attack); :attr:`Outcome.chain_length` still counts every one presented.
MAX_CHAIN = 16


@dataclass(frozen=True, slots=True)
class Negotiated:
    version: str
    cipher: str
    group: str = ""
    alpn: str = ""


@dataclass(frozen=True, slots=True)
class Phases:
    """A probe's phase timings, packed: every stored result holds its own, and as a tuple of
    (name, seconds) tuples they were 300 bytes. The names are one tuple shared by every probe
    that went through the same phases; the seconds are 8-byte floats in one bytes object."""

    names: tuple[str, ...] = ()
    seconds: bytes = b""

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, float]]) -> Phases:
        held = tuple(pairs)
        names = shared(tuple(name for name, _ in held))
        return cls(names, struct.pack(f"{len(held)}d", *(seconds for _, seconds in held)))

    def __iter__(self) -> Iterator[tuple[str, float]]:
        return zip(self.names, memoryview(self.seconds).cast("d"), strict=True)

    def __len__(self) -> int:
        return len(self.names)


#: Every distinct sequence of phase names probes went through, in order of first sight:
#: packed timings name theirs by its place here. The names come from the handshake's code
#: (a few fixed sequences), never from a peer; the bound only guards against a bug.
_PHASE_NAMES: list[tuple[str, ...]] = []
_PHASE_INDEX: dict[tuple[str, ...], int] = {}
_MAX_PHASE_NAMES = 1 << 16


def pack_phases(phases: Phases) -> bytes:
    """Phase timings as one plain bytes object, what a stored result holds: the outcome's
    packed seconds, then two bytes naming the sequence of names. A :class:`Phases` is an
    object and a bytes object; a result held 112 bytes for them, now 64."""
    index = _PHASE_INDEX.get(phases.names)
    if index is None:
        if len(_PHASE_NAMES) >= _MAX_PHASE_NAMES:
            raise ValueError("too many distinct sequences of phase names")
        index = _PHASE_INDEX[phases.names] = len(_PHASE_NAMES)
        _PHASE_NAMES.append(phases.names)
    return phases.seconds + index.to_bytes(2, "little")


def unpack_phases(packed: bytes) -> tuple[tuple[str, float], ...]:
    """The (name, seconds) pairs of :func:`pack_phases`'s bytes (none for empty bytes)."""
    if not packed:
        return ()
    names = _PHASE_NAMES[int.from_bytes(packed[-2:], "little")]
    # The doubles come first, where a bytes object's data is 8-byte aligned.
    return tuple(zip(names, memoryview(packed)[:-2].cast("d"), strict=True))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one connection attempt produced. ``chain`` is kept even when ``error`` is set."""

    chain: tuple[bytes, ...] = ()
    chain_truncated: bool = False
    chain_length: int = 0  # certificates presented, including those beyond MAX_CHAIN
    negotiated: Negotiated | None = None
    client_cert_required: bool = False
    peer_address: str = ""
    error: Failure | None = None
    # Given as (name, seconds) pairs, held as :class:`Phases`.
    phases: Phases | tuple[tuple[str, float], ...] = field(default=())
    captured_by: str = "handshake"  # "hello": read from the first flight after a failure
    ocsp_response: bytes | None = None  # the stapled OCSP response, DER

    def __post_init__(self) -> None:
        if not isinstance(self.phases, Phases):
            object.__setattr__(self, "phases", Phases.of(self.phases))

    @property
    def presented(self) -> int:
        """How many certificates the server presented (``chain`` keeps at most MAX_CHAIN)."""
        return max(self.chain_length, len(self.chain))


_GROUP_NAMES = {
    "prime256v1": "secp256r1",
    "x25519": "x25519",
    "x448": "x448",
    "secp384r1": "secp384r1",
    "secp521r1": "secp521r1",
}


# One spelling everywhere (metrics, JSON, posture): OpenSSL calls TLS 1.0 "TLSv1".
_VERSION_NAMES = {"TLSv1": "TLSv1.0"}


def _normalise_group(name: str) -> str:
    low = name.lower()
    return _GROUP_NAMES.get(low, low)


@lru_cache(maxsize=256)
def _context(
    alpn: tuple[str, ...], cert: str | None, key: str | None, mtime: tuple[int, int]
) -> SSL.Context:
    del mtime  # cache key only: a rotated client certificate is picked up without restart
    ctx = SSL.Context(SSL.TLS_METHOD)
    # Verification happens afterwards, so the handshake must accept anything the server sends.
    ctx.set_verify(SSL.VERIFY_NONE)
    # A monitoring client must reach legacy servers to report on them: TLS 1.0 and SHA-1 or
    # small keys are findings, not reasons to lose the certificate. The offered suites stay
    # OpenSSL's defaults so the negotiated suite is what a normal client would get.
    ctx.set_min_proto_version(SSL.TLS1_VERSION)
    ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    ctx.set_options(SSL.OP_LEGACY_SERVER_CONNECT | SSL.OP_NO_TICKET)
    _prefer_classical_groups(ctx)
    if alpn:
        ctx.set_alpn_protos([p.encode() for p in alpn])
    if cert and key:
        ctx.use_certificate_chain_file(cert)
        ctx.use_privatekey_file(key)
        ctx.check_privatekey()
    _note_certificate_requests(ctx)
    ctx.set_ocsp_client_callback(_ocsp_callback)
    return ctx


# OpenSSL 4 offers a 1.2 KB ML-KEM key share in every ClientHello by default; building it is a
# tenth of a probe's CPU and the probe only needs *a* handshake to capture the chain. Which
# groups a server supports, post-quantum ones included, is the enumeration's job.
_PROBE_GROUPS = b"X25519:P-256:P-384:P-521:X448:ffdhe2048:ffdhe3072:ffdhe4096"


def _prefer_classical_groups(ctx: SSL.Context) -> None:
    # pyOpenSSL has no public setter for the groups list; cryptography's bindings do. Bindings
    # that move the module, drop the function (its names for a missing OpenSSL symbol are
    # deleted, not stubbed) or a pyOpenSSL without ``_context`` keep OpenSSL's defaults: the
    # probe is only slower.
    try:
        from cryptography.hazmat.bindings.openssl.binding import Binding

        set_groups = Binding.lib.SSL_CTX_set1_curves_list
        native = ctx._context
    except (ImportError, AttributeError):
        log.debug("cannot set the probe's key-exchange groups; using OpenSSL's defaults")
        return
    if set_groups(native, _PROBE_GROUPS) != 1:
        log.debug("OpenSSL refused the probe's key-exchange groups; using its defaults")


def _note_certificate_requests(ctx: SSL.Context) -> None:
    """Note on the connection's state when the server asks for a client certificate.

    OpenSSL calls a client's certificate callback (``SSL_CTX_set_cert_cb``) only when a
    CertificateRequest arrives: once per handshake that has one, where an info callback runs
    in Python on every state change (14 times per TLS 1.3 handshake, about 5 % of a probe's
    CPU). Bindings without the function keep the info callback.
    """
    setter = _cert_cb_setter()
    native = getattr(ctx, "_context", None)
    if setter is None or native is None:
        ctx.set_info_callback(_info_callback)
        return
    ffi, set_cert_cb = setter
    global _CERT_CB
    if _CERT_CB is None:
        _CERT_CB = _certificate_requested(ffi, SSL.Connection._reverse_mapping)
    set_cert_cb(native, _CERT_CB, ffi.NULL)


def _cert_cb_setter() -> tuple[Any, Any] | None:
    """cffi and ``SSL_CTX_set_cert_cb`` from cryptography's bindings, or None where the
    bindings or pyOpenSSL (its map from ``SSL *`` to connection) lack them."""
    try:
        from cryptography.hazmat.bindings.openssl.binding import Binding

        set_cert_cb = Binding.lib.SSL_CTX_set_cert_cb
        SSL.Connection._reverse_mapping  # noqa: B018  (read to check it exists)
    except (ImportError, AttributeError):
        return None
    return Binding.ffi, set_cert_cb


#: The one C callback every context shares: a cffi callback must outlive every use of it.
_CERT_CB: Any = None


def _certificate_requested(ffi: Any, connections: Any) -> Any:
    @ffi.callback("int(SSL *, void *)")  # type: ignore[untyped-decorator]
    def requested(ssl: Any, _: Any) -> int:
        conn = connections.get(ssl)
        state = conn.get_app_data() if conn is not None else None
        if isinstance(state, _State):
            state.cert_requested = True
        return 1  # go on: with no certificate configured, the client sends none

    return requested


def _info_callback(conn: SSL.Connection, where: int, ret: int) -> None:
    # The server's CertificateRequest arrives after its Certificate; noting it here tells a
    # "client certificate required" server apart from any other handshake failure.
    if b"certificate request" in conn.get_state_string():
        state = conn.get_app_data()
        if isinstance(state, _State):
            state.cert_requested = True


class _State:
    __slots__ = ("cert_requested", "ocsp")

    def __init__(self) -> None:
        self.cert_requested = False
        self.ocsp: bytes | None = None


def _ocsp_callback(conn: SSL.Connection, data: bytes, _: object) -> bool:
    # Keep the stapled response for certscope.revocation to judge; never fail the handshake
    # over it here (a bad staple is a verdict, not a reason to lose the certificate).
    state = conn.get_app_data()
    if isinstance(state, _State) and data:
        state.ocsp = bytes(data)
    return True


def _mtime(path: str | None) -> int:
    if not path:
        return 0
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def context_for(opts: TLSOptions) -> SSL.Context:
    return _context(
        opts.alpn,
        opts.client_cert,
        opts.client_key,
        (_mtime(opts.client_cert), _mtime(opts.client_key)),
    )


# OpenSSL 3 says "sslv3 alert …"/"tlsv13 alert …"; OpenSSL 4 (bundled with newer
# cryptography wheels) says "tls alert …".
_ALERT_RE = re.compile(r"(?:sslv3|tlsv1|tlsv13|tls|ssl/tls) alert ([a-z0-9 ]+)")
_OTHER_ALERTS = {"tlsv1 unrecognized name": "unrecognized_name"}


def _classify_ssl_error(exc: SSL.Error) -> Failure:
    reasons = []
    for entry in exc.args[0] if exc.args and isinstance(exc.args[0], list) else []:
        if isinstance(entry, tuple) and entry:
            reasons.append(str(entry[-1]))
    text = "; ".join(reasons) or str(exc) or "TLS error"
    for r in reasons:
        m = _ALERT_RE.search(r)
        if m:
            name = m.group(1).strip().replace(" ", "_")
            return Failure(ProbeFailure.TLS_ALERT, f"server sent alert {name}", alert=name)
        if r in _OTHER_ALERTS:
            name = _OTHER_ALERTS[r]
            return Failure(ProbeFailure.TLS_ALERT, f"server sent alert {name}", alert=name)
    if any("excessive message size" in r for r in reasons):
        # OpenSSL refuses certificate lists over 100 KiB whatever the configured limit; the
        # probe then reads the chain from the first flight (tls.capture).
        return Failure(
            ProbeFailure.RESPONSE_TOO_LARGE, "handshake message over OpenSSL's limit: " + text
        )
    if any("wrong version number" in r or "packet length too long" in r for r in reasons):
        return Failure(ProbeFailure.NOT_TLS, "server does not speak TLS: " + text)
    return Failure(ProbeFailure.TLS_ERROR, text)


def _chain_der(conn: SSL.Connection) -> tuple[tuple[bytes, ...], int]:
    certs = conn.get_peer_cert_chain()
    if not certs:
        return (), 0
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for c in certs[:MAX_CHAIN]:
            out.append(shared_der(crypto.dump_certificate(crypto.FILETYPE_ASN1, c)))
    return tuple(out), len(certs)


def _negotiated(conn: SSL.Connection) -> Negotiated | None:
    version = conn.get_protocol_version_name()
    cipher = conn.get_cipher_name()
    if not cipher or version in ("", "unknown"):
        return None
    # None when no group was negotiated (static RSA). pyOpenSSL before 26.0 has no
    # ``get_group_name``, nor cryptography's bindings over an OpenSSL before 3.2 its
    # ``SSL_get0_group_name``: AttributeError. The name is decoded as UTF-8.
    try:
        group = conn.get_group_name() or ""
    except (AttributeError, UnicodeDecodeError):
        group = ""
    return _named(version, cipher, group, conn.get_alpn_proto_negotiated() or b"")


@lru_cache(maxsize=1024)
def _named(version: str, cipher: str, group: str, alpn: bytes) -> Negotiated:
    # A fleet negotiates a handful of combinations: each is named once, and every result
    # that negotiated it holds the same object.
    return Negotiated(
        version=_VERSION_NAMES.get(version, version),
        cipher=iana_name(cipher),
        group=_normalise_group(group),
        alpn=alpn.decode("ascii", "replace"),
    )


class _Clock:
    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.phases: list[tuple[str, float]] = []

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases.append((phase, now - self.t))
        self.t = now


async def _preamble(channel: StreamChannel, host: str, protocol: str) -> None:
    """Run the STARTTLS preamble; the handshake then goes on over the same streams."""
    try:
        await starttls.PREAMBLES[protocol](channel.reader, channel.writer, host)
    except starttls.StartTLSRefused as exc:
        raise Abort(Failure(ProbeFailure.STARTTLS_REFUSED, str(exc))) from None
    except starttls.StartTLSError as exc:
        raise Abort(Failure(ProbeFailure.STARTTLS_ERROR, str(exc))) from None


def _connection(ctx: SSL.Context, server_name: str | None) -> SSL.Connection:
    conn = SSL.Connection(ctx, None)
    conn.set_app_data(_State())
    conn.set_connect_state()
    if server_name:
        try:
            conn.set_tlsext_host_name(a_label(server_name).encode("ascii"))
        except ValueError as exc:
            raise Abort(Failure(ProbeFailure.CLIENT_CONFIG, f"server name: {exc}")) from None
    conn.request_ocsp()
    return conn


async def handshake(host: str, port: int, server_name: str | None, opts: TLSOptions) -> Outcome:
    """Connect, run the STARTTLS preamble if any, handshake, and return what was seen.

    The caller bounds the time (``asyncio.timeout``); this function bounds memory.
    """
    clock = _Clock()
    channel: Channel | None = None
    conn: SSL.Connection | None = None
    peer = ""
    try:
        try:
            ctx = context_for(opts)
        except (SSL.Error, OSError) as exc:
            # The message never includes key material: OpenSSL reports only what failed.
            return Outcome(
                error=Failure(ProbeFailure.CLIENT_CONFIG, f"client certificate: {_short(exc)}")
            )
        channel, peer = await connect(host, port, clock.mark)
        if opts.starttls:
            channel = await streams(channel)
            await _preamble(channel, host, opts.starttls)
            clock.mark("starttls")
        conn = _connection(ctx, server_name)
        try:
            if isinstance(channel, StreamChannel):
                await drive_channel(conn, channel, opts.max_handshake_bytes)
            else:
                await drive_socket(conn, channel.sock, opts.max_handshake_bytes)
        except SSL.Error as exc:
            raise Abort(_classify_ssl_error(exc)) from None
        clock.mark("handshake")
        return _complete(conn, opts, peer, clock)
    except Abort as abort:
        return _partial(conn, abort.failure, opts, peer, clock)
    except TimeoutError:
        raise
    except (ConnectionError, OSError) as exc:
        failure = Failure(ProbeFailure.CONNECTION_CLOSED, f"connection lost: {_short(exc)}")
        return _partial(conn, failure, opts, peer, clock)
    finally:
        if channel is not None:
            await channel.close()


def _complete(conn: SSL.Connection, opts: TLSOptions, peer: str, clock: _Clock) -> Outcome:
    state = conn.get_app_data()
    assert isinstance(state, _State)
    chain, length = _chain_der(conn)
    return Outcome(
        chain=chain,
        chain_truncated=length > len(chain),
        chain_length=length,
        negotiated=_negotiated(conn),
        client_cert_required=state.cert_requested and not opts.client_cert,
        peer_address=peer,
        phases=tuple(clock.phases),
        ocsp_response=state.ocsp,
    )


def _partial(
    conn: SSL.Connection | None, failure: Failure, opts: TLSOptions, peer: str, clock: _Clock
) -> Outcome:
    """An outcome for a failed handshake that keeps whatever the server did present."""
    if conn is None:
        return Outcome(error=failure, peer_address=peer, phases=tuple(clock.phases))
    state = conn.get_app_data()
    requested = isinstance(state, _State) and state.cert_requested
    chain, length = _chain_der(conn)
    negotiated = _negotiated(conn) if chain else None
    ocsp = state.ocsp if isinstance(state, _State) else None
    if requested and chain and not opts.client_cert:
        # The server showed its chain, asked for ours and hung up: that is the expected
        # behaviour of an mTLS endpoint, not a failure to probe it.
        return Outcome(
            chain=chain,
            chain_truncated=length > len(chain),
            chain_length=length,
            negotiated=negotiated,
            client_cert_required=True,
            peer_address=peer,
            phases=tuple(clock.phases),
            ocsp_response=ocsp,
        )
    return Outcome(
        chain=chain,
        chain_truncated=length > len(chain),
        chain_length=length,
        ocsp_response=ocsp,
        negotiated=negotiated,
        client_cert_required=requested,
        peer_address=peer,
        error=failure,
        phases=tuple(clock.phases),
    )


def _short(exc: BaseException) -> str:
    if isinstance(exc, SSL.Error):
        return _classify_ssl_error(exc).message
    return str(exc)[:200] or type(exc).__name__
