"""Server order: does the server enforce its own preference, and if so, what is it?

Within a bundle, pick-and-remove (:mod:`.suites`) already yields the server's order when it
has one. One hello tells whether it has; when it does and several bundles found suites, the
bundles' orders are merged: offer the bundles' heads until one bundle is left, or
binary-insert a few strays into the main bundle's order.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import ScanFailure
from .. import hello as h
from .base import ProtocolState, Scan, Stop, negotiate, suite_groups

__all__ = ["check_order"]


async def _pick(scan: Scan, protocol: str, offer: Sequence[int]) -> int | None:
    """The suite the server picks from ``offer`` at ``protocol``; None if it refuses."""
    ch = scan.hello(protocol, offer, suite_groups(protocol))
    answer = await scan.ep.exchange(ch)
    if isinstance(answer, h.ProtocolError):
        raise Stop(answer.reason.value, answer.detail or answer.reason.value)
    if not isinstance(answer, h.ServerHello):
        return None
    if negotiate(ch, answer).protocol != protocol:
        return None
    return answer.cipher_suite


async def check_order(scan: Scan, state: ProtocolState) -> None:
    """Does the server enforce its order; if so, in what order are its suites?

    One hello tells whether it has: the accepted suites, reversed, led by the last pick
    of a bundle with two or more picks. A server following the client takes that first
    suite; one enforcing its own order never does (it picked another suite of that
    bundle over it) and instead names its overall favourite, which is also the first
    step of merging the bundles' orders.
    """
    protocol = state.name
    picks = [list(b.found) for b in state.bundles if b.found]
    try:
        multi = next((p for p in picks if len(p) >= 2), None)
        if multi is not None:
            enforced, favourite = await _lead_test(scan, protocol, picks, multi)
        else:
            enforced, favourite = await _swap_test(scan, protocol, picks), None
        if enforced is None:
            scan.fail(
                ScanFailure.INCONSISTENT,
                f"{protocol}: refused a hello offering only accepted suites",
            )
            return
        state.server_order = enforced
        if enforced:
            state.ordered = await _merge(scan, protocol, picks, favourite)
    except Stop as stop:
        scan.fail_unless_aborted(stop, f"{protocol}: ")


async def _lead_test(
    scan: Scan, protocol: str, picks: list[list[int]], multi: list[int]
) -> tuple[bool | None, int | None]:
    """Offer every accepted suite, reversed, led by ``multi``'s last pick: whether the
    server enforces its order (None: it refused), and its overall favourite when known."""
    found = [c for p in picks for c in p]
    lead = multi[-1]
    rest = [c for c in reversed(found) if c != lead]
    if len(found) > h.MAX_SUITES:
        # Too many for one hello: keep the bundle's favourite, which is all the order test
        # needs; the merge then asks for the overall favourite.
        rest = [multi[0], *(c for c in rest if c != multi[0])]
    offer = [lead, *rest][: h.MAX_SUITES]
    chosen = await _pick(scan, protocol, offer)
    if chosen is None:
        return None, None
    return chosen != lead, chosen if len(offer) == len(found) else None


async def _swap_test(scan: Scan, protocol: str, picks: list[list[int]]) -> bool | None:
    """Every bundle found exactly one suite: compare two in both orders."""
    a, b = picks[0][0], picks[1][0]
    first = await _pick(scan, protocol, [a, b])
    second = await _pick(scan, protocol, [b, a])
    if first is None or second is None:
        return None
    return first == second


async def _merge(
    scan: Scan, protocol: str, picks: list[list[int]], favourite: int | None
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
        return await _insert(scan, protocol, big, others)
    merged: list[int] = []
    while sum(1 for lst in lists if lst) > 1:
        heads = [lst[0] for lst in lists if lst]
        chosen = favourite if favourite is not None else await _pick(scan, protocol, heads)
        favourite = None
        owner = next((lst for lst in lists if lst and lst[0] == chosen), None)
        if owner is None:
            _inconsistent(scan, protocol)
            return None
        merged.append(owner.pop(0))
    for lst in lists:
        merged.extend(lst)
    return merged


async def _insert(
    scan: Scan, protocol: str, big: list[int], others: list[list[int]]
) -> list[int] | None:
    merged = list(big)
    for lst in others:
        low = 0  # each suite ranks after the one before it in its own bundle
        for code in lst:
            high = len(merged)
            while low < high:
                mid = (low + high) // 2
                chosen = await _pick(scan, protocol, [merged[mid], code])
                if chosen == code:
                    high = mid
                elif chosen == merged[mid]:
                    low = mid + 1
                else:
                    _inconsistent(scan, protocol)
                    return None
            merged.insert(low, code)
            low += 1
    return merged


def _inconsistent(scan: Scan, protocol: str) -> None:
    scan.fail(ScanFailure.INCONSISTENT, f"{protocol}: server order not consistent across hellos")
