"""A probe of one target: handshake within a deadline, then facts and verdict.

This is the one place that turns a :class:`~certscope.config.Target` into a
:class:`~certscope.results.ProbeResult`; the scheduler, ``/probe`` and ``certscope scan`` all
call it, so the three always agree.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from .certs import facts_from_der
from .config import Target, format_duration
from .errors import ProbeFailure
from .results import ProbeResult
from .tls.handshake import Failure, Outcome, handshake
from .verify import verify_chain

log = logging.getLogger(__name__)


async def probe(target: Target, last_success: float | None = None) -> ProbeResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(target.tls.timeout):
            outcome = await handshake(
                target.connect_host, target.port, target.server_name, target.tls
            )
    except TimeoutError:
        outcome = Outcome(
            error=Failure(
                ProbeFailure.TIMEOUT,
                f"no complete handshake within {format_duration(target.tls.timeout)}",
            )
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # A bug must cost one probe, not the exporter; the type is enough to find it.
        log.exception("probe of %s failed unexpectedly", target.name)
        outcome = Outcome(
            error=Failure(ProbeFailure.INTERNAL, f"internal error: {type(exc).__name__}")
        )
    duration = time.perf_counter() - started
    now = time.time()
    facts = tuple(facts_from_der(der) for der in outcome.chain)
    verdict = None
    if outcome.chain:
        verdict = verify_chain(
            outcome.chain,
            facts,
            target.verify_name,
            target.tls.ca_file,
            datetime.fromtimestamp(now, UTC),
        )
    succeeded = outcome.error is None and bool(facts)  # what ProbeResult.success says
    return ProbeResult(
        name=target.name,
        address=target.address,
        server_name=target.server_name,
        labels=target.labels,
        timestamp=now,
        duration=duration,
        outcome=outcome,
        facts=facts,
        verdict=verdict,
        last_success=now if succeeded else last_success,
    )
