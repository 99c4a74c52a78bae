"""CC6.7: protection of information in transmission."""

from __future__ import annotations

from ..facts import Check
from ..verdict import NOT_APPLICABLE
from . import credentials
from .base import NO_CERTS, Context, Control, rule_check

VALIDITY_RULES = ("cert_expired", "cert_not_yet_valid", *credentials.VALIDITY_RULES)
POSTURE_RULES = (
    "protocol_deprecated",
    "cipher_insecure",
    "cipher_weak",
    "cipher_not_allowed",
    *credentials.POSTURE_RULES,
)


def checks(ctx: Context) -> list[Check]:
    findings = ctx.findings_of("CC6.7")
    out = [
        rule_check(
            "certificate_validity",
            VALIDITY_RULES,
            "No expired or not-yet-valid certificate in use",
            findings,
            bool(ctx.certs),
            NO_CERTS,
        )
    ]
    title = "Endpoints accept no deprecated protocol and no disallowed cipher suite"
    if not ctx.has_tls and not any(f.rule in POSTURE_RULES for f in findings):
        out.append(
            Check(
                "protocols_and_ciphers", title, NOT_APPLICABLE, "no TLS endpoint in the period", {}
            )
        )
        out.extend(credentials.checks("CC6.7", ctx))
        return out
    out.append(
        rule_check(
            "protocols_and_ciphers",
            POSTURE_RULES,
            title,
            findings,
            ctx.steps_with("enumerated_endpoints") > 0,
            "no protocol/cipher enumeration in the period "
            "(certscope_tls_protocol_supported absent: enumeration disabled or never run)",
        )
    )
    out.extend(credentials.checks("CC6.7", ctx))
    return out


CONTROL = Control(
    "CC6.7",
    "Protection of information in transmission",
    checks,
    VALIDITY_RULES + POSTURE_RULES + credentials.rules("CC6.7"),
)
