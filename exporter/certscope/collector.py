"""Snapshot → Prometheus text exposition. All metric names live here, documented in docs/metrics.md.

Each result's sample lines are rendered once, when the result is first seen, and cached for
as long as that result is current; a scrape only concatenates cached fragments under each
family's HELP/TYPE header. That keeps ``/metrics`` for 10,000 targets well under the scrape
budget, and a scrape never does I/O or waits for probes.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from functools import lru_cache

from .certs import CertFacts
from .config import Policy
from .errors import ProbeFailure
from .results import (
    AssessedLocation,
    Labels,
    ProbeResult,
    SourceResult,
    SSHProbeResult,
    StoredKey,
)
from .revocation import Revocation
from .tls.suites import PROTOCOLS
from .verify import Verdict


@dataclass(frozen=True)
class Family:
    name: str
    type: str
    help: str


_CACHED = " Cached: the value from the most recent probe or refresh, not taken at scrape time."

FAMILIES: tuple[Family, ...] = (
    # certificates: one series per slot (source kind, source, location, chain position)
    Family(
        "certscope_cert_not_after_timestamp_seconds",
        "gauge",
        "Certificate notAfter as a Unix timestamp, per certificate slot." + _CACHED,
    ),
    Family(
        "certscope_cert_not_before_timestamp_seconds",
        "gauge",
        "Certificate notBefore as a Unix timestamp, per certificate slot." + _CACHED,
    ),
    Family(
        "certscope_cert_info",
        "gauge",
        "Certificate details (serial, fingerprint, SANs, key, signature) as labels; value 1.",
    ),
    Family(
        "certscope_cert_sct_count",
        "gauge",
        "Signed certificate timestamps (Certificate Transparency) embedded in a leaf certificate.",
    ),
    Family(
        "certscope_cert_sct_info",
        "gauge",
        "One series per embedded SCT's Certificate Transparency log (log_id, base64); value 1.",
    ),
    Family(
        "certscope_cert_revoked",
        "gauge",
        "1 for a stored certificate its CA has revoked (Vault PKI with include_revoked, or "
        "the source's OCSP/CRL check).",
    ),
    Family(
        "certscope_cert_verified",
        "gauge",
        "1 when the presented chain is trusted, currently valid and matches the host name.",
    ),
    Family(
        "certscope_cert_chain_trusted",
        "gauge",
        "1 when the presented chain builds to a trusted root (time checks excluded).",
    ),
    Family(
        "certscope_cert_hostname_match",
        "gauge",
        "1 when the leaf certificate matches the host name (SNI or configured name).",
    ),
    Family(
        "certscope_cert_verification_failure",
        "gauge",
        "1 for each reason the presented chain failed verification.",
    ),
    Family(
        "certscope_cert_chain_certificates", "gauge", "Number of certificates the server presented."
    ),
    Family(
        "certscope_cert_revocation_status",
        "gauge",
        "1 for the leaf's revocation status by each method checked (OCSP, CRL): good, revoked, "
        "unknown or error." + _CACHED,
    ),
    Family(
        "certscope_ocsp_stapled",
        "gauge",
        "1 when the server stapled an OCSP response to its handshake.",
    ),
    Family(
        "certscope_ocsp_staple_next_update_timestamp_seconds",
        "gauge",
        "nextUpdate of the stapled OCSP response as a Unix timestamp; a must-staple "
        "certificate stops working for strict clients after it.",
    ),
    # probes
    Family(
        "certscope_probe_success",
        "gauge",
        "1 when the last probe completed a TLS handshake and captured the certificate chain "
        '(source_kind="ssh": read the server\'s algorithms and verified every host key).',
    ),
    Family(
        "certscope_probe_error_info",
        "gauge",
        "The reason the last probe failed (and the TLS alert, if any); value 1.",
    ),
    Family("certscope_probe_duration_seconds", "gauge", "Duration of the last probe."),
    Family(
        "certscope_probe_phase_duration_seconds",
        "gauge",
        "Duration of each phase of the last probe (resolve, connect, starttls, handshake).",
    ),
    Family(
        "certscope_probe_timestamp_seconds",
        "gauge",
        "When the last probe finished, as a Unix timestamp.",
    ),
    Family(
        "certscope_probe_last_success_timestamp_seconds",
        "gauge",
        "When a probe last succeeded, as a Unix timestamp (continuity evidence).",
    ),
    Family("certscope_tls_version_info", "gauge", "Negotiated TLS protocol version; value 1."),
    Family("certscope_tls_cipher_info", "gauge", "Negotiated cipher suite (IANA name); value 1."),
    Family("certscope_tls_group_info", "gauge", "Negotiated key-exchange group; value 1."),
    Family(
        "certscope_tls_client_cert_required",
        "gauge",
        "1 when the server asked for a client certificate that certscope did not present.",
    ),
    # posture (enumeration) and policy
    Family(
        "certscope_tls_protocol_supported",
        "gauge",
        "1 when the endpoint accepts the protocol, 0 when it refuses it (from enumeration).",
    ),
    Family(
        "certscope_tls_cipher_suite_supported",
        "gauge",
        "1 for each cipher suite the endpoint accepts, per protocol, with its class.",
    ),
    Family(
        "certscope_tls_group_supported",
        "gauge",
        "1 for each key-exchange group the endpoint accepts.",
    ),
    Family(
        "certscope_tls_dhe_group_bits",
        "gauge",
        "Size in bits of the finite-field group the endpoint uses with each accepted DHE suite, "
        "with the group's name (ffdhe2048, modp1536, oakley2 … or custom).",
    ),
    Family(
        "certscope_tls_server_cipher_order",
        "gauge",
        "1 when the endpoint enforces its own cipher-suite order for the protocol.",
    ),
    Family(
        "certscope_tls_grade_info",
        "gauge",
        "Grade following the SSL Labs rating guide; T and M replace the letter when the "
        "certificate is untrusted or does not match; value 1.",
    ),
    Family(
        "certscope_tls_grade_score", "gauge", "Numeric score (0-100) behind the grade, before caps."
    ),
    Family(
        "certscope_tls_mozilla_profile_conformant",
        "gauge",
        "1 when the endpoint conforms to the Mozilla server-side TLS profile (version 5.7).",
    ),
    Family(
        "certscope_tls_scan_complete",
        "gauge",
        "1 when the last enumeration finished; 0 when it was cut short (results partial).",
    ),
    Family(
        "certscope_tls_scan_timestamp_seconds",
        "gauge",
        "When the last enumeration finished, as a Unix timestamp.",
    ),
    Family(
        "certscope_tls_scan_last_success_timestamp_seconds",
        "gauge",
        "When an enumeration last completed, as a Unix timestamp.",
    ),
    Family("certscope_tls_scan_duration_seconds", "gauge", "Duration of the last enumeration."),
    Family("certscope_tls_scan_connections", "gauge", "Connections the last enumeration opened."),
    Family(
        "certscope_tls_scan_interval_seconds",
        "gauge",
        "The configured enumeration interval of the target.",
    ),
    Family(
        "certscope_cert_served_matches_stored",
        "gauge",
        "1 when the endpoint serves the newest certificate stored for it, 0 when the store "
        "holds a different (usually newer) one: a renewal that was never deployed.",
    ),
    Family(
        "certscope_policy_violation",
        "gauge",
        "1 for each active policy finding, with its rule, severity and SOC 2 control.",
    ),
    Family(
        "certscope_policy_waived",
        "gauge",
        "1 for each finding waived by a policy exception, with the exception's owner.",
    ),
    Family(
        "certscope_policy_exception_expiry_timestamp_seconds",
        "gauge",
        "End of each configured policy exception (end of its expiry day, UTC).",
    ),
    # sources
    Family("certscope_source_up", "gauge", "1 when the last refresh of the source succeeded."),
    Family("certscope_source_items", "gauge", "Certificates currently known from the source."),
    Family(
        "certscope_source_item_errors",
        "gauge",
        "Items (files, entries) of the source that could not be read, by reason.",
    ),
    Family(
        "certscope_source_item_error_info",
        "gauge",
        "One series per item (file, entry, Secret) that could not be read, with its location "
        "and reason; at most 100 per source (certscope_source_item_errors has the counts); "
        "value 1.",
    ),
    Family(
        "certscope_private_key_info",
        "gauge",
        "One series per private key found in a store: type, size, whether it is encrypted, the "
        "SHA-256 of its public key and the certificate that holds that key; value 1.",
    ),
    Family(
        "certscope_source_stale",
        "gauge",
        "1 when the source has failed for longer than its stale_after; its certificates are "
        "the last good ones.",
    ),
    Family(
        "certscope_source_errors_total",
        "counter",
        "Failed refreshes of the source since the exporter started, by reason.",
    ),
    Family(
        "certscope_source_refresh_duration_seconds",
        "gauge",
        "Duration of the last refresh of the source.",
    ),
    Family(
        "certscope_source_last_success_timestamp_seconds",
        "gauge",
        "When the source was last refreshed successfully, as a Unix timestamp.",
    ),
    # key-like credentials (results.StoredKey): SSH keys, private keys, KMS keys
    Family(
        "certscope_source_keys", "gauge", "Key-like credentials currently known from the source."
    ),
    Family(
        "certscope_key_info",
        "gauge",
        "A key-like credential (kind, algorithm, bits, public key hash) at a location; value 1.",
    ),
    Family(
        "certscope_key_created_timestamp_seconds",
        "gauge",
        "When the key was created, where the store knows it; for SSH authorized keys, when "
        "certscope first saw it (kept across restarts in the source's state file).",
    ),
    Family(
        "certscope_key_not_after_timestamp_seconds",
        "gauge",
        "When the key or its certificate stops being valid (expiry-time=, valid-before).",
    ),
    # SSH servers (targets with protocol: ssh)
    Family(
        "certscope_ssh_server_info",
        "gauge",
        "The SSH server's software and protocol from its identification line; value 1.",
    ),
    Family(
        "certscope_ssh_algorithm_supported",
        "gauge",
        "1 for each algorithm the SSH server offers, by kind, with its class.",
    ),
    Family(
        "certscope_ssh_host_key_info",
        "gauge",
        "Each host key the SSH server proved it holds (signed the key exchange); value 1.",
    ),
)

# Cloud key management and encryption at rest (the aws source); rendered by cloud_fragments.
CLOUD_FAMILIES: tuple[Family, ...] = (
    Family(
        "certscope_kms_key_info",
        "gauge",
        "KMS customer-managed key: key id, aliases, key spec, usage, origin and state as "
        "labels; value 1." + _CACHED,
    ),
    Family(
        "certscope_kms_key_rotation_enabled",
        "gauge",
        "1 when automatic rotation of the KMS key is enabled, 0 when not; absent when the key "
        "type cannot rotate or the status could not be read.",
    ),
    Family(
        "certscope_kms_key_rotation_period_seconds",
        "gauge",
        "Automatic rotation period of the KMS key.",
    ),
    Family(
        "certscope_kms_key_last_rotation_timestamp_seconds",
        "gauge",
        "When the KMS key material last rotated (ListKeyRotations), as a Unix timestamp.",
    ),
    Family(
        "certscope_kms_key_deletion_timestamp_seconds",
        "gauge",
        "When a KMS key scheduled for deletion will be deleted, as a Unix timestamp.",
    ),
    Family(
        "certscope_kms_key_creation_timestamp_seconds",
        "gauge",
        "When the KMS key was created, as a Unix timestamp.",
    ),
    Family(
        "certscope_secret_rotation_enabled",
        "gauge",
        "1 when rotation of the Secrets Manager secret is enabled, 0 when not.",
    ),
    Family(
        "certscope_secret_rotation_interval_seconds",
        "gauge",
        "Rotation interval of the secret (absent for cron schedules).",
    ),
    Family(
        "certscope_secret_last_rotated_timestamp_seconds",
        "gauge",
        "When the secret was last rotated, as a Unix timestamp.",
    ),
    Family(
        "certscope_secret_next_rotation_timestamp_seconds",
        "gauge",
        "When the secret's next rotation is due, as a Unix timestamp.",
    ),
    Family(
        "certscope_secret_last_accessed_timestamp_seconds",
        "gauge",
        "When the secret was last read (day precision, as AWS records it), as a Unix timestamp.",
    ),
    Family(
        "certscope_secret_created_timestamp_seconds",
        "gauge",
        "When the secret was created, as a Unix timestamp.",
    ),
    Family(
        "certscope_acm_certificate_info",
        "gauge",
        "ACM certificate type, status and renewal eligibility as labels; value 1.",
    ),
    Family(
        "certscope_acm_certificate_in_use_by",
        "gauge",
        "Number of AWS resources (load balancers, distributions, ...) using the ACM certificate.",
    ),
    Family(
        "certscope_storage_encryption_enabled",
        "gauge",
        "1 when the storage resource encrypts data at rest, 0 when it does not." + _CACHED,
    ),
    Family(
        "certscope_s3_bucket_encryption_info",
        "gauge",
        "S3 default encryption: algorithm, bucket key, and who manages the KMS key; value 1.",
    ),
)
FAMILIES = FAMILIES + CLOUD_FAMILIES
FAMILY_NAMES = frozenset(f.name for f in FAMILIES)

_MAX_LABEL_VALUE = 1024


def escape(value: str) -> str:
    if len(value) > _MAX_LABEL_VALUE:
        value = value[: _MAX_LABEL_VALUE - 1] + "…"
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value  # the common case: nothing to escape, no copies


def _inner(pairs: Iterable[tuple[str, str]]) -> str:
    """Label pairs rendered and escaped, without the braces: a prefix many lines share."""
    return ",".join(f'{k}="{escape(v)}"' for k, v in pairs)


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return "{" + _inner(pairs) + "}"


def _num(v: float) -> str:
    if v.__class__ is float:  # most values: timestamps and durations
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


Fragments = dict[str, list[str]]


def _line(out: Fragments, family: str, inner: str, value: float | str) -> None:
    """One sample line; ``inner`` is already escaped (see :func:`_inner`), a str value is
    already formatted."""
    assert family in FAMILY_NAMES, family
    text = value if isinstance(value, str) else _num(value)
    out.setdefault(family, []).append(f"{family}{{{inner}}} {text}\n")


def _add(out: Fragments, family: str, labels: Sequence[tuple[str, str]], value: float) -> None:
    _line(out, family, _inner(labels), value)


@lru_cache(maxsize=1024)
def _term(name: str, value: str) -> str:
    """One pair from a small vocabulary (phases, reasons, versions, suites), escaped once."""
    return f'{name}="{escape(value)}"'


@dataclass(frozen=True, slots=True)
class _CertText:
    """A certificate's own label text and values, escaped and formatted once per certificate
    (an intermediate is shared by every target behind it)."""

    names: str  # subject_cn, issuer_cn
    info: str  # the rest of certscope_cert_info's labels
    not_after: str | None
    not_before: str | None
    sct_count: str
    sct_logs: tuple[str, ...]  # log_id="…", once per log


#: id(facts) -> (facts, text). The facts are held so that an id is never reused while its
#: entry lives; the whole table is dropped when full, which bounds it.
_CERT_TEXT: dict[int, tuple[CertFacts, _CertText]] = {}
_CERT_TEXT_MAX = 4096


def _cert_text(facts: CertFacts) -> _CertText:
    hit = _CERT_TEXT.get(id(facts))
    if hit is not None and hit[0] is facts:
        return hit[1]
    text = _CertText(
        names=_inner((("subject_cn", facts.subject_cn), ("issuer_cn", facts.issuer_cn))),
        info=_inner(
            (
                ("serial", facts.serial),
                ("fingerprint_sha256", facts.fingerprint_sha256),
                ("subject", facts.subject),
                ("issuer", facts.issuer),
                ("sans", ",".join(facts.sans)),
                ("key_algorithm", facts.key_algorithm),
                ("key_bits", str(facts.key_bits)),
                ("key_curve", facts.key_curve),
                ("public_key_sha256", facts.public_key_sha256),
                ("signature_algorithm", facts.signature_algorithm),
                ("signature_hash", facts.signature_hash),
                ("is_ca", "true" if facts.is_ca else "false"),
                ("self_signed", "true" if facts.self_signed else "false"),
            )
        ),
        not_after=None if facts.not_after is None else _num(facts.not_after.timestamp()),
        not_before=None if facts.not_before is None else _num(facts.not_before.timestamp()),
        sct_count=_num(len(facts.sct_log_ids)),
        sct_logs=tuple(_inner((("log_id", i),)) for i in dict.fromkeys(facts.sct_log_ids)),
    )
    if len(_CERT_TEXT) >= _CERT_TEXT_MAX:
        _CERT_TEXT.clear()
    _CERT_TEXT[id(facts)] = (facts, text)
    return text


def _cert_lines(
    out: Fragments, base: str, position: int, facts: CertFacts, revoked: bool = False
) -> None:
    """``base``: the slot's location labels, escaped (:func:`_inner`)."""
    text = _cert_text(facts)
    slot = f'{base},chain_position="{position}",{text.names}'
    if text.not_after is not None:
        _line(out, "certscope_cert_not_after_timestamp_seconds", slot, text.not_after)
    if text.not_before is not None:
        _line(out, "certscope_cert_not_before_timestamp_seconds", slot, text.not_before)
    _line(out, "certscope_cert_info", f"{slot},{text.info}", "1")
    if not facts.is_ca:
        _line(out, "certscope_cert_sct_count", slot, text.sct_count)
        for log_id in text.sct_logs:
            _line(out, "certscope_cert_sct_info", f"{slot},{log_id}", "1")
    if revoked:
        _line(out, "certscope_cert_revoked", slot, "1")


