"""The cipher-suite registry: completeness, OpenSSL agreement, and classification."""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from certscope.tls import suites
from certscope.tls.suites import CipherSuite, SuiteClass


def _local_openssl_ciphers() -> Sequence[Mapping[str, Any]]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return ctx.get_ciphers()


OPENSSL_CIPHERS = _local_openssl_ciphers()

# OpenSSL's kx-/auth- vocabulary mapped onto the registry's.
_KEX = {
    "kx-rsa": "RSA",
    "kx-dhe": "DHE",
    "kx-ecdhe": "ECDHE",
    "kx-psk": "PSK",
    "kx-dhe-psk": "DHE_PSK",
    "kx-rsa-psk": "RSA_PSK",
    "kx-ecdhe-psk": "ECDHE_PSK",
    "kx-srp": "SRP",
    "kx-any": "ANY",
    "kx-gost": "GOSTR341112_256",
}
_AUTH = {
    "auth-rsa": "RSA",
    "auth-dss": "DSS",
    "auth-ecdsa": "ECDSA",
    "auth-null": "anon",
    "auth-psk": "PSK",
    "auth-srp": "SRP",
    "auth-any": "ANY",
}


def _openssl_id(cipher: Mapping[str, Any]) -> str:
    return str(cipher["name"])


def test_local_openssl_offers_something_to_compare() -> None:
    assert len(OPENSSL_CIPHERS) > 50


@pytest.mark.parametrize("cipher", OPENSSL_CIPHERS, ids=_openssl_id)
def test_agrees_with_local_openssl(cipher: Mapping[str, Any]) -> None:
    suite = suites.by_code(cipher["id"] & 0xFFFF)
    assert suite is not None, f"0x{cipher['id'] & 0xFFFF:04X} {cipher['name']} missing"
    assert suite.openssl_name == cipher["name"]
    assert suites.by_openssl_name(cipher["name"]) is suite
    assert suites.iana_name(cipher["name"]) == suite.name
    # OpenSSL's "protocol" is the oldest version that can negotiate the suite.
    oldest = min(suite.protocols, key=suites.PROTOCOLS.index)
    assert oldest == cipher["protocol"]
    assert suite.aead is cipher["aead"]
    assert suite.bits == cipher["strength_bits"]
    assert (suite.encryption == "NULL") is (cipher["symmetric"] is None)
    assert suite.kex == _KEX[cipher["kea"]]
    assert suite.auth == _AUTH[cipher["auth"]]


def test_no_duplicate_codes_or_names() -> None:
    everything = suites.all_suites()
    codes = Counter(s.code for s in everything)
    names = Counter(s.name for s in everything)
    assert [c for c, n in codes.items() if n > 1] == []
    assert [c for c, n in names.items() if n > 1] == []


def test_registry_is_in_code_order_with_sslv2_last() -> None:
    codes = [s.code for s in suites.all_suites()]
    assert codes == sorted(codes)
    assert suites.all_suites()[-1].code == 0x0700C0


def test_count_sanity() -> None:
    everything = suites.all_suites()
    tls = [s for s in everything if not s.is_sslv2]
    assert len(tls) > 340  # IANA has ~350 assigned two-byte codes
    assert len([s for s in everything if s.is_sslv2]) == 7
    assert {s.code for s in suites.for_protocol("TLSv1.3")} >= {
        0x1301,
        0x1302,
        0x1303,
        0x1304,
        0x1305,
    }


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x0000, "TLS_NULL_WITH_NULL_NULL"),
        (0x0003, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"),
        (0x0007, "TLS_RSA_WITH_IDEA_CBC_SHA"),
        (0x001B, "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA"),
        (0x0026, "TLS_KRB5_EXPORT_WITH_DES_CBC_40_SHA"),
        (0x0096, "TLS_RSA_WITH_SEED_CBC_SHA"),
        (0x00FF, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"),
        (0x5600, "TLS_FALLBACK_SCSV"),
        (0xC0AA, "TLS_PSK_DHE_WITH_AES_128_CCM_8"),
        (0xC07A, "TLS_RSA_WITH_CAMELLIA_128_GCM_SHA256"),
        (0xC04C, "TLS_ECDHE_RSA_WITH_ARIA_128_CBC_SHA256"),
        (0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
        (0xD005, "TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256"),
        (0x1305, "TLS_AES_128_CCM_8_SHA256"),
        (0x010080, "SSL_CK_RC4_128_WITH_MD5"),
        (0x0700C0, "SSL_CK_DES_192_EDE3_CBC_WITH_MD5"),
    ],
)
def test_known_entries(code: int, name: str) -> None:
    suite = suites.by_code(code)
    assert suite is not None
    assert suite.name == name
    assert suites.by_name(name) is suite


def test_code_hex() -> None:
    assert _get(0xC02F).code_hex == "0xC02F"
    assert _get(0x000A).code_hex == "0x000A"
    assert _get(0x0700C0).code_hex == "0x0700C0"


def _get(code: int) -> CipherSuite:
    suite = suites.by_code(code)
    assert suite is not None
    return suite


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("TLS_RSA_WITH_RC4_128_SHA", SuiteClass.INSECURE),
        ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", SuiteClass.INSECURE),
        ("TLS_RSA_WITH_NULL_SHA256", SuiteClass.INSECURE),
        ("TLS_DH_anon_WITH_AES_256_GCM_SHA384", SuiteClass.INSECURE),
        ("TLS_RSA_EXPORT_WITH_DES40_CBC_SHA", SuiteClass.INSECURE),
        ("TLS_RSA_WITH_DES_CBC_SHA", SuiteClass.INSECURE),
        ("TLS_RSA_WITH_NULL_MD5", SuiteClass.INSECURE),
        ("TLS_SHA256_SHA256", SuiteClass.INSECURE),
        ("SSL_CK_DES_192_EDE3_CBC_WITH_MD5", SuiteClass.INSECURE),
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", SuiteClass.WEAK),
        ("TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", SuiteClass.WEAK),
        ("TLS_RSA_WITH_IDEA_CBC_SHA", SuiteClass.WEAK),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", SuiteClass.WEAK),
        ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", SuiteClass.WEAK),
        ("TLS_RSA_WITH_AES_128_GCM_SHA256", SuiteClass.WEAK),
        ("TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256", SuiteClass.WEAK),
        ("TLS_DH_RSA_WITH_AES_256_GCM_SHA384", SuiteClass.WEAK),
        ("TLS_PSK_WITH_AES_128_GCM_SHA256", SuiteClass.WEAK),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", SuiteClass.SECURE),
        ("TLS_AES_128_CCM_8_SHA256", SuiteClass.SECURE),
        ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", SuiteClass.RECOMMENDED),
        ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", SuiteClass.RECOMMENDED),
        ("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", SuiteClass.RECOMMENDED),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_CCM", SuiteClass.RECOMMENDED),
        ("TLS_AES_128_GCM_SHA256", SuiteClass.RECOMMENDED),
        ("TLS_AES_256_GCM_SHA384", SuiteClass.RECOMMENDED),
        ("TLS_CHACHA20_POLY1305_SHA256", SuiteClass.RECOMMENDED),
    ],
)
def test_classification(name: str, expected: SuiteClass) -> None:
    suite = suites.by_name(name)
    assert suite is not None
    assert suite.cls is expected
    assert suite.cls == expected.value  # a str enum, usable directly as a label value


