"""A test PKI in a few calls: root CA, intermediate, leaves, written as PEM files.

Import it from a test module as ``from helpers.pki import TestPKI`` (pytest puts ``tests/`` on
``sys.path``)::

    pki = TestPKI(tmp_path)                    # root + intermediate, EC P-256, files in tmp_path
    leaf = pki.leaf("web.test", days_left=12)  # issued by the intermediate
    leaf.chain     # PEM: leaf + intermediate, what a correctly configured server presents
    leaf.cert      # PEM: the leaf alone (a server that "forgets" its intermediate)
    leaf.fullchain # PEM: leaf + intermediate + root
    leaf.key       # PEM: the private key (PKCS#8, unencrypted)
    pki.ca_file    # PEM: the root, the trust anchor to pass as ``ca_file``

Every leaf has serverAuth and clientAuth usages, so one leaf also serves as an mTLS client
certificate (pass ``leaf.chain`` and ``leaf.key``). Leaves name their issuer's URL in AIA
caIssuers (and carry OCSP and CRL URLs, see :attr:`TestPKI.ca_issuers_url` and friends), so a
chain that lacks the intermediate is reported as ``incomplete_chain``; pass ``aia=False`` for a
leaf whose missing issuer cannot be located (``unknown_issuer``).

``leaf()`` options: names become SANs (IP literals become IP SANs) and the first one the CN;
``cn=`` overrides the CN (``""``: none); ``san=False`` leaves out the SAN extension (CN only);
``days_left`` (negative: expired); ``starts_in_days`` (positive: not yet valid); ``key`` is one
of ``"ec"`` (P-256), ``"p384"``, ``"rsa"`` (2048), ``"ed25519"``; ``issuer`` is
``"intermediate"``, ``"root"`` or ``"self"`` (self-signed); ``signature_hash`` ``"sha256"``,
``"sha384"``, ``"sha512"`` or ``"sha1"`` (RSA issuers only: build the PKI with
``TestPKI(path, ca_key="rsa")``); ``pad_bytes`` adds a non-critical private extension of that
size (for huge certificates); ``serial`` fixes the serial number; ``must_staple`` adds the TLS
feature extension with status_request (RFC 7633); ``sct_logs`` embeds one SCT per 32-byte log id
(dummy signatures). ``TestPKI(path, base_url=...)`` points the
OCSP, CRL and caIssuers URLs at a real server (``{base_url}/ocsp``, ``/intermediate.crl``).

A second, independent PKI (``TestPKI(path, name="Other")``) is a CA nobody trusts.
:meth:`TestPKI.long_chain` writes a chain of any length. Keys are generated once per process
and reused (RSA is slow): CA keys per PKI ``name`` (two PKIs with the same name share them),
one leaf key per key kind; certificates are cheap and made fresh on every call.
``tests/conftest.py`` offers session-scoped ``pki``, ``other_pki`` and ``rsa_pki`` fixtures.

For a plain leaf and a trust anchor, and nothing the test asserts about the chain, use
``trustme`` (``trustme.CA().issue_cert("web.test")``) instead. This module builds certificates
with ``cryptography`` because what it exists for is what trustme cannot express: AIA caIssuers,
OCSP and CRL URLs (``incomplete_chain`` against ``unknown_issuer``, revocation against a real
responder), SHA-1 signatures, Ed25519 and P-384 keys, CN-only and self-signed leaves, fixed
serials, padding, must-staple and embedded SCTs, CA keys shared by name across PKIs, and leaf
keys reused across calls (RSA generation is the slow part of a test run).
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

__all__ = ["Issuer", "KeyKind", "Leaf", "TestPKI", "ca_usage", "issued", "private_key"]

KeyKind = Literal["ec", "p384", "rsa", "ed25519"]
HashName = Literal["sha256", "sha384", "sha512", "sha1"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

_KEYS: dict[tuple[KeyKind, str], PrivateKey] = {}
_HASHES: dict[str, hashes.SHA256 | hashes.SHA384 | hashes.SHA512] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}
# A private-use OID (under the "example" arc 2.999) for padding extensions.
_PAD_OID = x509.ObjectIdentifier("2.999.1")
# RFC 6962 embedded SCT list.
_SCT_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")


def private_key(kind: KeyKind, slot: str = "default") -> PrivateKey:
    """A key of ``kind``, generated once per process for each ``slot``."""
    cached = _KEYS.get((kind, slot))
    if cached is not None:
        return cached
    key: PrivateKey
    if kind == "ec":
        key = ec.generate_private_key(ec.SECP256R1())
    elif kind == "p384":
        key = ec.generate_private_key(ec.SECP384R1())
    elif kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unknown key kind {kind!r}")
    _KEYS[(kind, slot)] = key
    return key


@dataclass(frozen=True)
class Issuer:
    """A CA certificate with its key and PEM file."""

    certificate: x509.Certificate
    key: PrivateKey
    path: Path

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Leaf:
    """An issued certificate and its files. ``chain`` is what a server should present."""

    name: str
    certificate: x509.Certificate
    key_object: PrivateKey
    cert: Path
    chain: Path
    fullchain: Path
    key: Path

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.read_bytes()


def _name(cn: str, org: str) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if cn:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        head = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + head + content


# DER AlgorithmIdentifiers: sha256WithRSAEncryption and sha1WithRSAEncryption (same length).
_RSA_SHA256 = bytes.fromhex("300d06092a864886f70d01010b0500")
_RSA_SHA1 = bytes.fromhex("300d06092a864886f70d0101050500")


def _sign(builder: x509.CertificateBuilder, key: PrivateKey, digest: HashName) -> x509.Certificate:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return builder.sign(key, None)
    if digest != "sha1":
        return builder.sign(key, _HASHES[digest])
    # cryptography no longer signs certificates with SHA-1, so sign with SHA-256, swap the
    # algorithm identifier in the TBS, and sign the new TBS with SHA-1 by hand.
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("SHA-1 signatures need an RSA issuer: TestPKI(path, ca_key='rsa')")
    tbs = builder.sign(key, hashes.SHA256()).tbs_certificate_bytes
    if tbs.count(_RSA_SHA256) != 1:
        raise AssertionError("unexpected TBS layout")
    tbs = tbs.replace(_RSA_SHA256, _RSA_SHA1)
    signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    der = _tlv(0x30, tbs + _RSA_SHA1 + _tlv(0x03, b"\x00" + signature))
    return x509.load_der_x509_certificate(der)


def _with_extras(
    builder: x509.CertificateBuilder,
    now: datetime,
    sct_logs: tuple[bytes, ...],
    must_staple: bool,
    pad_bytes: int,
) -> x509.CertificateBuilder:
    """The optional extensions: embedded SCTs, must-staple, padding."""
    if sct_logs:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(_SCT_OID, _tlv(0x04, _sct_list(sct_logs, now))),
            critical=False,
        )
    if must_staple:
        builder = builder.add_extension(
            x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False
        )
    if pad_bytes:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(_PAD_OID, _tlv(0x04, b"P" * pad_bytes)), critical=False
        )
    return builder


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text)[:60] or "cert"


class TestPKI:
    """A root CA and an intermediate CA whose files live in ``directory``."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        directory: Path,
        *,
        name: str = "Test",
        ca_key: KeyKind = "ec",
        intermediate_days_left: float = 3650,
        base_url: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self._counter = itertools.count(1)
        self._ca_key_kind: KeyKind = ca_key
        # ``base_url`` points AIA and CRL URLs at a real responder (e.g. on loopback).
        base = base_url or f"http://pki.certscope.invalid/{_slug(name)}"
        #: Where leaves say their issuer (the intermediate) can be fetched.
        self.ca_issuers_url = f"{base}/intermediate.crt"
        #: Where the intermediate says the root can be fetched.
        self.root_url = f"{base}/root.crt"
        self.ocsp_url = f"{base}/ocsp"
        self.crl_url = f"{base}/intermediate.crl"
        now = datetime.now(UTC)

        root_key = private_key(ca_key, f"{name}/root")
        root_name = _name(f"certscope {name} Root CA", f"certscope {name}")
        builder = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=7300))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(ca_usage(), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
            )
        )
        root_cert = _sign(builder, root_key, "sha256")
        self.root = Issuer(root_cert, root_key, self._write("root.crt", root_cert))

        int_key = private_key(ca_key, f"{name}/intermediate")
        int_name = _name(f"certscope {name} Intermediate CA", f"certscope {name}")
        int_not_after = now + timedelta(days=intermediate_days_left)
        builder = (
            x509.CertificateBuilder()
            .subject_name(int_name)
            .issuer_name(root_name)
            .public_key(int_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(min(now - timedelta(days=1), int_not_after - timedelta(days=1)))
            .not_valid_after(int_not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(ca_usage(), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(int_key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS,
                            x509.UniformResourceIdentifier(self.root_url),
                        )
                    ]
                ),
                critical=False,
            )
        )
        int_cert = _sign(builder, root_key, "sha256")
        self.intermediate = Issuer(int_cert, int_key, self._write("intermediate.crt", int_cert))

    @property
    def ca_file(self) -> Path:
        """The root certificate (PEM): the trust anchor."""
        return self.root.path

    def _write(self, filename: str, *certs: x509.Certificate) -> Path:
        path = self.directory / f"{_slug(self.name)}-{filename}"
        path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
        return path

    def leaf(
        self,
        *names: str,
        cn: str | None = None,
        san: bool = True,
        days_left: float = 90,
        starts_in_days: float | None = None,
        key: KeyKind = "ec",
        issuer: Literal["intermediate", "root", "self"] = "intermediate",
        signature_hash: HashName = "sha256",
        aia: bool = True,
        pad_bytes: int = 0,
        serial: int | None = None,
        must_staple: bool = False,
        sct_logs: tuple[bytes, ...] = (),
    ) -> Leaf:
        """Issue a certificate for ``names`` and write its files (see the module docstring)."""
        label = names[0] if names else (cn or "leaf")
        stem = f"{next(self._counter):03d}-{_slug(label)}"
        leaf_key = private_key(key, "leaf")
        now = datetime.now(UTC)
        not_after = now + timedelta(days=days_left)
        if starts_in_days is None:
            not_before = min(now, not_after) - timedelta(days=1)
        else:
            not_before = now + timedelta(days=starts_in_days)
        subject = _name(label if cn is None else cn, f"certscope {self.name} leaves")
        signer: Issuer | None = None
        if issuer == "intermediate":
            signer = self.intermediate
        elif issuer == "root":
            signer = self.root
        issuer_name = signer.certificate.subject if signer else subject
        signing_key = signer.key if signer else leaf_key
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(leaf_key.public_key())
            .serial_number(serial if serial is not None else x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False
            )
        )
        if san and names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
            )
        if signer is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.key.public_key()),
                critical=False,
            )
            if aia:
                builder = self._with_locations(builder, signer)
        builder = _with_extras(builder, now, sct_logs, must_staple, pad_bytes)
        cert = _sign(builder, signing_key, signature_hash)
        return self._write_leaf(stem, label, cert, leaf_key, signer)

    def _with_locations(
        self, builder: x509.CertificateBuilder, signer: Issuer
    ) -> x509.CertificateBuilder:
        """AIA (OCSP responder, the issuer's URL) and the CRL distribution point."""
        issuer_url = self.ca_issuers_url if signer is self.intermediate else self.root_url
        aia = x509.AuthorityInformationAccess(
            [
                x509.AccessDescription(
                    AuthorityInformationAccessOID.OCSP,
                    x509.UniformResourceIdentifier(self.ocsp_url),
                ),
                x509.AccessDescription(
                    AuthorityInformationAccessOID.CA_ISSUERS,
                    x509.UniformResourceIdentifier(issuer_url),
                ),
            ]
        )
        crl = x509.CRLDistributionPoints(
            [
                x509.DistributionPoint(
                    full_name=[x509.UniformResourceIdentifier(self.crl_url)],
                    relative_name=None,
                    reasons=None,
                    crl_issuer=None,
                )
            ]
        )
        return builder.add_extension(aia, critical=False).add_extension(crl, critical=False)

    def _write_leaf(
        self,
        stem: str,
        label: str,
        cert: x509.Certificate,
        leaf_key: PrivateKey,
        signer: Issuer | None,
    ) -> Leaf:
        key_path = self.directory / f"{_slug(self.name)}-{stem}.key"
        key_path.write_bytes(_key_pem(leaf_key))
        key_path.chmod(0o600)
        chain: tuple[x509.Certificate, ...]
        full: tuple[x509.Certificate, ...]
        if signer is self.intermediate:
            chain = (cert, self.intermediate.certificate)
            full = (*chain, self.root.certificate)
        elif signer is self.root:
            chain = (cert,)
            full = (cert, self.root.certificate)
        else:
            chain = full = (cert,)
        return Leaf(
            name=label,
            certificate=cert,
            key_object=leaf_key,
            cert=self._write(f"{stem}.crt", cert),
            chain=self._write(f"{stem}.chain.pem", *chain),
            fullchain=self._write(f"{stem}.fullchain.pem", *full),
            key=key_path,
        )

    def long_chain(self, name: str, length: int) -> Leaf:
        """A leaf for ``name`` whose ``chain`` file holds ``length`` certificates in all.

        Leaf, then ``length - 1`` intermediates, each issued by the next; the last one is
        issued by this PKI's intermediate (which is not in the file). One key signs them all.
        """
        if length < 1:
            raise ValueError("length must be at least 1")
        ca_key = private_key("ec", f"{self.name}/long-chain")
        now = datetime.now(UTC)
        issuer_name = self.intermediate.certificate.subject
        issuer_key: PrivateKey = self.intermediate.key
        cas: list[x509.Certificate] = []
        for i in range(length - 1, 0, -1):
            subject = _name(f"certscope {self.name} chain CA {i}", f"certscope {self.name}")
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(issuer_name)
                .public_key(ca_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=365))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            )
            cas.append(_sign(builder, issuer_key, "sha256"))
            issuer_name, issuer_key = subject, ca_key
        leaf_key = private_key("ec", "leaf")
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name, f"certscope {self.name} leaves"))
            .issuer_name(issuer_name)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([_general_name(name)]), critical=False)
        )
        leaf = _sign(builder, issuer_key, "sha256")
        chain = (leaf, *reversed(cas))
        stem = f"{next(self._counter):03d}-{_slug(name)}-chain{length}"
        key_path = self.directory / f"{_slug(self.name)}-{stem}.key"
        key_path.write_bytes(_key_pem(leaf_key))
        return Leaf(
            name=name,
            certificate=leaf,
            key_object=leaf_key,
            cert=self._write(f"{stem}.crt", leaf),
            chain=self._write(f"{stem}.chain.pem", *chain),
            fullchain=self._write(f"{stem}.fullchain.pem", *chain, self.root.certificate),
            key=key_path,
        )


