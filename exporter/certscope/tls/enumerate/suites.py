"""Cipher suites of one protocol, by pick and remove.

Every IANA suite for the protocol, most commonly implemented first, is cut into bundles of
at most 128 (one hello each). Offer a bundle, record the server's pick, remove it, offer the
rest again, until the server refuses. Within a bundle the picks come out in the server's
order when it enforces one (:mod:`.order` tells whether it does).
"""

from __future__ import annotations

import asyncio
import enum
import functools
from typing import Final

from .. import hello as h
from .. import suites as registry
from ..flight import Flight
from .base import (
    DHE_PROTOCOLS,
    Bundle,
    ProtocolState,
    Scan,
    ScanFailure,
    Stop,
    chose_dhe,
    negotiate,
    suite_groups,
)

__all__ = ["candidate_bundles", "enumerate_suites", "first_hello_failed"]

_ALERT_PROTOCOL_VERSION: Final = 70
_LEGACY_FORMAT: Final = frozenset({"SSLv2", "SSLv3"})


class _Step(enum.Enum):
    ACCEPTED = "accepted"  # the server picked one of the offered suites
    REFUSED = "refused"  # alert or close: none of these suites (the protocol may be fine)
    NO_PROTOCOL = "no_protocol"  # the answer rules the protocol itself out


def _likelihood(suite: registry.CipherSuite) -> int:
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
    return [list(bundle) for bundle in _bundles(protocol)]


@functools.cache
def _bundles(protocol: str) -> tuple[tuple[int, ...], ...]:
    # Sorting the registry costs more than a connection; every scan needs the same bundles.
    ordered = sorted(registry.for_protocol(protocol), key=_likelihood)  # stable: registry order
    codes = tuple(s.code for s in ordered)
    return tuple(codes[i : i + h.MAX_SUITES] for i in range(0, len(codes), h.MAX_SUITES))


def first_hello_failed(scan: Scan, state: ProtocolState, stop: Stop) -> None:
    """The protocol's first hello got no answer: undecided, or for a legacy format on a
    server that answers other hellos, not supported."""
    if stop is scan.ep.abort:
        return
    if stop.reason == ScanFailure.TIMEOUT and state.name in _LEGACY_FORMAT and scan.ep.answered:
        # Servers that never spoke SSLv2/SSLv3 may sit waiting for the rest of what they
        # take for a longer record; one that answers other hellos is not such a server.
        scan.note(f"{state.name}: {stop.detail}; taken as not supported")
        state.supported = False
        return
    state.errors += 1
    scan.fail(stop.reason, f"{state.name}: {stop.detail}")


async def enumerate_suites(scan: Scan, state: ProtocolState) -> None:
    """Every suite ``state.name`` accepts. The first hello goes out alone: an answer that
    rules the protocol out (``protocol_version`` alert, or a ServerHello at a lower
    version) spares the other bundles."""
    state.bundles = [Bundle(list(codes)) for codes in candidate_bundles(state.name)]
    first = state.bundles[0]
    try:
        step = await _bundle_step(scan, state, first)
    except Stop as stop:
        first_hello_failed(scan, state, stop)
        return
    if step is _Step.NO_PROTOCOL:
        for b in state.bundles:
            b.done = True
    else:
        if step is _Step.REFUSED:
            first.done = True
        await asyncio.gather(*(_bundle_loop(scan, state, b) for b in state.bundles))
    state.supported = True if state.found else (None if state.errors else False)


async def _bundle_loop(scan: Scan, state: ProtocolState, bundle: Bundle) -> None:
    try:
        while not bundle.done and bundle.remaining:
            if await _bundle_step(scan, state, bundle) is not _Step.ACCEPTED:
                bundle.done = True
    except Stop as stop:
        bundle.done = True
        state.errors += 1
        scan.fail_unless_aborted(stop, f"{state.name}: ")


async def _bundle_step(scan: Scan, state: ProtocolState, bundle: Bundle) -> _Step:
    protocol = state.name
    ch = scan.hello(protocol, bundle.remaining, suite_groups(protocol))
    if protocol in DHE_PROTOCOLS:
        # A DHE pick's flight carries the server's group: reading on saves the DHE check
        # (:mod:`.dh`) a connection for that suite.
        answer = await scan.ep.exchange_then_flight(ch, chose_dhe)
    else:
        answer = await scan.ep.exchange(ch)
    flight = None
    if isinstance(answer, Flight):
        flight, answer = answer, answer.server_hello
    if isinstance(answer, h.ProtocolError):
        raise Stop(answer.reason.value, answer.detail or answer.reason.value)
    if isinstance(answer, h.Alert):
        if answer.description == _ALERT_PROTOCOL_VERSION:
            return _Step.NO_PROTOCOL
        return _Step.REFUSED
    if isinstance(answer, h.ConnectionClosed | h.SSLv2Error):
        return _Step.REFUSED
    negotiation = negotiate(ch, answer)
    if negotiation.protocol != protocol:
        scan.note(f"{protocol} hello answered with {negotiation.protocol}")
        return _Step.NO_PROTOCOL
    assert isinstance(answer, h.ServerHello)
    bundle.found.append(answer.cipher_suite)
    bundle.remaining.remove(answer.cipher_suite)
    if flight is not None and flight.key_exchange is not None:
        scan.dhe_key_exchanges[(protocol, answer.cipher_suite)] = flight.key_exchange
    if protocol == "TLSv1.3" and answer.key_share_group is not None:
        scan.groups.add(answer.key_share_group)  # a group learnt for free
    return _Step.ACCEPTED
