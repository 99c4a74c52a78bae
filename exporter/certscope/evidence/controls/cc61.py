"""CC6.1: logical access security over cryptographic keys and certificates."""

from __future__ import annotations

from ..facts import Check
from ..verdict import FAIL, INSUFFICIENT, PASS
from . import credentials
from .base import NO_CERTS, Context, Control, rule_check

KEY_RULES = (
    "key_too_small",
    "signature_hash_forbidden",
    "cert_lifetime_too_long",
    "private_key_mismatch",
)


def checks(ctx: Context) -> list[Check]:
    certs = ctx.certs
    has_certs = bool(certs)
    cert_ratio = ctx.steps_with("cert_info") / ctx.p.grid.count
    slots = {c.slot[:4] for c in certs}
    out = [
        Check(
            "certificates_inventoried",
            "Certificates at every monitored location are inventoried",
            PASS if has_certs else INSUFFICIENT,
            (
                f"{len(certs)} certificate(s) in {len(slots)} slot(s) seen "
                f"during {cert_ratio:.1%} of the period"
                if has_certs
                else NO_CERTS
            ),
            {"certificates": len(certs), "slots": len(slots)},
        )
    ]
    stalled = ctx.alerts_named("CertscopeCertificateRenewalStalled")
    expiring = ctx.alerts_named("CertscopeCertificateExpiring")
    renewed = [r for r in ctx.renewals if r.kind == "renewal"]
    counts = {
        "renewals": len(renewed),
        "expiring_alerts": len(expiring),
        "renewal_stalled_alerts": len(stalled),
    }
    if stalled:
        result, detail = FAIL, f"{len(stalled)} stalled automated renewal(s) alerted"
    elif has_certs:
        result = PASS
        detail = (
            f"{len(renewed)} renewal(s); {len(expiring)} expiry-window alert(s); "
            "no automated renewal stalled"
        )
    else:
        result, detail = INSUFFICIENT, NO_CERTS
    out.append(
        Check(
            "renewal_before_expiry",
            "Certificates are renewed before they expire; automated renewal does not stall",
            result,
            detail,
            counts,
        )
    )
    out.append(
        rule_check(
            "key_signature_lifetime",
            KEY_RULES,
            "Keys, signature hashes and lifetimes meet the policy",
            ctx.findings_of("CC6.1"),
            has_certs,
            NO_CERTS,
        )
    )
    out.extend(credentials.checks("CC6.1", ctx))
    return out


CONTROL = Control(
    "CC6.1",
    "Logical access security over cryptographic keys and certificates",
    checks,
    KEY_RULES + credentials.rules("CC6.1"),
)
