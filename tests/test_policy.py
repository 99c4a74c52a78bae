"""Policy findings, grades and Mozilla conformance: pure functions, tested without sockets."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from certscope.config import Policy, Waiver, parse_config
from certscope.errors import ConfigError, VerifyFailure
from certscope.policy import (
    CONTROLS,
    Rule,
    assess_endpoint,
    assess_stored,
    grade,
    mozilla_conformance,
)
from certscope.posture import PostureScan
from certscope.tls.suites import by_name
from certscope.verify import Verdict
from helpers.certfacts import NOW, cert

OK = Verdict(chain_trusted=True, hostname_match=True, valid_now=True, errors=())


def scan(protocols: dict[str, list[str]], groups: tuple[str, ...] = ("x25519",)) -> PostureScan:
    """Build a scan from protocol → IANA suite names."""
    codes = {}
    for p, names in protocols.items():
        found = []
        for n in names:
            s = by_name(n)
            assert s is not None, n
            found.append(s.code)
        codes[p] = tuple(found)
    all_protocols = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
    return PostureScan(
        protocols=tuple((p, bool(codes.get(p))) for p in all_protocols),
        suites=tuple((p, c) for p, c in codes.items() if c),
        groups=groups,
    )


TLS13 = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
GOOD12 = ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]
CBC12 = ["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"]


def rules(a: object) -> set[str]:
    return {f.rule for f in a.active}  # type: ignore[attr-defined]


# --- grades ----------------------------------------------------------------------------------


def test_modern_server_gets_a_and_conforms() -> None:
    s = scan({"TLSv1.3": TLS13, "TLSv1.2": GOOD12})
    g = grade(s, [cert()], OK)
    assert g is not None and g.grade == "A" and g.caps == ()
    moz = mozilla_conformance(s, [cert()])
    assert moz["intermediate"] == (True, ())
    assert moz["modern"][0] is False and "accepts TLSv1.2" in moz["modern"][1]
    only13 = scan({"TLSv1.3": TLS13})
    assert mozilla_conformance(only13, [cert()])["modern"] == (True, ())


@pytest.mark.parametrize(
    ("protocols", "expected", "cap"),
    [
        ({"SSLv2": ["SSL_CK_RC4_128_WITH_MD5"], "TLSv1.2": GOOD12}, "F", "SSLv2 accepted"),
        (
            {"SSLv3": ["TLS_RSA_WITH_AES_128_CBC_SHA"], "TLSv1.2": GOOD12},
            "C",
            "SSLv3 accepted (POODLE)",
        ),
        ({"TLSv1.0": CBC12, "TLSv1.2": GOOD12}, "B", "TLS 1.0 or 1.1 accepted"),
        ({"TLSv1.1": CBC12, "TLSv1.2": GOOD12}, "B", "TLS 1.0 or 1.1 accepted"),
        ({"TLSv1.2": [*GOOD12, "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"]}, "C", "RC4 accepted"),
        ({"TLSv1.0": ["TLS_RSA_WITH_RC4_128_SHA"], "TLSv1.2": GOOD12}, "B", "RC4 accepted"),
        (
            {"TLSv1.2": [*GOOD12, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"]},
            "C",
            "64-bit block cipher with TLS 1.1 or later (SWEET32)",
        ),
        ({"TLSv1.2": ["TLS_RSA_WITH_AES_128_GCM_SHA256"]}, "B", "no forward secrecy"),
        ({"TLSv1.2": CBC12}, "B", "no AEAD cipher suite"),
        ({"TLSv1.0": CBC12}, "C", "neither TLS 1.2 nor TLS 1.3 supported"),
        (
            {"TLSv1.2": [*GOOD12, "TLS_RSA_EXPORT_WITH_RC4_40_MD5"]},
            "F",
            "export cipher suites accepted",
        ),
        (
            {"TLSv1.2": [*GOOD12, "TLS_DH_anon_WITH_AES_128_GCM_SHA256"]},
            "F",
            "anonymous cipher suites accepted",
        ),
        ({"TLSv1.2": [*GOOD12, "TLS_RSA_WITH_NULL_SHA256"]}, "F", "NULL encryption accepted"),
    ],
)
def test_grade_caps(protocols: dict[str, list[str]], expected: str, cap: str) -> None:
    g = grade(scan(protocols), [cert()], OK)
    assert g is not None
    assert g.grade == expected, g
    assert any(c.startswith(cap) for c in g.caps), g.caps


def test_small_rsa_keys_cap_the_grade() -> None:
    s = scan({"TLSv1.3": TLS13})
    assert grade(s, [cert(key_algorithm="RSA", key_bits=1024)], OK).grade == "B"  # type: ignore[union-attr]
    assert grade(s, [cert(key_algorithm="RSA", key_bits=512)], OK).grade == "F"  # type: ignore[union-attr]
    assert grade(s, [cert(key_algorithm="RSA", key_bits=2048)], OK).grade == "A"  # type: ignore[union-attr]


def test_trust_and_name_problems_show_t_and_m() -> None:
    s = scan({"TLSv1.3": TLS13})
    untrusted = Verdict(False, True, True, (VerifyFailure.SELF_SIGNED,))
    expired = Verdict(True, True, False, (VerifyFailure.EXPIRED,))
    mismatch = Verdict(True, False, True, (VerifyFailure.HOSTNAME_MISMATCH,))
    for verdict, shown in ((untrusted, "T"), (expired, "T"), (mismatch, "M")):
        g = grade(s, [cert()], verdict)
        assert g is not None and g.grade == shown and g.grade_if_trusted == "A"


def test_scores_follow_the_rating_guide() -> None:
    # TLS 1.2+1.3 → protocol 100; EC P-256 (~3072 RSA) → key exchange 90;
    # AES-128 and AES-256 → cipher (80 + 100) / 2 = 90: 0.3*100 + 0.3*90 + 0.4*90 = 93
    g = grade(scan({"TLSv1.3": TLS13, "TLSv1.2": GOOD12}), [cert()], OK)
    assert g is not None and g.score == 93
    assert grade(PostureScan(protocols=(("TLSv1.2", False),)), [cert()], OK) is None


# --- findings --------------------------------------------------------------------------------


def test_each_rule_fires_with_its_control() -> None:
    s = scan(
        {
            "SSLv3": ["TLS_RSA_WITH_RC4_128_MD5"],
            "TLSv1.0": CBC12,
            "TLSv1.2": [
                *GOOD12,
                "TLS_RSA_WITH_AES_128_CBC_SHA",
                "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
            ],
        }
    )
    leaf = cert(
        key_algorithm="RSA",
        key_bits=1024,
        signature_hash="sha1",
        not_before=NOW - timedelta(days=800),
        not_after=NOW - timedelta(days=1),
    )
    verdict = Verdict(
        False,
        False,
        False,
        (VerifyFailure.EXPIRED, VerifyFailure.UNKNOWN_ISSUER, VerifyFailure.HOSTNAME_MISMATCH),
    )
    a = assess_endpoint(("web", "web.test:443"), [leaf], verdict, s, Policy(), NOW)
    by_rule = {f.rule: f for f in a.active}
    assert set(by_rule) == {
        Rule.PROTOCOL_DEPRECATED,
        Rule.CIPHER_INSECURE,
        Rule.CIPHER_WEAK,
        Rule.CIPHER_NOT_ALLOWED,
        Rule.KEY_TOO_SMALL,
        Rule.SIGNATURE_HASH_FORBIDDEN,
        Rule.CERT_LIFETIME_TOO_LONG,
        Rule.CERT_EXPIRED,
        Rule.HOSTNAME_MISMATCH,
        Rule.CHAIN_UNTRUSTED,
    }
    assert by_rule[Rule.PROTOCOL_DEPRECATED].severity == "critical"  # SSLv3
    assert "SSLv3, TLSv1.0" in by_rule[Rule.PROTOCOL_DEPRECATED].detail
    assert "TLS_RSA_WITH_RC4_128_MD5" in by_rule[Rule.CIPHER_INSECURE].detail
    assert "TLS_RSA_WITH_AES_128_CBC_SHA" in by_rule[Rule.CIPHER_WEAK].detail
    assert "CCM_8" in by_rule[Rule.CIPHER_NOT_ALLOWED].detail
    assert by_rule[Rule.CHAIN_UNTRUSTED].detail == "unknown_issuer"
    for f in a.active:
        assert f.control == CONTROLS[f.rule]
        assert f.control in {"CC6.1", "CC6.6", "CC6.7", "CC7.1"}


def test_clean_endpoint_has_no_findings_and_policy_is_configurable() -> None:
    s = scan({"TLSv1.3": TLS13, "TLSv1.2": [*GOOD12, *CBC12]})
    a = assess_endpoint(("web", "web.test:443"), [cert()], OK, s, Policy(), NOW)
    assert rules(a) == {Rule.CIPHER_WEAK}
    relaxed = Policy(allowed_classes=("recommended", "secure", "weak"))
    assert rules(assess_endpoint(("web", "w:1"), [cert()], OK, s, relaxed, NOW)) == set()
    strict = Policy(allowed_ciphers=("TLS_AES_256_GCM_SHA384",))
    found = assess_endpoint(("web", "w:1"), [cert()], OK, s, strict, NOW)
    assert rules(found) == {Rule.CIPHER_WEAK, Rule.CIPHER_NOT_ALLOWED}


def test_exceptions_waive_until_they_expire() -> None:
    s = scan({"TLSv1.0": CBC12, "TLSv1.3": TLS13})
    live = Waiver("legacy-*", "protocol_deprecated", "payments", "vendor box", date(2026, 12, 31))
    policy = Policy(allowed_classes=("recommended", "weak"), exceptions=(live,))
    a = assess_endpoint(("legacy-api", "l:443"), [cert()], OK, s, policy, NOW)
    assert rules(a) == set()
    (waived,) = [f for f in a.findings if not f.active]
    assert waived.rule == Rule.PROTOCOL_DEPRECATED and waived.waived_by == live
    other = assess_endpoint(("web", "w:443"), [cert()], OK, s, policy, NOW)
    assert rules(other) == {Rule.PROTOCOL_DEPRECATED}  # the exception names another target

    expired = replace(live, expires=date(2026, 11, 27))
    late = assess_endpoint(
        ("legacy-api", "l:443"), [cert()], OK, s, replace(policy, exceptions=(expired,)), NOW
    )
    assert rules(late) == {Rule.PROTOCOL_DEPRECATED, Rule.EXCEPTION_EXPIRED}
    # the last day still counts
    last_day = replace(live, expires=date(2026, 11, 28))
    assert (
        rules(
            assess_endpoint(
                ("legacy-api", "l:443"),
                [cert()],
                OK,
                s,
                replace(policy, exceptions=(last_day,)),
                NOW,
            )
        )
        == set()
    )


def test_stored_roots_are_not_held_to_leaf_rules() -> None:
    root = cert(
        is_ca=True,
        self_signed=True,
        signature_hash="sha1",
        key_algorithm="RSA",
        key_bits=4096,
        not_before=NOW - timedelta(days=7000),
        not_after=NOW + timedelta(days=3000),
    )
    assert assess_stored(("trust", "/etc/ssl/ca.pem"), [root], Policy(), NOW).findings == ()
    weak_leaf = cert(key_algorithm="RSA", key_bits=1024, not_after=NOW - timedelta(days=2))
    a = assess_stored(("disk", "/srv/tls/a.pem"), [weak_leaf, weak_leaf], Policy(), NOW)
    assert rules(a) == {Rule.KEY_TOO_SMALL, Rule.CERT_EXPIRED}
    assert len(a.findings) == 2  # one per rule per location, details merged


def test_policy_config_section() -> None:
    cfg = parse_config(
        """
