"""Label names certscope sets on its own series (docs/metrics.md).

The evidence report reads series by these names; a configured label with one of them would
clash, so the configuration refuses it. One list, used by both.
"""

from __future__ import annotations

import re

#: Labels of ``certscope_cert_info`` that describe the certificate rather than its slot.
INFO_LABELS = (
    "serial",
    "fingerprint_sha256",
    "subject",
    "issuer",
    "sans",
    "key_algorithm",
    "key_bits",
    "key_curve",
    "public_key_sha256",
    "signature_algorithm",
    "signature_hash",
    "is_ca",
    "self_signed",
)
#: A renewal keeps these (docs/metrics.md: a slot, plus the subject; the issuer may change).
SLOT_LABELS = ("source_kind", "source", "location", "chain_position", "subject_cn")
#: Labels that identify a finding rather than the location it is about.
FINDING_LABELS = ("rule", "severity", "control", "exception_owner")

#: Label names certscope sets itself; a user label with one of these names would clash.
RESERVED_LABELS = frozenset(
    {
        *INFO_LABELS,
        *SLOT_LABELS,
        *FINDING_LABELS,
        "job",
        "instance",
        "issuer_cn",
        "expected_location",
        "certmanager_issuer",
        "certmanager_certificate",
        "reason",
        "alert",
        "version",
        "cipher",
        "group",
        "phase",
        "protocol",
        "class",
        "grade",
        "profile",
        "result",
        "method",
        "status",
        "log_id",
        # SSH series
        "kind",
        "algorithm",
        "bits",
        "software",
        "comments",
        "account",
        "owner_status",
        "cert_authority",
        # AWS source series (kms keys, secrets, storage encryption)
        "key_id",
        "alias",
        "key_spec",
        "key_usage",
        "origin",
        "state",
        "resource_kind",
        "resource",
        "kms_key_id",
        "certificate_type",
        "certificate_status",
        "renewal_eligibility",
        "sse_algorithm",
        "bucket_key",
        "key_manager",
    }
)

#: A Prometheus label name; names starting with ``__`` are reserved by Prometheus itself.
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
