"""Certificate facts for the policy and verdict tests: a healthy certificate as seen at ``NOW``,
with any field overridden (``cert(key_bits=1024)``), so a test names only what it is about.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from certscope.certs import CertFacts

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)


def cert(**kw: object) -> CertFacts:
    base: dict[str, object] = {
        "der_sha256": "ab" * 32,
        "subject": "CN=web.test",
        "subject_cn": "web.test",
        "issuer": "CN=Test CA",
        "issuer_cn": "Test CA",
        "sans": ("web.test",),
        "not_before": NOW - timedelta(days=30),
        "not_after": NOW + timedelta(days=60),
        "key_algorithm": "EC",
        "key_bits": 256,
        "key_curve": "secp256r1",
        "signature_algorithm": "ECDSA",
        "signature_hash": "sha256",
    }
    base.update(kw)
    return CertFacts(**base)  # type: ignore[arg-type]