def probe_fragments(r: ProbeResult) -> Fragments:
    out: Fragments = {}
    # The identity labels are escaped once and shared by every line of the result.
    base = _inner((("source_kind", "tls"), ("source", r.name), ("location", r.address), *r.labels))
    _line(out, "certscope_probe_success", base, 1 if r.success else 0)
    _line(out, "certscope_probe_duration_seconds", base, r.duration)
    _line(out, "certscope_probe_timestamp_seconds", base, r.timestamp)
    for phase, seconds in r.outcome.phases:
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


def _revocation_status_lines(out: Fragments, slot: str, rev: Revocation) -> None:
    """One series per method checked. A stored leaf's ``slot`` (escaped) also names its place
    in the file or bundle (a bundle may hold several leaves); stapling is for servers only."""
    for check in rev.checks:
        labels = f"{slot},{_term('method', check.method)},{_term('status', check.status)}"
        _line(out, "certscope_cert_revocation_status", labels, 1)


def source_fragments(r: SourceResult) -> Fragments:
    out: Fragments = {}
    base: Labels = (("source_kind", r.kind), ("source", r.name), *r.labels)
    _add(out, "certscope_source_up", base, 1 if r.up else 0)
    _add(out, "certscope_source_items", base, len(r.certs))
    _add(out, "certscope_source_stale", base, int(r.stale))
    for reason, n in r.errors_total:
        _add(out, "certscope_source_errors_total", (*base, ("reason", reason)), n)
    _add(out, "certscope_source_refresh_duration_seconds", base, r.duration)
    if r.last_success is not None:
        _add(out, "certscope_source_last_success_timestamp_seconds", base, r.last_success)
    by_reason: dict[str, int] = {}
    for e in r.errors:
        by_reason[e.reason] = by_reason.get(e.reason, 0) + 1
    for reason, n in sorted(by_reason.items()):
        _add(out, "certscope_source_item_errors", (*base, ("reason", reason)), n)
    _item_error_lines(out, base, r)
    _private_key_lines(out, r)
    for c in r.certs:
        loc: Labels = (
            ("source_kind", c.source_kind or r.kind),
            ("source", r.name),
            ("location", c.location),
            *r.labels,
        )
        loc_text = _inner(loc)
        _cert_lines(out, loc_text, c.position, c.facts, c.revoked)
        if c.revocation is not None:
            slot = f'{loc_text},chain_position="{c.position}"'
            _revocation_status_lines(out, slot, c.revocation)
    if r.keys:
        _add(out, "certscope_source_keys", base, len(r.keys))
    for k in r.keys:
        _key_lines(out, r, k)
    cloud_fragments(out, r)
    return out


