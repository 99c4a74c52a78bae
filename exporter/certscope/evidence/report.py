"""Writers of the evidence directory: HTML, CSV, JSON, PNG and the manifest.

Every file but ``manifest.json`` is listed in the manifest with its SHA-256, together with every
request sent to Prometheus, so the directory can be archived as it is and checked later.

Every CSV cell goes through :func:`certscope.csvsafe.cell` (text that a spreadsheet would run as
a formula gets a leading ``'``): a certificate presented by a scanned endpoint is untrusted input.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import csvsafe
from . import configuration as confmod
from . import credentials_report
from .endpoints import Endpoint, protocols_text, suites_text
from .facts import (
    SLOT_LABELS,
    AlertEpisode,
    Certificate,
    ControlResult,
    Coverage,
    Evidence,
    FindingSeries,
    Gap,
    Params,
    Renewal,
)
from .meta import Meta
from .model import bool_text, iso, iso_or_empty, labels_text
from .page import report_html

SCHEMA = "certscope-evidence/1"
CHARTS = ("expiry-timeline.png", "coverage.png", "findings.png")
_IDENTITY = ("source_kind", "source", "location")


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
                iso_or_empty(c.not_before),
                iso_or_empty(c.not_after),
                f.get("key_algorithm"),
                f.get("key_bits"),
                f.get("key_curve"),
                f.get("signature_algorithm"),
                f.get("signature_hash"),
                f.get("is_ca"),
                f.get("self_signed"),
                lab.get("owner"),
                lab.get("renewal"),
                labels_text(lab, (*SLOT_LABELS, "issuer_cn", "owner", "renewal")),
                iso_or_empty(c.first_seen),
                iso_or_empty(c.last_seen),
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
                bool_text(e.verified_end),
                iso_or_empty(e.last_probe),
                iso_or_empty(e.last_scan),
                protocols_text(e.protocols_ever),
                " ".join(e.deprecated_ever) or ("none" if e.protocols_ever else ""),
                "; ".join(f"{c} ({k})" for c, k in sorted(e.weak_suites_ever)),
                " ".join(sorted(e.grades_seen)),
                e.lowest_score,
                bool_text(e.ever_unverified),
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
    "gaps_inside",
    "other_labels",
)


def findings_csv(findings: Sequence[FindingSeries]) -> bytes:
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
                iso_or_empty(f.first_seen),
                iso_or_empty(f.last_seen),
                f.active_at_end,
                f.episodes,
                round(f.seconds, 3),
                f.gaps_inside,
                labels_text(f.labels, (*_IDENTITY, "owner")),
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
                labels_text(a.labels),
                iso_or_empty(a.fired_at),
                iso_or_empty(a.resolved_at) if a.resolved_at is not None else "still firing",
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
                iso_or_empty(cov.judged_from),
                iso_or_empty(cov.judged_to),
                round(cov.gap_seconds, 3),
                round(cov.ratio, 6),
                iso_or_empty(cov.first_seen),
                iso_or_empty(cov.last_seen),
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
                    iso_or_empty(gap.start),
                    iso_or_empty(gap.end),
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
                iso_or_empty(r.at),
                *(r.slot.get(k) for k in SLOT_LABELS),
                r.old.facts.get("serial"),
                r.new.facts.get("serial"),
                iso_or_empty(r.old.not_after),
                iso_or_empty(r.new.not_after),
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
        "judged_from": iso_or_empty(c.judged_from),
        "judged_to": iso_or_empty(c.judged_to),
        "unmonitored_seconds": round(c.gap_seconds, 3),
        "coverage_ratio": round(c.ratio, 6),
        "gaps": len(c.gaps),
    }


def summary(ev: Evidence, meta: Meta) -> dict[str, Any]:
    g = ev.params.grid
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
        "parameters": _parameters_json(ev.params, meta),
        "retention": {
            **dict(meta.retention),
            "first_scrape_in_period": iso_or_empty(ev.exporter[0].first_seen),
            "period_starts_before_data": bool(meta.partial),
            "why": meta.partial,
        },
        "failed_requests": [
            {"query": q, "start": iso(a), "end": iso(b), "error": e}
            for q, a, b, e in meta.failed_chunks
        ],
        "controls": {c.control: _control_json(c) for c in ev.controls},
        "coverage": {
            "exporter": [_coverage_json(c) for c in ev.exporter],
            "targets": [_coverage_json(c) for c in ev.targets],
        },
        "monitoring_gaps": [_gap_json(gap) for gap in ev.gaps],
        "renewals": [_renewal_json(r) for r in ev.renewals],
        **_events_json(ev),
        "counts": {
            "certificates": len(ev.certificates),
            "renewals": len([r for r in ev.renewals if r.kind == "renewal"]),
            "alert_episodes": len(ev.alerts),
            "findings": len(ev.findings),
            "monitoring_gaps": len(ev.gaps),
            "targets": len(ev.targets),
            "exporter_instances": max(0, len(ev.exporter) - 1),
        },
        "configuration": confmod.summary(meta.configuration),
        "credentials": credentials_report.summary(ev.credentials),
        "notes": [*ev.notes, *meta.notes],
        "warnings": list(meta.warnings),
    }


def _parameters_json(p: Params, meta: Meta) -> dict[str, Any]:
    return {
        "job": p.job_regex,
        "step_seconds": p.grid.step,
        "steps": p.grid.count,
        "window_seconds": p.window,
        "alert_window_seconds": p.alert_window,
        "scrape_interval_seconds": p.scrape_interval,
        "scrape_interval_source": meta.scrape_interval_source,
        "probe_stale_after_seconds": p.stale_after,
        "smallest_detectable_gap_seconds": 2 * p.scrape_interval,
        "min_observed_ratio": p.min_observed,
        "insufficient_below": p.insufficient_below,
    }


def _control_json(c: ControlResult) -> dict[str, Any]:
    return {
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


def _renewal_json(r: Renewal) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "at": iso(r.at),
        **dict(r.slot),
        "old_serial": r.old.facts.get("serial", ""),
        "new_serial": r.new.facts.get("serial", ""),
        "old_not_after": iso_or_empty(r.old.not_after),
        "new_not_after": iso_or_empty(r.new.not_after),
        "days_before_expiry": _days(r.days_before_expiry),
        "key_changed": r.key_changed,
        "key_basis": r.key_basis,
    }


def _events_json(ev: Evidence) -> dict[str, Any]:
    """Alerts, findings and waivers of the summary."""
    return {
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
    }


def _count_by(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
                "start": iso_or_empty(r.start),
                "end": iso_or_empty(r.end),
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
        **credentials_report.csv_files(ev.credentials),
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
