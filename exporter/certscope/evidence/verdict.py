"""The one verdict logic of the SOC 2 controls, shared by the report and the dashboard.

For each control, one PromQL expression says at any instant whether the control is failing
(``1``), holding (``0``), or has **no evidence** (no sample). The rules pack records it as
``certscope:soc2_control_failing{control="…"}`` (rules/certscope-recording.yml, group
``certscope-soc2.rules``), which the SOC 2 dashboard reads; ``certscope evidence`` evaluates the
very same expression over the period (with ``--job`` in place of the pack's job regex), so the
two cannot disagree. tests/test_evidence.py checks that the rules file holds these strings.

Missing data is never a pass: every expression ends in ``and on () (…)`` conditions that need
the exporter scraped and the control's own data present; without them the result is empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .model import Run

PASS = "pass"  # noqa: S105 - a result, not a password
PASS_WITH_GAPS = "pass_with_gaps"  # noqa: S105
FAIL = "fail"
INSUFFICIENT = "insufficient_data"
NOT_APPLICABLE = "not_applicable"

#: The job regex of the rules pack (TUNABLE there, as in certscope:up).
RULES_JOB = "certscope.*"
#: Default share of the period that must be observed for a control to pass.
MIN_OBSERVED = 0.99
#: Below this share a control has insufficient data (between the two: pass with gaps).
INSUFFICIENT_BELOW = 0.90


def _violations(job: str, control: str) -> str:
    return f'count(certscope_policy_violation{{job=~"{job}", control="{control}"}} == 1)'


def _alerts(job: str, matcher: str) -> str:
    # ALERTS of per-target rules carry the exporter's job; aggregated ones carry none.
    return f'count(ALERTS{{alertstate="firing", job=~"{job}|", {matcher}}})'


def _up(job: str) -> str:
    return f'(max(up{{job=~"{job}"}}) == 1)'


def _present(metric: str, job: str, extra: str = "") -> str:
    return f'count({metric}{{job=~"{job}"{extra}}})'


def _failing(*counts: str) -> str:
    terms = " or ".join(f"({c})" for c in counts)
    return f"(sum({terms}) or vector(0)) > bool 0"


def expressions(job: str) -> dict[str, str]:
    """Control → PromQL: 1 failing, 0 holding, empty without evidence."""
    certs = _present("certscope_cert_info", job)
    tls = _present("certscope_probe_success", job, ', source_kind="tls"')
    enumerated = _present("certscope_tls_protocol_supported", job)
    return {
        "CC6.1": (
            _failing(
                _violations(job, "CC6.1"),
                _alerts(job, 'alertname="CertscopeCertificateRenewalStalled"'),
            )
            + f"\nand on () {_up(job)}\nand on () {certs}"
        ),
        "CC6.6": (
            _failing(_violations(job, "CC6.6"))
            + f"\nand on () {_up(job)}\nand on () {_present('certscope_cert_verified', job)}"
        ),
        # Posture needs enumeration wherever there are TLS targets; a finding fails anyway.
        "CC6.7": (
            _failing(_violations(job, "CC6.7"))
            + f"\nand on () {_up(job)}\nand on () {certs}"
            + f"\nand on () ({enumerated} or ({certs} unless on () {tls})"
            + f" or {_violations(job, 'CC6.7')})"
        ),
        "CC7.1": (
            _failing(
                _violations(job, "CC7.1"),
                _alerts(job, 'alertname="CertscopePolicyExceptionExpired"'),
            )
            + f"\nand on () {_up(job)}"
        ),
        # Monitoring itself: failing while the exporter is down or a CC7.2 alert fires; no
        # evidence only when Prometheus recorded no scrape of the job at all.
        "CC7.2": (
            _failing(_alerts(job, 'soc2_control="CC7.2"'), f'count(max(up{{job=~"{job}"}}) == 0)')
            + f'\nand on () count(up{{job=~"{job}"}})'
        ),
    }


@dataclass(frozen=True)
class PeriodVerdict:
    """A control over the period, from its verdict series."""

    result: str
    observed_ratio: float  # share of the period with a verdict sample and no monitoring gap
    failing_steps: int
    detail: str


def over_period(
    runs: Sequence[Run],
    steps: int,
    coverage: float,
    checks: Sequence[str],
    min_observed: float = MIN_OBSERVED,
    insufficient_below: float = INSUFFICIENT_BELOW,
) -> PeriodVerdict:
    """The control's result: its verdict series, its checks and how much was observed.

    Failing at any step, or any check failing, is ``fail``. Otherwise the observed share
    decides: at least ``min_observed`` is ``pass``; at least ``insufficient_below`` is
    ``pass_with_gaps``; less (or a check without data) is ``insufficient_data``.
    """
    present = sum(r.length for r in runs)
    failing = sum(r.length for r in runs if r.value >= 1)
    ratio = min(present / steps if steps else 0.0, coverage)
    figure = f"{ratio:.2%} of the period observed"
    if failing or FAIL in checks:
        return PeriodVerdict(FAIL, ratio, failing, f"failing during {failing} step(s); {figure}")
    if INSUFFICIENT in checks:
        return PeriodVerdict(INSUFFICIENT, ratio, 0, f"a check had no data; {figure}")
    if ratio >= min_observed and present:
        return PeriodVerdict(PASS, ratio, 0, figure)
    if ratio >= insufficient_below and present:
        return PeriodVerdict(
            PASS_WITH_GAPS, ratio, 0, f"{figure}, below the {min_observed:.0%} needed to pass"
        )
    return PeriodVerdict(
        INSUFFICIENT, ratio, 0, f"{figure}, below {insufficient_below:.0%}: not enough evidence"
    )


def rules_yaml(job: str = RULES_JOB) -> str:
    """The ``certscope-soc2.rules`` group as it appears in rules/certscope-recording.yml."""
    lines = ["  - name: certscope-soc2.rules", "    rules:"]
    for control, expr in expressions(job).items():
        lines += [
            "      - record: certscope:soc2_control_failing",
            "        labels:",
            f"          control: {control}",
            "        expr: |",
            *(f"          {line}" for line in expr.splitlines()),
        ]
    return "\n".join(lines) + "\n"


def recorded(rules_doc: Mapping[str, object]) -> dict[str, str]:
    """Control → expression of ``certscope:soc2_control_failing`` in a parsed rules file."""
    out = {}
    for group in rules_doc.get("groups", []) or []:  # type: ignore[attr-defined]
        for rule in group.get("rules", []):
            if rule.get("record") == "certscope:soc2_control_failing":
                out[rule["labels"]["control"]] = rule["expr"].strip()
    return out
