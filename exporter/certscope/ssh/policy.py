"""SSH findings: server posture, host keys and certificates, authorized keys. Pure functions.

Inputs are an :class:`~certscope.ssh.model.SSHScan` or the :class:`~certscope.results.StoredKey`
records of an ``ssh_authorized_keys`` source, and the configured policy; outputs are the same
:class:`~certscope.policy.Assessment` records TLS uses, so findings, exceptions and their
metrics work unchanged. ``now`` is passed in. Rule ids, severities and SOC 2 controls are
documented in docs/policy.md ("SSH").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from ..config import Policy, SSHPolicy
from ..policy import Assessment, Finding, apply_exceptions, today
from ..results import StoredKey
from ..rulebook import Rule
from .algorithms import AlgorithmClass, classify
from .model import HostKey, SSHScan

__all__ = ["assess_keys", "assess_server", "key_findings", "server_findings"]

_RULE_FOR_KIND = {
    "kex": Rule.SSH_KEX_WEAK,
    "cipher": Rule.SSH_CIPHER_WEAK,
    "mac": Rule.SSH_MAC_WEAK,
    "host_key": Rule.SSH_HOST_KEY_WEAK,
}
_SEVERITY = {
    AlgorithmClass.BROKEN: "critical",
    AlgorithmClass.WEAK: "warning",
    AlgorithmClass.DEPRECATED: "info",
    AlgorithmClass.RECOMMENDED: "info",
}
#: Below this an RSA key is broken whatever the policy says (factoring records, NIST SP
#: 800-131A disallows RSA under 2048 bits since 2013).
_RSA_BROKEN_BELOW = 2048
_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def _merge(rule: Rule, parts: Iterable[tuple[str, str]]) -> Finding | None:
    """One finding per rule: the worst severity, details joined."""
    items = list(parts)
    if not items:
        return None
    worst = max((sev for sev, _ in items), key=_SEVERITY_RANK.__getitem__)
    return Finding(rule, worst, "; ".join(detail for _, detail in items))


def _algorithm_findings(scan: SSHScan, ssh: SSHPolicy) -> dict[Rule, list[tuple[str, str]]]:
    out: dict[Rule, list[tuple[str, str]]] = {r: [] for r in _RULE_FOR_KIND.values()}
    assert scan.info is not None
    for kind, name in scan.info.algorithms():
        rule = _RULE_FOR_KIND.get(kind)
        if rule is None:
            continue  # compression: reported with its class, never a finding on its own
        alg = classify(kind, name)
        if alg.cls in (AlgorithmClass.EXTENSION, AlgorithmClass.UNKNOWN):
            continue
        if alg.cls in ssh.allowed_classes:
            continue
        out[rule].append((_SEVERITY[alg.cls], f"{name} ({alg.cls}: {alg.reason})"))
    return out


def _host_key_parts(
    keys: Sequence[HostKey], offered: Sequence[str], ssh: SSHPolicy
) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    for k in keys:
        f = k.facts
        if f is None:
            continue
        if f.algorithm == "ssh-rsa" and f.bits < ssh.min_rsa_bits:
            severity = "critical" if f.bits < _RSA_BROKEN_BELOW else "warning"
            parts.append((severity, f"{k.algorithm} key of {f.bits} bits < {ssh.min_rsa_bits}"))
        elif f.algorithm == "ssh-dss":
            parts.append(("critical", f"{k.algorithm} DSA key ({f.bits} bits, SHA-1 signatures)"))
        cert = f.certificate
        if cert is not None and not cert.signature_valid:
            parts.append(("critical", f"{k.algorithm} certificate signature does not verify"))
    if "ssh-rsa" in offered and not {"rsa-sha2-256", "rsa-sha2-512"} & set(offered):
        parts.append(("warning", "RSA host key offered with SHA-1 signatures only (ssh-rsa)"))
    return parts


def _certificate_parts(
    keys: Sequence[HostKey], ssh: SSHPolicy, now: datetime
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    expired: list[tuple[str, str]] = []
    expiring: list[tuple[str, str]] = []
    t = now.timestamp()
    for k in keys:
        cert = k.facts.certificate if k.facts is not None else None
        if cert is None or cert.valid_before is None:
            continue
        when = datetime.fromtimestamp(cert.valid_before, now.tzinfo).strftime("%Y-%m-%d %H:%M")
        label = f"{k.algorithm} certificate {cert.key_id!r}"
        if cert.valid_before <= t:
            expired.append(("critical", f"{label} expired {when}"))
        elif cert.valid_before - t <= ssh.certificate_warning:
            expiring.append(("warning", f"{label} expires {when}"))
    return expired, expiring


def _software_part(scan: SSHScan, ssh: SSHPolicy) -> list[tuple[str, str]]:
    assert scan.info is not None
    pv = scan.info.product_version
    if pv is None:
        return []
    product, version = pv
    for name, minimum in ssh.min_versions:
        if name.lower() == product.lower() and version < minimum:
            want = ".".join(str(x) for x in minimum)
            return [("warning", f"{scan.info.software} is older than {name} {want}")]
    return []


def server_findings(scan: SSHScan, policy: Policy, now: datetime) -> list[Finding]:
    """Findings for one SSH server (before exceptions). Nothing when the scan read nothing:
    an unreachable server is a failed probe, not a server without findings."""
    if scan.info is None:
        return []
    ssh = policy.ssh
    parts = _algorithm_findings(scan, ssh)
    parts[Rule.SSH_HOST_KEY_WEAK] += _host_key_parts(
        scan.host_keys, scan.info.host_key_algorithms, ssh
    )
    expired, expiring = _certificate_parts(scan.host_keys, ssh, now)
    parts[Rule.SSH_HOST_CERTIFICATE_EXPIRED] = expired
    parts[Rule.SSH_HOST_CERTIFICATE_EXPIRING] = expiring
    parts[Rule.SSH_SOFTWARE_OUTDATED] = _software_part(scan, ssh)
    return [f for rule, items in parts.items() if (f := _merge(rule, items)) is not None]


def assess_server(
    subject: tuple[str, str], scan: SSHScan, policy: Policy, now: datetime
) -> Assessment:
    findings = apply_exceptions(server_findings(scan, policy, now), subject, policy, today(now))
    return Assessment(findings=tuple(findings))


# --- authorized keys ----------------------------------------------------------------------------


def key_findings(
    key: StoredKey, policy: Policy, now: datetime, owners_known: bool
) -> list[Finding]:
    """Findings for one key of an ``ssh_authorized_keys`` source (before exceptions).

    ``owners_known``: the source has a people file; without one ownership is not judged
    (the inventory shows the owner as unknown, and no finding claims it was checked).
    """
    attrs = dict(key.attributes)
    ssh = policy.ssh
    out: list[Finding] = []
    if key.kind == "ssh_authorized_key" and owners_known:
        status = attrs.get("owner_status", "")
        owner = dict(key.labels).get("owner", "")
        if status == "departed":
            out.append(Finding(Rule.SSH_KEY_DEPARTED_OWNER, "critical", f"owner {owner} has left"))
        elif not owner:
            out.append(
                Finding(Rule.SSH_KEY_UNKNOWN_OWNER, "warning", "no person in the people file")
            )
    if key.algorithm == "ssh-dss":
        out.append(Finding(Rule.SSH_KEY_WEAK, "critical", f"DSA key ({key.bits} bits, SHA-1)"))
    elif key.algorithm == "ssh-rsa" and key.bits is not None and key.bits < ssh.min_rsa_bits:
        severity = "critical" if key.bits < _RSA_BROKEN_BELOW else "warning"
        out.append(
            Finding(Rule.SSH_KEY_WEAK, severity, f"RSA key of {key.bits} bits < {ssh.min_rsa_bits}")
        )
    if key.kind == "ssh_authorized_key" and key.created is not None:
        age = now.timestamp() - key.created
        if age > ssh.max_key_age:
            out.append(
                Finding(Rule.SSH_KEY_TOO_OLD, "warning", f"first seen {age / 86400:.0f} days ago")
            )
    if attrs.get("cert_authority") == "true" and not (
        attrs.get("expiry_time") or attrs.get("principals")
    ):
        out.append(
            Finding(
                Rule.SSH_KEY_NO_EXPIRY,
                "warning",
                "cert-authority without expiry-time= or principals=: every certificate the CA "
                "signs opens this account, for ever",
            )
        )
    return out


def assess_keys(
    source: str, keys: Sequence[StoredKey], policy: Policy, now: datetime, owners_known: bool
) -> list[tuple[StoredKey, Assessment]]:
    """The keys with findings, each with its assessment (exceptions applied per location)."""
    out: list[tuple[StoredKey, Assessment]] = []
    for key in keys:
        findings = key_findings(key, policy, now, owners_known)
        if findings:
            subject = (source, key.location)
            applied = apply_exceptions(findings, subject, policy, today(now))
            out.append((key, Assessment(findings=tuple(applied))))
    return out
