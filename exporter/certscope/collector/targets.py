"""The lines of a target's results: TLS and SSH probes, policy assessments, policy exceptions."""

from __future__ import annotations

from datetime import UTC, datetime, time

from ..config import Policy
from ..errors import ProbeFailure
from ..results import AssessedLocation, Labels, ProbeResult, SSHProbeResult
from ..revocation import Revocation
from ..tls.suites import PROTOCOLS
from ..verify import Verdict
from .lines import Fragments, _add, _cert_lines, _inner, _line, _revocation_status_lines, _term


def probe_fragments(r: ProbeResult) -> Fragments:
    out: Fragments = {}
    # The identity labels are escaped once and shared by every line of the result.
    base = _inner((("source_kind", "tls"), ("source", r.name), ("location", r.address), *r.labels))
    _line(out, "certscope_probe_success", base, 1 if r.success else 0)
    _line(out, "certscope_probe_duration_seconds", base, r.duration)
    _line(out, "certscope_probe_timestamp_seconds", base, r.timestamp)
    for phase, seconds in r.phases:
        _line(
            out,
            "certscope_probe_phase_duration_seconds",
            f"{base},{_term('phase', phase)}",
            seconds,
        )
    if r.last_success is not None:
        _line(out, "certscope_probe_last_success_timestamp_seconds", base, r.last_success)
    err = r.outcome.error
    if err is not None:
        error = f"{base},{_term('reason', err.reason)},{_term('alert', err.alert)}"
        _line(out, "certscope_probe_error_info", error, 1)
    elif not r.facts:
        error = f"{base},{_term('reason', ProbeFailure.NO_CERTIFICATE)},{_term('alert', '')}"
        _line(out, "certscope_probe_error_info", error, 1)
    neg = r.outcome.negotiated
    if neg is not None:
        _line(out, "certscope_tls_version_info", f"{base},{_term('version', neg.version)}", 1)
        _line(out, "certscope_tls_cipher_info", f"{base},{_term('cipher', neg.cipher)}", 1)
        if neg.group:
            _line(out, "certscope_tls_group_info", f"{base},{_term('group', neg.group)}", 1)
    if r.facts:
        required = 1 if r.outcome.client_cert_required else 0
        _line(out, "certscope_tls_client_cert_required", base, required)
        _line(out, "certscope_cert_chain_certificates", base, r.outcome.presented)
    if r.verdict is not None:
        _verdict_lines(out, base, r.verdict)
    if r.revocation is not None:
        _revocation_lines(out, base, r.revocation)
    for pos, facts in enumerate(r.facts):
        _cert_lines(out, base, pos, facts)
    return out


def _verdict_lines(out: Fragments, base: str, v: Verdict) -> None:
    _line(out, "certscope_cert_verified", base, 1 if v.verified else 0)
    _line(out, "certscope_cert_chain_trusted", base, 1 if v.chain_trusted else 0)
    _line(out, "certscope_cert_hostname_match", base, 1 if v.hostname_match else 0)
    for reason in v.errors:
        _line(out, "certscope_cert_verification_failure", f"{base},{_term('reason', reason)}", 1)


def _revocation_lines(out: Fragments, base: str, rev: Revocation) -> None:
    _line(out, "certscope_ocsp_stapled", base, int(rev.stapled))
    if rev.staple_next_update is not None:
        next_update = rev.staple_next_update
        _line(out, "certscope_ocsp_staple_next_update_timestamp_seconds", base, next_update)
    _revocation_status_lines(out, base, rev)