#: StoredKey attributes that are also labels of certscope_key_info: short, bounded facts
#: (never comments, commands or other free text a user wrote).
_KEY_INFO_ATTRIBUTES = ("fingerprint_sha256", "account", "owner_status", "cert_authority")


def _key_lines(out: Fragments, r: SourceResult, k: StoredKey) -> None:
    item = {**dict(r.labels), **dict(k.labels)}
    loc: Labels = (
        ("source_kind", k.source_kind or r.kind),
        ("source", r.name),
        ("location", k.location),
        *item.items(),
    )
    attrs = dict(k.attributes)
    info = (
        *loc,
        ("kind", k.kind),
        ("key_algorithm", k.algorithm),
        ("key_bits", "" if k.bits is None else str(k.bits)),
        ("public_key_sha256", k.public_key_sha256),
        *((a, attrs[a]) for a in _KEY_INFO_ATTRIBUTES if a in attrs),
    )
    _add(out, "certscope_key_info", info, 1)
    if k.created is not None:
        _add(out, "certscope_key_created_timestamp_seconds", (*loc, ("kind", k.kind)), k.created)
    if k.not_after is not None:
        _add(
            out, "certscope_key_not_after_timestamp_seconds", (*loc, ("kind", k.kind)), k.not_after
        )


def ssh_fragments(r: SSHProbeResult) -> Fragments:
    """An SSH server: probe health, offered algorithms, host keys, host certificates.

    Host certificates use the certificate families (``source_kind="ssh"``), one slot per
    certificate at ``<address>#<host-key algorithm>``, so the expiry rules cover them.
    """
    from .ssh.algorithms import classify
    from .ssh.certfacts import host_certificate_facts

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


