"""Certificate facts: pure functions from DER/PEM bytes to :class:`CertFacts`. No I/O.

Every field is extracted on its own so that one malformed extension (hostile servers send
them) costs that field, not the whole certificate: the certificate is still reported, with the
problem listed in ``parse_errors``.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtensionOID,
    NameOID,
    SignatureAlgorithmOID,
)

# Re-exported: certificates compare host names in their A-label form.
from .net import a_label as a_label
from .net import is_ip as is_ip
from .net import parse_ip

T = TypeVar("T")
H = TypeVar("H", bound=Hashable)

#: Certificates larger than this are not parsed: 16 MiB is the most one TLS Certificate
#: message can carry (a 24-bit length), so every certificate a handshake delivers within the
#: configured ``max_handshake_bytes`` is parsed; the handshake limit bounds memory.
MAX_CERT_BYTES = 2**24 - 1
#: Certificates up to this size share one cache keyed by their bytes; larger ones (thousands of
#: SANs) are cached by digest in a small cache, so a few huge ones cannot pin gigabytes.
_SMALL_CERT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class CertFacts:
    """What certscope knows about one certificate, independent of where it was found."""

    der_sha256: str
    subject: str = ""
    subject_cn: str = ""
    issuer: str = ""
    issuer_cn: str = ""
    serial: str = ""
    sans: tuple[str, ...] = ()
    ip_sans: tuple[str, ...] = ()  # the IP-address entries of ``sans``, told apart from DNS names
    not_before: datetime | None = None
    not_after: datetime | None = None
    key_algorithm: str = ""
    key_bits: int = 0
    key_curve: str = ""
    public_key_sha256: str = ""
    signature_algorithm: str = ""
    signature_hash: str = ""
    is_ca: bool = False
    self_signed: bool = False
    self_issued: bool = False
    ocsp_urls: tuple[str, ...] = ()
    ca_issuer_urls: tuple[str, ...] = ()
    crl_urls: tuple[str, ...] = ()
    must_staple: bool = False  # TLS feature extension with status_request (RFC 7633)
    sct_log_ids: tuple[str, ...] = ()  # embedded SCTs' log ids (base64), one per SCT
    subject_key_id: str = ""
    authority_key_id: str = ""
    size_bytes: int = 0
    parse_errors: tuple[str, ...] = field(default=())

    @property
    def fingerprint_sha256(self) -> str:
        return self.der_sha256

    @property
    def validity_seconds(self) -> float | None:
        if self.not_before is None or self.not_after is None:
            return None
        return (self.not_after - self.not_before).total_seconds()

    def days_left(self, now: datetime) -> float | None:
        if self.not_after is None:
            return None
        return (self.not_after - now).total_seconds() / 86400.0

    def matches_host(self, host: str) -> bool:
        return hostname_matches(host, self.sans, self.subject_cn, ip_sans=self.ip_sans)


def _cn(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return ""
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _key_facts(cert: x509.Certificate) -> tuple[str, int, str, str]:
    return public_key_facts(cert.public_key())


def public_key_facts(key: Any) -> tuple[str, int, str, str]:
    """(algorithm, bits, curve, SHA-256 of the SPKI DER) of a public key."""
    from cryptography.hazmat.primitives import serialization

    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    spki_hash = hashlib.sha256(spki).hexdigest()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, "", spki_hash
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size, key.curve.name, spki_hash
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, "", spki_hash
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, "", spki_hash
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, "", spki_hash
    return type(key).__name__, 0, "", spki_hash


_S = SignatureAlgorithmOID
_SIGNATURES = {
    _S.RSA_WITH_SHA256: ("RSA", "sha256"),
    _S.RSA_WITH_SHA384: ("RSA", "sha384"),
    _S.RSA_WITH_SHA512: ("RSA", "sha512"),
    _S.RSA_WITH_SHA224: ("RSA", "sha224"),
    _S.RSA_WITH_SHA1: ("RSA", "sha1"),
    _S.RSA_WITH_MD5: ("RSA", "md5"),
    _S.ECDSA_WITH_SHA256: ("ECDSA", "sha256"),
    _S.ECDSA_WITH_SHA384: ("ECDSA", "sha384"),
    _S.ECDSA_WITH_SHA512: ("ECDSA", "sha512"),
    _S.ECDSA_WITH_SHA224: ("ECDSA", "sha224"),
    _S.ECDSA_WITH_SHA1: ("ECDSA", "sha1"),
    _S.RSASSA_PSS: ("RSA-PSS", ""),
    _S.ED25519: ("Ed25519", ""),
    _S.ED448: ("Ed448", ""),
    _S.DSA_WITH_SHA1: ("DSA", "sha1"),
    _S.DSA_WITH_SHA224: ("DSA", "sha224"),
    _S.DSA_WITH_SHA256: ("DSA", "sha256"),
}
# md2WithRSAEncryption is not in cryptography's table but still turns up in old roots.
_MD2_RSA = "1.2.840.113549.1.1.2"


def _signature(cert: x509.Certificate) -> tuple[str, str]:
    oid = cert.signature_algorithm_oid
    if oid.dotted_string == _MD2_RSA:
        return "RSA", "md2"
    algo, digest = _SIGNATURES.get(oid, (oid.dotted_string, ""))
    if not digest and algo == "RSA-PSS":
        try:
            h = cert.signature_hash_algorithm
            digest = h.name if h is not None else ""
        except Exception:  # unsupported parameters: the algorithm name alone is still useful
            digest = ""
    return algo, digest


class _Extensions:
    """A certificate's extension values by OID, indexed on first use.

    cryptography's ``get_extension_for_class`` scans the list on every call, and a
    certificate's facts ask for nine extensions. A malformed list raises here exactly as
    ``cert.extensions`` does, on every lookup, so each field still records its own error.
    """

    __slots__ = ("_by_oid", "_cert")

    def __init__(self, cert: x509.Certificate) -> None:
        self._cert = cert
        self._by_oid: dict[x509.ObjectIdentifier, Any] | None = None

    def value(self, oid: x509.ObjectIdentifier) -> Any:
        if self._by_oid is None:
            self._by_oid = {ext.oid: ext.value for ext in self._cert.extensions}
        return self._by_oid.get(oid)


def _sans(exts: _Extensions) -> tuple[str, ...]:
    value = exts.value(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    if value is None:
        return ()
    out: list[str] = []
    for gn in value:
        if isinstance(gn, x509.DNSName):
            out.append(gn.value)
        elif isinstance(gn, x509.IPAddress):
            out.append(str(gn.value))
        elif isinstance(gn, x509.UniformResourceIdentifier):
            out.append("URI:" + gn.value)
        elif isinstance(gn, x509.RFC822Name):
            out.append("email:" + gn.value)
    return tuple(out)


def _ip_sans(exts: _Extensions) -> tuple[str, ...]:
    value = exts.value(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    if value is None:
        return ()
    return tuple(str(ip) for ip in value.get_values_for_type(x509.IPAddress))


def _basic_ca(exts: _Extensions) -> bool:
    value = exts.value(ExtensionOID.BASIC_CONSTRAINTS)
    return value is not None and bool(value.ca)


def _aia(exts: _Extensions) -> tuple[tuple[str, ...], tuple[str, ...]]:
    value = exts.value(ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
    if value is None:
        return (), ()
    ocsp: list[str] = []
    issuers: list[str] = []
    for d in value:
        if not isinstance(d.access_location, x509.UniformResourceIdentifier):
            continue
        if d.access_method == AuthorityInformationAccessOID.OCSP:
            ocsp.append(d.access_location.value)
        elif d.access_method == AuthorityInformationAccessOID.CA_ISSUERS:
            issuers.append(d.access_location.value)
    return tuple(ocsp), tuple(issuers)


def _crl(exts: _Extensions) -> tuple[str, ...]:
    value = exts.value(ExtensionOID.CRL_DISTRIBUTION_POINTS)
    if value is None:
        return ()
    urls: list[str] = []
    assert isinstance(value, x509.CRLDistributionPoints)
    for dp in value:
        for gn in dp.full_name or ():
            if isinstance(gn, x509.UniformResourceIdentifier):
                urls.append(gn.value)
    return tuple(urls)


def _must_staple(exts: _Extensions) -> bool:
    value = exts.value(ExtensionOID.TLS_FEATURE)
    return value is not None and x509.TLSFeatureType.status_request in value


def _sct_log_ids(exts: _Extensions) -> tuple[str, ...]:
    import base64

    value = exts.value(ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS)
    if value is None:
        return ()
    return tuple(base64.b64encode(sct.log_id).decode("ascii") for sct in value)


def _ski(exts: _Extensions) -> str:
    value = exts.value(ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    return "" if value is None else str(value.digest.hex())


def _aki(exts: _Extensions) -> str:
    value = exts.value(ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    return value.key_identifier.hex() if value is not None and value.key_identifier else ""


def _self_signed(cert: x509.Certificate, subject: x509.Name, issuer: x509.Name) -> bool:
    if issuer != subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except ValueError:
        # cryptography refuses legacy algorithms (SHA-1, MD5) here; old self-signed roots
        # still use them, so check the signature by hand for RSA and ECDSA.
        return _legacy_self_signature(cert)
    except Exception:  # wrong signature or unusable key: not self-signed
        return False
    return True


def _legacy_self_signature(cert: x509.Certificate) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        key = cert.public_key()
        digest = cert.signature_hash_algorithm
        if digest is None:
            return False
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), digest)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(digest))
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _serial_hex(cert: x509.Certificate) -> str:
    n = cert.serial_number
    sign = "-" if n < 0 else ""
    digits = format(abs(n), "X")
    if len(digits) % 2:
        digits = "0" + digits
    return sign + digits


def _try(errors: list[str], what: str, fn: Callable[[], T], default: T) -> T:
    try:
        return fn()
    except Exception as exc:  # one bad field must not hide the rest of the certificate
        errors.append(f"{what}: {type(exc).__name__}: {str(exc)[:160]}")
        return default


def facts_from_der(der: bytes) -> CertFacts:
    """Facts for one DER certificate. Never raises: unparseable input gives ``parse_errors``."""
    der = bytes(der)
    if len(der) <= _SMALL_CERT_BYTES:
        return _facts_cached(der)
    return _large_facts_cached(hashlib.sha256(der).hexdigest(), der)


@lru_cache(maxsize=8192)
def _facts_cached(der: bytes) -> CertFacts:
    # Probes see the same few certificates again and again; parsing once per distinct DER is
    # most of the exporter's CPU saving. Facts are immutable, so sharing them is safe.
    return _parse(hashlib.sha256(der).hexdigest(), der)


class Interner:
    """One object per distinct immutable value held by many results, in a table dropped whole
    when it holds ``limit`` values, which bounds it. Each kind of value that may be distinct
    per target gets a table of its own, so that it cannot push out what others share."""

    __slots__ = ("limit", "table")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.table: dict[Hashable, Any] = {}

    def __call__(self, value: H) -> H:
        """``value`` itself, or an equal immutable value already held."""
        held: H | None = self.table.get(value)
        if held is not None:
            return held
        if len(self.table) >= self.limit:
            self.table.clear()
        self.table[value] = value
        return value


#: A certificate's DER seen by probes (every target behind one endpoint, and every probe of
#: it, shares its chain's bytes) and the policy verdicts that read the same for many targets.
shared = Interner(8192)


def shared_der(der: bytes) -> bytes:
    """``der`` itself, or an equal bytes object already held."""
    return shared(der)


_large_by_digest: dict[str, CertFacts] = {}
_large_lock = threading.Lock()


def _large_facts_cached(digest: str, der: bytes) -> CertFacts:
    with _large_lock:
        hit = _large_by_digest.get(digest)
    if hit is None:
        hit = _parse(digest, der)
        with _large_lock:
            if len(_large_by_digest) >= 16:
                del _large_by_digest[next(iter(_large_by_digest))]
            _large_by_digest[digest] = hit
    return hit


def _parse(digest: str, der: bytes) -> CertFacts:
    if len(der) > MAX_CERT_BYTES:
        return CertFacts(
            der_sha256=digest, size_bytes=len(der), parse_errors=("certificate too large",)
        )
    errors: list[str] = []
    with warnings.catch_warnings():
        # cryptography warns about negative serials and similar RFC 5280 violations; they are
        # reported as facts, not as warnings on the exporter's log.
        warnings.simplefilter("ignore")
        try:
            cert = x509.load_der_x509_certificate(der)
        except Exception as exc:
            return CertFacts(
                der_sha256=digest,
                size_bytes=len(der),
                parse_errors=(f"certificate: {type(exc).__name__}: {str(exc)[:160]}",),
            )
        return _facts(cert, digest, len(der), errors)


def _facts(cert: x509.Certificate, digest: str, size: int, errors: list[str]) -> CertFacts:
    key_algorithm, key_bits, key_curve, spki = _try(
        errors, "public key", lambda: _key_facts(cert), ("unknown", 0, "", "")
    )
    sig_algo, sig_hash = _try(errors, "signature algorithm", lambda: _signature(cert), ("", ""))
    no_urls: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    exts = _Extensions(cert)
    ocsp, ca_issuers = _try(errors, "authority information access", lambda: _aia(exts), no_urls)
    # cryptography builds a new Name on every ``subject``/``issuer`` access: read each once.
    # A name that does not parse is read again by each field, which records its own error.
    held_subject: x509.Name | None = _try([], "subject", lambda: cert.subject, None)
    held_issuer: x509.Name | None = _try([], "issuer", lambda: cert.issuer, None)

    def subject_name() -> x509.Name:
        return held_subject if held_subject is not None else cert.subject

    def issuer_name() -> x509.Name:
        return held_issuer if held_issuer is not None else cert.issuer

    subject = _try(errors, "subject", lambda: subject_name().rfc4514_string(), "")
    issuer = _try(errors, "issuer", lambda: issuer_name().rfc4514_string(), "")
    return CertFacts(
        der_sha256=digest,
        subject=subject,
        subject_cn=_try(errors, "subject CN", lambda: _cn(subject_name()), ""),
        issuer=issuer,
        issuer_cn=_try(errors, "issuer CN", lambda: _cn(issuer_name()), ""),
        serial=_try(errors, "serial", lambda: _serial_hex(cert), ""),
        sans=_try(errors, "subject alternative name", lambda: _sans(exts), ()),
        ip_sans=_try(errors, "subject alternative name", lambda: _ip_sans(exts), ()),
        not_before=_try(errors, "not before", lambda: cert.not_valid_before_utc, None),
        not_after=_try(errors, "not after", lambda: cert.not_valid_after_utc, None),
        key_algorithm=key_algorithm,
        key_bits=key_bits,
        key_curve=key_curve,
        public_key_sha256=spki,
        signature_algorithm=sig_algo,
        signature_hash=sig_hash,
        is_ca=_try(errors, "basic constraints", lambda: _basic_ca(exts), False),
        self_signed=_try(
            errors,
            "self-signature",
            lambda: _self_signed(cert, subject_name(), issuer_name()),
            False,
        ),
        self_issued=bool(subject) and subject == issuer,
        ocsp_urls=ocsp,
        ca_issuer_urls=ca_issuers,
        crl_urls=_try(errors, "CRL distribution points", lambda: _crl(exts), ()),
        must_staple=_try(errors, "TLS feature", lambda: _must_staple(exts), False),
        sct_log_ids=_try(errors, "embedded SCTs", lambda: _sct_log_ids(exts), ()),
        subject_key_id=_try(errors, "subject key identifier", lambda: _ski(exts), ""),
        authority_key_id=_try(errors, "authority key identifier", lambda: _aki(exts), ""),
        size_bytes=size,
        parse_errors=tuple(errors),
    )


_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


def iter_pem_blocks(data: bytes) -> Iterator[tuple[int, bytes | None, str]]:
    """Yield ``(position, der or None, error)`` for each CERTIFICATE block in a PEM bundle.

    A corrupt block yields ``None`` with a reason, and the rest of the bundle is still read:
    a bundle with one bad entry must not hide the other certificates.
    """
    import base64
    import binascii

    pos = 0
    start = data.find(_PEM_BEGIN)
    while start != -1:
        end = data.find(_PEM_END, start)
        if end == -1:
            yield pos, None, "unterminated PEM block"
            return
        body = data[start + len(_PEM_BEGIN) : end]
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            yield pos, None, "invalid base64 in PEM block"
        else:
            yield pos, der, ""
        pos += 1
        start = data.find(_PEM_BEGIN, end)


def hostname_matches(
    host: str, sans: Iterable[str], subject_cn: str = "", *, ip_sans: Iterable[str] | None = None
) -> bool:
    """RFC 6125 matching: DNS names case-insensitively, one left-most ``*`` label, IPs exactly.

    The subject CN is consulted only when the certificate has no SAN of the right kind, as
    browsers stopped doing it long ago but many internal services still rely on it (that case
    still passes here; policy can flag missing SANs separately).

    Names are compared as A-labels (RFC 6125 6.4.2): a host given in Unicode matches the
    punycode SAN a CA issued for it; one IDNA 2008 rejects matches nothing.
    """
    host = host.strip("[]").rstrip(".")
    try:
        host = a_label(host) if parse_ip(host) is None else host.lower()
    except ValueError:
        return False
    sans = tuple(sans)
    want = parse_ip(host)
    if want is not None:
        return any(parse_ip(s) == want for s in sans)
    dns = [
        s.rstrip(".").lower()
        for s in sans
        if not s.startswith(("URI:", "email:")) and parse_ip(s) is None
    ]
    if not dns and subject_cn:
        dns = [subject_cn.rstrip(".").lower()]
    return any(_dns_match(host, pattern) for pattern in dns)


def _dns_match(host: str, pattern: str) -> bool:
    if pattern == host:
        return True
    if not pattern.startswith("*."):
        return False
    suffix = pattern[1:]  # ".example.com"
    if "*" in suffix or suffix.count(".") < 2:
        return False  # no wildcards below a public suffix-like single label, no inner stars
    if not host.endswith(suffix):
        return False
    first = host[: -len(suffix)]
    return bool(first) and "." not in first