def test_flags() -> None:
    ecdhe_gcm = _get(0xC02F)
    assert ecdhe_gcm.forward_secrecy
    assert ecdhe_gcm.aead
    rsa_gcm = _get(0x009C)
    assert not rsa_gcm.forward_secrecy
    assert rsa_gcm.aead
    ecdhe_cbc = _get(0xC013)
    assert ecdhe_cbc.forward_secrecy
    assert not ecdhe_cbc.aead
    assert ecdhe_cbc.mac == "SHA1"


def test_every_recommended_suite_is_forward_secret_aead() -> None:
    for suite in suites.all_suites():
        if suite.cls is SuiteClass.RECOMMENDED:
            assert suite.forward_secrecy, suite.name
            assert suite.aead, suite.name


@pytest.mark.parametrize(
    ("name", "protocols"),
    [
        ("TLS_RSA_WITH_AES_128_CBC_SHA", {"SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2"}),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", {"TLSv1.0", "TLSv1.1", "TLSv1.2"}),
        ("TLS_RSA_EXPORT_WITH_RC4_40_MD5", {"SSLv3", "TLSv1.0"}),
        ("TLS_RSA_WITH_DES_CBC_SHA", {"SSLv3", "TLSv1.0", "TLSv1.1"}),
        ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", {"TLSv1.2"}),
        ("TLS_RSA_WITH_AES_128_CBC_SHA256", {"TLSv1.2"}),
        ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", {"TLSv1.2"}),
        ("TLS_RSA_WITH_AES_128_CCM", {"TLSv1.2"}),
        ("TLS_AES_128_GCM_SHA256", {"TLSv1.3"}),
        ("SSL_CK_RC4_128_WITH_MD5", {"SSLv2"}),
        ("TLS_EMPTY_RENEGOTIATION_INFO_SCSV", set()),
    ],
)
def test_protocols(name: str, protocols: set[str]) -> None:
    suite = suites.by_name(name)
    assert suite is not None
    assert suite.protocols == protocols


def test_for_protocol_is_in_registry_order_and_filtered() -> None:
    tls12 = suites.for_protocol("TLSv1.2")
    assert all("TLSv1.2" in s.protocols for s in tls12)
    assert [s.code for s in tls12] == sorted(s.code for s in tls12)
    assert not any(s.code in (0x00FF, 0x5600, 0x0000) for s in tls12)
    sslv2 = suites.for_protocol("SSLv2")
    assert [s.code for s in sslv2] == [
        0x010080,
        0x020080,
        0x030080,
        0x040080,
        0x050080,
        0x060040,
        0x0700C0,
    ]
    with pytest.raises(ValueError, match="unknown protocol"):
        suites.for_protocol("TLSv1.4")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        ("DES-CBC3-SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
        ("EDH-RSA-DES-CBC3-SHA", "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"),
        ("DHE-RSA-DES-CBC3-SHA", "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA"),
        ("RC4-MD5", "TLS_RSA_WITH_RC4_128_MD5"),  # not the SSLv2 kind of the same name
        ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
        ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        ("NOT-A-CIPHER", "NOT-A-CIPHER"),
        ("", ""),
    ],
)
def test_iana_name(given: str, expected: str) -> None:
    assert suites.iana_name(given) == expected


def test_lookups_miss_cleanly() -> None:
    assert suites.by_code(0xFFFF) is None
    assert suites.by_code(0x0080) is None
    assert suites.by_name("ECDHE-RSA-AES128-GCM-SHA256") is None
    assert suites.by_openssl_name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256") is None


def test_loaded_once() -> None:
    assert suites.all_suites() is suites.all_suites()
    assert suites.by_code(0xC02F) is suites.by_name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")


def test_suite_is_frozen() -> None:
    suite = _get(0xC02F)
    with pytest.raises(AttributeError):
        suite.bits = 1  # type: ignore[misc]