#: Item errors exported with their location per source; the rest are only counted.
MAX_ITEM_ERROR_SERIES = 100


def _item_error_lines(out: Fragments, base: Labels, r: SourceResult) -> None:
    unique = sorted({(e.location, e.reason) for e in r.errors})
    for location, reason in unique[:MAX_ITEM_ERROR_SERIES]:
        labels = (*base[:2], ("location", location), *base[2:], ("reason", reason))
        _add(out, "certscope_source_item_error_info", labels, 1)


def _private_key_lines(out: Fragments, r: SourceResult) -> None:
    for k in r.keys:
        if k.kind != "private_key":
            continue
        attrs = dict(k.attributes)
        labels = (
            ("source_kind", r.kind),
            ("source", r.name),
            ("location", k.location),
            *r.labels,
            ("key_algorithm", k.algorithm),
            ("key_bits", str(k.bits) if k.bits else ""),
            ("encrypted", attrs.get("encrypted", "")),
            ("public_key_sha256", k.public_key_sha256),
            ("certificate_location", attrs.get("certificate_location", "")),
        )
        _add(out, "certscope_private_key_info", labels, 1)


# --- cloud key management and encryption at rest ------------------------------------------------


def _timestamp(text: str) -> float | None:
    """An ISO 8601 attribute (``2026-01-02T03:04:05Z``) as Unix seconds."""
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


