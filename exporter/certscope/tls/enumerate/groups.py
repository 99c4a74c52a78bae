"""Key-exchange groups the server accepts.

TLS 1.3: pick and remove over supported_groups; the ServerHello's key_share, or the group a
HelloRetryRequest asks for, names the server's choice. Without TLS 1.3: one TLS 1.2 (or 1.1,
1.0) hello per elliptic curve offering only ECDHE suites, with the certificate's curve beside
it (an ECDSA server needs it); the flight's ServerKeyExchange names the curve chosen. Where a
server prefers its certificate's curve over a probed one, the probed curve stays undecided.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from .. import hello as h
from ..flight import ECParams, Flight, parse_key_exchange
from ..hello import NamedGroup
from .base import (
    CANDIDATE_GROUPS,
    EC_GROUPS,
    ProtocolState,
    Scan,
    Stop,
    group_name,
    is_ecdhe,
    negotiate,
)

__all__ = ["check_groups", "groups_tls13"]

_CURVE_GROUPS: Final = {
    "secp256r1": NamedGroup.SECP256R1,
    "secp384r1": NamedGroup.SECP384R1,
    "secp521r1": NamedGroup.SECP521R1,
}


async def groups_tls13(scan: Scan, state: ProtocolState) -> None:
    """Pick and remove over supported_groups: the ServerHello's key_share, or the group a
    HelloRetryRequest asks for, is the server's choice among the groups offered."""
    offer_suites = state.found[: h.MAX_SUITES]
    remaining: list[int] = [g for g in CANDIDATE_GROUPS if g not in scan.groups]
    while remaining:
        ch = scan.hello("TLSv1.3", offer_suites, remaining)
        answer = await scan.ep.exchange(ch)
        if isinstance(answer, h.ProtocolError):
            raise Stop(answer.reason.value, f"TLSv1.3 groups: {answer.detail}")
        if not isinstance(answer, h.ServerHello):
            break
        negotiation = negotiate(ch, answer, "TLSv1.3 group hello answered with")
        group = answer.key_share_group
        if negotiation.protocol != "TLSv1.3" or group is None or group not in remaining:
            break
        scan.groups.add(group)
        remaining.remove(group)


async def check_groups(scan: Scan) -> None:
    """The elliptic curves of a server without TLS 1.3 (with it, :func:`groups_tls13` ran
    right after the TLS 1.3 suites)."""
    tls13 = scan.protocols.get("TLSv1.3")
    if tls13 is not None and tls13.supported:
        return
    # Before TLS 1.3 the group sits in the ServerKeyExchange: read it from the flight.
    # An ECDSA certificate's curve must be offered too (RFC 8422 5.1: supported_groups
    # also limits the certificate), or such a server refuses every group but its own.
    for protocol in ("TLSv1.2", "TLSv1.1", "TLSv1.0"):
        state = scan.protocols.get(protocol)
        ecdhe = [c for c in state.found if is_ecdhe(c)] if state is not None else []
        if ecdhe:
            offer = ecdhe[: h.MAX_SUITES]
            curve = await _certificate_curve(scan, protocol, offer)
            await asyncio.gather(
                *(
                    scan.guard(_group_tls12(scan, protocol, offer, g, curve))
                    for g in EC_GROUPS
                    if g not in scan.groups
                )
            )
            break


async def _certificate_curve(scan: Scan, protocol: str, offer: list[int]) -> int | None:
    """The named group of the server's ECDSA certificate, read from one full flight
    (also a group learnt: the server's choice among all of them)."""
    ch = scan.hello(protocol, offer, EC_GROUPS)
    answer = await scan.ep.exchange_flight(ch)
    if not isinstance(answer, Flight):
        return None
    chosen = _ske_group(answer)
    if chosen is not None and chosen in ch.groups:
        scan.groups.add(chosen)
    return _leaf_curve(answer.certificates)


async def _group_tls12(
    scan: Scan, protocol: str, offer: list[int], group: NamedGroup, curve: int | None
) -> None:
    groups = [group] if curve is None or curve == group else [group, curve]
    ch = scan.hello(protocol, offer, groups)
    answer = await scan.ep.exchange_flight(ch)
    where = f"{protocol} group {group_name(group)}"
    if isinstance(answer, h.ProtocolError):
        raise Stop(answer.reason.value, f"{where}: {answer.detail or answer.reason}")
    if not isinstance(answer, Flight):
        return
    negotiation = negotiate(ch, answer.server_hello, f"{where}: answered with")
    if negotiation.protocol != protocol:
        return
    chosen = _ske_group(answer)
    if chosen is not None and chosen in groups:
        scan.groups.add(chosen)
    elif chosen is None and len(groups) == 1:
        # No ServerKeyExchange seen (the server hung up after its ServerHello): an ECDHE
        # suite chosen with only this group offered still says it is supported.
        scan.groups.add(group)


def _ske_group(answer: Flight) -> int | None:
    if answer.key_exchange is None:
        return None
    params = parse_key_exchange("ECDHE", answer.key_exchange)
    return params.group if isinstance(params, ECParams) else None


def _leaf_curve(chain: Sequence[bytes]) -> int | None:
    from ...certs import facts_from_der

    if not chain:
        return None
    return _CURVE_GROUPS.get(facts_from_der(chain[0]).key_curve)
