"""Every metric family certscope exports, with its help text: the contract docs/metrics.md documents."""

from __future__ import annotations

from dataclasses import dataclass


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