def _dated(out: Fragments, family: str, labels: Labels, text: str) -> None:
    when = _timestamp(text)
    if when is not None:
        _add(out, family, labels, when)


def _kms_lines(out: Fragments, base: Labels, k: StoredKey) -> None:
    a = dict(k.attributes)
    info = (
        *base,
        ("key_id", a.get("key_id", "")),
        ("alias", a.get("alias", "")),
        ("key_spec", a.get("key_spec", "")),
        ("key_usage", a.get("key_usage", "")),
        ("origin", a.get("origin", "")),
        ("state", a.get("state", "")),
    )
    _add(out, "certscope_kms_key_info", info, 1)
    rotation = a.get("rotation_enabled")
    if rotation in ("true", "false"):
        _add(out, "certscope_kms_key_rotation_enabled", base, int(rotation == "true"))
    days = a.get("rotation_period_days", "")
    if days.isdigit():
        _add(out, "certscope_kms_key_rotation_period_seconds", base, int(days) * 86400)
    _dated(
        out, "certscope_kms_key_last_rotation_timestamp_seconds", base, a.get("last_rotation", "")
    )
    _dated(out, "certscope_kms_key_deletion_timestamp_seconds", base, a.get("deletion_date", ""))
    if k.created is not None:
        _add(out, "certscope_kms_key_creation_timestamp_seconds", base, k.created)


