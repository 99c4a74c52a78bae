"""Revocation of stored certificates: each leaf against its issuer from the same place.

A files or Vault source that sets ``revocation`` asks, for every leaf (a certificate that is
not a CA) it read, the OCSP responder named in the leaf's AIA and the CRL named in its CRL
distribution points, exactly as a probe does for a served chain (:mod:`certscope.revocation`:
the same judgements, the same caches, so a refresh of an unchanged store fetches nothing until
an answer's ``nextUpdate``). The issuer is looked for at the same location (the same file or
Vault value, the PEM bundle beside the leaf) and must have signed the leaf.

Without the issuer nothing can be verified: every enabled method the leaf names a URL for is
``unknown`` with the reason, never ``good``. A method the leaf names no URL for is not
reported, as for probes. Checks run a few at a time, every fetch bounded by the source's
``revocation.timeout`` and the whole pass by ``budget`` seconds; a leaf not checked by then is
``error`` (timeout). The certificates' DER is needed for the requests: readers keep it
(:attr:`~certscope.results.StoredCert.der`) only for sources that ask.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace

from ..config import RevocationOptions
from ..results import StoredCert
from ..revocation import (
    Check,
    Method,
    Revocation,
    Status,
    cached_revocation,
    check_revocation,
    leaf_and_issuer,
)

#: Leaves checked at once: enough to overlap slow responders, few enough to be polite.
CONCURRENCY = 8
ISSUER_ABSENT = "issuer not in the same file or bundle: cannot check revocation"
TIMED_OUT = "timeout: revocation checks took longer than the source allows"
FAILED = "internal_error: the revocation check failed"


def _chain(leaf: StoredCert, beside: Sequence[StoredCert]) -> tuple[bytes, ...]:
    """The leaf first, then the CA certificates in its scope (the issuer candidates)."""
    return (leaf.der, *(c.der for c in beside if c.facts.is_ca and c.der))


def _location(cert: StoredCert) -> str:
    return cert.location


def _wanted(leaf: StoredCert, opts: RevocationOptions) -> tuple[Method, ...]:
    methods = []
    if opts.ocsp and leaf.facts.ocsp_urls:
        methods.append(Method.OCSP)
    if opts.crl and leaf.facts.crl_urls:
        methods.append(Method.CRL)
    return tuple(methods)


def _all(methods: Sequence[Method], status: Status, detail: str) -> Revocation:
    return Revocation(tuple(Check(m, status, detail) for m in methods))


async def _check(leaf: StoredCert, chain: tuple[bytes, ...], opts: RevocationOptions) -> Revocation:
    methods = _wanted(leaf, opts)
    if not methods:
        return Revocation()
    parsed = leaf_and_issuer(chain)
    if parsed is None or parsed[1] is None:
        # A server must send its issuer (the probe calls its absence an error); a store that
        # lacks it leaves a question nobody can answer here: unknown, never good.
        return _all(methods, Status.UNKNOWN, ISSUER_ABSENT)
    revocation = cached_revocation(chain, leaf.facts, None, opts)
    if revocation is None:
        revocation = await check_revocation(chain, leaf.facts, None, opts)
    return revocation


async def check_stored(
    certs: Sequence[StoredCert],
    opts: RevocationOptions,
    budget: float,
    scope: Callable[[StoredCert], str] = _location,
) -> tuple[StoredCert, ...]:
    """``certs`` with :attr:`~certscope.results.StoredCert.revocation` set on every leaf that
    has its DER, and ``revoked`` set when a method says so. A leaf's issuer is looked for among
    the CA certificates of its ``scope`` (by default its location: the same file or value).
    Never raises (but cancellation)."""
    if not opts.enabled:
        return tuple(certs)
    by_scope: dict[str, list[StoredCert]] = {}
    for c in certs:
        by_scope.setdefault(scope(c), []).append(c)
    leaves = [c for c in certs if c.der and not c.facts.is_ca]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(leaf: StoredCert) -> Revocation:
        async with gate:
            return await _check(leaf, _chain(leaf, by_scope[scope(leaf)]), opts)

    tasks = {id(leaf): asyncio.create_task(one(leaf)) for leaf in leaves}
    try:
        if tasks:
            await asyncio.wait(tasks.values(), timeout=budget)
    finally:
        for task in tasks.values():
            task.cancel()
    if tasks:
        await asyncio.gather(*tasks.values(), return_exceptions=True)
    out: list[StoredCert] = []
    for c in certs:
        done = tasks.get(id(c))
        if done is None:
            out.append(c)
            continue
        revocation = _outcome(done, _wanted(c, opts))
        out.append(replace(c, revocation=revocation, revoked=c.revoked or revocation.revoked))
    return tuple(out)


def _outcome(task: asyncio.Task[Revocation], methods: Sequence[Method]) -> Revocation:
    if task.cancelled():
        return _all(methods, Status.ERROR, TIMED_OUT)
    if task.exception() is not None:  # check_revocation never raises: a bug, said so
        return _all(methods, Status.ERROR, FAILED)
    return task.result()
