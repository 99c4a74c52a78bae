"""The policy's rule identifiers and the SOC 2 common criterion each one evidences.

A leaf module: the policy judges by these rules, the configuration accepts waivers for them,
and the metrics, alert rules and evidence name them, so none of those may keep its own list.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["CONTROLS", "WAIVABLE", "Rule"]


class Rule(StrEnum):
    PROTOCOL_DEPRECATED = "protocol_deprecated"
    CIPHER_INSECURE = "cipher_insecure"
    CIPHER_WEAK = "cipher_weak"
    CIPHER_NOT_ALLOWED = "cipher_not_allowed"
    KEY_TOO_SMALL = "key_too_small"
    SIGNATURE_HASH_FORBIDDEN = "signature_hash_forbidden"
    CERT_LIFETIME_TOO_LONG = "cert_lifetime_too_long"
    HOSTNAME_MISMATCH = "hostname_mismatch"
    CHAIN_UNTRUSTED = "chain_untrusted"
    CERT_EXPIRED = "cert_expired"
    CERT_NOT_YET_VALID = "cert_not_yet_valid"
    SERVED_NOT_STORED = "served_not_stored"
    PRIVATE_KEY_MISMATCH = "private_key_mismatch"
    EXCEPTION_EXPIRED = "exception_expired"
    PRIVATE_KEY_UNENCRYPTED = "private_key_unencrypted"
    PRIVATE_KEY_ORPHANED = "private_key_orphaned"
    PRIVATE_KEY_WEAK = "private_key_weak"
    CERT_REVOKED = "cert_revoked"
    OCSP_MUST_STAPLE_MISSING = "ocsp_must_staple_missing"
    DH_GROUP_TOO_SMALL = "dh_group_too_small"
    DH_GROUP_INSECURE = "dh_group_insecure"
    SAN_MISSING = "san_missing"
    SCT_MISSING = "sct_missing"
    CHAIN_ORDER_WRONG = "chain_order_wrong"
    INTERMEDIATE_EXPIRED = "intermediate_expired"
    # SSH servers (certscope.ssh.policy)
    SSH_KEX_WEAK = "ssh_kex_weak"
    SSH_CIPHER_WEAK = "ssh_cipher_weak"
    SSH_MAC_WEAK = "ssh_mac_weak"
    SSH_HOST_KEY_WEAK = "ssh_host_key_weak"
    SSH_HOST_CERTIFICATE_EXPIRING = "ssh_host_certificate_expiring"
    SSH_HOST_CERTIFICATE_EXPIRED = "ssh_host_certificate_expired"
    SSH_SOFTWARE_OUTDATED = "ssh_software_outdated"
    # SSH keys (certscope.ssh.policy, the ssh_authorized_keys source)
    SSH_KEY_UNKNOWN_OWNER = "ssh_key_unknown_owner"
    SSH_KEY_DEPARTED_OWNER = "ssh_key_departed_owner"
    SSH_KEY_WEAK = "ssh_key_weak"
    SSH_KEY_TOO_OLD = "ssh_key_too_old"
    SSH_KEY_NO_EXPIRY = "ssh_key_no_expiry"
    # cloud keys, secrets and storage (judged in keypolicy.py)
    KMS_ROTATION_DISABLED = "kms_rotation_disabled"
    KMS_KEY_PENDING_DELETION = "kms_key_pending_deletion"
    SECRET_ROTATION_DISABLED = "secret_rotation_disabled"  # noqa: S105 - a rule id
    SECRET_ROTATION_OVERDUE = "secret_rotation_overdue"  # noqa: S105 - a rule id
    STORAGE_UNENCRYPTED = "storage_unencrypted"


#: rule → SOC 2 common criterion it evidences. CC6.1: keys and credentials; CC6.6: boundary
#: protection (who the endpoint claims to be); CC6.7: encryption in transit; CC7.1:
#: detecting configuration that drifted from policy.
CONTROLS: dict[Rule, str] = {
    Rule.PROTOCOL_DEPRECATED: "CC6.7",
    Rule.CIPHER_INSECURE: "CC6.7",
    Rule.CIPHER_WEAK: "CC6.7",
    Rule.CIPHER_NOT_ALLOWED: "CC6.7",
    Rule.KEY_TOO_SMALL: "CC6.1",
    Rule.SIGNATURE_HASH_FORBIDDEN: "CC6.1",
    Rule.CERT_LIFETIME_TOO_LONG: "CC6.1",
    Rule.HOSTNAME_MISMATCH: "CC6.6",
    Rule.CHAIN_UNTRUSTED: "CC6.6",
    Rule.CERT_EXPIRED: "CC6.7",
    Rule.CERT_NOT_YET_VALID: "CC6.7",
    Rule.SERVED_NOT_STORED: "CC7.1",
    Rule.PRIVATE_KEY_MISMATCH: "CC6.1",
    Rule.EXCEPTION_EXPIRED: "CC7.1",
    Rule.PRIVATE_KEY_UNENCRYPTED: "CC6.1",
    Rule.PRIVATE_KEY_ORPHANED: "CC6.1",
    Rule.PRIVATE_KEY_WEAK: "CC6.1",
    Rule.CERT_REVOKED: "CC6.1",
    Rule.OCSP_MUST_STAPLE_MISSING: "CC6.6",
    Rule.DH_GROUP_TOO_SMALL: "CC6.7",
    Rule.DH_GROUP_INSECURE: "CC6.7",
    Rule.SAN_MISSING: "CC6.6",
    Rule.SCT_MISSING: "CC6.6",
    Rule.CHAIN_ORDER_WRONG: "CC6.6",
    Rule.INTERMEDIATE_EXPIRED: "CC6.7",
    Rule.SSH_KEX_WEAK: "CC6.7",
    Rule.SSH_CIPHER_WEAK: "CC6.7",
    Rule.SSH_MAC_WEAK: "CC6.7",
    Rule.SSH_HOST_KEY_WEAK: "CC6.1",
    Rule.SSH_HOST_CERTIFICATE_EXPIRING: "CC6.1",
    Rule.SSH_HOST_CERTIFICATE_EXPIRED: "CC6.1",
    Rule.SSH_SOFTWARE_OUTDATED: "CC6.6",
    Rule.SSH_KEY_UNKNOWN_OWNER: "CC6.1",
    Rule.SSH_KEY_DEPARTED_OWNER: "CC6.1",
    Rule.SSH_KEY_WEAK: "CC6.1",
    Rule.SSH_KEY_TOO_OLD: "CC6.1",
    Rule.SSH_KEY_NO_EXPIRY: "CC6.1",
    # Key management and encryption at rest protect information assets (CC6.1); unencrypted
    # storage also bears on confidentiality (C1.1), listed with the rule in docs/policy.md.
    Rule.KMS_ROTATION_DISABLED: "CC6.1",
    Rule.KMS_KEY_PENDING_DELETION: "CC6.1",
    Rule.SECRET_ROTATION_DISABLED: "CC6.1",
    Rule.SECRET_ROTATION_OVERDUE: "CC6.1",
    Rule.STORAGE_UNENCRYPTED: "CC6.1",
}

#: The rules a policy waiver may name: all but the one that reports an expired waiver.
WAIVABLE: tuple[Rule, ...] = tuple(r for r in Rule if r is not Rule.EXCEPTION_EXPIRED)
