"""Finding a leaf's issuer for revocation, with what the trust judgement already verified.

A probe judges trust before revocation: when OpenSSL trusted the chain, ``Trust.signer`` names
the presented certificate it verified the leaf's signature with, and the revocation plan's
issuer search does not verify that signature again, but only when cryptography's own check
would give the same answer (the names equal as encoded, an algorithm both judge alike).
Every test here fails when that shortcut is widened or removed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from certscope import revocation, verify
from certscope.certs import facts_from_der
from certscope.config import RevocationOptions
from helpers.pki import TestPKI

NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    for cache in (verify._trust_errors, revocation._leaf_and_issuer):
        cache.cache_clear()
    yield
    for cache in (verify._trust_errors, revocation._leaf_and_issuer):
        cache.cache_clear()


def _int_der(pki: TestPKI) -> bytes:
    return pki.intermediate.certificate.public_bytes(Encoding.DER)


def _broken_signature(der: bytes) -> bytes:
    """``der`` with the last byte of its signature changed: it parses, and never verifies."""
    return der[:-1] + bytes([der[-1] ^ 0x01])


def test_trust_names_the_presented_certificate_that_verified_the_leaf(
    pki: TestPKI, other_pki: TestPKI, tmp_path: Path
) -> None:
    chain = (pki.leaf("signer.test").der, _int_der(pki))
    trust = verify.judge_trust(chain, str(pki.ca_file), NOW)
    assert trust == verify.Trust(errors=(), signer=1)
    # An untrusted chain names no signer: nothing was verified.
    untrusted = verify.judge_trust(chain, str(other_pki.ca_file), NOW)
    assert untrusted.errors and untrusted.signer is None
    # The leaf alone, its issuer found only in the store: no presented certificate signed it.
    both = tmp_path / "root-and-intermediate.pem"
    both.write_bytes(pki.root.pem + pki.intermediate.pem)
    alone = verify.judge_trust(chain[:1], str(both), NOW)
    assert alone == verify.Trust(errors=(), signer=None)


def test_a_verified_signer_is_not_checked_again(pki: TestPKI) -> None:
    """Given as the signer, the intermediate is the issuer without a signature check: a leaf
    whose signature is broken shows it (no trust judgement would name a signer for it)."""
    chain = (_broken_signature(pki.leaf("broken.test").der), _int_der(pki))
    assert verify.judge_trust(chain, str(pki.ca_file), NOW).signer is None
    parsed = revocation._leaf_and_issuer(chain, None)
    assert parsed is not None and parsed[1] is None  # checked: not its issuer
    parsed = revocation._leaf_and_issuer(chain, 1)
    assert parsed is not None and parsed[1] == pki.intermediate.certificate


def test_a_signer_is_checked_when_the_names_differ_in_encoding(pki: TestPKI) -> None:
    """The same issuer name spelled as a PrintableString: OpenSSL compares names canonically
    and cryptography byte for byte, so the signature is checked (and refused) here."""
    subject = pki.intermediate.certificate.subject
    respelled = x509.Name(
        [
            x509.NameAttribute(a.oid, str(a.value), _type=_ASN1Type.PrintableString)
            if a.oid == NameOID.COMMON_NAME
            else a
            for a in subject
        ]
    )
    assert respelled == subject  # equal parsed, different as encoded
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "respelled.test")]))
        .issuer_name(respelled)
        .public_key(pki.intermediate.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .sign(pki.intermediate.key, hashes.SHA256())
    )
    chain = (leaf.public_bytes(Encoding.DER), _int_der(pki))
    assert verify.judge_trust(chain, str(pki.ca_file), NOW).signer == 1  # OpenSSL: trusted
    parsed = revocation._leaf_and_issuer(chain, 1)
    assert parsed is not None and parsed[1] is None
    assert revocation._leaf_and_issuer(chain, None) == parsed


def test_a_signer_is_checked_for_sha1(rsa_pki: TestPKI) -> None:
    """SHA-1: cryptography refuses it where OpenSSL may not, so the hint is not taken."""
    chain = (rsa_pki.leaf("sha1.test", key="rsa", signature_hash="sha1").der, _int_der(rsa_pki))
    with_hint = revocation._leaf_and_issuer(chain, 1)
    assert with_hint is not None
    assert with_hint[1] == revocation._leaf_and_issuer(chain, None)[1]  # type: ignore[index]
    assert with_hint[1] is None


def test_the_plan_is_the_same_with_and_without_the_signer(pki: TestPKI) -> None:
    leaf = pki.leaf("plan.test")
    chain = (leaf.der, _int_der(pki))
    facts = facts_from_der(chain[0])
    assert facts.ocsp_urls  # something to check, so the issuer is searched for
    opts = RevocationOptions()
    signer = verify.judge_trust(chain, str(pki.ca_file), NOW).signer
    assert signer == 1
    hinted = revocation._plan(chain, facts, None, opts, signer)
    revocation._leaf_and_issuer.cache_clear()
    plain = revocation._plan(chain, facts, None, opts, None)
    assert dataclasses.astuple(hinted) == dataclasses.astuple(plain)
    assert hinted.issuer == pki.intermediate.certificate
