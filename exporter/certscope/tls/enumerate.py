"""Protocol, cipher-suite and group enumeration on top of the hello codec.

:func:`enumerate_posture` finds what one endpoint accepts by sending crafted ClientHellos
(:func:`certscope.tls.hello.build_client_hello`) on raw asyncio streams and reading only the
server's first answer (:class:`~certscope.tls.hello.ServerHelloParser`). No handshake is ever
finished: each connection is closed as soon as the ServerHello (or an alert) arrives, or, for
key-exchange groups, once the rest of the server's first flight (up to ServerHelloDone) is in,
so a scan costs one round trip per connection and no key exchange beyond what the server's
first flight commits to. The certificate comes from the core probe, not from here.

How a scan proceeds::

    per protocol, concurrently ─┬─ SSLv2: one CLIENT-HELLO; the SERVER-HELLO lists the kinds
                                └─ SSLv3 … TLS 1.3: pick and remove
                                     candidates = every IANA suite for the protocol, most
                                     commonly implemented first, cut into bundles of ≤128;
                                     offer a bundle, record the server's pick, remove it,
                                     offer the rest again, until the server refuses
                                   ─ server order: offer the accepted suites reversed; a
                                     server that still picks its favourite enforces its order
                                   ─ merge: when it does and several bundles found suites,
                                     offer the bundles' heads until one bundle is left, or
                                     binary-insert a few strays into the main bundle's order
    then groups ─── TLS 1.3: pick and remove over supported_groups (key_share or
                    HelloRetryRequest names the group); without TLS 1.3, one TLS 1.2 (or
                    1.1, 1.0) hello per elliptic curve offering only ECDHE suites, with the
                    certificate's curve beside it (an ECDSA server needs it); the flight's
                    ServerKeyExchange names the curve chosen
    then DHE ────── one hello per accepted DHE suite (TLS 1.2 and older); the flight's
                    ServerKeyExchange carries the server's finite-field group, named or
                    checked by :mod:`certscope.tls.dh`

The first hello of a protocol goes out alone: an answer that rules the protocol out
(``protocol_version`` alert, or a ServerHello at a lower version) spares the other bundles.

Failures are data. Every problem ends only the loop it happened in, is written to
``notes`` and marks the result incomplete (``complete=False``, ``error`` = the first
problem's :class:`ScanFailure` or :class:`~certscope.tls.hello.ErrorReason` value); what was
found before it is kept. A problem that would repeat on every connection (DNS, a closed
port, a server that never answers, STARTTLS refused) stops the whole scan at once.

Robustness: connections to the endpoint share a semaphore (``max_connections``, or the
caller's ``limiter`` to share it across scans of one host); each connection has ``timeout``
seconds from connect to answer and one retry; a refused connect or a reset after earlier
successes looks like rate limiting and pauses every worker with exponential backoff; the
whole scan has a ``deadline``. The parser bounds memory per connection, and a server that
streams bytes without ever answering is cut off after :data:`MAX_ANSWER_BYTES` (or
:data:`MAX_WARNINGS` warning alerts). A server that resets every connection before saying
anything is taken for a filter, not for one refusing every protocol: the scan stops with
``connection_reset`` and leaves the protocols undecided.

Not determined: order among suites of different bundles when the server does not enforce
one (there is none to find). Where a server prefers its certificate's curve over a probed one
in TLS 1.2, the probed curve stays undecided (not reported).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Final

from ..certs import a_label
from ..posture import DHEGroup, PostureScan
from . import dh, suites
from . import hello as h
from . import starttls as preambles
from .flight import DHParams, ECParams, Flight, parse_key_exchange, read_flight
from .hello import NamedGroup

__all__ = [
    "BACKOFF_MAX",
    "CANDIDATE_GROUPS",
    "DEFAULT_DEADLINE",
    "MAX_ANSWER_BYTES",
    "MAX_WARNINGS",
    "ScanFailure",
    "candidate_bundles",
    "enumerate_posture",
    "group_name",
]

#: Seconds the whole scan may take unless the caller says otherwise.
DEFAULT_DEADLINE: Final = 60.0

#: Bytes read on one connection without a final answer before giving up on it. A first
#: flight is well under 1 KiB; the parser already caps what it holds at once, this caps a
#: stream of warnings or padding that never reaches a ServerHello.
MAX_ANSWER_BYTES: Final = 2 * h.MAX_BUFFER

#: Bytes of a first flight (chain included) read to find its ServerKeyExchange.
MAX_FLIGHT_BYTES: Final = 1024 * 1024

#: DHE suites whose group is read, per scan: each costs one connection, and servers use
#: one group for every suite, so a few dozen tell all there is.
MAX_DHE_SUITES: Final = 32

#: Warning alerts tolerated before the ServerHello (servers send one, unrecognized_name, if
#: any); a stream of them is cut off here, well before the byte limit.
MAX_WARNINGS: Final = 16

#: Longest pause between connections when the server seems to rate-limit us.
BACKOFF_MAX: Final = 4.0
_BACKOFF_START: Final = 0.2
#: Attempts per hello when connects are refused after earlier successes (rate limiting).
_RATE_LIMIT_ATTEMPTS: Final = 5

#: Hellos refused by reset (twice each) before a server that never sent a byte is taken
#: for a filter and the scan stops.
_RESETS_BEFORE_GIVING_UP: Final = 3

_READ_SIZE: Final = 16384
_ALERT_PROTOCOL_VERSION: Final = 70

#: Groups enumerated, in the order offered. Names in results are the enum names in lower
#: case (``x25519``, ``secp256r1``, ``ffdhe2048``, ``x25519mlkem768``).
CANDIDATE_GROUPS: Final[tuple[NamedGroup, ...]] = (
    NamedGroup.X25519,
    NamedGroup.SECP256R1,
    NamedGroup.SECP384R1,
    NamedGroup.SECP521R1,
    NamedGroup.X448,
    NamedGroup.FFDHE2048,
    NamedGroup.FFDHE3072,
    NamedGroup.FFDHE4096,
    NamedGroup.FFDHE6144,
    NamedGroup.FFDHE8192,
    NamedGroup.X25519MLKEM768,
)
#: Groups usable with ECDHE suites in TLS 1.0-1.2, tested one per hello when TLS 1.3 is off.
_EC_GROUPS: Final = (
    NamedGroup.X25519,
    NamedGroup.SECP256R1,
    NamedGroup.SECP384R1,
    NamedGroup.SECP521R1,
    NamedGroup.X448,
)
_LEGACY_FORMAT: Final = frozenset({"SSLv2", "SSLv3"})


class ScanFailure(enum.StrEnum):
    """Why a scan (or part of it) is incomplete; stable, usable as a label value.

    Parser failures are reported with their own :class:`~certscope.tls.hello.ErrorReason`
    values (``malformed``, ``truncated``, ``not_tls``, ``buffer_limit`` …) instead.
    """

    DNS = "dns"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
    DEADLINE = "deadline"
    STARTTLS_REFUSED = "starttls_refused"
    STARTTLS_ERROR = "starttls_error"
    CONNECTION_RESET = "connection_reset"
    SUITE_NOT_OFFERED = "suite_not_offered"
    UNKNOWN_VERSION = "unknown_version"
    VERSION_NOT_OFFERED = "version_not_offered"
    PROTOCOL_VIOLATION = "protocol_violation"
    INCONSISTENT = "inconsistent_answers"
    INVALID_ARGUMENT = "invalid_argument"
    INTERNAL = "internal_error"


def group_name(group: int) -> str:
    """``29`` -> ``"x25519"``; unknown codes as ``group_0x1234``."""
    try:
        return NamedGroup(group).name.lower()
    except ValueError:
        return f"group_{group:#06x}"


# --------------------------------------------------------------------------------------
# Connections
# --------------------------------------------------------------------------------------


class _Stop(Exception):
    """Internal: this loop cannot go on; the reason goes into the result."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Reset(Exception):
    """Internal: the connection was reset before the server said anything."""


