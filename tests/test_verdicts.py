"""Policy verdicts on what endpoints present: key-size severities at every boundary, CN-only
leaves, reversed chains, expired intermediates. Boundaries are tested on facts (pure); the
chain findings also against real servers (nginx, openssl s_server) on loopback.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certscope.certs import CertFacts
from certscope.config import Policy, Target, TLSOptions
from certscope.errors import VerifyFailure
from certscope.policy import (
    CONTROLS,
    Rule,
    assess_endpoint,
    assess_stored,
    certificate_findings,
    grade,
    key_severity,
    posture_findings,
)
from certscope.posture import DHEGroup, PostureScan
from certscope.probe import probe
from certscope.tls.suites import PROTOCOLS, by_name
from certscope.verify import Verdict
from helpers.certfacts import NOW, cert
from helpers.pki import TestPKI
from helpers.servers import NginxServer, OpenSSLServer


def facts(**kw: object) -> CertFacts:
    """An RSA 2048 leaf's facts (test_policy's EC leaf, with an RSA key), overridden by ``kw``."""
    rsa: dict[str, object] = {"key_algorithm": "RSA", "key_bits": 2048, "key_curve": ""}
    return cert(**{**rsa, "signature_algorithm": "RSA", **kw})


def key_finding(algorithm: str, bits: int) -> tuple[str, str] | None:
    found = [
        f
        for f in certificate_findings(
            [facts(key_algorithm=algorithm, key_bits=bits)], Policy(), NOW
        )
        if f.rule is Rule.KEY_TOO_SMALL
    ]
    return (found[0].severity, found[0].detail) if found else None


# --- key_too_small: severity from numbers, at each boundary of docs/policy.md -----------------


@pytest.mark.parametrize(
    ("algorithm", "bits", "expected"),
    [
        ("RSA", 512, "critical"),
        ("RSA", 768, "critical"),
        ("RSA", 1000, "critical"),
        ("RSA", 1023, "critical"),
        ("RSA", 1024, "warning"),
        ("RSA", 2047, "warning"),
        ("RSA", 2048, None),
        ("RSA", 4096, None),
        ("EC", 159, "critical"),
        ("EC", 160, "warning"),
        ("EC", 224, "warning"),
        ("EC", 255, "warning"),
        ("EC", 256, None),
        ("DSA", 1023, "critical"),
        ("DSA", 1024, "warning"),
        ("DSA", 2048, "warning"),  # DSA is never allowed, but 2048 bits is not broken
    ],
)
def test_key_too_small_severity_boundaries(algorithm: str, bits: int, expected: str | None) -> None:
    got = key_finding(algorithm, bits)
    assert (got[0] if got else None) == expected, got
    if expected is not None:
        assert key_severity(algorithm, bits) == expected


def test_key_severity_does_not_read_the_message() -> None:
    # A detail text that happens to contain " 1024 " must not change the severity: an
    # intermediate CN with that number used to turn a 2047-bit warning into a critical.
    chain = [
        facts(key_bits=2047),
        facts(subject="CN=CA 1024 ", subject_cn="CA 1024 ", key_bits=2047),
    ]
    (f,) = [x for x in certificate_findings(chain, Policy(), NOW) if x.rule is Rule.KEY_TOO_SMALL]
    assert f.severity == "warning"
    worst = [facts(key_bits=2047), facts(subject="CN=CA", key_bits=1023)]
    (g,) = [x for x in certificate_findings(worst, Policy(), NOW) if x.rule is Rule.KEY_TOO_SMALL]
    assert g.severity == "critical"


def test_stored_keys_use_the_same_severities() -> None:
    a = assess_stored(("files", "/k.pem"), [facts(key_bits=1024)], Policy(), NOW)
    assert [(f.rule, f.severity) for f in a.findings] == [(Rule.KEY_TOO_SMALL, "warning")]
    b = assess_stored(("files", "/k.pem"), [facts(key_bits=1023)], Policy(), NOW)
    assert [(f.rule, f.severity) for f in b.findings] == [(Rule.KEY_TOO_SMALL, "critical")]


# --- chain findings on facts -------------------------------------------------------------------


def rules_of(
    chain: list[CertFacts], verdict: Verdict | None = None, now: datetime = NOW
) -> dict[Rule, str]:
    a = assess_endpoint(("t", "a:443"), chain, verdict, None, Policy(), now)
    return {f.rule: f.severity for f in a.findings}


def test_new_rules_have_controls() -> None:
    assert CONTROLS[Rule.SAN_MISSING] == "CC6.6"
    assert CONTROLS[Rule.CHAIN_ORDER_WRONG] == "CC6.6"
    assert CONTROLS[Rule.INTERMEDIATE_EXPIRED] == "CC6.7"


def test_san_missing_only_for_endpoint_leaves() -> None:
    assert rules_of([facts(sans=())]) == {Rule.SAN_MISSING: "warning"}
    assert rules_of([facts(sans=("URI:spiffe://x",))]) == {Rule.SAN_MISSING: "warning"}
    assert Rule.SAN_MISSING not in rules_of([facts(sans=("10.0.0.1",), ip_sans=("10.0.0.1",))])
    stored = assess_stored(("files", "/c.pem"), [facts(sans=())], Policy(), NOW)
    assert stored.findings == ()


def test_chain_order() -> None:
    leaf = facts(subject="CN=leaf", issuer="CN=int", der_sha256="01" * 32)
    inter = facts(subject="CN=int", issuer="CN=root", subject_cn="int", der_sha256="02" * 32)
    root = facts(
        subject="CN=root",
        issuer="CN=root",
        self_signed=True,
        subject_cn="root",
        der_sha256="03" * 32,
    )
    assert Rule.CHAIN_ORDER_WRONG not in rules_of([leaf, inter, root])
    assert Rule.CHAIN_ORDER_WRONG not in rules_of([leaf])  # incomplete, not disordered
    assert rules_of([leaf, root, inter])[Rule.CHAIN_ORDER_WRONG] == "warning"
    # The leaf sent twice (certificate and chain file both hold it) is not a wrong order.
    assert Rule.CHAIN_ORDER_WRONG not in rules_of([leaf, leaf, inter, root])


def test_intermediate_expired_is_its_own_finding() -> None:
    leaf = facts(subject="CN=leaf", issuer="CN=int")
    old = facts(subject="CN=int", issuer="CN=root", not_after=NOW - timedelta(days=1))
    verdict = Verdict(True, True, False, (VerifyFailure.INTERMEDIATE_EXPIRED,))
    got = rules_of([leaf, old], verdict)
    assert got == {Rule.INTERMEDIATE_EXPIRED: "critical"}  # not chain_untrusted, not cert_expired
    old_root = facts(subject="CN=root", self_signed=True, not_after=NOW - timedelta(days=1))
    assert Rule.INTERMEDIATE_EXPIRED not in rules_of([leaf, old_root])


# --- against real servers ----------------------------------------------------------------------


def _target(port: int, sni: str, ca: Path) -> Target:
    return Target("t", "127.0.0.1", port, TLSOptions(sni=sni, ca_file=str(ca), timeout=10))


async def test_cn_only_leaf(pki: TestPKI) -> None:
    leaf = pki.leaf("cn-only.test", san=False)
    with OpenSSLServer(leaf.cert, leaf.key, chain=pki.intermediate.path) as srv:
        r = await probe(_target(srv.port, "cn-only.test", pki.ca_file))
    assert r.success and r.verdict is not None and r.verdict.verified
    got = rules_of(list(r.facts), r.verdict, datetime.now(UTC))
    assert got == {Rule.SAN_MISSING: "warning"}


async def test_reversed_chain_on_nginx(pki: TestPKI, tmp_path: Path) -> None:
    leaf = pki.leaf("reversed.test")
    bundle = tmp_path / "reversed.pem"
    # leaf, root, intermediate: the intermediate should come right after the leaf.
    bundle.write_bytes(leaf.pem + pki.root.pem + pki.intermediate.pem)
    with NginxServer(tmp_path / "nginx", bundle, leaf.key) as srv:
        r = await probe(_target(srv.port, "reversed.test", pki.ca_file))
    assert r.success
    assert [f.subject_cn for f in r.facts] == [
        "reversed.test",
        "certscope Test Root CA",
        "certscope Test Intermediate CA",
    ]
    got = rules_of(list(r.facts), r.verdict, datetime.now(UTC))
    assert got == {Rule.CHAIN_ORDER_WRONG: "warning"}
    with NginxServer(tmp_path / "nginx2", leaf.chain, leaf.key) as good:
        ok = await probe(_target(good.port, "reversed.test", pki.ca_file))
    assert rules_of(list(ok.facts), ok.verdict, datetime.now(UTC)) == {}


async def test_expired_intermediate_on_a_real_server(tmp_path: Path) -> None:
    old = TestPKI(tmp_path, name="Lapsed", intermediate_days_left=-2)
    leaf = old.leaf("lapsed.test", days_left=30)
    with OpenSSLServer(leaf.cert, leaf.key, chain=old.intermediate.path) as srv:
        r = await probe(_target(srv.port, "lapsed.test", old.ca_file))
    assert r.verdict is not None
    assert VerifyFailure.INTERMEDIATE_EXPIRED in r.verdict.errors
    got = rules_of(list(r.facts), r.verdict, datetime.now(UTC))
    assert got == {Rule.INTERMEDIATE_EXPIRED: "critical"}


# --- DHE groups ---------------------------------------------------------------------------------


def dhe_scan(*groups: DHEGroup) -> PostureScan:
    suite = by_name("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256")
    assert suite is not None
    return PostureScan(
        protocols=tuple((p, p == "TLSv1.2") for p in PROTOCOLS),
        suites=(("TLSv1.2", (suite.code,)),),
        dhe_groups=groups,
    )


@pytest.mark.parametrize(
    ("bits", "severity", "capped"),
    [
        (512, "critical", "F"),
        (1023, "critical", "F"),
        (1024, "warning", "B"),
        (2047, "warning", "B"),
        (2048, None, "A"),
        (3072, None, "A"),
    ],
)
def test_dh_group_size_boundaries(bits: int, severity: str | None, capped: str) -> None:
    scan = dhe_scan(DHEGroup("TLSv1.2", 0x009E, bits, "custom"))
    found = {f.rule: f.severity for f in posture_findings(scan, Policy())}
    assert found.get(Rule.DH_GROUP_TOO_SMALL) == severity
    g = grade(scan, [facts(key_algorithm="EC", key_bits=256)], None)
    assert g is not None
    assert g.grade_if_trusted == capped, g.caps


def test_dh_group_insecure() -> None:
    composite = DHEGroup("TLSv1.2", 0x009E, 2048, "custom", "not prime", "critical")
    subgroup = DHEGroup("TLSv1.2", 0x009E, 2048, "custom", "not a safe prime", "warning")
    assert {f.rule: f.severity for f in posture_findings(dhe_scan(composite), Policy())} == {
        Rule.DH_GROUP_INSECURE: "critical"
    }
    assert {f.rule: f.severity for f in posture_findings(dhe_scan(subgroup), Policy())} == {
        Rule.DH_GROUP_INSECURE: "warning"
    }
    g = grade(dhe_scan(composite), [facts(key_algorithm="EC", key_bits=256)], None)
    assert g is not None and g.grade_if_trusted == "F"
    assert CONTROLS[Rule.DH_GROUP_TOO_SMALL] == CONTROLS[Rule.DH_GROUP_INSECURE] == "CC6.7"


def test_dh_well_known_and_checked_groups() -> None:
    from certscope.tls.enumerate import dh

    by_name_ = {n: p for (p, _), (n, _) in dh.known_groups().items()}
    assert dh.assess(by_name_["ffdhe2048"], 2) == dh.DHGroup(2048, "ffdhe2048", "RFC 7919")
    assert dh.assess(by_name_["oakley2"], 2).name == "oakley2"
    assert dh.assess(by_name_["oakley2"], 5).name == "custom"  # another generator: checked
    assert dh.assess(by_name_["oakley2"], 5).safe_prime is True
    assert dh.assess(by_name_["ffdhe2048"], 1).problem_severity == "critical"
    assert dh.assess(by_name_["ffdhe2048"] - 1, 1).problem_severity == "critical"
    assert dh.assess(by_name_["ffdhe2048"] + 2, 2).problem == "the modulus is not prime"
