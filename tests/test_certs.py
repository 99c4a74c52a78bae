"""Certificate facts (certs.py) on certificates minted by the test PKI, and host name matching.

No sockets here: certs.py is a pure core. Hostile inputs (negative serials, malformed
extensions, garbage, corrupt PEM) are made by patching the DER of real certificates.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from certscope.certs import (
    MAX_CERT_BYTES,
    CertFacts,
    facts_from_der,
    hostname_matches,
    iter_pem_blocks,
)
from helpers.pki import Leaf, TestPKI, private_key


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _facts_no_warnings(der: bytes) -> CertFacts:
    """facts_from_der, failing if any warning escapes (whatever the warning filters say)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        facts = facts_from_der(der)
    assert [str(w.message) for w in caught] == []
    return facts


@pytest.fixture(scope="module")
def web(pki: TestPKI) -> Leaf:
    return pki.leaf("web.test", "*.web.test", "127.0.0.1", "::1", days_left=12)


# --- names, serial, SANs, validity ---------------------------------------------------------


def test_subject_and_issuer(pki: TestPKI, web: Leaf) -> None:
    f = facts_from_der(web.der)
    assert f.subject_cn == "web.test"
    assert f.subject == "CN=web.test,O=certscope Test leaves"
    assert f.issuer_cn == "certscope Test Intermediate CA"
    assert f.issuer == "CN=certscope Test Intermediate CA,O=certscope Test"
    assert f.issuer == pki.intermediate.certificate.subject.rfc4514_string()
    assert not f.self_issued
    assert not f.self_signed
    assert f.parse_errors == ()


def test_no_common_name(pki: TestPKI) -> None:
    f = facts_from_der(pki.leaf("nocn.test", cn="").der)
    assert f.subject_cn == ""
    assert f.subject == "O=certscope Test leaves"
    assert f.sans == ("nocn.test",)


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        (0xABCDEF, "ABCDEF"),
        (0xABCDE, "0ABCDE"),  # always whole bytes
        (1, "01"),
        (0x1234567890ABCDEF1234567890ABCDEF12345678, "1234567890ABCDEF1234567890ABCDEF12345678"),
    ],
)
def test_serial_hex(pki: TestPKI, serial: int, expected: str) -> None:
    leaf = pki.leaf("serial.test", serial=serial)
    f = facts_from_der(leaf.der)
    assert f.serial == expected
    assert int(f.serial, 16) == leaf.certificate.serial_number


def test_sans_dns_and_ip(web: Leaf) -> None:
    f = facts_from_der(web.der)
    assert f.sans == ("web.test", "*.web.test", "127.0.0.1", "::1")


def test_ipv6_san_is_normalised(pki: TestPKI) -> None:
    f = facts_from_der(pki.leaf("v6.test", "2001:db8:0:0::1").der)
    assert f.sans == ("v6.test", "2001:db8::1")


def test_validity_period(web: Leaf) -> None:
    f = facts_from_der(web.der)
    assert f.not_before == web.certificate.not_valid_before_utc
    assert f.not_after == web.certificate.not_valid_after_utc
    assert f.not_after is not None
    assert f.not_after.tzinfo is not None
    assert f.not_after.utcoffset() == timedelta(0)
    assert f.validity_seconds == pytest.approx(13 * 86400, abs=2)


@pytest.mark.parametrize("days", [5, 12, 25, 45, 90, -3])
def test_days_left(pki: TestPKI, days: int) -> None:
    f = facts_from_der(pki.leaf(f"d{days}.test", days_left=days).der)
    now = datetime.now(UTC)
    left = f.days_left(now)
    assert left is not None
    # X.509 times have whole seconds: the leaf was made a moment ago.
    assert left == pytest.approx(days, abs=0.001)
    assert f.days_left(now + timedelta(days=days)) == pytest.approx(0, abs=0.001)


