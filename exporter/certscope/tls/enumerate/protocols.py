"""Which protocols the server speaks, SSLv2 to TLS 1.3, all at once.

Each protocol runs its own chain of checks concurrently with the others: SSLv2 is one
CLIENT-HELLO whose SERVER-HELLO lists the shared cipher kinds; SSLv3 to TLS 1.3 enumerate
their suites (:mod:`.suites`), then the server order (:mod:`.order`) when two or more were
found, and TLS 1.3 its groups (:mod:`.groups`) right after its suites.
"""

from __future__ import annotations

import asyncio
import functools

from .. import hello as h
from .. import suites as registry
from .base import Bundle, ProtocolState, Scan, Stop, describe, violation_reason
from .groups import groups_tls13
from .order import check_order
from .suites import enumerate_suites, first_hello_failed

__all__ = ["check_protocols"]


async def check_protocols(scan: Scan) -> None:
    await asyncio.gather(*(scan.guard(_protocol(scan, p)) for p in scan.protocols.values()))


async def _protocol(scan: Scan, state: ProtocolState) -> None:
    if state.name == "SSLv2":
        await _sslv2(scan, state)
    else:
        await enumerate_suites(scan, state)
        if len(state.found) >= 2 and scan.ep.abort is None:
            await check_order(scan, state)
    if state.name == "TLSv1.3" and state.supported and scan.ep.abort is None:
        await scan.guard(groups_tls13(scan, state))


async def _sslv2(scan: Scan, state: ProtocolState) -> None:
    ch = scan.hello("SSLv2", _sslv2_kinds(), ())
    try:
        answer = await scan.ep.exchange(ch)
    except Stop as stop:
        first_hello_failed(scan, state, stop)
        return
    bundle = Bundle([])
    state.bundles = [bundle]
    if isinstance(answer, h.ProtocolError):
        state.errors += 1
        scan.fail(answer.reason.value, f"SSLv2: {answer.detail or answer.reason}")
        return
    if isinstance(answer, h.ServerHello):
        # A TLS answer to an SSLv2 hello: the server upgraded instead of speaking SSLv2.
        scan.note(f"SSLv2 hello answered with {describe(answer)}")
        state.supported = False
        return
    if not isinstance(answer, h.SSLv2ServerHello):
        state.supported = False
        return
    negotiation = h.evaluate(ch, answer)
    offered = [k for k in answer.cipher_kinds if k in ch.cipher_suites]
    bundle.found = list(dict.fromkeys(offered))
    if negotiation.violations:
        state.errors += 1
        scan.fail(
            violation_reason(ch, answer, negotiation),
            "SSLv2: " + "; ".join(negotiation.violations),
        )
    if not offered:
        scan.note("SSLv2 SERVER-HELLO lists no cipher kind we offered")
    state.supported = bool(offered) or (None if state.errors else False)


@functools.cache
def _sslv2_kinds() -> tuple[int, ...]:
    return tuple(s.code for s in registry.for_protocol("SSLv2"))
