"""What every enumeration check shares: the scan's state, its reasons, and the answer checks.

A check (:mod:`.protocols`, :mod:`.suites`, :mod:`.order`, :mod:`.groups`, :mod:`.dh`) is a
coroutine function taking the :class:`Scan`; it sends hellos through ``scan.ep``
(:class:`~.connection.Endpoint`) and writes what it learns into the scan. A problem that ends
one loop is raised as :class:`Stop` and becomes data in :meth:`Scan.guard`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ...errors import ScanFailure
from ...posture import DHEGroup
from .. import hello as h
from .. import suites as registry
from ..hello import NamedGroup

if TYPE_CHECKING:
    from .connection import Endpoint

__all__ = [
    "CANDIDATE_GROUPS",
    "DHE_PROTOCOLS",
    "EC_GROUPS",
    "Answer",
    "Bundle",
    "ProtocolState",
    "Scan",
    "ScanFailure",
    "Stop",
    "chose_dhe",
    "describe",
    "group_name",
    "is_dhe",
    "is_ecdhe",
    "negotiate",
    "suite_groups",
    "violation_reason",
]

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
EC_GROUPS: Final = (
    NamedGroup.X25519,
    NamedGroup.SECP256R1,
    NamedGroup.SECP384R1,
    NamedGroup.SECP521R1,
    NamedGroup.X448,
)


#: Protocols whose DHE suites' groups are read (TLS 1.3 has no DHE suites).
DHE_PROTOCOLS: Final = ("TLSv1.2", "TLSv1.1", "TLSv1.0", "SSLv3")


def group_name(group: int) -> str:
    """``29`` -> ``"x25519"``; unknown codes as ``group_0x1234``."""
    try:
        return NamedGroup(group).name.lower()
    except ValueError:
        return f"group_{group:#06x}"


class Stop(Exception):
    """This loop cannot go on; the reason goes into the result."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


Answer = (
    h.ServerHello
    | h.Alert
    | h.SSLv2ServerHello
    | h.SSLv2Error
    | h.ConnectionClosed
    | h.ProtocolError
)


@dataclass
class Bundle:
    """One hello's worth of candidate suites, and what pick-and-remove found among them."""

    remaining: list[int]
    found: list[int] = field(default_factory=list)
    done: bool = False


@dataclass
class ProtocolState:
    """What the scan knows about one protocol."""

    name: str
    bundles: list[Bundle] = field(default_factory=list)
    supported: bool | None = None  # set once the pick-and-remove loops are over
    errors: int = 0
    server_order: bool | None = None
    ordered: list[int] | None = None  # global preference order, when the server has one

    @property
    def found(self) -> list[int]:
        return [c for b in self.bundles for c in b.found]


class Scan:
    """The state every check reads and writes, and the bookkeeping of its failures."""

    def __init__(self, endpoint: Endpoint, server_name: str | None, protocols: Sequence[str]):
        self.ep = endpoint
        self.server_name = server_name
        self.protocols = {p: ProtocolState(p) for p in protocols}
        self.groups: set[int] = set()
        self.dhe: list[DHEGroup] = []
        #: ServerKeyExchange bodies of DHE suites, by (protocol, suite), read from the
        #: flights of the suite enumeration's own connections.
        self.dhe_key_exchanges: dict[tuple[str, int], bytes] = {}
        self.notes: list[str] = []
        self.errors: list[str] = []

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def fail(self, reason: str, detail: str) -> None:
        self.errors.append(str(reason))
        self.note(f"{reason}: {detail}")

    def fail_unless_aborted(self, stop: Stop, prefix: str = "") -> None:
        """Record ``stop`` unless it is the scan-wide abort (reported once, in the result)."""
        if stop is not self.ep.abort:
            self.fail(stop.reason, prefix + stop.detail)

    async def guard(self, coro: Awaitable[None]) -> None:
        """Run one check; its :class:`Stop` becomes data, anything else an internal error."""
        try:
            await coro
        except Stop as stop:
            self.fail_unless_aborted(stop)
        except Exception as exc:  # never raise out of a scan: a bug is reported as data
            self.fail(ScanFailure.INTERNAL, f"{type(exc).__name__}: {exc}")

    def hello(self, protocol: str, codes: Sequence[int], groups: Sequence[int]) -> h.ClientHello:
        return h.build_client_hello(protocol, codes, server_name=self.server_name, groups=groups)


def suite_groups(protocol: str) -> Sequence[int]:
    """supported_groups for suite hellos. TLS 1.3 cannot negotiate at all without a common
    group, so offer every candidate (X25519 first, with a key share); before 1.3 keep the
    codec's default, which leaves FFDHE out so that DHE suites are not refused over RFC 7919
    group matching."""
    return CANDIDATE_GROUPS if protocol == "TLSv1.3" else h.DEFAULT_GROUPS


def negotiate(
    client_hello: h.ClientHello,
    answer: h.ServerHello | h.SSLv2ServerHello,
    context: str = "hello answered with",
) -> h.Negotiation:
    """:func:`~certscope.tls.hello.evaluate`, raising :class:`Stop` on a rule break."""
    negotiation = h.evaluate(client_hello, answer)
    if negotiation.violations:
        raise Stop(
            violation_reason(client_hello, answer, negotiation),
            f"{context} {describe(answer)}: " + "; ".join(negotiation.violations),
        )
    return negotiation


def violation_reason(
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


def describe(answer: Answer) -> str:
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


def is_ecdhe(code: int) -> bool:
    suite = registry.by_code(code)
    return suite is not None and suite.kex == "ECDHE"


def is_dhe(code: int) -> bool:
    suite = registry.by_code(code)
    return suite is not None and suite.kex in ("DHE", "DHE_EXPORT")


def chose_dhe(server_hello: h.ServerHello) -> bool:
    return is_dhe(server_hello.cipher_suite)