def test_not_yet_valid_dates(pki: TestPKI) -> None:
    f = facts_from_der(pki.leaf("future.test", starts_in_days=5, days_left=90).der)
    now = datetime.now(UTC)
    assert f.not_before is not None
    assert (f.not_before - now).total_seconds() / 86400 == pytest.approx(5, abs=0.001)


def test_fingerprint_is_sha256_of_der(web: Leaf) -> None:
    f = facts_from_der(web.der)
    assert f.fingerprint_sha256 == hashlib.sha256(web.der).hexdigest()
    assert f.der_sha256 == f.fingerprint_sha256
    assert f.size_bytes == len(web.der)
    spki = web.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert f.public_key_sha256 == hashlib.sha256(spki).hexdigest()


def test_distinct_certificates_have_distinct_fingerprints(pki: TestPKI) -> None:
    a = facts_from_der(pki.leaf("same.test").der)
    b = facts_from_der(pki.leaf("same.test").der)
    assert a.fingerprint_sha256 != b.fingerprint_sha256
    assert a.public_key_sha256 == b.public_key_sha256  # the test PKI reuses leaf keys


# --- keys and signatures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "algorithm", "bits", "curve"),
    [
        ("rsa", "RSA", 2048, ""),
        ("ec", "EC", 256, "secp256r1"),
        ("p384", "EC", 384, "secp384r1"),
        ("ed25519", "Ed25519", 256, ""),
    ],
)
def test_key_facts(pki: TestPKI, key: str, algorithm: str, bits: int, curve: str) -> None:
    f = facts_from_der(pki.leaf(f"{key}.test", key=key).der)  # type: ignore[arg-type]
    assert (f.key_algorithm, f.key_bits, f.key_curve) == (algorithm, bits, curve)
    assert f.parse_errors == ()


@pytest.mark.parametrize(
    ("digest", "expected"),
    [("sha256", ("ECDSA", "sha256")), ("sha384", ("ECDSA", "sha384"))],
)
def test_ecdsa_signature(pki: TestPKI, digest: str, expected: tuple[str, str]) -> None:
    f = facts_from_der(pki.leaf("sig.test", signature_hash=digest).der)  # type: ignore[arg-type]
    assert (f.signature_algorithm, f.signature_hash) == expected


@pytest.mark.parametrize("digest", ["sha256", "sha1"])
def test_rsa_signature(rsa_pki: TestPKI, digest: str) -> None:
    leaf = rsa_pki.leaf("rsa-sig.test", key="rsa", signature_hash=digest)  # type: ignore[arg-type]
    f = facts_from_der(leaf.der)
    assert (f.signature_algorithm, f.signature_hash) == ("RSA", digest)
    assert (f.key_algorithm, f.key_bits) == ("RSA", 2048)
    assert f.issuer_cn == "certscope RSA Intermediate CA"
    assert f.parse_errors == ()


def test_ed25519_self_signed_signature(pki: TestPKI) -> None:
    f = facts_from_der(pki.leaf("ed.test", key="ed25519", issuer="self").der)
    assert (f.signature_algorithm, f.signature_hash) == ("Ed25519", "")
    assert f.self_signed


# --- CA flag, self-signed, extensions ------------------------------------------------------


def test_root_intermediate_leaf_flags(pki: TestPKI, web: Leaf) -> None:
    root = facts_from_der(_der(pki.root.certificate))
    inter = facts_from_der(_der(pki.intermediate.certificate))
    leaf = facts_from_der(web.der)
    assert (root.is_ca, root.self_signed, root.self_issued) == (True, True, True)
    assert (inter.is_ca, inter.self_signed, inter.self_issued) == (True, False, False)
    assert (leaf.is_ca, leaf.self_signed, leaf.self_issued) == (False, False, False)
    assert root.subject_cn == root.issuer_cn == "certscope Test Root CA"


def test_self_signed_leaf(pki: TestPKI) -> None:
    f = facts_from_der(pki.leaf("self.test", issuer="self").der)
    assert f.self_signed
    assert f.self_issued
    assert not f.is_ca
    assert f.subject == f.issuer


