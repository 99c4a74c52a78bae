"""Checks of the credentials beyond certificates (private keys, SSH, KMS keys, secrets,
storage, revocation), added to the control each rule names (``policy.CONTROLS``).

Each check judges its rules only where the data behind them was reported in the period
(:mod:`..credentials` queries); without it the check is insufficient, never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import credentials as tables
from ..facts import Check, FindingSeries
from ..model import Matrix
from ..verdict import NOT_APPLICABLE
from .base import Context, rule_check

#: Extra rules of the existing checks (same data, same verdict).
TRUST_RULES = ("san_missing", "chain_order_wrong", "sct_missing", "ocsp_must_staple_missing")
VALIDITY_RULES = ("intermediate_expired",)
POSTURE_RULES = ("dh_group_too_small", "dh_group_insecure")


@dataclass(frozen=True)
class CredentialCheck:
    id: str
    control: str
    title: str
    rules: tuple[str, ...]
    queries: tuple[str, ...]  # the check has data when any of these had a series
    no_data: str
    #: in scope when a source or target of these kinds reported (source_up, probe_success)
    source_kinds: tuple[str, ...] = ()
    aws: bool = False  # insufficient while the AWS source had gaps or access denied


CHECKS: tuple[CredentialCheck, ...] = (
    CredentialCheck(
        "private_keys",
        "CC6.1",
        "Private keys are encrypted, strong and belong to a certificate",
        ("private_key_unencrypted", "private_key_weak", "private_key_orphaned"),
        ("private_keys",),
        "no private key was inventoried in the period (certscope_private_key_info absent)",
    ),
    CredentialCheck(
        "certificates_not_revoked",
        "CC6.1",
        "No endpoint serves a revoked certificate",
        ("cert_revoked",),
        ("revocation",),
        "no revocation status was reported in the period (certscope_cert_revocation_status absent)",
    ),
    CredentialCheck(
        "key_rotation",
        "CC6.1",
        "KMS keys and secrets rotate; no key is pending deletion",
        (
            "kms_rotation_disabled",
            "kms_key_pending_deletion",
            "secret_rotation_disabled",
            "secret_rotation_overdue",
        ),
        ("kms_keys", "kms_rotation", "secret_rotation"),
        "no KMS key or secret rotation status was reported in the period",
        ("aws",),
        aws=True,
    ),
    CredentialCheck(
        "encryption_at_rest",
        "CC6.1",
        "Storage encrypts data at rest",
        ("storage_unencrypted",),
        ("storage_encryption",),
        "no storage encryption status was reported in the period "
        "(certscope_storage_encryption_enabled absent)",
        ("aws",),
        aws=True,
    ),
    CredentialCheck(
        "ssh_authorized_keys",
        "CC6.1",
        "SSH authorized keys belong to current owners, are strong and expire",
        (
            "ssh_key_unknown_owner",
            "ssh_key_departed_owner",
            "ssh_key_weak",
            "ssh_key_too_old",
            "ssh_key_no_expiry",
        ),
        ("ssh_keys",),
        "no SSH authorized key was inventoried in the period (certscope_key_info absent)",
        ("ssh_authorized_keys",),
    ),
    CredentialCheck(
        "ssh_host_keys",
        "CC6.1",
        "SSH host keys are strong and their certificates valid",
        ("ssh_host_key_weak", "ssh_host_certificate_expiring", "ssh_host_certificate_expired"),
        ("ssh_host_keys",),
        "no SSH host key was reported in the period (certscope_ssh_host_key_info absent)",
        ("ssh",),
    ),
    CredentialCheck(
        "ssh_software",
        "CC6.6",
        "SSH servers run maintained software",
        ("ssh_software_outdated",),
        ("ssh_host_keys",),
        "no SSH server was probed in the period (certscope_ssh_host_key_info absent)",
        ("ssh",),
    ),
    CredentialCheck(
        "ssh_algorithms",
        "CC6.7",
        "SSH servers offer no weak key exchange, cipher or MAC",
        ("ssh_kex_weak", "ssh_cipher_weak", "ssh_mac_weak"),
        ("ssh_host_keys",),
        "no SSH server was probed in the period (certscope_ssh_host_key_info absent)",
        ("ssh",),
    ),
)


def rules(control: str) -> tuple[str, ...]:
    """Every rule the credential checks of ``control`` cover."""
    return tuple(r for c in CHECKS if c.control == control for r in c.rules)


def _kinds_reported(ctx: Context) -> set[str]:
    return {
        labels.get("source_kind", "")
        for name in ("source_up", "probe_success")
        for labels, runs in ctx.data.get(name, Matrix()).items()
        if runs
    }


def _one(c: CredentialCheck, ctx: Context, findings: list[FindingSeries], kinds: set[str]) -> Check:
    has_data = any(ctx.steps_with(q) > 0 for q in c.queries)
    in_scope = has_data or bool(kinds & set(c.source_kinds))
    if not in_scope and not any(f.rule in c.rules for f in findings):
        # nothing of this kind is monitored: not a pass, and no reason to withhold the control
        return Check(c.id, c.title, NOT_APPLICABLE, f"not monitored: {c.no_data}", {})
    why = c.no_data
    if has_data and c.aws:
        incomplete = tables.aws_insufficient(ctx.p.grid, ctx.data)
        if incomplete:
            has_data, why = False, f"insufficient data: {'; '.join(incomplete)}"
    return rule_check(c.id, c.rules, c.title, findings, has_data, why)


def checks(control: str, ctx: Context) -> list[Check]:
    """The credential checks of ``control``."""
    findings = ctx.findings_of(control)
    kinds = _kinds_reported(ctx)
    return [_one(c, ctx, findings, kinds) for c in CHECKS if c.control == control]
