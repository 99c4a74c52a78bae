"""What an endpoint accepts: the record an enumeration produces (pure data, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .tls.suites import PROTOCOLS, CipherSuite, by_code


@dataclass(frozen=True, slots=True)
class DHEGroup:
    """The finite-field group a server uses with one accepted DHE suite (its ServerKeyExchange)."""

    protocol: str
    suite: int
    bits: int
    name: str  # a well-known group (ffdhe2048, modp1536, oakley2 …) or "custom"
    problem: str = ""  # why the group is unsafe whatever its size (composite, not safe prime)
    problem_severity: str = ""  # critical (broken outright), warning (small subgroups), or ""

    @property
    def suite_name(self) -> str:
        s = by_code(self.suite)
        return s.name if s is not None else f"{self.suite:#06x}"


@dataclass(frozen=True, slots=True)
class PostureScan:
    """Protocols, cipher suites and groups one endpoint accepted.

    ``protocols`` maps every protocol name to True (accepted), False (refused) or None (could
    not be decided, e.g. the scan was cut short). ``suites`` lists accepted suite codes per
    protocol, in the server's preference order when it enforces one (``server_order``).
    """

    protocols: tuple[tuple[str, bool | None], ...]
    suites: tuple[tuple[str, tuple[int, ...]], ...] = ()
    server_order: tuple[tuple[str, bool], ...] = ()
    groups: tuple[str, ...] = ()
    complete: bool = True
    error: str = ""  # why the scan is incomplete
    timestamp: float = 0.0
    duration: float = 0.0
    connections: int = 0
    notes: tuple[str, ...] = field(default=())
    dhe_groups: tuple[DHEGroup, ...] = ()  # per accepted DHE suite, TLS 1.2 and older

    def supported(self, protocol: str) -> bool | None:
        return dict(self.protocols).get(protocol)

    @property
    def accepted_protocols(self) -> tuple[str, ...]:
        return tuple(p for p in PROTOCOLS if self.supported(p))

    def suites_for(self, protocol: str) -> tuple[CipherSuite, ...]:
        codes = dict(self.suites).get(protocol, ())
        return tuple(s for s in (by_code(c) for c in codes) if s is not None)

    def all_suites(self) -> tuple[tuple[str, CipherSuite], ...]:
        return tuple((p, s) for p, _ in self.suites for s in self.suites_for(p))

    def enforces_order(self, protocol: str) -> bool:
        return dict(self.server_order).get(protocol, False)