def test_sha1_self_signed_leaf_is_self_signed(rsa_pki: TestPKI) -> None:
    # Legacy appliances still present SHA-1 self-signed certificates; being unable to check a
    # SHA-1 signature with cryptography must not hide that the certificate signs itself.
    leaf = rsa_pki.leaf("legacy.test", key="rsa", issuer="self", signature_hash="sha1")
    f = facts_from_der(leaf.der)
    assert (f.signature_algorithm, f.signature_hash) == ("RSA", "sha1")
    assert f.self_issued
    assert f.self_signed


def test_self_issued_but_not_self_signed(pki: TestPKI) -> None:
    # Subject and issuer are the same name, but another key signed it: self-issued only.
    leaf_key = private_key("ec", "leaf")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "twin.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(leaf_key.public_key())
        .serial_number(12345)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(pki.intermediate.key, hashes.SHA256())
    )
    f = facts_from_der(_der(cert))
    assert f.self_issued
    assert not f.self_signed
    assert f.serial == "3039"


def test_authority_urls(pki: TestPKI, web: Leaf) -> None:
    f = facts_from_der(web.der)
    assert f.ocsp_urls == (pki.ocsp_url,)
    assert f.ca_issuer_urls == (pki.ca_issuers_url,)
    assert f.crl_urls == (pki.crl_url,)
    inter = facts_from_der(_der(pki.intermediate.certificate))
    assert inter.ca_issuer_urls == (pki.root_url,)
    assert inter.ocsp_urls == ()
    assert inter.crl_urls == ()


def test_leaf_without_aia(pki: TestPKI) -> None:
    f = facts_from_der(pki.leaf("noaia.test", aia=False).der)
    assert (f.ocsp_urls, f.ca_issuer_urls, f.crl_urls) == ((), (), ())


def test_key_identifiers_link_leaf_to_issuer(pki: TestPKI, web: Leaf) -> None:
    leaf = facts_from_der(web.der)
    inter = facts_from_der(_der(pki.intermediate.certificate))
    root = facts_from_der(_der(pki.root.certificate))
    assert len(leaf.subject_key_id) == 40
    assert leaf.authority_key_id == inter.subject_key_id
    assert inter.authority_key_id == root.subject_key_id
    assert root.authority_key_id == ""


# --- host name matching --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "sans", "cn", "expected"),
    [
        # exact, case-insensitive, trailing dot
        ("web.test", ["web.test"], "", True),
        ("WEB.Test", ["web.TEST"], "", True),
        ("web.test.", ["web.test"], "", True),
        ("web.test", ["web.test."], "", True),
        ("www.web.test", ["web.test"], "", False),
        ("web.test", ["www.web.test"], "", False),
        ("web.tes", ["web.test"], "", False),
        # wildcard: the whole left-most label, exactly one label
        ("a.web.test", ["*.web.test"], "", True),
        ("A.WEB.test", ["*.Web.Test"], "", True),
        ("a.b.web.test", ["*.web.test"], "", False),
        ("web.test", ["*.web.test"], "", False),
        (".web.test", ["*.web.test"], "", False),
        ("a.test", ["*.test"], "", False),  # not directly below a single label
        ("www.web.test", ["w*.web.test"], "", False),
        ("a.b.web.test", ["*.*.web.test"], "", False),
        ("a.web.test", ["a.*.test"], "", False),
        # IP addresses: only an equal IP SAN, never a wildcard, never the CN
        ("127.0.0.1", ["127.0.0.1"], "", True),
        ("127.0.0.2", ["127.0.0.1"], "", False),
        ("127.0.0.1", ["*.0.0.1"], "", False),
        ("127.0.0.1", [], "127.0.0.1", False),
        ("::1", ["0:0:0:0:0:0:0:1"], "", True),
        ("[::1]", ["::1"], "", True),
        ("::2", ["::1"], "", False),
        # CN only when there is no DNS SAN
        ("web.test", [], "web.test", True),
        ("web.test", [], "WEB.TEST", True),
        ("web.test", ["other.test"], "web.test", False),
        ("web.test", ["127.0.0.1"], "web.test", True),  # no SAN *of the right kind*
        ("a.web.test", [], "*.web.test", True),
        ("web.test", [], "", False),
        # URI and e-mail SANs are not host names
        ("web.test", ["URI:https://web.test/", "email:web.test"], "", False),
    ],
)
def test_hostname_matches(host: str, sans: list[str], cn: str, expected: bool) -> None:
    assert hostname_matches(host, sans, cn) is expected


