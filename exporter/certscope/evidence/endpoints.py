"""Positive per-endpoint evidence: what every TLS endpoint accepted, at the end of the period
and at its worst within it.

Auditors ask for proof that TLS 1.0/1.1 is disabled everywhere, not only for the violations. For
every TLS endpoint seen in the period this module reports the accepted protocols and suites
(with their class), grade, verification and the time of the last probe and enumeration at the
end of the period, and the worst within it: every protocol and every insecure or weak suite it
accepted at any time, the lowest grade score and whether it ever failed verification.

The state at the end is read with the report's window (``last_over_time(…[W])`` at the end);
the worst state with ``max_over_time``/``min_over_time`` over the period, cut into pieces of at
most :data:`PIECE_SECONDS` so no request reads more than a month of samples. An endpoint not
monitored at the end shows its worst state and an empty end state.

Labels: ``exposure`` (``external`` or ``internal``) is a configured label (docs/evidence.md,
"The exposure label"); ``environment`` and ``owner`` as everywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import promql_duration
from .query import PrometheusClient, quote

PIECE_SECONDS = 31 * 86400
IDENTITY = ("source_kind", "source", "location")
LABELS = ("exposure", "environment", "owner")
DEPRECATED = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")
PROTOCOL_ORDER = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")

Key = tuple[str, str, str]


@dataclass
class Endpoint:
    """One TLS endpoint's evidence (mutable while it is assembled, then only read)."""

    source_kind: str
    source: str
    location: str
    labels: dict[str, str] = field(default_factory=dict)
    protocols_end: set[str] = field(default_factory=set)
    suites_end: set[tuple[str, str, str]] = field(default_factory=set)  # protocol, cipher, class
    grade_end: str = ""
    verified_end: bool | None = None
    last_probe: float | None = None
    last_scan: float | None = None
    protocols_ever: set[str] = field(default_factory=set)
    weak_suites_ever: set[tuple[str, str]] = field(default_factory=set)  # cipher, class
    lowest_score: float | None = None
    grades_seen: set[str] = field(default_factory=set)
    ever_unverified: bool | None = None

    @property
    def deprecated_end(self) -> list[str]:
        return [p for p in DEPRECATED if p in self.protocols_end]

    @property
    def deprecated_ever(self) -> list[str]:
        return [p for p in DEPRECATED if p in self.protocols_ever]


def _key(metric: Mapping[str, str]) -> Key:
    return (metric.get("source_kind", ""), metric.get("source", ""), metric.get("location", ""))


def end_queries(job: str, window: float) -> dict[str, str]:
    sel = f"job=~{quote(job)}"
    w = promql_duration(window)
    by = "source_kind, source, location"
    return {
        "protocols_end": f"max by ({by}, protocol) (last_over_time("
        f"certscope_tls_protocol_supported{{{sel}}}[{w}])) == 1",
        "suites_end": f"max by ({by}, protocol, cipher, class) (last_over_time("
        f"certscope_tls_cipher_suite_supported{{{sel}}}[{w}]))",
        "grade_end": f"max by ({by}, grade) (last_over_time(certscope_tls_grade_info{{{sel}}}[{w}]))",
        "verified_end": f"min by ({by}) (last_over_time(certscope_cert_verified{{{sel}}}[{w}]))",
    }


def worst_queries(job: str, seconds: float) -> dict[str, str]:
    sel = f"job=~{quote(job)}"
    r = promql_duration(seconds)
    by = "source_kind, source, location"
    return {
        "seen": f"max by ({by}, {', '.join(LABELS)}) (max_over_time("
        f'certscope_probe_success{{{sel}, source_kind="tls"}}[{r}]))',
        "protocols_ever": f"max by ({by}, protocol) (max_over_time("
        f"certscope_tls_protocol_supported{{{sel}}}[{r}])) == 1",
        "weak_suites_ever": f"max by ({by}, cipher, class) (max_over_time("
        f'certscope_tls_cipher_suite_supported{{{sel}, class=~"insecure|weak"}}[{r}]))',
        "lowest_score": f"min by ({by}) (min_over_time(certscope_tls_grade_score{{{sel}}}[{r}]))",
        "grades_seen": f"max by ({by}, grade) (max_over_time(certscope_tls_grade_info{{{sel}}}[{r}]))",
        "verified_min": f"min by ({by}) (min_over_time(certscope_cert_verified{{{sel}}}[{r}]))",
        "last_probe": f"max by ({by}) (max_over_time("
        f"certscope_probe_timestamp_seconds{{{sel}}}[{r}]))",
        "last_scan": f"max by ({by}) (max_over_time("
        f"certscope_tls_scan_last_success_timestamp_seconds{{{sel}}}[{r}]))",
    }