Answer = (
    h.ServerHello
    | h.Alert
    | h.SSLv2ServerHello
    | h.SSLv2Error
    | h.ConnectionClosed
    | h.ProtocolError
)


class _Endpoint:
    """Every connection of one scan: limit, timeout and retry, backoff, counters, abort.

    :meth:`exchange` returns the server's final answer to a hello, or raises :class:`_Stop`
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
        self.abort: _Stop | None = None
        self._pause_until = 0.0
        self._backoff = _BACKOFF_START

    def stop_all(self, reason: str, detail: str) -> _Stop:
        if self.abort is None:
            self.abort = _Stop(reason, detail)
        return self.abort

    async def resolve(self) -> None:
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

    async def _exchange(self, client_hello: h.ClientHello, flight: bool) -> Answer | Flight:
        timeouts = resets = refusals = starttls_failures = 0
        while True:
            if self.abort is not None:
                raise self.abort
            async with self.limiter:
                await self._wait_pause()
                if self.abort is not None:
                    raise self.abort
                try:
                    answer = await self._once(client_hello, flight)
                except TimeoutError:
                    timeouts += 1
                    if timeouts < 2:
                        continue
                    detail = f"no answer within {self.timeout:g} s (twice)"
                    if not self.answered:
                        raise self.stop_all(ScanFailure.TIMEOUT, detail) from None
                    raise _Stop(ScanFailure.TIMEOUT, detail) from None
                except _Reset:
                    # A reset instead of an answer is either a refusal or rate limiting;
                    # pause, ask once more, and take a second reset as a refusal.
                    resets += 1
                    self._slow_down()
                    if resets < 2:
                        continue
                    self.reset_refusals += 1
                    if not self.spoke and self.reset_refusals >= _RESETS_BEFORE_GIVING_UP:
                        raise self.stop_all(
                            ScanFailure.CONNECTION_RESET,
                            "every connection was reset before the server said anything",
                        ) from None
                    return h.ConnectionClosed()
                except ConnectionRefusedError:
                    if not self.connected:
                        raise self.stop_all(
                            ScanFailure.CONNECT_REFUSED,
                            f"connection to {self.host} port {self.port} refused",
                        ) from None
                    refusals += 1
                    self._slow_down()
                    if refusals < _RATE_LIMIT_ATTEMPTS:
                        continue
                    raise _Stop(
                        ScanFailure.CONNECT_REFUSED,
                        f"connections refused {refusals} times after earlier successes",
                    ) from None
                except (preambles.StartTLSRefused, preambles.StartTLSError) as exc:
                    starttls_failures += 1
                    self._slow_down()
                    if starttls_failures < 2:
                        continue
                    reason = (
                        ScanFailure.STARTTLS_REFUSED
                        if isinstance(exc, preambles.StartTLSRefused)
                        else ScanFailure.STARTTLS_ERROR
                    )
                    raise self.stop_all(reason, f"STARTTLS: {exc}") from None
                except OSError as exc:
                    text = exc.strerror or str(exc) or type(exc).__name__
                    if not self.connected:
                        raise self.stop_all(
                            ScanFailure.CONNECT_ERROR,
                            f"cannot connect to {self.host} port {self.port}: {text}",
                        ) from None
                    resets += 1
                    self._slow_down()
                    if resets < 2:
                        continue
                    raise _Stop(ScanFailure.CONNECT_ERROR, f"connection failed: {text}") from None
            self.answered = True
            self._backoff = _BACKOFF_START
            return answer

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

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        last: OSError | None = None
        for i, (family, address) in enumerate(self.addresses):
            self.connections += 1
            try:
                reader, writer = await asyncio.open_connection(
                    address, self.port, family=family, limit=preambles._MAX_LINE
                )
            except OSError as exc:
                if self.connected or i == len(self.addresses) - 1:
                    raise
                last = exc
                continue
            if not self.connected:
                # Stay on the first address that works: one scan, one server.
                self.connected = True
                self.addresses = [(family, address)]
            return reader, writer
        assert last is not None
        raise last

    async def _once(self, client_hello: h.ClientHello, flight: bool = False) -> Answer | Flight:
        """One connection: connect, preamble, hello, answer, all within ``timeout``."""
        writers: list[asyncio.StreamWriter] = []
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await self._connect()
                writers.append(writer)
                if self.starttls_name is not None:
                    await preambles.PREAMBLES[self.starttls_name](
                        reader, writer, self.preamble_host
                    )
                writer.write(client_hello.data)
                await writer.drain()
                if flight:
                    return await self._read_flight(reader)
                return await self._read_answer(reader)
        except (ConnectionResetError, BrokenPipeError):
            raise _Reset from None
        finally:
            # Outside the timeout, so that it cannot expire during the clean-up and turn
            # an answer already read into a retry; skipped when the scan is being cancelled
            # (deadline), which must not wait for anything.
            task = asyncio.current_task()
            for writer in writers:
                writer.close()
                if task is None or not task.cancelling():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(writer.wait_closed(), 0.2)

    async def _read_flight(self, reader: asyncio.StreamReader) -> Answer | Flight:
        event, received = await read_flight(reader, max_bytes=MAX_FLIGHT_BYTES)
        self.spoke = self.spoke or received > 0
        return event

    async def _read_answer(self, reader: asyncio.StreamReader) -> Answer:
        parser = h.ServerHelloParser()
        received = warnings = 0
        while True:
            try:
                data = await reader.read(_READ_SIZE)
            except ConnectionResetError:
                if not received:
                    raise
                data = b""  # a reset after some bytes ends the stream like EOF would
            received += len(data)
            if data:
                self.spoke = True
            for event in parser.feed(data):
                if isinstance(event, h.Alert) and not event.fatal:
                    # Warnings (unrecognized_name) may precede the ServerHello; a stream of
                    # them is a server that will never answer.
                    warnings += 1
                    if warnings > MAX_WARNINGS:
                        return h.ProtocolError(
                            h.ErrorReason.BUFFER_LIMIT,
                            f"more than {MAX_WARNINGS} warning alerts without a ServerHello",
                        )
                    continue
                if isinstance(event, h.NeedMoreData):
                    continue
                return event
            if not data:
                return h.ConnectionClosed()
            if received > MAX_ANSWER_BYTES:
                return h.ProtocolError(
                    h.ErrorReason.BUFFER_LIMIT,
                    f"{received} bytes without a ServerHello or a fatal alert",
                )


# --------------------------------------------------------------------------------------
# The scan
# --------------------------------------------------------------------------------------


class _Step(enum.Enum):
    ACCEPTED = "accepted"  # the server picked one of the offered suites
    REFUSED = "refused"  # alert or close: none of these suites (the protocol may be fine)
    NO_PROTOCOL = "no_protocol"  # the answer rules the protocol itself out


@dataclass
class _Bundle:
    remaining: list[int]
    found: list[int] = field(default_factory=list)
    done: bool = False


@dataclass
class _Protocol:
    name: str
    bundles: list[_Bundle] = field(default_factory=list)
    supported: bool | None = None  # set once the pick-and-remove loops are over
    errors: int = 0
    server_order: bool | None = None
    ordered: list[int] | None = None  # global preference order, when the server has one

    @property
    def found(self) -> list[int]:
        return [c for b in self.bundles for c in b.found]


def _likelihood(suite: suites.CipherSuite) -> int:
    """Lower first: what real servers most often accept, so it lands in the first bundle
    (whose picks need no merging with other bundles' to give the server's order)."""
    if suite.openssl_name is None:
        return 4  # no OpenSSL release implemented it
    ephemeral_or_rsa = suite.kex in ("ECDHE", "DHE", "RSA", "ANY")
    if ephemeral_or_rsa and suite.auth in ("RSA", "ECDSA", "ANY"):
        return 0
    if suite.kex in ("ECDHE", "DHE") and suite.auth == "anon":
        return 1  # in OpenSSL's ALL, and needs nothing configured
    if suite.kex in ("PSK", "DHE_PSK", "RSA_PSK", "ECDHE_PSK", "SRP", "KRB5", "KRB5_EXPORT"):
        return 3  # needs credentials configured on the server
    return 2  # DSS and static (EC)DH certificates, export grades, GOST


def candidate_bundles(protocol: str) -> list[list[int]]:
    """Candidate suites for ``protocol``, likeliest first, cut into hellos of ≤128."""
    ordered = sorted(suites.for_protocol(protocol), key=_likelihood)  # stable: registry order
    codes = [s.code for s in ordered]
    return [codes[i : i + h.MAX_SUITES] for i in range(0, len(codes), h.MAX_SUITES)]


def _is_ecdhe(code: int) -> bool:
    suite = suites.by_code(code)
    return suite is not None and suite.kex == "ECDHE"


def _is_dhe(code: int) -> bool:
    suite = suites.by_code(code)
    return suite is not None and suite.kex in ("DHE", "DHE_EXPORT")


def _ske_group(answer: Flight) -> int | None:
    if answer.key_exchange is None:
        return None
    params = parse_key_exchange("ECDHE", answer.key_exchange)
    return params.group if isinstance(params, ECParams) else None


_CURVE_GROUPS: Final = {
    "secp256r1": NamedGroup.SECP256R1,
    "secp384r1": NamedGroup.SECP384R1,
    "secp521r1": NamedGroup.SECP521R1,
}


def _leaf_curve(chain: Sequence[bytes]) -> int | None:
    from ..certs import facts_from_der

    if not chain:
        return None
    return _CURVE_GROUPS.get(facts_from_der(chain[0]).key_curve)


def _registry_order(protocol: str, codes: Sequence[int]) -> tuple[int, ...]:
    wanted = set(codes)
    return tuple(s.code for s in suites.for_protocol(protocol) if s.code in wanted)


def _violation_reason(
    client_hello: h.ClientHello,
    answer: h.ServerHello | h.SSLv2ServerHello,
    negotiation: h.Negotiation,
) -> ScanFailure:
    """The stable reason for an answer :func:`~certscope.tls.hello.evaluate` objected to."""
    if negotiation.protocol is None:
        return ScanFailure.UNKNOWN_VERSION
    if not negotiation.suite_offered:
        return ScanFailure.SUITE_NOT_OFFERED
    if isinstance(answer, h.ServerHello) and (
        answer.negotiated_version > client_hello.version
        or (answer.selected_version is not None and client_hello.protocol != "TLSv1.3")
    ):
        return ScanFailure.VERSION_NOT_OFFERED
    return ScanFailure.PROTOCOL_VIOLATION


def _describe(answer: Answer) -> str:
    if isinstance(answer, h.Alert):
        return f"alert {answer.name}"
    if isinstance(answer, h.SSLv2Error):
        return f"SSLv2 error {answer.name}"
    if isinstance(answer, h.ConnectionClosed):
        return "connection closed"
    if isinstance(answer, h.ProtocolError):
        return f"{answer.reason.value}: {answer.detail}"
    if isinstance(answer, h.ServerHello):
        return f"ServerHello {answer.negotiated_version:#06x} suite {answer.cipher_suite:#06x}"
    return "SSLv2 SERVER-HELLO"


class _Scan:
    def __init__(self, endpoint: _Endpoint, server_name: str | None, protocols: Sequence[str]):
        self.ep = endpoint
        self.server_name = server_name
        self.protocols = {p: _Protocol(p) for p in protocols}
        self.groups: set[int] = set()
        self.dhe: list[DHEGroup] = []
        self.notes: list[str] = []
        self.errors: list[str] = []

    # -- bookkeeping ---------------------------------------------------------------------

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def fail(self, reason: str, detail: str) -> None:
        self.errors.append(str(reason))
        self.note(f"{reason}: {detail}")

    # -- entry ---------------------------------------------------------------------------

    async def run(self) -> None:
        await self.ep.resolve()
        await asyncio.gather(*(self._guard(self._protocol(p)) for p in self.protocols.values()))
        if self.ep.abort is None:
            await self._guard(self._groups())
        if self.ep.abort is None:
            await self._guard(self._dhe())

    async def _guard(self, coro: Awaitable[None]) -> None:
        """Run one phase; its :class:`_Stop` becomes data, anything else an internal error."""
        try:
            await coro
        except _Stop as stop:
            if stop is not self.ep.abort:
                self.fail(stop.reason, stop.detail)
        except Exception as exc:  # never raise out of a scan: a bug is reported as data
            self.fail(ScanFailure.INTERNAL, f"{type(exc).__name__}: {exc}")

    def hello(self, protocol: str, codes: Sequence[int], groups: Sequence[int]) -> h.ClientHello:
        return h.build_client_hello(protocol, codes, server_name=self.server_name, groups=groups)

    # -- protocols -----------------------------------------------------------------------

    async def _protocol(self, state: _Protocol) -> None:
        if state.name == "SSLv2":
            await self._sslv2(state)
        else:
            await self._suites(state)
            if len(state.found) >= 2 and self.ep.abort is None:
                await self._order(state)
        if state.name == "TLSv1.3" and state.supported and self.ep.abort is None:
            await self._guard(self._groups_tls13(state))

    def _first_hello_failed(self, state: _Protocol, stop: _Stop) -> None:
        if stop is self.ep.abort:
            return
        if stop.reason == ScanFailure.TIMEOUT and state.name in _LEGACY_FORMAT and self.ep.answered:
            # Servers that never spoke SSLv2/SSLv3 may sit waiting for the rest of what they
            # take for a longer record; one that answers other hellos is not such a server.
            self.note(f"{state.name}: {stop.detail}; taken as not supported")
            state.supported = False
            return
        state.errors += 1
        self.fail(stop.reason, f"{state.name}: {stop.detail}")

    async def _suites(self, state: _Protocol) -> None:
        state.bundles = [_Bundle(list(codes)) for codes in candidate_bundles(state.name)]
        first = state.bundles[0]
        try:
            step = await self._bundle_step(state, first)
        except _Stop as stop:
            self._first_hello_failed(state, stop)
            return
        if step is _Step.NO_PROTOCOL:
            for b in state.bundles:
                b.done = True
        else:
            if step is _Step.REFUSED:
                first.done = True
            await asyncio.gather(*(self._bundle_loop(state, b) for b in state.bundles))
        state.supported = True if state.found else (None if state.errors else False)

    async def _bundle_loop(self, state: _Protocol, bundle: _Bundle) -> None:
        try:
            while not bundle.done and bundle.remaining:
                if await self._bundle_step(state, bundle) is not _Step.ACCEPTED:
                    bundle.done = True
        except _Stop as stop:
            bundle.done = True
            state.errors += 1
            if stop is not self.ep.abort:
                self.fail(stop.reason, f"{state.name}: {stop.detail}")

    def _suite_groups(self, protocol: str) -> Sequence[int]:
        # TLS 1.3 cannot negotiate at all without a common group, so offer every candidate
        # (X25519 first, with a key share); before 1.3 keep the codec's default, which leaves
        # FFDHE out so that DHE suites are not refused over RFC 7919 group matching.
        return CANDIDATE_GROUPS if protocol == "TLSv1.3" else h.DEFAULT_GROUPS

    async def _bundle_step(self, state: _Protocol, bundle: _Bundle) -> _Step:
        protocol = state.name
        ch = self.hello(protocol, bundle.remaining, self._suite_groups(protocol))
        answer = await self.ep.exchange(ch)
        if isinstance(answer, h.ProtocolError):
            raise _Stop(answer.reason.value, answer.detail or answer.reason.value)
        if isinstance(answer, h.Alert):
            if answer.description == _ALERT_PROTOCOL_VERSION:
                return _Step.NO_PROTOCOL
            return _Step.REFUSED
        if isinstance(answer, h.ConnectionClosed | h.SSLv2Error):
            return _Step.REFUSED
        negotiation = h.evaluate(ch, answer)
        if negotiation.violations:
            raise _Stop(
                _violation_reason(ch, answer, negotiation),
                f"hello answered with {_describe(answer)}: " + "; ".join(negotiation.violations),
            )
        if negotiation.protocol != protocol:
            self.note(f"{protocol} hello answered with {negotiation.protocol}")
            return _Step.NO_PROTOCOL
        assert isinstance(answer, h.ServerHello)
        bundle.found.append(answer.cipher_suite)
        bundle.remaining.remove(answer.cipher_suite)
        if protocol == "TLSv1.3" and answer.key_share_group is not None:
            self.groups.add(answer.key_share_group)  # a group learnt for free
        return _Step.ACCEPTED

    async def _sslv2(self, state: _Protocol) -> None:
        kinds = [s.code for s in suites.for_protocol("SSLv2")]
        ch = self.hello("SSLv2", kinds, ())
        try:
            answer = await self.ep.exchange(ch)
        except _Stop as stop:
            self._first_hello_failed(state, stop)
            return
        state.bundles = [_Bundle([])]
        if isinstance(answer, h.ProtocolError):
            state.errors += 1
            self.fail(answer.reason.value, f"SSLv2: {answer.detail or answer.reason}")
            return
        if isinstance(answer, h.ServerHello):
            # A TLS answer to an SSLv2 hello: the server upgraded instead of speaking SSLv2.
            self.note(f"SSLv2 hello answered with {_describe(answer)}")
            state.supported = False
            return
        if not isinstance(answer, h.SSLv2ServerHello):
            state.supported = False
            return
        negotiation = h.evaluate(ch, answer)
        offered = [k for k in answer.cipher_kinds if k in ch.cipher_suites]
        state.bundles[0].found = list(dict.fromkeys(offered))
        if negotiation.violations:
            state.errors += 1
            self.fail(
                _violation_reason(ch, answer, negotiation),
                "SSLv2: " + "; ".join(negotiation.violations),
            )
        if not offered:
            self.note("SSLv2 SERVER-HELLO lists no cipher kind we offered")
        state.supported = bool(offered) or (None if state.errors else False)

    # -- server order --------------------------------------------------------------------

    async def _pick(self, protocol: str, offer: Sequence[int]) -> int | None:
        """The suite the server picks from ``offer`` at ``protocol``; None if it refuses."""
        ch = self.hello(protocol, offer, self._suite_groups(protocol))
        answer = await self.ep.exchange(ch)
        if isinstance(answer, h.ProtocolError):
            raise _Stop(answer.reason.value, answer.detail or answer.reason.value)
        if not isinstance(answer, h.ServerHello):
            return None
        negotiation = h.evaluate(ch, answer)
        if negotiation.violations:
            raise _Stop(
                _violation_reason(ch, answer, negotiation),
                f"hello answered with {_describe(answer)}: " + "; ".join(negotiation.violations),
            )
        if negotiation.protocol != protocol:
            return None
        return answer.cipher_suite

    async def _order(self, state: _Protocol) -> None:
        """Does the server enforce its order; if so, in what order are its suites?

        Within a bundle, pick-and-remove already yields the server's order when it has one.
        One hello tells whether it has: the accepted suites, reversed, led by the last pick
        of a bundle with two or more picks. A server following the client takes that first
        suite; one enforcing its own order never does (it picked another suite of that
        bundle over it) and instead names its overall favourite, which is also the first
        step of merging the bundles' orders.
        """
        protocol = state.name
        picks = [list(b.found) for b in state.bundles if b.found]
        found = [c for p in picks for c in p]
        try:
            favourite: int | None = None
            multi = next((p for p in picks if len(p) >= 2), None)
            if multi is not None:
                lead = multi[-1]
                rest = [c for c in reversed(found) if c != lead]
                if len(found) > h.MAX_SUITES:
                    # Too many for one hello: keep the bundle's favourite, which is all the
                    # order test needs; the merge then asks for the overall favourite.
                    rest = [multi[0], *(c for c in rest if c != multi[0])]
                offer = [lead, *rest][: h.MAX_SUITES]
                chosen = await self._pick(protocol, offer)
                if chosen is None:
                    self.fail(
                        ScanFailure.INCONSISTENT,
                        f"{protocol}: refused a hello offering only accepted suites",
                    )
                    return
                state.server_order = chosen != lead
                if len(offer) == len(found):
                    favourite = chosen
            else:
                # Every bundle found exactly one suite: compare two in both orders.
                a, b = picks[0][0], picks[1][0]
                first = await self._pick(protocol, [a, b])
                second = await self._pick(protocol, [b, a])
                if first is None or second is None:
                    self.fail(
                        ScanFailure.INCONSISTENT,
                        f"{protocol}: refused a hello offering only accepted suites",
                    )
                    return
                state.server_order = first == second
            if state.server_order:
                state.ordered = await self._merge(protocol, picks, favourite)
        except _Stop as stop:
            if stop is not self.ep.abort:
                self.fail(stop.reason, f"{protocol}: {stop.detail}")

    async def _merge(
        self, protocol: str, picks: list[list[int]], favourite: int | None
    ) -> list[int] | None:
        """The server's overall order from the per-bundle orders.

        Two ways, whichever needs fewer connections: offer the bundles' heads until one
        bundle is left (about one connection per suite ranked before the last of the other
        bundles), or, when one bundle holds nearly everything, insert the others' suites
        into it by binary search with two-suite hellos.
        """
        lists = sorted((list(p) for p in picks), key=len, reverse=True)
        big, others = lists[0], lists[1:]
        few = sum(len(lst) for lst in others)
        inserts = few * max(1, len(big).bit_length())  # binary search: ≤ log2 each
        # Heads: until the last of the few comes out, which for few suites spread evenly
        # among all of them is about total * few / (few + 1).
        if inserts * (few + 1) < (len(big) + few) * few:
            return await self._insert(protocol, big, others)
        merged: list[int] = []
        while sum(1 for lst in lists if lst) > 1:
            heads = [lst[0] for lst in lists if lst]
            chosen = favourite if favourite is not None else await self._pick(protocol, heads)
            favourite = None
            owner = next((lst for lst in lists if lst and lst[0] == chosen), None)
            if owner is None:
                self._inconsistent(protocol)
                return None
            merged.append(owner.pop(0))
        for lst in lists:
            merged.extend(lst)
        return merged

    async def _insert(
        self, protocol: str, big: list[int], others: list[list[int]]
    ) -> list[int] | None:
        merged = list(big)
        for lst in others:
            low = 0  # each suite ranks after the one before it in its own bundle
            for code in lst:
                high = len(merged)
                while low < high:
                    mid = (low + high) // 2
                    chosen = await self._pick(protocol, [merged[mid], code])
                    if chosen == code:
                        high = mid
                    elif chosen == merged[mid]:
                        low = mid + 1
                    else:
                        self._inconsistent(protocol)
                        return None
                merged.insert(low, code)
                low += 1
        return merged

    def _inconsistent(self, protocol: str) -> None:
        self.fail(
            ScanFailure.INCONSISTENT, f"{protocol}: server order not consistent across hellos"
        )

    # -- groups --------------------------------------------------------------------------

    async def _groups_tls13(self, state: _Protocol) -> None:
        """Pick and remove over supported_groups: the ServerHello's key_share, or the group a
        HelloRetryRequest asks for, is the server's choice among the groups offered."""
        offer_suites = state.found[: h.MAX_SUITES]
        remaining: list[int] = [g for g in CANDIDATE_GROUPS if g not in self.groups]
        while remaining:
            ch = self.hello("TLSv1.3", offer_suites, remaining)
            answer = await self.ep.exchange(ch)
            if isinstance(answer, h.ProtocolError):
                raise _Stop(answer.reason.value, f"TLSv1.3 groups: {answer.detail}")
            if not isinstance(answer, h.ServerHello):
                break
            negotiation = h.evaluate(ch, answer)
            if negotiation.violations:
                raise _Stop(
                    _violation_reason(ch, answer, negotiation),
                    f"TLSv1.3 group hello answered with {_describe(answer)}: "
                    + "; ".join(negotiation.violations),
                )
            group = answer.key_share_group
            if negotiation.protocol != "TLSv1.3" or group is None or group not in remaining:
                break
            self.groups.add(group)
            remaining.remove(group)

    async def _groups(self) -> None:
        tls13 = self.protocols.get("TLSv1.3")
        if tls13 is not None and tls13.supported:
            return  # enumerated right after the TLS 1.3 suites
        # Before TLS 1.3 the group sits in the ServerKeyExchange: read it from the flight.
        # An ECDSA certificate's curve must be offered too (RFC 8422 5.1: supported_groups
        # also limits the certificate), or such a server refuses every group but its own.
        for protocol in ("TLSv1.2", "TLSv1.1", "TLSv1.0"):
            state = self.protocols.get(protocol)
            ecdhe = [c for c in state.found if _is_ecdhe(c)] if state is not None else []
            if ecdhe:
                offer = ecdhe[: h.MAX_SUITES]
                curve = await self._certificate_curve(protocol, offer)
                await asyncio.gather(
                    *(
                        self._guard(self._group_tls12(protocol, offer, g, curve))
                        for g in _EC_GROUPS
                        if g not in self.groups
                    )
                )
                break

    async def _certificate_curve(self, protocol: str, offer: list[int]) -> int | None:
        """The named group of the server's ECDSA certificate, read from one full flight
        (also a group learnt: the server's choice among all of them)."""
        ch = self.hello(protocol, offer, _EC_GROUPS)
        answer = await self.ep.exchange_flight(ch)
        if not isinstance(answer, Flight):
            return None
        chosen = _ske_group(answer)
        if chosen is not None and chosen in ch.groups:
            self.groups.add(chosen)
        return _leaf_curve(answer.certificates)

    async def _group_tls12(
        self, protocol: str, offer: list[int], group: NamedGroup, curve: int | None
    ) -> None:
        groups = [group] if curve is None or curve == group else [group, curve]
        ch = self.hello(protocol, offer, groups)
        answer = await self.ep.exchange_flight(ch)
        where = f"{protocol} group {group_name(group)}"
        if isinstance(answer, h.ProtocolError):
            raise _Stop(answer.reason.value, f"{where}: {answer.detail or answer.reason}")
        if isinstance(answer, Flight):
            hello = answer.server_hello
            negotiation = h.evaluate(ch, hello)
            if negotiation.violations:
                raise _Stop(
                    _violation_reason(ch, hello, negotiation),
                    f"{where}: answered with {_describe(hello)}: "
                    + "; ".join(negotiation.violations),
                )
            if negotiation.protocol != protocol:
                return
            chosen = _ske_group(answer)
            if chosen is not None and chosen in groups:
                self.groups.add(chosen)
            elif chosen is None and len(groups) == 1:
                # No ServerKeyExchange seen (the server hung up after its ServerHello): an
                # ECDHE suite chosen with only this group offered still says it is supported.
                self.groups.add(group)

    # -- DHE groups ----------------------------------------------------------------------

    async def _dhe(self) -> None:
        """The finite-field group behind each accepted DHE suite (TLS 1.2 and older)."""
        wanted = [
            (protocol, code)
            for protocol in ("TLSv1.2", "TLSv1.1", "TLSv1.0", "SSLv3")
            if (state := self.protocols.get(protocol)) is not None
            for code in state.found
            if _is_dhe(code)
        ]
        if len(wanted) > MAX_DHE_SUITES:
            self.note(f"DHE groups read for the first {MAX_DHE_SUITES} of {len(wanted)} suites")
        found = await asyncio.gather(
            *(self._dhe_group(p, c) for p, c in wanted[:MAX_DHE_SUITES]), return_exceptions=True
        )
        for item in found:
            if isinstance(item, DHEGroup):
                self.dhe.append(item)
            elif isinstance(item, _Stop):
                if item is not self.ep.abort:
                    self.fail(item.reason, item.detail)
            elif isinstance(item, BaseException):
                if isinstance(item, asyncio.CancelledError):
                    raise item
                self.fail(ScanFailure.INTERNAL, f"{type(item).__name__}: {item}")

    async def _dhe_group(self, protocol: str, code: int) -> DHEGroup | None:
        # EC groups only: an FFDHE group offered (RFC 7919) would replace the server's own.
        ch = self.hello(protocol, [code], h.DEFAULT_GROUPS)
        answer = await self.ep.exchange_flight(ch)
        if not isinstance(answer, Flight) or answer.key_exchange is None:
            return None
        suite = suites.by_code(code)
        params = parse_key_exchange(suite.kex if suite else "", answer.key_exchange)
        if not isinstance(params, DHParams):
            return None
        # Primality of an unknown modulus takes long enough to stall other connections.
        group = await asyncio.to_thread(dh.assess, params.prime, params.generator)
        return DHEGroup(
            protocol, code, group.bits, group.name, group.problem, group.problem_severity
        )

    # -- result --------------------------------------------------------------------------

    def result(self, *, timestamp: float, duration: float, cut_short: str = "") -> PostureScan:
        errors = list(self.errors)
        if self.ep.abort is not None:
            errors.insert(0, self.ep.abort.reason)
            self.note(f"{self.ep.abort.reason}: {self.ep.abort.detail}")
        if cut_short:
            errors.insert(0, ScanFailure.DEADLINE)
            self.note(f"deadline: {cut_short}")
        # Every hello reset and nothing else ever heard: a filter or a rate limit, not a
        # server refusing every protocol.
        never_heard = bool(self.ep.reset_refusals) and not self.ep.spoke
        if never_heard and not errors:
            errors.append(ScanFailure.CONNECTION_RESET)
            self.note("connection_reset: every connection was reset before an answer")
        protocols: list[tuple[str, bool | None]] = []
        accepted: list[tuple[str, tuple[int, ...]]] = []
        order: list[tuple[str, bool]] = []
        for name in suites.PROTOCOLS:
            state = self.protocols.get(name)
            if state is None:
                protocols.append((name, None))
                continue
            found = state.found
            protocols.append((name, True if found else None if never_heard else state.supported))
            if found:
                if state.server_order and state.ordered is not None:
                    codes = tuple(state.ordered)
                elif name == "SSLv2":
                    codes = tuple(found)
                else:
                    codes = _registry_order(name, found)
                accepted.append((name, codes))
            if state.server_order is not None:
                order.append((name, state.server_order))
        return PostureScan(
            protocols=tuple(protocols),
            suites=tuple(accepted),
            server_order=tuple(order),
            groups=tuple(group_name(g) for g in CANDIDATE_GROUPS if g in self.groups),
            complete=not errors,
            error=str(errors[0]) if errors else "",
            timestamp=timestamp,
            duration=duration,
            connections=self.ep.connections,
            notes=tuple(self.notes),
            dhe_groups=tuple(
                sorted(self.dhe, key=lambda g: (suites.PROTOCOLS.index(g.protocol), g.suite))
            ),
        )


