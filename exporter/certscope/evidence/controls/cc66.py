"""CC6.6: protection of endpoints reachable across the system boundary."""

from __future__ import annotations

from ..facts import Check
from . import credentials
from .base import Context, Control, rule_check

TRUST_RULES = ("hostname_mismatch", "chain_untrusted", *credentials.TRUST_RULES)


def checks(ctx: Context) -> list[Check]:
    why = (
        "TLS targets were probed but no verification result (certscope_cert_verified) was reported"
        if ctx.has_tls
        else "no TLS endpoint was verified in the period (certscope_cert_verified absent)"
    )
    return [
        rule_check(
            "endpoint_trust",
            TRUST_RULES,
            "Endpoints present chains that build to a trusted root and match their names",
            ctx.findings_of("CC6.6"),
            ctx.steps_with("verified_endpoints") > 0,
            why,
        ),
        *credentials.checks("CC6.6", ctx),
    ]


CONTROL = Control(
    "CC6.6",
    "Protection of endpoints reachable across the system boundary",
    checks,
    TRUST_RULES + credentials.rules("CC6.6"),
)