def _sct_list(log_ids: tuple[bytes, ...], when: datetime) -> bytes:
    """A SignedCertificateTimestampList (RFC 6962 3.3) with one v1 SCT per 32-byte log id.
    The signatures are dummies: certscope reads which logs, it does not verify them."""
    items = b""
    millis = int(when.timestamp() * 1000).to_bytes(8, "big")
    for log_id in log_ids:
        sct = b"\x00" + log_id + millis + b"\x00\x00" + b"\x04\x03" + b"\x00\x02" + b"\x30\x00"
        items += len(sct).to_bytes(2, "big") + sct
    return len(items).to_bytes(2, "big") + items


def ca_usage() -> x509.KeyUsage:
    """The key usage of a CA certificate: signing certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def issued(
    cn: str,
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    *,
    ca: bool | None = None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for ``cn`` and its new key, signed by ``issuer_key`` outside any
    :class:`TestPKI`: for chains no PKI gives (an end-entity certificate or an extra CA in
    the middle, an extension nobody knows). ``ca``: its basic constraints, with a CA's key
    usage when True; None: a leaf, with ``cn`` as its subject alternative name.
    ``extensions``: more (extension, critical) pairs."""
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
    )
    if ca is None:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(cn)]), False)
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), True)
    if ca:
        builder = builder.add_extension(ca_usage(), critical=True)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return _sign(builder, issuer_key, "sha256"), key


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