def test_matches_host_on_real_certificates(pki: TestPKI, web: Leaf) -> None:
    f = facts_from_der(web.der)
    assert f.matches_host("web.test")
    assert f.matches_host("api.web.test")
    assert f.matches_host("127.0.0.1")
    assert f.matches_host("::1")
    assert not f.matches_host("api.v1.web.test")
    assert not f.matches_host("127.0.0.2")
    cn_only = facts_from_der(pki.leaf("legacy.test", san=False).der)
    assert cn_only.sans == ()
    assert cn_only.matches_host("legacy.test")
    assert not cn_only.matches_host("other.test")
    cn_ignored = facts_from_der(pki.leaf("san.test", cn="cn.test").der)
    assert cn_ignored.subject_cn == "cn.test"
    assert not cn_ignored.matches_host("cn.test")
    assert cn_ignored.matches_host("san.test")


# --- hostile and broken input --------------------------------------------------------------


def test_negative_serial(pki: TestPKI) -> None:
    leaf = pki.leaf("negative.test", serial=0x7F1122334455)
    encoded = bytes.fromhex("02067F1122334455")  # INTEGER, 6 bytes, positive
    assert leaf.der.count(encoded) == 1
    der = leaf.der.replace(encoded, bytes.fromhex("0206FF1122334455"))  # same bytes, negative
    f = _facts_no_warnings(der)
    n = int.from_bytes(bytes.fromhex("FF1122334455"), "big", signed=True)
    assert n < 0
    assert f.serial == "-" + format(-n, "X").rjust(10, "0")
    assert f.serial == "-EEDDCCBBAB"
    # The rest of the certificate is still reported.
    assert f.subject_cn == "negative.test"
    assert f.sans == ("negative.test",)
    assert f.fingerprint_sha256 == hashlib.sha256(der).hexdigest()


def test_malformed_extension_costs_only_extension_fields(pki: TestPKI) -> None:
    leaf = pki.leaf("broken.test")
    # subjectAltName: OCTET STRING(12) { SEQUENCE(10) { dNSName(8) "broken.test"... } }
    good = bytes.fromhex("0603551d11") + bytes.fromhex("040f300d820b") + b"broken.test"
    assert leaf.der.count(good) == 1
    bad = bytes.fromhex("0603551d11") + bytes.fromhex("040f300e820b") + b"broken.test"
    der = leaf.der.replace(good, bad)  # the SAN sequence now claims one byte too many
    f = _facts_no_warnings(der)
    assert f.parse_errors, "a malformed extension must be reported"
    assert any(e.startswith("subject alternative name:") for e in f.parse_errors)
    assert f.sans == ()
    # Fields outside the extensions survive.
    assert f.subject_cn == "broken.test"
    assert f.issuer_cn == "certscope Test Intermediate CA"
    assert (f.key_algorithm, f.key_bits) == ("EC", 256)
    digits = format(leaf.certificate.serial_number, "X")
    assert f.serial == digits.rjust(len(digits) + len(digits) % 2, "0")
    assert f.not_after == leaf.certificate.not_valid_after_utc
    assert f.fingerprint_sha256 == hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize(
    "der",
    [
        b"",
        b"garbage",
        b"\x30\x03\x02\x01\x00",
        b"\x30\x82\xff\xff" + b"\x00" * 16,
        os.urandom(600),
    ],
    ids=["empty", "text", "tiny-sequence", "truncated", "random"],
)
def test_garbage_der(der: bytes) -> None:
    f = _facts_no_warnings(der)
    assert f.der_sha256 == hashlib.sha256(der).hexdigest()
    assert f.size_bytes == len(der)
    assert len(f.parse_errors) == 1
    assert f.parse_errors[0].startswith("certificate:")
    assert (f.subject, f.serial, f.not_after, f.key_algorithm) == ("", "", None, "")


