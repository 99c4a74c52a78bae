"""Served versus stored: is an endpoint serving the newest certificate its store holds?

"Renewed but never reloaded" is a classic outage: cert-manager or certbot writes the new
certificate, the server keeps the old one in memory, and it expires anyway. certscope compares
the leaf an endpoint serves with the certificates at rest. Pure functions; no I/O.

Matching is explicit when a target names its store (``expects: {source, location}``) and
automatic otherwise: stored leaf certificates whose names cover the target's host name.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .certs import CertFacts, hostname_matches
from .config import Target
from .results import SourceResult, StoredCert


@dataclass(frozen=True)
class StoredRef:
    source: str
    cert: StoredCert


@dataclass(frozen=True)
class StoreIndex:
    """Stored leaf certificates by exact DNS name and by wildcard parent, plus by fingerprint."""

    by_name: Mapping[str, tuple[StoredRef, ...]] = field(default_factory=dict)
    by_source: Mapping[str, tuple[StoredRef, ...]] = field(default_factory=dict)
    fingerprints: frozenset[str] = frozenset()


def build_index(sources: Iterable[SourceResult]) -> StoreIndex:
    by_name: dict[str, list[StoredRef]] = {}
    by_source: dict[str, list[StoredRef]] = {}
    prints: set[str] = set()
    for src in sources:
        for c in src.certs:
            if c.facts.is_ca or c.revoked:
                continue  # CA certificates and revoked ones are never what should be served
            ref = StoredRef(src.name, c)
            by_source.setdefault(src.name, []).append(ref)
            prints.add(c.facts.fingerprint_sha256)
            names = {
                n.lower().rstrip(".") for n in c.facts.sans if not n.startswith(("URI:", "email:"))
            }
            if not c.facts.sans and c.facts.subject_cn:
                names.add(c.facts.subject_cn.lower())
            for n in names:
                by_name.setdefault(n, []).append(ref)
    return StoreIndex(
        by_name={k: tuple(v) for k, v in by_name.items()},
        by_source={k: tuple(v) for k, v in by_source.items()},
        fingerprints=frozenset(prints),
    )


@dataclass(frozen=True)
class Comparison:
    matches: bool
    expected: StoredRef  # the newest stored certificate for this endpoint
    detail: str


def _candidates(target: Target, index: StoreIndex) -> list[StoredRef]:
    if target.expects is not None:
        source, pattern = target.expects
        return [
            r
            for r in index.by_source.get(source, ())
            if fnmatch.fnmatchcase(r.cert.location, pattern)
        ]
    name = target.verify_name.lower().rstrip(".")
    keys = [name]
    if "." in name:
        keys.append("*." + name.split(".", 1)[1])
    found: dict[tuple[str, str, int], StoredRef] = {}
    for k in keys:
        for r in index.by_name.get(k, ()):
            if hostname_matches(name, r.cert.facts.sans, r.cert.facts.subject_cn):
                found[(r.source, r.cert.location, r.cert.position)] = r
    return list(found.values())


def _age(f: CertFacts) -> tuple[float, float]:
    """Which of two certificates is newer: later notBefore, then later notAfter."""
    start = f.not_before.timestamp() if f.not_before else 0.0
    return start, f.not_after.timestamp() if f.not_after else 0.0


def _age_key(r: StoredRef) -> tuple[float, float]:
    return _age(r.cert.facts)


def compare(target: Target, served: CertFacts, index: StoreIndex) -> Comparison | None:
    """Compare the served leaf with the newest stored certificate for the target, if any.

    With ``expects`` any difference counts. Automatically matched, the endpoint is only
    flagged when the store holds a *newer* certificate than the one served: an endpoint may
    legitimately serve a certificate from a store certscope does not read.
    """
    candidates = _candidates(target, index)
    if not candidates:
        return None
    newest = max(candidates, key=_age_key)
    nf = newest.cert.facts
    if nf.fingerprint_sha256 == served.fingerprint_sha256:
        return Comparison(True, newest, "serves the newest stored certificate")
    where = f"{newest.source}:{newest.cert.location}"
    if target.expects is None and _age_key(newest) <= _age(served):
        return Comparison(True, newest, "serves a certificate at least as new as the store's")
    return Comparison(
        False,
        newest,
        f"serves serial {served.serial} but {where} holds serial {nf.serial}"
        + (f" (not after {nf.not_after:%Y-%m-%d})" if nf.not_after else ""),
    )