def ssh_fragments(r: SSHProbeResult) -> Fragments:
    """An SSH server: probe health, offered algorithms, host keys, host certificates.

    Host certificates use the certificate families (``source_kind="ssh"``), one slot per
    certificate at ``<address>#<host-key algorithm>``, so the expiry rules cover them.
    """
    from ..ssh.algorithms import classify
    from ..ssh.certfacts import host_certificate_facts

    out: Fragments = {}
    base: Labels = (("source_kind", "ssh"), ("source", r.name), ("location", r.address), *r.labels)
    _add(out, "certscope_probe_success", base, 1 if r.success else 0)
    _add(out, "certscope_probe_duration_seconds", base, r.duration)
    _add(out, "certscope_probe_timestamp_seconds", base, r.timestamp)
    if r.last_success is not None:
        _add(out, "certscope_probe_last_success_timestamp_seconds", base, r.last_success)
    err = r.scan.error
    if err is not None:
        _add(out, "certscope_probe_error_info", (*base, ("reason", err.reason), ("alert", "")), 1)
    info = r.scan.info
    if info is None:
        return out
    _add(
        out,
        "certscope_ssh_server_info",
        (*base, ("software", info.software), ("comments", info.comments), ("version", info.proto)),
        1,
    )
    for kind, name in info.algorithms():
        labels = (*base, ("kind", kind), ("algorithm", name), ("class", classify(kind, name).cls))
        _add(out, "certscope_ssh_algorithm_supported", labels, 1)
    for hk in r.scan.host_keys:
        f = hk.facts
        if f is None or hk.error:
            continue
        labels = (
            *base,
            ("algorithm", hk.algorithm),
            ("bits", str(f.bits)),
            ("fingerprint_sha256", f.fingerprint_sha256),
        )
        _add(out, "certscope_ssh_host_key_info", labels, 1)
        if f.certificate is not None:
            slot: Labels = (
                ("source_kind", "ssh"),
                ("source", r.name),
                ("location", f"{r.address}#{hk.algorithm}"),
                *r.labels,
            )
            _cert_lines(out, _inner(slot), 0, host_certificate_facts(f))
    return out


def assessment_fragments(a: AssessedLocation) -> Fragments:
    out: Fragments = {}
    base: Labels = (
        ("source_kind", a.source_kind),
        ("source", a.source),
        ("location", a.location),
        *a.labels,
    )
    scan = a.posture
    if scan is not None:
        for protocol in PROTOCOLS:
            supported = scan.supported(protocol)
            if supported is not None:
                _add(
                    out,
                    "certscope_tls_protocol_supported",
                    (*base, ("protocol", protocol)),
                    int(supported),
                )
        for protocol, suite in scan.all_suites():
            labels = (*base, ("protocol", protocol), ("cipher", suite.name), ("class", suite.cls))
            _add(out, "certscope_tls_cipher_suite_supported", labels, 1)
        for protocol, enforced in scan.server_order:
            _add(
                out,
                "certscope_tls_server_cipher_order",
                (*base, ("protocol", protocol)),
                int(enforced),
            )
        for group in scan.groups:
            _add(out, "certscope_tls_group_supported", (*base, ("group", group)), 1)
        for dhe in scan.dhe_groups:
            labels = (
                *base,
                ("protocol", dhe.protocol),
                ("cipher", dhe.suite_name),
                ("group", dhe.name),
            )
            _add(out, "certscope_tls_dhe_group_bits", labels, dhe.bits)
        _add(out, "certscope_tls_scan_complete", base, int(scan.complete))
        _add(out, "certscope_tls_scan_timestamp_seconds", base, scan.timestamp)
        _add(out, "certscope_tls_scan_duration_seconds", base, scan.duration)
        _add(out, "certscope_tls_scan_connections", base, scan.connections)
    if a.scan_last_success is not None:
        _add(out, "certscope_tls_scan_last_success_timestamp_seconds", base, a.scan_last_success)
    if a.scan_interval is not None:
        _add(out, "certscope_tls_scan_interval_seconds", base, a.scan_interval)
    if a.served_matches_stored is not None:
        labels = (*base, ("expected_location", a.expected_location))
        _add(out, "certscope_cert_served_matches_stored", labels, int(a.served_matches_stored))
    g = a.assessment.grade
    if g is not None:
        _add(out, "certscope_tls_grade_info", (*base, ("grade", g.grade)), 1)
        _add(out, "certscope_tls_grade_score", base, g.score)
    for profile, ok, _ in a.assessment.mozilla:
        _add(
            out, "certscope_tls_mozilla_profile_conformant", (*base, ("profile", profile)), int(ok)
        )
    for f in a.assessment.findings:
        labels = (*base, ("rule", f.rule), ("severity", f.severity), ("control", f.control))
        if f.waived_by is None:
            _add(out, "certscope_policy_violation", labels, 1)
        else:
            owner = ("exception_owner", f.waived_by.owner)
            _add(out, "certscope_policy_waived", (*labels, owner), 1)
    return out


def policy_fragments(policy: Policy) -> Fragments:
    out: Fragments = {}
    for e in policy.exceptions:
        end = datetime.combine(e.expires, time(23, 59, 59), tzinfo=UTC).timestamp()
        labels = (
            ("target", e.target),
            ("location", e.location),
            ("rule", e.rule),
            ("exception_owner", e.owner),
        )
        _add(out, "certscope_policy_exception_expiry_timestamp_seconds", labels, round(end))
    return out