def test_truncated_real_certificate(web: Leaf) -> None:
    f = _facts_no_warnings(web.der[:-10])
    assert f.parse_errors[0].startswith("certificate:")
    assert f.subject_cn == ""


def test_oversized_certificate_is_not_parsed() -> None:
    # More than one TLS Certificate message can carry: not a certificate any handshake sends.
    der = b"0" * (MAX_CERT_BYTES + 1)
    f = _facts_no_warnings(der)
    assert f.parse_errors == ("certificate too large",)
    assert f.size_bytes == len(der)
    assert f.fingerprint_sha256 == hashlib.sha256(der).hexdigest()


def test_large_certificates_are_parsed_and_cached_by_digest(pki: TestPKI) -> None:
    leaf = pki.leaf("big.test", pad_bytes=300_000)
    assert len(leaf.der) > 300_000
    f = _facts_no_warnings(leaf.der)
    assert f.subject_cn == "big.test"
    assert f.parse_errors == ()
    assert f.not_after is not None
    # a bytearray (a buffer a reader filled) is taken as bytes: the digest-keyed cache hit
    assert facts_from_der(bytearray(leaf.der)) is f  # type: ignore[arg-type]


# --- PEM bundles ---------------------------------------------------------------------------


def test_pem_bundle_with_corrupt_block_in_the_middle(pki: TestPKI) -> None:
    a, b, c = (pki.leaf(f"{n}.test") for n in ("a", "b", "c"))
    lines = b.pem.splitlines(keepends=True)
    lines[3] = b"!!not*base64!!\n"
    bundle = b"# a comment\n" + a.pem + b"".join(lines) + b"junk between\n" + c.pem
    blocks = list(iter_pem_blocks(bundle))
    assert [(pos, err) for pos, _, err in blocks] == [
        (0, ""),
        (1, "invalid base64 in PEM block"),
        (2, ""),
    ]
    assert blocks[0][1] == a.der
    assert blocks[1][1] is None
    assert blocks[2][1] == c.der
    assert facts_from_der(blocks[2][1]).subject_cn == "c.test"


def test_pem_block_that_is_not_a_certificate(pki: TestPKI) -> None:
    import base64

    junk = b"not a certificate at all"
    bundle = (
        pki.leaf("first.test").pem
        + b"-----BEGIN CERTIFICATE-----\n"
        + base64.encodebytes(junk)
        + b"-----END CERTIFICATE-----\n"
    )
    blocks = list(iter_pem_blocks(bundle))
    assert [err for _, _, err in blocks] == ["", ""]
    assert blocks[1][1] == junk
    assert _facts_no_warnings(junk).parse_errors[0].startswith("certificate:")


def test_pem_unterminated_last_block(pki: TestPKI) -> None:
    a = pki.leaf("a.test")
    bundle = a.pem + a.pem[: len(a.pem) // 2]
    blocks = list(iter_pem_blocks(bundle))
    assert [(pos, der is None, err) for pos, der, err in blocks] == [
        (0, False, ""),
        (1, True, "unterminated PEM block"),
    ]


def test_pem_chain_file_round_trip(pki: TestPKI, web: Leaf) -> None:
    blocks = list(iter_pem_blocks(web.fullchain.read_bytes()))
    ders = [der for _, der, _ in blocks]
    assert ders == [web.der, _der(pki.intermediate.certificate), _der(pki.root.certificate)]
    assert list(iter_pem_blocks(b"no certificates here")) == []
