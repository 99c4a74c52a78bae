"""report.html: the evidence report as one self-contained page (inline CSS, charts as
``data:`` URIs, no script). Every value from the data is escaped; tables stop at
:data:`HTML_ROWS` rows (the CSV files hold everything).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import credentials_report
from .configuration import Configuration
from .endpoints import protocols_text
from .facts import AlertEpisode, Evidence, Finding, Gap
from .meta import Meta
from .model import bool_text, human_duration, iso, iso_or_empty, labels_text
from .verdict import FAIL, INSUFFICIENT, NOT_APPLICABLE, PASS, PASS_WITH_GAPS

#: Most rows of a table in report.html; the CSV files always hold everything.
HTML_ROWS = 500
_IDENTITY = ("source_kind", "source", "location")


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
        ("First scrape of the exporter job in the period", iso_or_empty(ev.exporter[0].first_seen)),
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
                    _t(iso_or_empty(c.judged_from)),
                    _t(iso_or_empty(c.judged_to)),
                    _num(human_duration(c.gap_seconds)),
                    _num(f"{c.ratio:.2%}"),
                    _t(iso_or_empty(c.first_seen)),
                    _t(iso_or_empty(c.last_seen)),
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
                    _t(iso_or_empty(r.old.not_after)),
                    _t(iso_or_empty(r.new.not_after)),
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
                    _where(a.labels) or _e(labels_text(a.labels)),
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
                    _e(bool_text(e.verified_end)),
                    _e(" ".join(e.deprecated_ever) or ("none" if e.protocols_ever else "")),
                    _e(", ".join(f"{c} ({k})" for c, k in sorted(e.weak_suites_ever)) or "none"),
                    _num("" if e.lowest_score is None else f"{e.lowest_score:g}"),
                    _t(iso_or_empty(e.last_probe)),
                    _t(iso_or_empty(e.last_scan)),
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
                    _t(iso_or_empty(c.not_after)),
                    _e(c.labels.get("owner", "")),
                    _t(iso_or_empty(c.first_seen)),
                    _t("still present" if c.present_at_end else iso_or_empty(c.last_seen)),
                ]
                for c in ev.certificates
            ],
            "No certificate was seen during the period.",
        )
    )

    add(credentials_report.sections(ev.credentials, ev.findings, _table))
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
    text = iso_or_empty(a.resolved_at)
    return text + " (interrupted by a gap)" if a.end_state == "interrupted" else text


def _gap_count(gaps: Sequence[Gap]) -> str:
    return f"{len(gaps)} ({human_duration(sum(x.seconds for x in gaps))} in total)"


def _finding_counts(findings: Sequence[Finding]) -> str:
    violations = len([f for f in findings if f.status == "violation"])
    waived = len([f for f in findings if f.status == "waived"])
    return f"{violations} / {waived}"
