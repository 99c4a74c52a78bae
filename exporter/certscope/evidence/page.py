"""report.html: the evidence report as one self-contained page (inline CSS, charts as
``data:`` URIs, no script), rendered from ``evidence/templates/report.html`` (Jinja2).

This module only arranges the evidence into tables of :class:`Cell` s (pure, no markup); the
template writes the markup with autoescaping on, so every value from the data is escaped.
Tables stop at :data:`HTML_ROWS` rows (the CSV files hold everything).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import jinja2

from . import credentials_report
from .configuration import Configuration
from .endpoints import protocols_text
from .facts import AlertEpisode, Check, Evidence, FindingSeries, Gap
from .meta import Meta
from .model import bool_text, human_duration, iso, iso_or_empty, labels_text
from .verdict import FAIL, INSUFFICIENT, NOT_APPLICABLE, PASS, PASS_WITH_GAPS

#: Most rows of a table in report.html; the CSV files always hold everything.
HTML_ROWS = 500
_IDENTITY = ("source_kind", "source", "location")

BADGES = {
    PASS: "pass",
    PASS_WITH_GAPS: "pass with gaps",
    FAIL: "fail",
    INSUFFICIENT: "insufficient data",
    NOT_APPLICABLE: "not applicable",
}


@dataclass(frozen=True)
class Cell:
    """One table cell: text, and how it is shown (the template writes the markup)."""

    text: object = ""
    cls: str = ""  # "num", "t" (a timestamp, never wrapped), "mono"
    code: bool = False
    href: str = ""
    title: str = ""
    badge: str = ""  # a result: shown as a coloured badge


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    empty: str


def table(header: Sequence[str], rows: Iterable[Sequence[Cell | object]], empty: str) -> Table:
    """A table of the report; plain values become plain cells."""
    return Table(
        header,
        [[c if isinstance(c, Cell) else Cell(c) for c in row] for row in rows],
        empty,
    )


def _num(value: object) -> Cell:
    return Cell(value, cls="num")


def _t(text: str) -> Cell:
    return Cell(text, cls="t")


def _code(text: str) -> Cell:
    return Cell(text, code=True)


def _where(labels: Mapping[str, str]) -> str:
    kind, source, location = (labels.get(k, "") for k in _IDENTITY)
    text = f"{source} ({kind})" if kind else source
    return f"{text} — {location}" if location else text


def _subject(scope: str, subject: Mapping[str, str]) -> str:
    if scope == "exporter":
        return f"job {subject.get('job')}, instance {subject.get('instance')}"
    return _where(subject)


@cache
def environment() -> jinja2.Environment:
    """The templates of the evidence package (report.html and its parts)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("certscope", "evidence/templates"),
        autoescape=True,  # every value is data from Prometheus, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(BADGES=BADGES, HTML_ROWS=HTML_ROWS)
    return env


def report_html(ev: Evidence, meta: Meta, charts: Mapping[str, bytes]) -> bytes:
    g = ev.params.grid
    text = (
        environment()
        .get_template("report.html")
        .render(
            p=ev.params,
            g=g,
            ev=ev,
            meta=meta,
            period=(iso(g.start), iso(g.end), human_duration(g.end - g.start)),
            generated=iso(meta.generated_at),
            failed=[(q, iso(a), iso(b), e) for q, a, b, e in meta.failed_chunks],
            summary=_summary(ev),
            facts=_facts(ev, meta),
            controls=[(c, _checks(c.checks)) for c in ev.controls],
            gaps=_gaps(ev),
            coverage=_coverage(ev),
            renewals=_renewals(ev),
            alerts=_alerts(ev),
            findings=_findings(ev),
            exceptions=_exceptions(ev),
            endpoints=_endpoints(ev),
            inventory=_inventory(ev),
            images={name: _png(png) for name, png in charts.items()},
            credentials=credentials_report.view(ev.credentials, ev.findings),
            configuration=_configuration(meta.configuration),
            queries=table(
                ["name", "PromQL", "purpose"],
                ([_code(q.name), _code(q.expr), q.purpose] for q in meta.queries),
                "no query",
            ),
            human_duration=human_duration,
            iso=iso,
        )
    )
    return text.encode()