def _secret_lines(out: Fragments, base: Labels, k: StoredKey) -> None:
    a = dict(k.attributes)
    _add(out, "certscope_secret_rotation_enabled", base, int(a.get("rotation_enabled") == "true"))
    try:
        days = float(a.get("rotation_interval_days", ""))
    except ValueError:
        days = 0.0
    if days > 0:
        _add(out, "certscope_secret_rotation_interval_seconds", base, days * 86400)
    _dated(out, "certscope_secret_last_rotated_timestamp_seconds", base, a.get("last_rotated", ""))
    _dated(out, "certscope_secret_next_rotation_timestamp_seconds", base, a.get("rotation_due", ""))
    accessed = a.get("last_accessed", "")
    _dated(out, "certscope_secret_last_accessed_timestamp_seconds", base, accessed)
    if k.created is not None:
        _add(out, "certscope_secret_created_timestamp_seconds", base, k.created)


def cloud_fragments(out: Fragments, r: SourceResult) -> None:
    """KMS keys, secrets, ACM certificate facts and storage encryption of one source result."""

    def base(kind: str, location: str) -> Labels:
        return (
            ("source_kind", kind or r.kind),
            ("source", r.name),
            ("location", location),
            *r.labels,
        )

    for k in r.keys:
        if k.kind == "kms_key":
            _kms_lines(out, base(k.source_kind, k.location), k)
        elif k.kind == "secret":
            _secret_lines(out, base(k.source_kind, k.location), k)
    for c in r.certs:
        if c.source_kind == "aws_acm" and c.position == 0:
            a = dict(c.attributes)
            loc = base(c.source_kind, c.location)
            info = (
                *loc,
                ("certificate_type", a.get("certificate_type", "")),
                ("certificate_status", a.get("certificate_status", "")),
                ("renewal_eligibility", a.get("renewal_eligibility", "")),
            )
            _add(out, "certscope_acm_certificate_info", info, 1)
            if a.get("in_use_by", "").isdigit():
                _add(out, "certscope_acm_certificate_in_use_by", loc, int(a["in_use_by"]))
    for s in r.storage:
        labels: Labels = (
            ("source_kind", s.source_kind or r.kind),
            ("source", r.name),
            ("resource_kind", s.resource_kind),
            ("resource", s.resource),
            ("kms_key_id", s.kms_key_id),
            *r.labels,
        )
        _add(out, "certscope_storage_encryption_enabled", labels, int(s.encrypted))
        if s.resource_kind == "s3_bucket" and s.encrypted:
            a = dict(s.attributes)
            info = (
                *labels[:4],
                ("sse_algorithm", a.get("algorithm", "")),
                ("bucket_key", a.get("bucket_key", "")),
                ("key_manager", a.get("key_manager", "")),
                *r.labels,
            )
            _add(out, "certscope_s3_bucket_encryption_info", info, 1)


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


