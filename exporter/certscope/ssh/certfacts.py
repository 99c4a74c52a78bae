"""An OpenSSH host certificate in the certificate schema, so the expiry rules cover it. Pure.

The mapping (documented in docs/metrics.md, "SSH"): ``subject_cn`` is the key ID, ``sans``
the principals, ``issuer_cn`` the CA key's fingerprint, ``serial`` the certificate serial,
``not_before``/``not_after`` valid-after/valid-before (absent when unbounded), the key
columns describe the certified key, ``signature_algorithm`` the CA key type, and
``fingerprint_sha256`` is the SHA-256 of the certificate blob.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ..certs import CertFacts
from .keys import KeyFacts

_KEY_ALGORITHMS = {"ssh-rsa": "RSA", "ssh-ed25519": "Ed25519", "ssh-dss": "DSA"}
_CURVES = {256: "secp256r1", 384: "secp384r1", 521: "secp521r1"}


def _when(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def host_certificate_facts(key: KeyFacts) -> CertFacts:
    cert = key.certificate
    if cert is None:
        raise ValueError("not a certificate")
    algorithm = _KEY_ALGORITHMS.get(key.algorithm, "EC" if "ecdsa" in key.algorithm else "")
    return CertFacts(
        der_sha256=cert.blob_sha256,
        subject=f"SSH {cert.type} certificate {cert.key_id}",
        subject_cn=cert.key_id,
        issuer=f"SSH CA {cert.ca_algorithm} {cert.ca_fingerprint_sha256}",
        issuer_cn=cert.ca_fingerprint_sha256,
        serial=str(cert.serial),
        sans=cert.principals,
        not_before=_when(cert.valid_after),
        not_after=_when(cert.valid_before),
        key_algorithm=algorithm,
        key_bits=key.bits,
        key_curve=_CURVES.get(key.bits, "") if algorithm == "EC" else "",
        public_key_sha256=key.public_key_sha256,
        signature_algorithm=cert.ca_algorithm,
    )