policy:
  min_protocol: TLSv1.3
  allowed_cipher_classes: [recommended, secure]
  allowed_ciphers: [ECDHE-RSA-AES128-GCM-SHA256, TLS_AES_128_GCM_SHA256]
  min_rsa_bits: 3072
  forbidden_signature_hashes: [md5]
  max_cert_lifetime: 90d
  require_hostname_match: false
  exceptions:
    - {target: legacy, rule: protocol_deprecated, owner: team-a, reason: vendor, expires: 2027-03-31}
""",
        "p.yml",
    )
    p = cfg.policy
    assert p.min_protocol == "TLSv1.3" and p.min_rsa_bits == 3072
    assert p.allowed_ciphers == ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256")
    assert p.max_cert_lifetime == 90 * 86400 and p.require_hostname_match is False
    (e,) = p.exceptions
    assert (e.target, e.rule, e.owner, e.expires) == (
        "legacy",
        "protocol_deprecated",
        "team-a",
        date(2027, 3, 31),
    )


def test_policy_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            """
policy:
  min_protocol: TLSv2
  allowed_cipher_classes: [great]
  allowed_ciphers: [NOT-A-SUITE]
  exceptions:
    - {target: x, rule: nope, owner: o, reason: r, expires: 2027-01-01}
    - {target: x, rule: cipher_weak, reason: r, expires: someday}
""",
            "p.yml",
        )
    found = [str(p) for p in info.value.problems]
    assert (
        "policy.min_protocol: must be one of SSLv2, SSLv3, TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3"
        in found
    )
    assert any(f.startswith("policy.allowed_cipher_classes: unknown value 'great'") for f in found)
    assert "policy.allowed_ciphers[0]: 'NOT-A-SUITE' is not a known cipher suite" in found
    assert any(f.startswith("policy.exceptions[0].rule: unknown rule 'nope'") for f in found)
    assert "policy.exceptions[1].owner: is required" in found
    assert "policy.exceptions[1].expires: is required, a date such as 2027-03-31" in found