Result = ProbeResult | SSHProbeResult | SourceResult | AssessedLocation | Policy


#: Each family's place in the exposition, and its HELP/TYPE header in that place.
_INDEX = {f.name: i for i, f in enumerate(FAMILIES)}
_HEADERS = tuple(f"# HELP {f.name} {f.help}\n# TYPE {f.name} {f.type}\n".encode() for f in FAMILIES)


def _encode(fragments: Fragments) -> tuple[bytes, array[int]]:
    """One result's lines as one buffer, and where each family's lines end in it.

    One bytes object and one array per result instead of a dictionary of per-family bytes
    objects: at fleet scale that per-object overhead was about a sixth of the memory the
    exposition holds. ``spans`` is (family index, end offset) pairs, in buffer order.
    """
    texts = ["".join(lines) for lines in fragments.values()]
    whole = "".join(texts)
    buf = whole.encode()
    # Nearly always ASCII, where byte offsets are character offsets; else measure each family.
    sizes = map(len, texts) if len(buf) == len(whole) else (len(t.encode()) for t in texts)
    spans: list[int] = []
    end = 0
    for name, size in zip(fragments, sizes, strict=True):
        end += size
        spans += (_INDEX[name], end)
    return buf, array("H" if end <= 0xFFFF else "I", spans)