def pieces(start: float, end: float) -> list[tuple[float, float]]:
    """``(start, end]`` cut into consecutive pieces of at most :data:`PIECE_SECONDS`."""
    out = []
    t = start
    while t < end:
        out.append((t, min(end, t + PIECE_SECONDS)))
        t = out[-1][1]
    return out


async def fetch(
    client: PrometheusClient, job: str, start: float, end: float, window: float
) -> dict[str, list[list[dict[str, Any]]]]:
    """Every answer of the end and worst-state queries (worst state: one per piece)."""
    calls: list[tuple[str, str, float]] = [
        (name, expr, end) for name, expr in end_queries(job, window).items()
    ]
    for a, b in pieces(start, end):
        calls += [(name, expr, b) for name, expr in worst_queries(job, b - a).items()]
    results = await asyncio.gather(
        *(client.instant(f"endpoints:{name}", expr, at) for name, expr, at in calls)
    )
    out: dict[str, list[list[dict[str, Any]]]] = {}
    for (name, _, _), result in zip(calls, results, strict=True):
        out.setdefault(name, []).append(result)
    return out


def _samples(answers: Iterable[list[dict[str, Any]]]) -> Iterable[tuple[dict[str, str], float]]:
    for result in answers:
        for item in result:
            metric, value = item.get("metric"), item.get("value")
            if not isinstance(metric, dict) or not isinstance(value, list) or len(value) != 2:
                continue
            try:
                yield {str(k): str(v) for k, v in metric.items()}, float(value[1])
            except (TypeError, ValueError):
                continue


def build(answers: Mapping[str, Sequence[list[dict[str, Any]]]]) -> list[Endpoint]:
    """The endpoints, sorted, from the answers of :func:`fetch` (pure)."""
    eps: dict[Key, Endpoint] = {}

    def ep(metric: Mapping[str, str]) -> Endpoint:
        key = _key(metric)
        if key not in eps:
            eps[key] = Endpoint(*key)
        return eps[key]

    def each(name: str) -> Iterable[tuple[dict[str, str], float]]:
        return _samples(answers.get(name, ()))

    for m, _ in each("seen"):
        ep(m).labels.update({k: m[k] for k in LABELS if m.get(k)})
    for m, _ in each("protocols_end"):
        ep(m).protocols_end.add(m.get("protocol", ""))
    for m, _ in each("suites_end"):
        ep(m).suites_end.add((m.get("protocol", ""), m.get("cipher", ""), m.get("class", "")))
    for m, _ in each("grade_end"):
        ep(m).grade_end = m.get("grade", "")
    for m, v in each("verified_end"):
        ep(m).verified_end = v >= 1
    _worst(each, ep)
    return [eps[k] for k in sorted(eps) if k[0] == "tls"]


def _worst(
    each: Callable[[str], Iterable[tuple[dict[str, str], float]]],
    ep: Callable[[Mapping[str, str]], Endpoint],
) -> None:
    """The worst state of each endpoint within the period, and its last probe and scan."""
    for m, _ in each("protocols_ever"):
        ep(m).protocols_ever.add(m.get("protocol", ""))
    for m, _ in each("weak_suites_ever"):
        ep(m).weak_suites_ever.add((m.get("cipher", ""), m.get("class", "")))
    for m, _ in each("grades_seen"):
        ep(m).grades_seen.add(m.get("grade", ""))
    for m, v in each("lowest_score"):
        e = ep(m)
        e.lowest_score = v if e.lowest_score is None else min(e.lowest_score, v)
    for m, v in each("verified_min"):
        e = ep(m)
        e.ever_unverified = (v < 1) or bool(e.ever_unverified)
    for m, v in each("last_probe"):
        e = ep(m)
        e.last_probe = v if e.last_probe is None else max(e.last_probe, v)
    for m, v in each("last_scan"):
        e = ep(m)
        e.last_scan = v if e.last_scan is None else max(e.last_scan, v)


def protocols_text(protocols: Iterable[str]) -> str:
    known = [p for p in PROTOCOL_ORDER if p in protocols]
    return " ".join(known + sorted(set(protocols) - set(PROTOCOL_ORDER)))


def suites_text(suites: Iterable[tuple[str, str, str]]) -> str:
    """``TLSv1.2 TLS_… (recommended); …`` in protocol order."""
    order = {p: i for i, p in enumerate(PROTOCOL_ORDER)}
    rows = sorted(set(suites), key=lambda s: (order.get(s[0], 99), s[1]))
    return "; ".join(f"{p} {c} ({k})" for p, c, k in rows)
