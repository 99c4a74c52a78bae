"""Each OpenSSL verification code certscope names a reason for means what the reason says.

The codes are OpenSSL's numbers (``X509_V_ERR_*``), and OpenSSL 3 renumbered some of 1.1's:
24, once "invalid CA certificate", is now "issuer certificate doesn't have a public key".
So each mapped code is checked against the description the OpenSSL certscope runs on gives
of it, and a renumbering, or a code mapped to the wrong reason, fails here. The last tests
reach two codes no server-facing test can: a path over OpenSSL's depth limit, and a code no
reason names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.bindings.openssl.binding import Binding
from cryptography.hazmat.primitives.serialization import Encoding

from certscope import verify
from certscope.errors import VerifyFailure
from helpers.pki import TestPKI, issued

V = VerifyFailure

#: Words one of which OpenSSL's description of a code must hold for the code to mean the
#: reason it is mapped to.
MEANING: dict[VerifyFailure, tuple[str, ...]] = {
    V.BAD_SIGNATURE: ("signature", "public key"),
    V.NOT_YET_VALID: ("not yet valid",),
    V.EXPIRED: ("expired",),
    V.SELF_SIGNED: ("self-signed certificate", "self signed certificate"),
    V.UNTRUSTED_ROOT: ("in certificate chain", "not trusted", "rejected"),
    V.CHAIN_TOO_LONG: ("chain too long",),
    V.INVALID_CA: ("invalid ca", "path length"),
    V.UNSUPPORTED_CERTIFICATE: ("purpose",),
}


def described(code: int) -> str:
    lib, ffi = Binding.lib, Binding.ffi
    return str(ffi.string(lib.X509_verify_cert_error_string(code)).decode()).lower()


@pytest.mark.parametrize("code", sorted(verify._CODE_REASONS))
def test_each_code_means_its_reason(code: int) -> None:
    reason = verify._CODE_REASONS[code]
    text = described(code)
    assert any(word in text for word in MEANING[reason]), (code, text, reason)


def test_the_issuer_unknown_codes_mean_an_issuer_was_not_found() -> None:
    for code in verify._ISSUER_UNKNOWN:
        text = described(code)
        # 21 is "unable to verify the first certificate": its issuer was not found either.
        assert text.startswith("unable to"), (code, text)
        assert "issuer" in text or "first certificate" in text, (code, text)


def test_renumbered_codes() -> None:
    """The two OpenSSL 3 renumbered: what 24 now means is a signature that cannot be
    checked, and "invalid CA certificate" is 79."""
    assert "public key" in described(24)
    assert verify._CODE_REASONS[24] is V.BAD_SIGNATURE
    assert described(79) == "invalid ca certificate"
    assert verify._CODE_REASONS[79] is V.INVALID_CA


# --- chains that reach the codes, judged by OpenSSL -----------------------------------------


def _judge(chain: tuple[bytes, ...], ca_file: Path) -> verify.Trust:
    return verify.judge_trust(chain, str(ca_file), datetime.now(UTC))


def test_a_path_over_the_depth_limit_is_chain_too_long(pki: TestPKI, tmp_path: Path) -> None:
    """OpenSSL stops building at 100 certificates. A probe keeps 16 of what the server sent,
    so only a trust store holding the rest of a long path can take it there."""
    long = pki.long_chain("long.test", 101)
    certs = x509.load_pem_x509_certificates(long.chain.read_bytes())
    store = tmp_path / "long-path.pem"
    held = (*certs[1:], pki.intermediate.certificate, pki.root.certificate)
    store.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in held))
    presented = tuple(c.public_bytes(Encoding.DER) for c in certs[:16])
    assert _judge(presented, store).errors == (V.CHAIN_TOO_LONG,)


def test_an_unmapped_code_is_verify_error(pki: TestPKI) -> None:
    """A leaf with a critical extension nobody knows (X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION,
    34, which no reason names): verify_error, never a reason that says something else."""
    assert 34 not in verify._CODE_REASONS
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    intermediate = pki.intermediate
    leaf, _ = issued(
        "odd.test", intermediate.certificate, intermediate.key, extensions=[(odd, True)]
    )
    chain = (
        leaf.public_bytes(Encoding.DER),
        pki.intermediate.certificate.public_bytes(Encoding.DER),
    )
    assert _judge(chain, pki.ca_file).errors == (V.VERIFY_ERROR,)