def _fragments_of(result: Result) -> Fragments:
    if isinstance(result, ProbeResult):
        return probe_fragments(result)
    if isinstance(result, SSHProbeResult):
        return ssh_fragments(result)
    if isinstance(result, SourceResult):
        return source_fragments(result)
    if isinstance(result, AssessedLocation):
        return assessment_fragments(result)
    return policy_fragments(result)


class Exposition:
    """Renders snapshots, caching each result's encoded lines while that result is current.

    Each result's lines are rendered and encoded once, into one buffer (:func:`_encode`); a
    scrape gathers views of those buffers per family and joins each family once. A scrape of
    an unchanged snapshot (the same ``key`` object) returns the previous parts.
    """

    def __init__(self) -> None:
        # id(result) -> (result, buffer, spans); the result is held so its id cannot be reused.
        self._cache: dict[int, tuple[object, bytes, array[int]]] = {}
        self._last: tuple[object, list[bytes | bytearray]] | None = None

    def prepare(self, stored: Sequence[Result], dropped: Sequence[Result]) -> None:
        """Render ``stored`` results now and forget ``dropped`` ones (replaced or removed), so
        that the scrape that first shows a result only gathers its lines."""
        for old in dropped:
            hit = self._cache.get(id(old))
            if hit is not None and hit[0] is old:
                del self._cache[id(old)]
        for new in stored:
            self._encoded(new)

    def held_bytes(self) -> int:
        """The size of the rendered text held for the current results."""
        return sum(len(buf) for _, buf, _ in self._cache.values())

    def _encoded(self, result: Result) -> tuple[object, bytes, array[int]]:
        hit = self._cache.get(id(result))
        if hit is not None and hit[0] is result:
            return hit
        hit = (result, *_encode(_fragments_of(result)))
        self._cache[id(result)] = hit
        return hit

    def render_parts(
        self, results: Iterable[Result], key: object = None
    ) -> list[bytes | bytearray]:
        """The exposition as a few large parts (a header, then one family's lines), in
        family order: a response can write them without joining them first."""
        if key is not None and self._last is not None and self._last[0] is key:
            return self._last[1]
        current = list(results)
        # Each family's lines are copied straight into its own buffer (each slice is freed at
        # once), so a scrape holds little beyond the body it returns.
        by_family: list[bytearray | None] = [None] * len(_HEADERS)
        for r in current:
            _, buf, spans = self._encoded(r)
            start = 0
            pairs = iter(spans)
            for index, end in zip(pairs, pairs, strict=True):
                lines = by_family[index]
                if lines is None:
                    by_family[index] = bytearray(buf[start:end])
                else:
                    lines += buf[start:end]
                start = end
        if len(self._cache) > len(current):
            live = {id(r) for r in current}
            self._cache = {k: v for k, v in self._cache.items() if k in live}
        parts: list[bytes | bytearray] = []
        for header, present in zip(_HEADERS, by_family, strict=True):
            if present:
                parts.append(header)
                parts.append(present)
        if key is not None:
            self._last = (key, parts)
        return parts

    def render_bytes(self, results: Iterable[Result], key: object = None) -> bytes:
        return b"".join(self.render_parts(results, key))

    def render(self, results: Iterable[Result]) -> str:
        return self.render_bytes(results).decode("utf-8")


def render_once(results: Iterable[Result]) -> str:
    """Render without a cache (``/probe`` and one-off uses)."""
    return Exposition().render(results)