def _png(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _summary(ev: Evidence) -> Table:
    return table(
        ["control", "criterion", "result", "data observed", "checks"],
        (
            [
                Cell(c.control, href=f"#{c.control}"),
                c.title,
                Cell(badge=c.result),
                _num(f"{c.observed_ratio:.1%}"),
                ", ".join(f"{ch.id}: {ch.result}" for ch in c.checks),
            ]
            for c in ev.controls
        ),
        "no control evaluated",
    )


def _facts(ev: Evidence, meta: Meta) -> list[tuple[str, object]]:
    """The key figures under the summary table."""
    p, job = ev.params, ev.exporter[0]
    alerts = ev.alerts
    interrupted = [a for a in alerts if "interrupted" in (a.start_state, a.end_state)]
    return [
        ("Certificates seen", len(ev.certificates)),
        ("Certificates renewed", len([r for r in ev.renewals if r.kind == "renewal"])),
        (
            "Coverage of the exporter job (one definition: 1 - time in a gap / period)",
            f"{job.ratio:.4%}",
        ),
        ("Monitoring gaps of the exporter job", _gap_count(job.gaps)),
        (
            "Smallest gap this report detects",
            f"{human_duration(2 * p.scrape_interval)} (two missed scrapes at "
            f"{human_duration(p.scrape_interval)}, whatever the step)",
        ),
        (
            "Retention (Prometheus)",
            ", ".join(f"{k} {v}" for k, v in meta.retention.items()) or "not reported",
        ),
        ("First scrape of the exporter job in the period", iso_or_empty(job.first_seen)),
        ("Monitoring gaps of targets", _gap_count([x for x in ev.gaps if x.scope == "target"])),
        (
            "Alerts fired / resolved / still firing",
            f"{len(alerts)} / {len([a for a in alerts if a.end_state == 'resolved'])}"
            f" / {len([a for a in alerts if a.end_state == 'still_firing'])}"
            f" (interrupted by a monitoring gap: {len(interrupted)})",
        ),
        ("Policy findings (violations / waived)", _finding_counts(ev.findings)),
        ("Open policy exceptions", len([e for e in ev.exceptions if e.status == "open"])),
        (
            "Step / window",
            f"{human_duration(p.grid.step)} / {human_duration(p.window)} "
            f"(scrape interval {human_duration(p.scrape_interval)}, "
            f"{meta.scrape_interval_source})",
        ),
        ("Prometheus", f"{meta.prometheus_url} {meta.prometheus_version}".strip()),
    ]


def _checks(checks: Sequence[Check]) -> Table:
    return table(
        ["check", "what was checked", "result", "over the period"],
        ([_code(ch.id), ch.title, Cell(badge=ch.result), ch.detail] for ch in checks),
        "no check",
    )


def _gaps(ev: Evidence) -> Table:
    return table(
        ["scope", "subject", "kind", "start", "end", "duration"],
        (
            [
                x.scope,
                _subject(x.scope, x.subject),
                x.kind,
                _t(iso(x.start)),
                _t(iso(x.end)),
                _num(human_duration(x.seconds)),
            ]
            for x in ev.gaps
        ),
        "No monitoring gap in the period.",
    )


def _coverage(ev: Evidence) -> Table:
    header = ["scope", "subject", "judged from", "judged to", "time in gaps", "coverage"]
    return table(
        [*header, "first seen", "last seen"],
        (
            [
                c.scope,
                _subject(c.scope, c.subject),
                _t(iso_or_empty(c.judged_from)),
                _t(iso_or_empty(c.judged_to)),
                _num(human_duration(c.gap_seconds)),
                _num(f"{c.ratio:.2%}"),
                _t(iso_or_empty(c.first_seen)),
                _t(iso_or_empty(c.last_seen)),
            ]
            for c in (*ev.exporter, *ev.targets)
        ),
        "no coverage data",
    )


def _renewals(ev: Evidence) -> Table:
    header = ["when", "where", "subject CN", "kind", "old serial", "new serial"]
    header += ["old notAfter", "new notAfter", "days before expiry", "key changed"]
    return table(
        header,
        (
            [
                _t(iso(r.at)),
                f"{_where(r.slot)} #{r.slot.get('chain_position') or ''}",
                r.slot.get("subject_cn") or "",
                r.kind,
                Cell(r.old.facts.get("serial") or "", cls="mono"),
                Cell(r.new.facts.get("serial") or "", cls="mono"),
                _t(iso_or_empty(r.old.not_after)),
                _t(iso_or_empty(r.new.not_after)),
                _num(f"{r.days_before_expiry:.1f}" if r.days_before_expiry is not None else ""),
                Cell(r.key_changed, title=r.key_basis),
            ]
            for r in ev.renewals
        ),
        "No certificate was renewed or replaced during the period.",
    )


def _alerts(ev: Evidence) -> Table:
    return table(
        ["alert", "severity", "control", "window", "where", "fired", "resolved", "duration"],
        (
            [
                a.name,
                a.severity,
                a.control,
                a.labels.get("window", ""),
                _where(a.labels) or labels_text(a.labels),
                _t(
                    ("≤ " if a.fired_before_start else "")
                    + iso(a.fired_at)
                    + (" (after a gap)" if a.start_state == "interrupted" else "")
                ),
                _t(_end_text(a)),
                _num(human_duration(a.seconds)),
            ]
            for a in ev.alerts
        ),
        "No certscope alert fired during the period.",
    )


def _findings(ev: Evidence) -> Table:
    return table(
        ["control", "rule", "severity", "status", "where", "owner", "first seen", "last seen"],
        (
            [
                f.control,
                _code(f.rule),
                f.severity,
                f.status + (f" by {f.exception_owner}" if f.exception_owner else ""),
                _where(f.labels),
                f.labels.get("owner", ""),
                _t(iso(f.first_seen)),
                _t("active at the end" if f.active_at_end else iso(f.last_seen)),
            ]
            for f in ev.findings
        ),
        "No policy finding during the period.",
    )


def _exceptions(ev: Evidence) -> Table:
    return table(
        ["status", "target", "location", "rule", "owner", "expires"],
        (
            [x.status, x.target, x.location, _code(x.rule), x.owner, _t(iso(x.expires))]
            for x in ev.exceptions
        ),
        "No policy exception was configured during the period.",
    )


def _endpoints(ev: Evidence) -> Table:
    header = ["endpoint", "exposure", "protocols at end", "grade at end", "verified at end"]
    header += ["deprecated protocols in period", "insecure/weak suites in period"]
    return table(
        [*header, "lowest score", "last probe", "last scan"],
        (
            [
                f"{e.source} — {e.location}",
                e.labels.get("exposure", ""),
                protocols_text(e.protocols_end) or "not monitored at the end",
                e.grade_end,
                bool_text(e.verified_end),
                " ".join(e.deprecated_ever) or ("none" if e.protocols_ever else ""),
                ", ".join(f"{c} ({k})" for c, k in sorted(e.weak_suites_ever)) or "none",
                _num("" if e.lowest_score is None else f"{e.lowest_score:g}"),
                _t(iso_or_empty(e.last_probe)),
                _t(iso_or_empty(e.last_scan)),
            ]
            for e in ev.endpoints
        ),
        "No TLS endpoint was probed during the period.",
    )


def _inventory(ev: Evidence) -> Table:
    header = ["where", "#", "subject CN", "issuer", "serial", "not after", "owner"]
    return table(
        [*header, "first seen", "last seen"],
        (
            [
                _where(c.labels),
                c.labels.get("chain_position") or "",
                c.labels.get("subject_cn") or "",
                c.labels.get("issuer_cn") or "",
                Cell(c.facts.get("serial") or "", cls="mono"),
                _t(iso_or_empty(c.not_after)),
                c.labels.get("owner", ""),
                _t(iso_or_empty(c.first_seen)),
                _t("still present" if c.present_at_end else iso_or_empty(c.last_seen)),
            ]
            for c in ev.certificates
        ),
        "No certificate was seen during the period.",
    )


def _configuration(conf: Configuration) -> dict[str, object]:
    """Control configuration and what certscope does not observe."""
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
    runbooks = table(
        ["alert", "severity", "control", "runbook"],
        ([_code(a), s, c, Cell(u, href=u) if u else "none"] for a, s, c, u in conf.runbooks),
        "No certscope alert rule is loaded in this Prometheus.",
    )
    return {
        "facts": facts,
        "runbooks": runbooks,
        "covered": conf.covered or ("nothing",),
        "not_covered": conf.not_covered,
    }


def _end_text(a: AlertEpisode) -> str:
    if a.end_state == "still_firing":
        return "still firing"
    text = iso_or_empty(a.resolved_at)
    return text + " (interrupted by a gap)" if a.end_state == "interrupted" else text


def _gap_count(gaps: Sequence[Gap]) -> str:
    return f"{len(gaps)} ({human_duration(sum(x.seconds for x in gaps))} in total)"


def _finding_counts(findings: Sequence[FindingSeries]) -> str:
    violations = len([f for f in findings if f.status == "violation"])
    waived = len([f for f in findings if f.status == "waived"])
    return f"{violations} / {waived}"
