"""Revocation material over the test PKI: lines of an ``openssl ca`` index (what ``openssl ocsp``
answers from), CRLs signed by the intermediate (or by another PKI's, to be rejected), and the
intermediate's key as a file for ``openssl ocsp -rkey``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from .pki import TestPKI


def ca_index_line(status: str, serial: int, subject: str, revoked_at: str = "") -> str:
    return f"{status}\t301001000000Z\t{revoked_at}\t{serial:X}\tunknown\t/CN={subject}\n"


def signed_crl(
    pki: TestPKI, revoked: list[int], next_update: timedelta, key: TestPKI | None = None
) -> bytes:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.intermediate.certificate.subject)
        .last_update(now + min(timedelta(minutes=-1), next_update - timedelta(hours=1)))
        .next_update(now + next_update)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now - timedelta(hours=1))
            .build()
        )
    signer = (key or pki).intermediate.key
    crl = builder.sign(signer, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.DER)


def write_key_file(pki: TestPKI, path: Path) -> Path:
    """The intermediate's key as a PEM file, for ``openssl ocsp -rkey``."""
    path.write_bytes(
        pki.intermediate.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path
