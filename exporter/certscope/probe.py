"""A probe of one target: handshake within a deadline, then facts and verdict.

This is the one place that turns a :class:`~certscope.config.Target` into a
:class:`~certscope.results.ProbeResult`; the scheduler, ``/probe`` and ``certscope scan`` all
call it, so the three always agree.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime

from .certs import CertFacts, facts_from_der
from .config import Target, format_duration
from .errors import ProbeFailure
from .results import ProbeResult
from .revocation import (
    Check,
    Method,
    Revocation,
    Status,
    cached_revocation,
    check_revocation,
)
from .tls.capture import capture_chain
from .tls.handshake import MAX_CHAIN, Failure, Negotiated, Outcome, handshake
from .verify import judge_trust, verify_chain

log = logging.getLogger(__name__)

#: Handshake failures after which the chain is read from the server's first flight instead:
#: the server answered, but not with anything OpenSSL would finish a handshake on (legacy-only
#: suites or versions, a chain over OpenSSL's certificate-list limit).
_CAPTURE_AFTER = frozenset(
    {
        ProbeFailure.TLS_ALERT,
        ProbeFailure.TLS_ERROR,
        ProbeFailure.RESPONSE_TOO_LARGE,
        ProbeFailure.CONNECTION_CLOSED,
    }
)


def _wants_capture(outcome: Outcome) -> bool:
    err = outcome.error
    if err is None or outcome.chain or err.reason not in _CAPTURE_AFTER:
        return False
    # A server that wants something else from us (a client certificate, another name)
    # will not answer a hello differently.
    return err.alert not in ("certificate_required", "unrecognized_name")


async def _with_capture(target: Target, outcome: Outcome) -> Outcome:
    """``outcome`` with the chain from the first flight when the handshake got none."""
    address = outcome.peer_address or target.host
    got = await capture_chain(
        address,
        target.port,
        target.server_name,
        target.tls,
        max_bytes=target.tls.max_handshake_bytes,
    )
    if got is None:
        return outcome
    return replace(
        outcome,
        chain=got.chain[:MAX_CHAIN],
        chain_truncated=len(got.chain) > MAX_CHAIN,
        chain_length=len(got.chain),
        negotiated=Negotiated(version=got.version, cipher=got.cipher) if got.cipher else None,
        captured_by="hello",
        ocsp_response=got.ocsp_response,
    )


async def _capture_within(target: Target, outcome: Outcome, deadline: float) -> Outcome:
    """The fallback capture, within what is left of the probe's time; the handshake's own
    error stands whatever happens here."""
    try:
        async with asyncio.timeout_at(deadline):
            return await _with_capture(target, outcome)
    except (TimeoutError, OSError, ValueError):
        return outcome


async def _revocation_within(
    target: Target,
    outcome: Outcome,
    facts: tuple[CertFacts, ...],
    deadline: float,
    signer: int | None,
) -> Revocation:
    """The leaf's revocation, within what is left of the probe's time: a responder that does
    not answer in time is an ``error`` check, never a slower probe."""
    try:
        async with asyncio.timeout_at(deadline):
            return await check_revocation(
                outcome.chain, facts[0], outcome.ocsp_response, target.tls.revocation, signer
            )
    except TimeoutError:
        checks = (Check(Method.OCSP, Status.ERROR, "no revocation answer within the timeout"),)
        return Revocation(checks, stapled=outcome.ocsp_response is not None)


async def probe(target: Target, last_success: float | None = None) -> ProbeResult:
    started = time.perf_counter()
    deadline = asyncio.get_running_loop().time() + target.tls.timeout
    try:
        async with asyncio.timeout_at(deadline):
            outcome = await handshake(
                target.connect_host, target.port, target.server_name, target.tls
            )
        if _wants_capture(outcome):
            outcome = await _capture_within(target, outcome, deadline)
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
    facts = tuple(facts_from_der(der) for der in outcome.chain)
    revocation = trust = None
    judging = 0.0
    if facts:
        # Trust first: the revocation check need not verify again the leaf signature that
        # OpenSSL verified while building a trusted chain (the trust is cached per day).
        # The probe's duration stays what it was (it never counted the verdict).
        judging = time.perf_counter()
        trust = judge_trust(outcome.chain, target.tls.ca_file, datetime.now(UTC))
        judging = time.perf_counter() - judging
        revocation = cached_revocation(
            outcome.chain, facts[0], outcome.ocsp_response, target.tls.revocation, trust.signer
        ) or await _revocation_within(target, outcome, facts, deadline, trust.signer)
    duration = time.perf_counter() - started - judging
    now = time.time()
    verdict = None
    if outcome.chain:
        verdict = verify_chain(
            outcome.chain,
            facts,
            target.verify_name,
            target.tls.ca_file,
            datetime.fromtimestamp(now, UTC),
            revoked=revocation is not None and revocation.revoked,
            trust=trust,
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
        revocation=revocation,
    )