async def enumerate_posture(
    host: str,
    port: int,
    server_name: str | None,
    *,
    starttls: str | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 - per connection; the scan's bound is `deadline`
    max_connections: int = 4,
    deadline: float = DEFAULT_DEADLINE,
    protocols: Sequence[str] = suites.PROTOCOLS,
    limiter: asyncio.Semaphore | None = None,
) -> PostureScan:
    """Enumerate the protocols, cipher suites and groups ``host:port`` accepts.

    ``server_name`` goes into SNI (``None``, or an IP address, sends none). ``starttls`` names
    a preamble of :data:`certscope.tls.starttls.PREAMBLES` run on every connection.
    ``timeout`` bounds each connection from connect to answer (one retry on expiry);
    ``deadline`` bounds the whole scan. At most ``max_connections`` connections are open at
    once, or share ``limiter`` across scans of one host. ``protocols`` limits the protocols
    tried (others are reported undecided).

    Never raises (except :class:`asyncio.CancelledError`): whatever goes wrong is reported
    in the result, with ``complete=False`` and ``error`` set, keeping what was found.
    """
    timestamp = time.time()
    started = time.perf_counter()
    endpoint = _Endpoint(
        host,
        port,
        starttls_name=starttls,
        preamble_host=server_name or host,
        timeout=timeout,
        limiter=limiter if limiter is not None else asyncio.Semaphore(max(1, max_connections)),
    )
    scan = _Scan(endpoint, server_name, [p for p in suites.PROTOCOLS if p in protocols])
    cut_short = ""
    problem = _check_arguments(protocols, starttls, server_name)
    if problem:
        scan.fail(ScanFailure.INVALID_ARGUMENT, problem)
    else:
        try:
            async with asyncio.timeout(deadline) as cm:
                await scan.run()
        except TimeoutError:
            if not cm.expired():
                scan.fail(ScanFailure.INTERNAL, "unexpected TimeoutError")
            else:
                cut_short = f"scan stopped after {deadline:g} s"
        except _Stop as stop:
            if stop is not endpoint.abort:
                scan.fail(stop.reason, stop.detail)
        except Exception as exc:  # the boundary: a bug must not take the scheduler down
            scan.fail(ScanFailure.INTERNAL, f"{type(exc).__name__}: {exc}")
    return scan.result(
        timestamp=timestamp, duration=time.perf_counter() - started, cut_short=cut_short
    )


def _check_arguments(
    protocols: Sequence[str], starttls: str | None, server_name: str | None
) -> str:
    unknown = [p for p in protocols if p not in suites.PROTOCOLS]
    if unknown:
        return f"unknown protocols {unknown}; expected some of {suites.PROTOCOLS}"
    if starttls is not None and starttls not in preambles.PREAMBLES:
        return (
            f"unknown STARTTLS protocol {starttls!r}; expected one of {tuple(preambles.PREAMBLES)}"
        )
    try:
        h.build_client_hello("TLSv1.2", [0x002F], server_name=server_name)
    except (ValueError, UnicodeError) as exc:
        return f"server name {server_name!r}: {exc}"
    return ""
