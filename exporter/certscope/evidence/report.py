"""Writers of the evidence directory: HTML, CSV, JSON, PNG and the manifest.

Every file but ``manifest.json`` is listed in the manifest with its SHA-256, together with every
request sent to Prometheus, so the directory can be archived as it is and checked later.

Every CSV cell goes through :func:`certscope.csvsafe.cell` (text that a spreadsheet would run as
a formula gets a leading ``'``): a certificate presented by a scanned endpoint is untrusted input.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import csvsafe
from . import configuration as confmod
from .configuration import Configuration
from .endpoints import Endpoint, protocols_text, suites_text
from .facts import (
    SLOT_LABELS,
    AlertEpisode,
    Certificate,
    Coverage,
    Evidence,
    Finding,
    Gap,
    Renewal,
)
from .model import human_duration, iso
from .query import Query, QueryRecord
from .verdict import FAIL, INSUFFICIENT, NOT_APPLICABLE, PASS, PASS_WITH_GAPS

SCHEMA = "certscope-evidence/1"
CHARTS = ("expiry-timeline.png", "coverage.png", "findings.png")
#: Most rows of a table in report.html; the CSV files always hold everything.
HTML_ROWS = 500
_IDENTITY = ("source_kind", "source", "location")


@dataclass(frozen=True)
class Meta:
    """Facts about the run that are not in the data."""

    generated_at: float
    version: str
    prometheus_url: str
    prometheus_version: str
    requested_from: float
    requested_to: float
    queries: Sequence[Query]
    records: Sequence[QueryRecord]
    warnings: Sequence[str] = ()
    scrape_interval_source: str = ""
    notes: Sequence[str] = field(default=())
    #: Prometheus retention flags and its lowest timestamp, as far as it tells
    retention: Mapping[str, str] = field(default_factory=dict)
    #: why the period starts before the data, "" when it does not
    partial: str = ""
    #: (query, start, end, error) of request chunks that failed after their retries
    failed_chunks: Sequence[tuple[str, float, float, str]] = ()
    #: how the client authenticated (no secret)
    http: Sequence[str] = ()
    bytes_received: int = 0
    configuration: Configuration = field(default_factory=Configuration)


# --- small helpers --------------------------------------------------------------------------


def _cell(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return round(value, 6)
    if value is None or isinstance(value, int):
        return csvsafe.cell(value)
    return csvsafe.cell(str(value))


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for row in rows:
        w.writerow([_cell(v) for v in row])
    return buf.getvalue().encode()


def _labels_text(labels: Mapping[str, str], skip: Iterable[str] = ()) -> str:
    skipped = set(skip)
    return ";".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in skipped)


def _iso(ts: float | None) -> str:
    return iso(ts) if ts is not None else ""


def _days(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


# --- CSV ------------------------------------------------------------------------------------

INVENTORY_HEADER = (
    "source_kind",
    "source",
    "location",
    "chain_position",
    "subject_cn",
    "subject",
    "sans",
    "issuer_cn",
    "issuer",
    "serial",
    "fingerprint_sha256",
    "not_before",
    "not_after",
    "key_algorithm",
    "key_bits",
    "key_curve",
    "signature_algorithm",
    "signature_hash",
    "is_ca",
    "self_signed",
    "owner",
    "renewal",
    "other_labels",
    "first_seen",
    "last_seen",
    "present_at_start",
    "present_at_end",
    "public_key_sha256",
    "days_left_at_period_end",
    "verified",
    "renewal_method",
)


def _verified(c: Certificate, eps: Mapping[tuple[str, str, str], Endpoint]) -> str:
    """``true``/``false`` for a TLS leaf whose endpoint reported verification at the end."""
    kind, source, location = (c.labels.get(k, "") for k in _IDENTITY)
    ep = eps.get((kind, source, location))
    if ep is None or ep.verified_end is None or c.labels.get("chain_position") != "0":
        return ""
    return "true" if ep.verified_end and c.present_at_end else "false"


def inventory_csv(
    certs: Sequence[Certificate], end: float = 0.0, eps: Sequence[Endpoint] = ()
) -> bytes:
    by_key = {(e.source_kind, e.source, e.location): e for e in eps}
    rows = []
    for c in certs:
        lab, f = c.labels, c.facts
        days_left = (
            (c.not_after - end) / 86400 if c.present_at_end and c.not_after is not None else None
        )
        rows.append(
            (
                lab.get("source_kind"),
                lab.get("source"),
                lab.get("location"),
                lab.get("chain_position"),
                lab.get("subject_cn"),
                f.get("subject"),
                f.get("sans"),
                lab.get("issuer_cn"),
                f.get("issuer"),
                f.get("serial"),
                f.get("fingerprint_sha256"),
                _iso(c.not_before),
                _iso(c.not_after),
                f.get("key_algorithm"),
                f.get("key_bits"),
                f.get("key_curve"),
                f.get("signature_algorithm"),
                f.get("signature_hash"),
                f.get("is_ca"),
                f.get("self_signed"),
                lab.get("owner"),
                lab.get("renewal"),
                _labels_text(lab, (*SLOT_LABELS, "issuer_cn", "owner", "renewal")),
                _iso(c.first_seen),
                _iso(c.last_seen),
                c.present_at_start,
                c.present_at_end,
                f.get("public_key_sha256"),
                _days(days_left),
                _verified(c, by_key),
                lab.get("renewal") or "not configured",
            )
        )
    return to_csv(INVENTORY_HEADER, rows)


ENDPOINTS_HEADER = (
    "source",
    "location",
    "exposure",
    "environment",
    "owner",
    "protocols_at_end",
    "deprecated_protocols_at_end",
    "suites_at_end",
    "grade_at_end",
    "verified_at_end",
    "last_probe",
    "last_scan",
    "protocols_accepted_in_period",
    "deprecated_protocols_in_period",
    "insecure_or_weak_suites_in_period",
    "grades_in_period",
    "lowest_grade_score_in_period",
    "unverified_in_period",
)


def _bool(value: bool | None) -> str:
    return "" if value is None else ("true" if value else "false")


def endpoints_csv(eps: Sequence[Endpoint]) -> bytes:
    return to_csv(
        ENDPOINTS_HEADER,
        (
            (
                e.source,
                e.location,
                e.labels.get("exposure", ""),
                e.labels.get("environment", ""),
                e.labels.get("owner", ""),
                protocols_text(e.protocols_end),
                " ".join(e.deprecated_end) or ("none" if e.protocols_end else ""),
                suites_text(e.suites_end),
                e.grade_end,
                _bool(e.verified_end),
                _iso(e.last_probe),
                _iso(e.last_scan),
                protocols_text(e.protocols_ever),
                " ".join(e.deprecated_ever) or ("none" if e.protocols_ever else ""),
                "; ".join(f"{c} ({k})" for c, k in sorted(e.weak_suites_ever)),
                " ".join(sorted(e.grades_seen)),
                e.lowest_score,
                _bool(e.ever_unverified),
            )
            for e in eps
        ),
    )


FINDINGS_HEADER = (
    "rule",
    "severity",
    "control",
    "status",
    "source_kind",
    "source",
    "location",
    "owner",
    "exception_owner",
    "first_seen",
    "last_seen",
    "active_at_end",
    "episodes",
    "active_seconds",
    "other_labels",
)


def findings_csv(findings: Sequence[Finding]) -> bytes:
    return to_csv(
        FINDINGS_HEADER,
        (
            (
                f.rule,
                f.severity,
                f.control,
                f.status,
                *(f.labels.get(k) for k in _IDENTITY),
                f.labels.get("owner"),
                f.exception_owner,
                _iso(f.first_seen),
                _iso(f.last_seen),
                f.active_at_end,
                f.episodes,
                round(f.seconds, 3),
                _labels_text(f.labels, (*_IDENTITY, "owner")),
            )
            for f in findings
        ),
    )


ALERTS_HEADER = (
    "alertname",
    "severity",
    "soc2_control",
    "window",
    "source_kind",
    "source",
    "location",
    "labels",
    "fired_at",
    "resolved_at",
    "duration_seconds",
    "fired_before_period",
    "start_state",
    "end_state",
    "gaps_inside",
)


def alerts_csv(alerts: Sequence[AlertEpisode]) -> bytes:
    return to_csv(
        ALERTS_HEADER,
        (
            (
                a.name,
                a.severity,
                a.control,
                a.labels.get("window"),
                *(a.labels.get(k) for k in _IDENTITY),
                _labels_text(a.labels),
                _iso(a.fired_at),
                _iso(a.resolved_at) if a.resolved_at is not None else "still firing",
                round(a.seconds, 3),
                a.fired_before_start,
                a.start_state,
                a.end_state,
                a.gaps_inside,
            )
            for a in alerts
        ),
    )


COVERAGE_HEADER = (
    "record",
    "scope",
    "job",
    "instance",
    "source_kind",
    "source",
    "location",
    "judged_from",
    "judged_to",
    "unmonitored_seconds",
    "coverage_ratio",
    "first_seen",
    "last_seen",
    "gap_kind",
    "gap_start",
    "gap_end",
    "gap_seconds",
)


def coverage_csv(ev: Evidence) -> bytes:
    rows: list[tuple[object, ...]] = []
    for cov in (*ev.exporter, *ev.targets):
        subject = tuple(
            cov.subject.get(k, "") for k in ("job", "instance", "source_kind", "source", "location")
        )
        base = (cov.scope, *subject)
        rows.append(
            (
                "total",
                *base,
                _iso(cov.judged_from),
                _iso(cov.judged_to),
                round(cov.gap_seconds, 3),
                round(cov.ratio, 6),
                _iso(cov.first_seen),
                _iso(cov.last_seen),
                "",
                "",
                "",
                "",
            )
        )
        for gap in cov.gaps:
            rows.append(
                (
                    "gap",
                    *base,
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                    gap.kind,
                    _iso(gap.start),
                    _iso(gap.end),
                    round(gap.seconds, 3),
                )
            )
    return to_csv(COVERAGE_HEADER, rows)


RENEWALS_HEADER = (
    "kind",
    "at",
    "source_kind",
    "source",
    "location",
    "chain_position",
    "subject_cn",
    "old_serial",
    "new_serial",
    "old_not_after",
    "new_not_after",
    "days_before_expiry",
    "key_changed",
    "key_basis",
    "old_fingerprint_sha256",
    "new_fingerprint_sha256",
)


def renewals_csv(renewals: Sequence[Renewal]) -> bytes:
    return to_csv(
        RENEWALS_HEADER,
        (
            (
                r.kind,
                _iso(r.at),
                *(r.slot.get(k) for k in SLOT_LABELS),
                r.old.facts.get("serial"),
                r.new.facts.get("serial"),
                _iso(r.old.not_after),
                _iso(r.new.not_after),
                _days(r.days_before_expiry),
                r.key_changed,
                r.key_basis,
                r.old.facts.get("fingerprint_sha256"),
                r.new.facts.get("fingerprint_sha256"),
            )
            for r in renewals
        ),
    )


# --- summary.json -----------------------------------------------------------------------------


def _gap_json(g: Gap) -> dict[str, Any]:
    return {
        "scope": g.scope,
        **dict(g.subject),
        "kind": g.kind,
        "start": iso(g.start),
        "end": iso(g.end),
        "seconds": round(g.seconds, 3),
    }


def _coverage_json(c: Coverage) -> dict[str, Any]:
    return {
        **dict(c.subject),
        "judged_from": _iso(c.judged_from),
        "judged_to": _iso(c.judged_to),
        "unmonitored_seconds": round(c.gap_seconds, 3),
        "coverage_ratio": round(c.ratio, 6),
        "gaps": len(c.gaps),
    }


def summary(ev: Evidence, meta: Meta) -> dict[str, Any]:
    p = ev.params
    g = p.grid
    renewed = [r for r in ev.renewals if r.kind == "renewal"]
    return {
        "schema": SCHEMA,
        "period": {
            "from": iso(g.start),
            "to": iso(g.end),
            "seconds": g.end - g.start,
            "requested_from": iso(meta.requested_from),
            "requested_to": iso(meta.requested_to),
        },
        "generated_at": iso(meta.generated_at),
        "certscope_version": meta.version,
        "prometheus": {"url": meta.prometheus_url, "version": meta.prometheus_version},
        "parameters": {
            "job": p.job_regex,
            "step_seconds": g.step,
            "steps": g.count,
            "window_seconds": p.window,
            "alert_window_seconds": p.alert_window,
            "scrape_interval_seconds": p.scrape_interval,
            "scrape_interval_source": meta.scrape_interval_source,
            "probe_stale_after_seconds": p.stale_after,
            "smallest_detectable_gap_seconds": 2 * p.scrape_interval,
            "min_observed_ratio": p.min_observed,
            "insufficient_below": p.insufficient_below,
        },
        "retention": {
            **dict(meta.retention),
            "first_scrape_in_period": _iso(ev.exporter[0].first_seen),
            "period_starts_before_data": bool(meta.partial),
            "why": meta.partial,
        },
        "failed_requests": [
            {"query": q, "start": iso(a), "end": iso(b), "error": e}
            for q, a, b, e in meta.failed_chunks
        ],
        "controls": {
            c.control: {
                "title": c.title,
                "result": c.result,
                "observed_ratio": c.observed_ratio,
                "detail": c.detail,
                "checks": [
                    {
                        "id": ch.id,
                        "title": ch.title,
                        "result": ch.result,
                        "detail": ch.detail,
                        "counts": dict(ch.counts),
                    }
                    for ch in c.checks
                ],
            }
            for c in ev.controls
        },
        "coverage": {
            "exporter": [_coverage_json(c) for c in ev.exporter],
            "targets": [_coverage_json(c) for c in ev.targets],
        },
        "monitoring_gaps": [_gap_json(gap) for gap in ev.gaps],
        "renewals": [
            {
                "kind": r.kind,
                "at": iso(r.at),
                **dict(r.slot),
                "old_serial": r.old.facts.get("serial", ""),
                "new_serial": r.new.facts.get("serial", ""),
                "old_not_after": _iso(r.old.not_after),
                "new_not_after": _iso(r.new.not_after),
                "days_before_expiry": _days(r.days_before_expiry),
                "key_changed": r.key_changed,
                "key_basis": r.key_basis,
            }
            for r in ev.renewals
        ],
        "alerts": {
            "episodes": len(ev.alerts),
            "resolved": len([a for a in ev.alerts if a.end_state == "resolved"]),
            "interrupted": len(
                [a for a in ev.alerts if "interrupted" in (a.start_state, a.end_state)]
            ),
            "still_firing": len([a for a in ev.alerts if a.end_state == "still_firing"]),
            "by_name": _count_by(a.name for a in ev.alerts),
        },
        "findings": {
            "violations": len([f for f in ev.findings if f.status == "violation"]),
            "waived": len([f for f in ev.findings if f.status == "waived"]),
            "active_at_end": len(
                [f for f in ev.findings if f.status == "violation" and f.active_at_end]
            ),
            "by_control": _count_by(f.control for f in ev.findings if f.status == "violation"),
        },
        "policy_exceptions": [
            {
                "target": e.target,
                "location": e.location,
                "rule": e.rule,
                "owner": e.owner,
                "expires": iso(e.expires),
                "status": e.status,
            }
            for e in ev.exceptions
        ],
        "waived_findings_at_end": [
            {
                "rule": f.rule,
                "control": f.control,
                **{k: f.labels.get(k, "") for k in _IDENTITY},
                "exception_owner": f.exception_owner,
            }
            for f in ev.findings
            if f.status == "waived" and f.active_at_end
        ],
        "counts": {
            "certificates": len(ev.certificates),
            "renewals": len(renewed),
            "alert_episodes": len(ev.alerts),
            "findings": len(ev.findings),
            "monitoring_gaps": len(ev.gaps),
            "targets": len(ev.targets),
            "exporter_instances": max(0, len(ev.exporter) - 1),
        },
        "configuration": confmod.summary(meta.configuration),
        "notes": [*ev.notes, *meta.notes],
        "warnings": list(meta.warnings),
    }


def _count_by(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


# --- report.html ------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:2rem;
color:#1f2328;max-width:1200px}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:2px solid #d0d7de;padding-bottom:.2rem;
margin-top:2.2rem}h3{margin-bottom:.3rem}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin:.5rem 0 1rem}
th,td{border:1px solid #d0d7de;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:.8rem;word-break:break-all}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:.7rem;font-weight:600;
font-size:.8rem;color:#fff;white-space:nowrap}
.pass{background:#1a7f37}.pass_with_gaps{background:#4d7c0f}.fail{background:#cf222e}.insufficient_data{background:#bf8700}
.not_applicable{background:#6e7781}.meta td:first-child{width:14rem;font-weight:600}
.note{background:#fff8c5;border:1px solid #d4a72c;padding:.5rem .8rem;border-radius:.3rem}
img{max-width:100%;border:1px solid #d0d7de;margin:.5rem 0}
.muted{color:#57606a}td.t{white-space:nowrap}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _badge(result: str) -> str:
    text = {
        PASS: "pass",
        PASS_WITH_GAPS: "pass with gaps",
        FAIL: "fail",
        INSUFFICIENT: "insufficient data",
        NOT_APPLICABLE: "not applicable",
    }.get(result, result)
    return f'<span class="badge {_e(result)}">{_e(text)}</span>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(rows_cells) + "</tr>" for rows_cells in _cells(rows))
    more = ""
    if len(rows) > HTML_ROWS:
        more = f'<p class="muted">{len(rows) - HTML_ROWS} more row(s) in the CSV file.</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _cells(rows: Sequence[Sequence[str]]) -> Iterable[list[str]]:
    for row in rows[:HTML_ROWS]:
        yield [cell if cell.startswith("<td") else f"<td>{cell}</td>" for cell in row]


def _num(value: object) -> str:
    return f'<td class="num">{_e(value)}</td>'


def _t(text: str) -> str:
    """A timestamp cell (never wrapped)."""
    return f'<td class="t">{_e(text)}</td>'


def _where(labels: Mapping[str, str]) -> str:
    kind, source, location = (labels.get(k, "") for k in _IDENTITY)
    text = f"{source} ({kind})" if kind else source
    if location:
        text += f" — {location}"
    return _e(text)


def _subject(scope: str, subject: Mapping[str, str]) -> str:
    if scope == "exporter":
        return _e(f"job {subject.get('job')}, instance {subject.get('instance')}")
    return _where(subject)


def _img(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}" title="{_e(name)}">'


def report_html(ev: Evidence, meta: Meta, charts: Mapping[str, bytes]) -> bytes:
    p = ev.params
    g = p.grid
    parts: list[str] = []
    add = parts.append
    add("<!DOCTYPE html>")
    add('<html lang="en"><head><meta charset="utf-8">')
    add('<meta name="viewport" content="width=device-width, initial-scale=1">')
    add(f"<title>certscope evidence {_e(iso(g.start))} to {_e(iso(g.end))}</title>")
    add(f"<style>{CSS}</style></head><body>")
    add('<h1 id="top">certscope SOC 2 evidence report</h1>')
    add(
        f'<p class="muted">Period {_e(iso(g.start))} to {_e(iso(g.end))} '
        f"({_e(human_duration(g.end - g.start))}), generated {_e(iso(meta.generated_at))} "
        f"by certscope {_e(meta.version)} from {_e(meta.prometheus_url)}.</p>"
    )
    if meta.partial:
        add(
            '<p class="note"><strong>Partial evidence: the period starts before the data '
            f"Prometheus holds</strong> ({_e(meta.partial)}). The time before it is reported as "
            "a gap and counts against every control.</p>"
        )
    for note in (*ev.notes, *meta.notes):
        add(f'<p class="note">{_e(note)}</p>')
    for q, a, b, error in meta.failed_chunks:
        add(
            f'<p class="note">Query {_e(q)} failed for {_e(iso(a))} to {_e(iso(b))} after its '
            f"retries ({_e(error)}); that time is a gap in the data (query_failed).</p>"
        )

    # Summary ---------------------------------------------------------------------------------
    add('<h2 id="summary">Summary</h2>')
    gaps = ev.gaps
    open_exc = [e for e in ev.exceptions if e.status == "open"]
    add(
        _table(
            ["control", "criterion", "result", "data observed", "checks"],
            [
                [
                    f'<td><a href="#{_e(c.control)}">{_e(c.control)}</a></td>',
                    _e(c.title),
                    _badge(c.result),
                    _num(f"{c.observed_ratio:.1%}"),
                    _e(", ".join(f"{ch.id}: {ch.result}" for ch in c.checks)),
                ]
                for c in ev.controls
            ],
            "no control evaluated",
        )
    )
    renewed = [r for r in ev.renewals if r.kind == "renewal"]
    add('<table class="meta"><tbody>')
    for key, value in (
        ("Certificates seen", len(ev.certificates)),
        ("Certificates renewed", len(renewed)),
        (
            "Coverage of the exporter job (one definition: 1 - time in a gap / period)",
            f"{ev.exporter[0].ratio:.4%}",
        ),
        ("Monitoring gaps of the exporter job", _gap_count(ev.exporter[0].gaps)),
        (
            "Smallest gap this report detects",
            f"{human_duration(2 * p.scrape_interval)} (two missed scrapes at "
            f"{human_duration(p.scrape_interval)}, whatever the step)",
        ),
        (
            "Retention (Prometheus)",
            ", ".join(f"{k} {v}" for k, v in meta.retention.items()) or "not reported",
        ),
        ("First scrape of the exporter job in the period", _iso(ev.exporter[0].first_seen)),
        ("Monitoring gaps of targets", _gap_count([x for x in gaps if x.scope == "target"])),
        (
            "Alerts fired / resolved / still firing",
            f"{len(ev.alerts)} / {len([a for a in ev.alerts if a.end_state == 'resolved'])}"
            f" / {len([a for a in ev.alerts if a.end_state == 'still_firing'])}"
            f" (interrupted by a monitoring gap: "
            f"{len([a for a in ev.alerts if 'interrupted' in (a.start_state, a.end_state)])})",
        ),
        ("Policy findings (violations / waived)", _finding_counts(ev.findings)),
        ("Open policy exceptions", len(open_exc)),
        (
            "Step / window",
            f"{human_duration(g.step)} / {human_duration(p.window)} "
            f"(scrape interval {human_duration(p.scrape_interval)}, "
            f"{meta.scrape_interval_source})",
        ),
        ("Prometheus", f"{meta.prometheus_url} {meta.prometheus_version}".strip()),
    ):
        add(f"<tr><td>{_e(key)}</td><td>{_e(value)}</td></tr>")
    add("</tbody></table>")

    # Controls --------------------------------------------------------------------------------
    add('<h2 id="controls">Controls</h2>')
    for c in ev.controls:
        add(f'<h3 id="{_e(c.control)}">{_e(c.control)} — {_e(c.title)} {_badge(c.result)}</h3>')
        add(
            f'<p class="muted">{_e(c.detail)}. A control passes only with at least '
            f"{p.min_observed:.0%} of the period observed; it passes with gaps from "
            f"{p.insufficient_below:.0%}, and has insufficient data below.</p>"
        )
        add(
            _table(
                ["check", "what was checked", "result", "over the period"],
                [
                    [
                        f"<td><code>{_e(ch.id)}</code></td>",
                        _e(ch.title),
                        _badge(ch.result),
                        _e(ch.detail),
                    ]
                    for ch in c.checks
                ],
                "no check",
            )
        )

    # Gaps ------------------------------------------------------------------------------------
    add('<h2 id="gaps">Monitoring gaps</h2>')
    add(
        '<p class="muted">Intervals without evidence: the exporter job was not scraped '
        "(<code>up</code> 0 or absent), or a target was not probed (series absent, last probe "
        f"older than {_e(human_duration(p.stale_after))}, probe or store failing). Each interval "
        f"is certain; the real one may begin and end up to one step ({_e(human_duration(g.step))}) "
        "earlier and later.</p>"
    )
    add(
        _table(
            ["scope", "subject", "kind", "start", "end", "duration"],
            [
                [
                    _e(x.scope),
                    _subject(x.scope, x.subject),
                    _e(x.kind),
                    _t(iso(x.start)),
                    _t(iso(x.end)),
                    _num(human_duration(x.seconds)),
                ]
                for x in gaps
            ],
            "No monitoring gap in the period.",
        )
    )
    add(_img("coverage.png", charts["coverage.png"], "Monitoring coverage over the period"))
    add("<h3>Coverage</h3>")
    add(
        _table(
            [
                "scope",
                "subject",
                "judged from",
                "judged to",
                "time in gaps",
                "coverage",
                "first seen",
                "last seen",
            ],
            [
                [
                    _e(c.scope),
                    _subject(c.scope, c.subject),
                    _t(_iso(c.judged_from)),
                    _t(_iso(c.judged_to)),
                    _num(human_duration(c.gap_seconds)),
                    _num(f"{c.ratio:.2%}"),
                    _t(_iso(c.first_seen)),
                    _t(_iso(c.last_seen)),
                ]
                for c in (*ev.exporter, *ev.targets)
            ],
            "no coverage data",
        )
    )

    # Renewals --------------------------------------------------------------------------------
    add('<h2 id="renewals">Certificates renewed</h2>')
    add(
        '<p class="muted">A slot (source, location, chain position, subject CN) whose '
        "certificate changed. Key change compares the certificates' public_key_sha256; without "
        "it, a change of key type is <em>yes</em> and the same key type is <em>unknown</em> "
        "(hover a cell for the basis).</p>"
    )
    add(
        _table(
            [
                "when",
                "where",
                "subject CN",
                "kind",
                "old serial",
                "new serial",
                "old notAfter",
                "new notAfter",
                "days before expiry",
                "key changed",
            ],
            [
                [
                    _t(iso(r.at)),
                    _where(r.slot) + f" #{_e(r.slot.get('chain_position'))}",
                    _e(r.slot.get("subject_cn")),
                    _e(r.kind),
                    f'<td class="mono">{_e(r.old.facts.get("serial"))}</td>',
                    f'<td class="mono">{_e(r.new.facts.get("serial"))}</td>',
                    _t(_iso(r.old.not_after)),
                    _t(_iso(r.new.not_after)),
                    _num(f"{r.days_before_expiry:.1f}" if r.days_before_expiry is not None else ""),
                    f'<td title="{_e(r.key_basis)}">{_e(r.key_changed)}</td>',
                ]
                for r in ev.renewals
            ],
            "No certificate was renewed or replaced during the period.",
        )
    )

    # Alerts ----------------------------------------------------------------------------------
    add('<h2 id="alerts">Alerts fired and resolved</h2>')
    add(
        _table(
            ["alert", "severity", "control", "window", "where", "fired", "resolved", "duration"],
            [
                [
                    _e(a.name),
                    _e(a.severity),
                    _e(a.control),
                    _e(a.labels.get("window", "")),
                    _where(a.labels) or _e(_labels_text(a.labels)),
                    _t(
                        ("≤ " if a.fired_before_start else "")
                        + iso(a.fired_at)
                        + (" (after a gap)" if a.start_state == "interrupted" else "")
                    ),
                    _t(_end_text(a)),
                    _num(human_duration(a.seconds)),
                ]
                for a in ev.alerts
            ],
            "No certscope alert fired during the period.",
        )
    )

    # Findings --------------------------------------------------------------------------------
    add('<h2 id="findings">Policy findings</h2>')
    add(
        _table(
            ["control", "rule", "severity", "status", "where", "owner", "first seen", "last seen"],
            [
                [
                    _e(f.control),
                    f"<td><code>{_e(f.rule)}</code></td>",
                    _e(f.severity),
                    _e(f.status + (f" by {f.exception_owner}" if f.exception_owner else "")),
                    _where(f.labels),
                    _e(f.labels.get("owner", "")),
                    _t(iso(f.first_seen)),
                    _t("active at the end" if f.active_at_end else iso(f.last_seen)),
                ]
                for f in ev.findings
            ],
            "No policy finding during the period.",
        )
    )
    add(_img("findings.png", charts["findings.png"], "Findings and alerts over the period"))

    # Exceptions ------------------------------------------------------------------------------
    add('<h2 id="exceptions">Open policy exceptions</h2>')
    add(
        _table(
            ["status", "target", "location", "rule", "owner", "expires"],
            [
                [
                    _e(x.status),
                    _e(x.target),
                    _e(x.location),
                    f"<td><code>{_e(x.rule)}</code></td>",
                    _e(x.owner),
                    _t(iso(x.expires)),
                ]
                for x in ev.exceptions
            ],
            "No policy exception was configured during the period.",
        )
    )

    # Endpoints -------------------------------------------------------------------------------
    add('<h2 id="endpoints">TLS endpoints</h2>')
    add(
        '<p class="muted">Every TLS endpoint seen in the period: what it accepted at the end of '
        "the period and the worst it accepted at any time within it (endpoints.csv has every "
        "suite). <em>exposure</em> is the configured external/internal label.</p>"
    )
    add(
        _table(
            [
                "endpoint",
                "exposure",
                "protocols at end",
                "grade at end",
                "verified at end",
                "deprecated protocols in period",
                "insecure/weak suites in period",
                "lowest score",
                "last probe",
                "last scan",
            ],
            [
                [
                    _e(f"{e.source} — {e.location}"),
                    _e(e.labels.get("exposure", "")),
                    _e(protocols_text(e.protocols_end) or "not monitored at the end"),
                    _e(e.grade_end),
                    _e(_bool(e.verified_end)),
                    _e(" ".join(e.deprecated_ever) or ("none" if e.protocols_ever else "")),
                    _e(", ".join(f"{c} ({k})" for c, k in sorted(e.weak_suites_ever)) or "none"),
                    _num("" if e.lowest_score is None else f"{e.lowest_score:g}"),
                    _t(_iso(e.last_probe)),
                    _t(_iso(e.last_scan)),
                ]
                for e in ev.endpoints
            ],
            "No TLS endpoint was probed during the period.",
        )
    )

    # Inventory -------------------------------------------------------------------------------
    add('<h2 id="inventory">Certificate inventory</h2>')
    add(_img("expiry-timeline.png", charts["expiry-timeline.png"], "Certificate expiry timeline"))
    add(
        _table(
            [
                "where",
                "#",
                "subject CN",
                "issuer",
                "serial",
                "not after",
                "owner",
                "first seen",
                "last seen",
            ],
            [
                [
                    _where(c.labels),
                    _e(c.labels.get("chain_position")),
                    _e(c.labels.get("subject_cn")),
                    _e(c.labels.get("issuer_cn")),
                    f'<td class="mono">{_e(c.facts.get("serial"))}</td>',
                    _t(_iso(c.not_after)),
                    _e(c.labels.get("owner", "")),
                    _t(_iso(c.first_seen)),
                    _t("still present" if c.present_at_end else _iso(c.last_seen)),
                ]
                for c in ev.certificates
            ],
            "No certificate was seen during the period.",
        )
    )

    _configuration_html(add, meta.configuration)

    # Method ----------------------------------------------------------------------------------
    add('<h2 id="method">Method</h2>')
    add(
        f"<p>Every query below ran as a range query from {_e(iso(g.time(0)))} to "
        f"{_e(iso(g.end))} every {_e(human_duration(g.step))}, in chunks of at most 11,000 "
        "points; <code>manifest.json</code> lists every request with its exact start, end and "
        "step, and the SHA-256 of every file in this directory.</p>"
    )
    add(
        _table(
            ["name", "PromQL", "purpose"],
            [
                [
                    f"<td><code>{_e(q.name)}</code></td>",
                    f"<td><code>{_e(q.expr)}</code></td>",
                    _e(q.purpose),
                ]
                for q in meta.queries
            ],
            "no query",
        )
    )
    if meta.warnings:
        add("<h3>Warnings from Prometheus</h3><ul>")
        for w in meta.warnings:
            add(f"<li>{_e(w)}</li>")
        add("</ul>")
    add("</body></html>")
    return "\n".join(parts).encode()


def _configuration_html(add: Any, conf: Configuration) -> None:
    """Control configuration and what certscope does not observe."""
    add('<h2 id="configuration">Control configuration</h2>')
    facts = [
        (
            "Rules loaded in Prometheus",
            "rules.json (/api/v1/rules)" if conf.rules is not None else "not offered",
        ),
        (
            "Alertmanager routing and receivers",
            "alertmanager.yml (secrets redacted)"
            if conf.alertmanager is not None
            else conf.alertmanager_error or "not requested (--alertmanager.url)",
        ),
        (
            "certscope configuration",
            f"certscope-config.yml (secrets redacted), SHA-256 {conf.certscope_config_sha256} "
            "of the original file"
            if conf.certscope_config is not None
            else "not requested (--config)",
        ),
    ]
    add('<table class="meta"><tbody>')
    for key, value in facts:
        add(f"<tr><td>{_e(key)}</td><td>{_e(value)}</td></tr>")
    add("</tbody></table>")
    add("<h3>Alerts and their runbooks</h3>")
    add(
        _table(
            ["alert", "severity", "control", "runbook"],
            [
                [
                    f"<td><code>{_e(a)}</code></td>",
                    _e(s),
                    _e(c),
                    f'<td><a href="{_e(u)}">{_e(u)}</a></td>' if u else _e("none"),
                ]
                for a, s, c, u in conf.runbooks
            ],
            "No certscope alert rule is loaded in this Prometheus.",
        )
    )
    add('<h2 id="not-covered">Not covered</h2>')
    add(
        '<p class="muted">What this package is evidence of, and what it is not: kinds of '
        "credential certscope observes but that were not configured in the period, and what "
        "certscope never observes. Other evidence must cover these.</p>"
    )
    add("<h3>Observed in the period</h3><ul>")
    for what in conf.covered or ("nothing",):
        add(f"<li>{_e(what)}</li>")
    add("</ul><h3>Not covered</h3><ul>")
    for what in conf.not_covered:
        add(f"<li>{_e(what)}</li>")
    add("</ul>")


def _end_text(a: AlertEpisode) -> str:
    if a.end_state == "still_firing":
        return "still firing"
    text = _iso(a.resolved_at)
    return text + " (interrupted by a gap)" if a.end_state == "interrupted" else text


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _gap_count(gaps: Sequence[Gap]) -> str:
    return f"{len(gaps)} ({human_duration(sum(x.seconds for x in gaps))} in total)"


def _finding_counts(findings: Sequence[Finding]) -> str:
    violations = len([f for f in findings if f.status == "violation"])
    waived = len([f for f in findings if f.status == "waived"])
    return f"{violations} / {waived}"


# --- the directory ----------------------------------------------------------------------------


def manifest(files: Mapping[str, bytes], ev: Evidence, meta: Meta) -> dict[str, Any]:
    p = ev.params
    return {
        "schema": SCHEMA,
        "generator": f"certscope evidence {meta.version}",
        "generated_at": iso(meta.generated_at),
        "prometheus": {"url": meta.prometheus_url, "version": meta.prometheus_version},
        "period": {"from": iso(p.grid.start), "to": iso(p.grid.end)},
        "files": [
            {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in sorted(files.items())
        ],
        "queries": [
            {
                "name": r.name,
                "kind": r.kind,
                "expr": r.expr,
                "start": _iso(r.start),
                "end": _iso(r.end),
                "start_unix": r.start,
                "end_unix": r.end,
                "step": r.step,
                "series": r.series,
            }
            for r in meta.records
        ],
        "warnings": list(meta.warnings),
        "failed_requests": len(meta.failed_chunks),
        "bytes_received": meta.bytes_received,
        "http_config": list(meta.http),
    }


def render(
    ev: Evidence,
    meta: Meta,
    charts: Mapping[str, bytes],
    to_pdf: Callable[[bytes], bytes] | None = None,
) -> dict[str, bytes]:
    """Every file of the evidence directory, manifest.json last (it hashes the others)."""
    html_report = report_html(ev, meta, charts)
    files: dict[str, bytes] = {
        "report.html": html_report,
        **({"report.pdf": to_pdf(html_report)} if to_pdf is not None else {}),
        "inventory.csv": inventory_csv(ev.certificates, ev.params.grid.end, ev.endpoints),
        "endpoints.csv": endpoints_csv(ev.endpoints),
        "findings.csv": findings_csv(ev.findings),
        "alerts.csv": alerts_csv(ev.alerts),
        "coverage.csv": coverage_csv(ev),
        "renewals.csv": renewals_csv(ev.renewals),
        "summary.json": _json(summary(ev, meta)),
        **{name: charts[name] for name in CHARTS},
        **confmod.files(meta.configuration),
    }
    files["manifest.json"] = _json(manifest(files, ev, meta))
    # beside the manifest, in sha256sum format: `sha256sum -c manifest.json.sha256`
    files["manifest.json.sha256"] = f"{sha256(files['manifest.json'])}  manifest.json\n".encode()
    return files


def write(out_dir: Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write the files (each through a temporary name, so none is ever half written)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files.items():
        path = out_dir / name
        tmp = out_dir / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(path)
        written.append(path)
    return written


def _json(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()
