"""The benchmarks' certificates: a root, an intermediate and as many leaves as a scenario needs,
cheaply (one leaf key shared by every leaf, so each leaf costs one signature).

Not the tests' PKI (``tests/helpers/pki.py``): a benchmark issues ten thousand leaves and
times nothing but the reader, so the leaves carry only a name, a SAN and a validity.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


class Issuer:
    """A root, an intermediate and cheap leaves (one shared key; a signature each)."""

    def __init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.x509, self.hashes, self.NameOID = x509, hashes, NameOID
        now = dt.datetime.now(dt.UTC)
        self.now = now
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.int_key = ec.generate_private_key(ec.SECP256R1())
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca("certscope bench root", self.root_key, None, None)
        self.intermediate = self._ca(
            "certscope bench intermediate", self.int_key, self.root, self.root_key
        )
        pem = serialization.Encoding.PEM
        self.root_pem = self.root.public_bytes(pem)
        self.int_pem = self.intermediate.public_bytes(pem)
        self.key_pem = self.leaf_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._pem = pem

    def _ca(self, cn: str, key: Any, issuer: Any, issuer_key: Any) -> Any:
        x509 = self.x509
        name = x509.Name([x509.NameAttribute(self.NameOID.COMMON_NAME, cn)])
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer.subject if issuer else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(issuer_key or key, self.hashes.SHA256())
        )

    def leaf(self, host: str, days: int) -> bytes:
        x509 = self.x509
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(self.NameOID.COMMON_NAME, host)]))
            .issuer_name(self.intermediate.subject)
            .public_key(self.leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(self.int_key, self.hashes.SHA256())
        )
        return bytes(cert.public_bytes(self._pem))
