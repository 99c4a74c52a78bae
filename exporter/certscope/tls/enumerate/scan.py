"""One enumeration of one endpoint: the checks in order, and the result they add up to.

The checks run one after the other, as :data:`CHECKS` lists them; each reads what the
earlier ones found (the groups check needs the accepted ECDHE suites, the DHE check the
accepted DHE suites). A check that stops the whole scan (DNS, a closed port, a server that
never answers) sets ``scan.ep.abort`` and the later checks are skipped.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from ...errors import ScanFailure
from ...posture import PostureScan
from .. import hello as h
from .. import starttls as preambles
from .. import suites as registry
from .base import CANDIDATE_GROUPS, Scan, Stop, group_name
from .connection import Endpoint
from .dh import check_dhe
from .groups import check_groups
from .protocols import check_protocols

__all__ = ["CHECKS", "DEFAULT_DEADLINE", "enumerate_posture"]

#: Seconds the whole scan may take unless the caller says otherwise.
DEFAULT_DEADLINE: Final = 60.0

#: The checks of a scan, in the order they run.
CHECKS: Final[tuple[Callable[[Scan], Awaitable[None]], ...]] = (
    check_protocols,
    check_groups,
    check_dhe,
)


async def _run(scan: Scan) -> None:
    await scan.ep.resolve()
    for check in CHECKS:
        if scan.ep.abort is None:
            await scan.guard(check(scan))


async def enumerate_posture(
    host: str,
    port: int,
    server_name: str | None,
    *,
    starttls: str | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 - per connection; the scan's bound is `deadline`
    max_connections: int = 4,
    deadline: float = DEFAULT_DEADLINE,
    protocols: Sequence[str] = registry.PROTOCOLS,
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
    endpoint = Endpoint(
        host,
        port,
        starttls_name=starttls,
        preamble_host=server_name or host,
        timeout=timeout,
        limiter=limiter if limiter is not None else asyncio.Semaphore(max(1, max_connections)),
    )
    scan = Scan(endpoint, server_name, [p for p in registry.PROTOCOLS if p in protocols])
    cut_short = ""
    problem = _check_arguments(protocols, starttls, server_name)
    if problem:
        scan.fail(ScanFailure.INVALID_ARGUMENT, problem)
    else:
        try:
            async with asyncio.timeout(deadline) as cm:
                await _run(scan)
        except TimeoutError:
            if not cm.expired():
                scan.fail(ScanFailure.INTERNAL, "unexpected TimeoutError")
            else:
                cut_short = f"scan stopped after {deadline:g} s"
        except Stop as stop:
            scan.fail_unless_aborted(stop)
        except Exception as exc:  # the boundary: a bug must not take the scheduler down
            scan.fail(ScanFailure.INTERNAL, f"{type(exc).__name__}: {exc}")
        finally:
            endpoint.close()
    return _result(
        scan, timestamp=timestamp, duration=time.perf_counter() - started, cut_short=cut_short
    )


def _result(scan: Scan, *, timestamp: float, duration: float, cut_short: str) -> PostureScan:
    errors = list(scan.errors)
    if scan.ep.abort is not None:
        errors.insert(0, scan.ep.abort.reason)
        scan.note(f"{scan.ep.abort.reason}: {scan.ep.abort.detail}")
    if cut_short:
        errors.insert(0, ScanFailure.DEADLINE)
        scan.note(f"deadline: {cut_short}")
    # Every hello reset and nothing else ever heard: a filter or a rate limit, not a
    # server refusing every protocol.
    never_heard = bool(scan.ep.reset_refusals) and not scan.ep.spoke
    if never_heard and not errors:
        errors.append(ScanFailure.CONNECTION_RESET)
        scan.note("connection_reset: every connection was reset before an answer")
    protocols, accepted, order = _protocol_results(scan, never_heard)
    return PostureScan(
        protocols=protocols,
        suites=accepted,
        server_order=order,
        groups=tuple(group_name(g) for g in CANDIDATE_GROUPS if g in scan.groups),
        complete=not errors,
        error=str(errors[0]) if errors else "",
        timestamp=timestamp,
        duration=duration,
        connections=scan.ep.connections,
        notes=tuple(scan.notes),
        dhe_groups=tuple(
            sorted(scan.dhe, key=lambda g: (registry.PROTOCOLS.index(g.protocol), g.suite))
        ),
    )


def _protocol_results(
    scan: Scan, never_heard: bool
) -> tuple[
    tuple[tuple[str, bool | None], ...],
    tuple[tuple[str, tuple[int, ...]], ...],
    tuple[tuple[str, bool], ...],
]:
    """Per protocol: supported or not, its accepted suites (in the server's order when it
    has one, else in registry order), and whether it enforces its order."""
    protocols: list[tuple[str, bool | None]] = []
    accepted: list[tuple[str, tuple[int, ...]]] = []
    order: list[tuple[str, bool]] = []
    for name in registry.PROTOCOLS:
        state = scan.protocols.get(name)
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
    return tuple(protocols), tuple(accepted), tuple(order)


def _registry_order(protocol: str, codes: Sequence[int]) -> tuple[int, ...]:
    rank = _registry_rank(protocol)
    return tuple(sorted((c for c in set(codes) if c in rank), key=rank.__getitem__))


@functools.cache
def _registry_rank(protocol: str) -> dict[int, int]:
    return {s.code: i for i, s in enumerate(registry.for_protocol(protocol))}


def _check_arguments(
    protocols: Sequence[str], starttls: str | None, server_name: str | None
) -> str:
    unknown = [p for p in protocols if p not in registry.PROTOCOLS]
    if unknown:
        return f"unknown protocols {unknown}; expected some of {registry.PROTOCOLS}"
    if starttls is not None and starttls not in preambles.PREAMBLES:
        return (
            f"unknown STARTTLS protocol {starttls!r}; expected one of {tuple(preambles.PREAMBLES)}"
        )
    try:
        h.build_client_hello("TLSv1.2", [0x002F], server_name=server_name)
    except (ValueError, UnicodeError) as exc:
        return f"server name {server_name!r}: {exc}"
    return ""
