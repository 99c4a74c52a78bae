"""CC7.1: detection of configuration changes and drift."""

from __future__ import annotations

from ..facts import Check
from ..verdict import FAIL, NOT_APPLICABLE, PASS
from .base import Context, Control, rule_check

DRIFT_RULES = ("served_not_stored",)
EXCEPTION_RULES = ("exception_expired",)


def checks(ctx: Context) -> list[Check]:
    findings = ctx.findings_of("CC7.1")
    title = "Endpoints serve the newest certificate held in their store"
    if ctx.steps_with("served_stored_endpoints") == 0 and not any(
        f.rule in DRIFT_RULES for f in findings
    ):
        out = [
            Check(
                "served_matches_stored",
                title,
                NOT_APPLICABLE,
                "no endpoint was matched with a stored certificate",
                {},
            )
        ]
    else:
        out = [rule_check("served_matches_stored", DRIFT_RULES, title, findings, True, "")]
    lapsed = ctx.alerts_named("CertscopePolicyExceptionExpired")
    open_ = [e for e in ctx.exceptions if e.status == "open"]
    extra = {
        "open_exceptions": len(open_),
        "expired_exceptions": len([e for e in ctx.exceptions if e.status == "expired"]),
        "exception_expired_alerts": len(lapsed),
    }
    title = "Policy exceptions are owned and current; none lapsed unnoticed"
    check = rule_check(
        "policy_exceptions",
        EXCEPTION_RULES,
        title,
        findings,
        ctx.job.observed,
        "the exporter was never scraped in the period",
        extra,
    )
    if check.result == PASS and lapsed:
        detail = f"{len(lapsed)} policy exception(s) lapsed (CertscopePolicyExceptionExpired)"
        check = Check(check.id, title, FAIL, detail, extra)
    elif check.result == PASS:
        detail = check.detail + f"; {len(open_)} exception(s) open at the end of the period"
        check = Check(check.id, title, PASS, detail, extra)
    out.append(check)
    return out


CONTROL = Control(
    "CC7.1", "Detection of configuration changes and drift", checks, DRIFT_RULES + EXCEPTION_RULES
)
