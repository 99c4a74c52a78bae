"""Each OpenSSL verification code certscope names a reason for means what the reason says.

The codes are OpenSSL's numbers (``X509_V_ERR_*``), and OpenSSL 3 renumbered some of 1.1's:
24, once "invalid CA certificate", is now "issuer certificate doesn't have a public key".
So each mapped code is checked against the description the OpenSSL certscope runs on gives
of it, and a renumbering, or a code mapped to the wrong reason, fails here.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.bindings.openssl.binding import Binding

from certscope import verify
from certscope.errors import VerifyFailure

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
