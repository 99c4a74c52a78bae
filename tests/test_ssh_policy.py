"""SSH findings, the algorithm database, SSH config and the SSH metric lines. Pure: no sockets."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from certscope.collector import render_once
from certscope.config import Policy, SSHPolicy, Waiver, parse_config
from certscope.errors import ConfigError
from certscope.policy import Rule
from certscope.results import SSHProbeResult, StoredKey
from certscope.ssh.algorithms import AlgorithmClass, classify, database
from certscope.ssh.keys import CertificateFacts, KeyFacts
from certscope.ssh.model import HostKey, ServerInfo, SSHScan
from certscope.ssh.policy import assess_keys, assess_server, key_findings, server_findings

NOW = datetime(2026, 6, 1, tzinfo=UTC)
T = NOW.timestamp()

INFO = ServerInfo(
    banner="SSH-2.0-OpenSSH_9.2p1 Debian-2",
    proto="2.0",
    software="OpenSSH_9.2p1",
    comments="Debian-2",
    kex=("curve25519-sha256", "kex-strict-s-v00@openssh.com"),
    host_key_algorithms=("ssh-ed25519", "rsa-sha2-512"),
    ciphers=("aes256-gcm@openssh.com",),
    macs=("hmac-sha2-256-etm@openssh.com",),
    compression=("none",),
)


def key(
    bits: int = 256, algorithm: str = "ssh-ed25519", cert: CertificateFacts | None = None
) -> KeyFacts:
    return KeyFacts(algorithm, algorithm, bits, "SHA256:abc", "ab" * 32, cert)


def cert(valid_before: float | None, signature_valid: bool = True) -> CertificateFacts:
    return CertificateFacts(
        type="host",
        key_id="web1",
        serial=7,
        principals=("web1.example.com",),
        valid_after=T - 86400,
        valid_before=valid_before,
        critical_options=(),
        extensions=(),
        ca_algorithm="ssh-ed25519",
        ca_bits=256,
        ca_fingerprint_sha256="SHA256:ca",
        ca_public_key_sha256="cd" * 32,
        signature_valid=signature_valid,
        blob_sha256="ef" * 32,
    )


def scan(info: ServerInfo = INFO, *keys: HostKey) -> SSHScan:
    return SSHScan(info, keys or (HostKey("ssh-ed25519", key()),))


def rules(findings: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {str(f.rule): f.severity for f in findings}


def test_a_modern_server_has_no_findings() -> None:
    assert server_findings(scan(), Policy(), NOW) == []


@pytest.mark.parametrize(
    ("field", "name", "rule", "severity"),
    [
        ("kex", "diffie-hellman-group1-sha1", "ssh_kex_weak", "critical"),
        ("kex", "diffie-hellman-group14-sha1", "ssh_kex_weak", "warning"),
        ("ciphers", "3des-cbc", "ssh_cipher_weak", "critical"),
        ("ciphers", "aes128-cbc", "ssh_cipher_weak", "warning"),
        ("ciphers", "arcfour", "ssh_cipher_weak", "critical"),
        ("macs", "hmac-md5", "ssh_mac_weak", "critical"),
        ("macs", "hmac-sha1", "ssh_mac_weak", "warning"),
        ("host_key_algorithms", "ssh-dss", "ssh_host_key_weak", "critical"),
        ("host_key_algorithms", "ssh-rsa", "ssh_host_key_weak", "warning"),
    ],
)
def test_weak_algorithms(field: str, name: str, rule: str, severity: str) -> None:
    changes: dict[str, Any] = {field: (*getattr(INFO, field), name)}
    info = replace(INFO, **changes)
    assert rules(server_findings(scan(info), Policy(), NOW)) == {rule: severity}


def test_deprecated_is_allowed_by_default_and_flagged_when_not() -> None:
    info = replace(INFO, kex=(*INFO.kex, "ecdh-sha2-nistp256"), macs=("hmac-sha2-256",))
    assert server_findings(scan(info), Policy(), NOW) == []
    strict = Policy(ssh=SSHPolicy(allowed_classes=("recommended",)))
    assert rules(server_findings(scan(info), strict, NOW)) == {
        "ssh_kex_weak": "info",
        "ssh_mac_weak": "info",
    }


def test_extensions_unknown_names_and_compression_are_never_findings() -> None:
    info = replace(
        INFO,
        kex=(*INFO.kex, "ext-info-s", "gss-made-up-kex"),
        compression=("zlib",),
    )
    strict = Policy(ssh=SSHPolicy(allowed_classes=("recommended",)))
    assert server_findings(scan(info), strict, NOW) == []


@pytest.mark.parametrize(
    ("bits", "severity"),
    [(1024, "critical"), (2047, "critical"), (2048, "warning"), (3071, "warning"), (3072, None)],
)
def test_rsa_host_key_size(bits: int, severity: str | None) -> None:
    s = scan(INFO, HostKey("rsa-sha2-512", key(bits, "ssh-rsa")))
    assert rules(server_findings(s, Policy(), NOW)).get("ssh_host_key_weak") == severity


def test_dsa_host_key_and_sha1_only_rsa() -> None:
    info = replace(INFO, host_key_algorithms=("ssh-rsa",))
    s = scan(
        info, HostKey("ssh-rsa", key(4096, "ssh-rsa")), HostKey("ssh-dss", key(1024, "ssh-dss"))
    )
    (f,) = server_findings(s, Policy(), NOW)
    assert (f.rule, f.severity) == (Rule.SSH_HOST_KEY_WEAK, "critical")
    assert "SHA-1 signatures only" in f.detail
    assert "DSA key" in f.detail


def test_certificate_with_a_bad_ca_signature() -> None:
    s = scan(INFO, HostKey("ssh-ed25519-cert-v01@openssh.com", key(cert=cert(None, False))))
    assert rules(server_findings(s, Policy(), NOW)) == {"ssh_host_key_weak": "critical"}


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (-1, {"ssh_host_certificate_expired": "critical"}),
        (0, {"ssh_host_certificate_expired": "critical"}),
        (1, {"ssh_host_certificate_expiring": "warning"}),
        (30 * 86400, {"ssh_host_certificate_expiring": "warning"}),
        (30 * 86400 + 1, {}),
    ],
)
def test_host_certificate_expiry(left: float, expected: dict[str, str]) -> None:
    s = scan(INFO, HostKey("ssh-ed25519-cert-v01@openssh.com", key(cert=cert(T + left))))
    assert rules(server_findings(s, Policy(), NOW)) == expected


def test_certificate_valid_forever_is_not_expiring() -> None:
    s = scan(INFO, HostKey("ssh-ed25519-cert-v01@openssh.com", key(cert=cert(None))))
    assert server_findings(s, Policy(), NOW) == []


@pytest.mark.parametrize(
    ("software", "minimum", "outdated"),
    [
        ("OpenSSH_9.2p1", ("OpenSSH", (9, 6)), True),
        ("OpenSSH_9.6p1", ("OpenSSH", (9, 6)), False),
        ("OpenSSH_10.0", ("OpenSSH", (9, 6)), False),
        ("dropbear_2022.83", ("dropbear", (2024, 85)), True),
        ("dropbear_2025.87", ("dropbear", (2024, 85)), False),
        ("OpenSSH_9.2p1", ("dropbear", (2024, 85)), False),  # another product
        ("SomethingElse", ("OpenSSH", (9, 6)), False),  # no version in the banner
    ],
)
def test_software_outdated(
    software: str, minimum: tuple[str, tuple[int, ...]], outdated: bool
) -> None:
    policy = Policy(ssh=SSHPolicy(min_versions=(minimum,)))
    found = rules(server_findings(scan(replace(INFO, software=software)), policy, NOW))
    assert ("ssh_software_outdated" in found) is outdated


def test_nothing_read_is_no_finding_and_no_pass() -> None:
    assert server_findings(SSHScan(info=None), Policy(), NOW) == []


def test_exceptions_waive_ssh_rules() -> None:
    info = replace(INFO, ciphers=("aes128-cbc",))
    waiver = Waiver("bastion", "ssh_cipher_weak", "ops", "legacy client", date(2026, 12, 31))
    a = assess_server(("bastion", "10.0.0.1:22"), scan(info), Policy(exceptions=(waiver,)), NOW)
    (f,) = a.findings
    assert f.waived_by == waiver
    assert a.active == ()


# --- authorized keys ---------------------------------------------------------------------------


def stored(**kw: object) -> StoredKey:
    base: dict[str, object] = {
        "kind": "ssh_authorized_key",
        "location": "/home/alice/.ssh/authorized_keys:1",
        "algorithm": "ssh-ed25519",
        "bits": 256,
        "created": T - 10 * 86400,
        "labels": (("owner", "alice"),),
        "attributes": (("owner_status", "active"),),
    }
    base.update(kw)
    return StoredKey(**base)  # type: ignore[arg-type]


def test_a_known_recent_ed25519_key_is_fine() -> None:
    assert key_findings(stored(), Policy(), NOW, owners_known=True) == []


def test_departed_owner_is_critical() -> None:
    k = stored(attributes=(("owner_status", "departed"),))
    assert rules(key_findings(k, Policy(), NOW, True)) == {"ssh_key_departed_owner": "critical"}


def test_unknown_owner_only_when_a_people_file_is_configured() -> None:
    k = stored(labels=(), attributes=())
    assert rules(key_findings(k, Policy(), NOW, True)) == {"ssh_key_unknown_owner": "warning"}
    assert key_findings(k, Policy(), NOW, False) == []


@pytest.mark.parametrize(
    ("algorithm", "bits", "severity"),
    [
        ("ssh-dss", 1024, "critical"),
        ("ssh-rsa", 1024, "critical"),
        ("ssh-rsa", 2048, "warning"),
        ("ssh-rsa", 3072, None),
    ],
)
def test_weak_user_keys(algorithm: str, bits: int, severity: str | None) -> None:
    k = stored(algorithm=algorithm, bits=bits)
    assert rules(key_findings(k, Policy(), NOW, True)).get("ssh_key_weak") == severity


def test_too_old_after_max_key_age() -> None:
    old = stored(created=T - 365 * 86400 - 1)
    assert rules(key_findings(old, Policy(), NOW, True)) == {"ssh_key_too_old": "warning"}
    edge = stored(created=T - 365 * 86400)
    assert key_findings(edge, Policy(), NOW, True) == []


@pytest.mark.parametrize(
    ("attrs", "flagged"),
    [
        ((("cert_authority", "true"),), True),
        ((("cert_authority", "true"), ("expiry_time", "20270101")), False),
        ((("cert_authority", "true"), ("principals", "alice")), False),
        ((("cert_authority", "false"),), False),
    ],
)
def test_cert_authority_without_restrictions(
    attrs: tuple[tuple[str, str], ...], flagged: bool
) -> None:
    k = stored(attributes=(("owner_status", "active"), *attrs))
    assert ("ssh_key_no_expiry" in rules(key_findings(k, Policy(), NOW, True))) is flagged


def test_assess_keys_returns_only_keys_with_findings() -> None:
    good, bad = stored(), stored(location="x:2", algorithm="ssh-dss", bits=1024)
    judged = assess_keys("hosts", [good, bad], Policy(), NOW, True)
    assert [k.location for k, _ in judged] == ["x:2"]


# --- the database -------------------------------------------------------------------------------


def test_database_rows_have_reasons_and_sources() -> None:
    db = database()
    assert len(db) > 80
    for alg in db.values():
        assert alg.reason and alg.source, alg
        assert alg.cls is not AlgorithmClass.UNKNOWN


def test_classify_unknown() -> None:
    assert classify("cipher", "rot13").cls is AlgorithmClass.UNKNOWN
    assert classify("kex", "curve25519-sha256").cls is AlgorithmClass.RECOMMENDED


# --- configuration ------------------------------------------------------------------------------


def test_ssh_target_and_policy() -> None:
    cfg = parse_config(
        """
targets:
  - {address: bastion.example.com:22, protocol: ssh, name: bastion}
  - {address: web.example.com:443}
policy:
  ssh:
    allowed_algorithm_classes: [recommended]
    min_rsa_bits: 4096
    min_versions: {OpenSSH: "9.6", dropbear: "2024.85"}
    certificate_warning: 14d
    max_key_age: 180d
  exceptions:
    - {target: bastion, rule: ssh_mac_weak, owner: ops, reason: x, expires: 2027-01-01}
""",
        "t.yml",
    )
    ssh, tls = cfg.targets
    assert (ssh.protocol, ssh.enumerate, tls.protocol, tls.enumerate) == ("ssh", False, "tls", True)
    p = cfg.policy.ssh
    assert p.allowed_classes == ("recommended",)
    assert p.min_rsa_bits == 4096
    assert p.min_versions == (("OpenSSH", (9, 6)), ("dropbear", (2024, 85)))
    assert p.certificate_warning == 14 * 86400
    assert p.max_key_age == 180 * 86400


def test_ssh_config_errors_are_all_listed() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(
            """
targets:
  - {address: a:22, protocol: ssh, sni: a.example.com, starttls: smtp}
  - {address: b:22, protocol: telnet}
policy:
  ssh:
    allowed_algorithm_classes: [fine]
    min_versions: {OpenSSH: nine}
    bogus: 1
sources:
  - {name: keys, kind: ssh_authorized_keys}
""",
            "t.yml",
        )
    locations = {p.location for p in exc.value.problems}
    assert locations == {
        "targets[0].sni",
        "targets[0].starttls",
        "targets[1].protocol",
        "policy.ssh.allowed_algorithm_classes",
        "policy.ssh.min_versions.OpenSSH",
        "policy.ssh.bogus",
        "sources[0].paths",
    }


# --- metrics ------------------------------------------------------------------------------------


def test_ssh_metric_lines() -> None:
    hk = HostKey(
        "ssh-ed25519-cert-v01@openssh.com",
        key(cert=cert(T + 86400)),
        "curve25519-sha256",
        "ssh-ed25519",
    )
    bad = HostKey("ssh-dss", None, error="server closed the connection")
    r = SSHProbeResult(
        "bastion", "10.0.0.1:22", (("env", "prod"),), T, 0.25, SSHScan(INFO, (hk, bad)), T
    )
    text = render_once([r])
    base = 'source_kind="ssh",source="bastion",location="10.0.0.1:22",env="prod"'
    assert f"certscope_probe_success{{{base}}} 1\n" in text
    assert (
        f'certscope_ssh_algorithm_supported{{{base},kind="cipher",algorithm="aes256-gcm@openssh.com",class="recommended"}} 1\n'
        in text
    )
    assert 'kind="kex",algorithm="kex-strict-s-v00@openssh.com",class="extension"' in text
    assert (
        f'certscope_ssh_host_key_info{{{base},algorithm="ssh-ed25519-cert-v01@openssh.com",bits="256",fingerprint_sha256="SHA256:abc"}} 1\n'
        in text
    )
    assert 'algorithm="ssh-dss"' not in text  # a key that was not fetched is not reported
    slot = 'source_kind="ssh",source="bastion",location="10.0.0.1:22#ssh-ed25519-cert-v01@openssh.com",env="prod",chain_position="0",subject_cn="web1",issuer_cn="SHA256:ca"'
    assert f"certscope_cert_not_after_timestamp_seconds{{{slot}}} {int(T + 86400)}\n" in text
    assert (
        f'certscope_ssh_server_info{{{base},software="OpenSSH_9.2p1",comments="Debian-2",version="2.0"}} 1\n'
        in text
    )


def test_failed_ssh_probe_metric_lines() -> None:
    from certscope.errors import ProbeFailure
    from certscope.tls.handshake import Failure

    s = SSHScan(None, error=Failure(ProbeFailure.NOT_SSH, "nope"))
    text = render_once([SSHProbeResult("x", "h:22", (), T, 0.1, s, None)])
    assert 'certscope_probe_success{source_kind="ssh",source="x",location="h:22"} 0\n' in text
    assert 'reason="not_ssh"' in text
    assert "certscope_ssh_algorithm_supported" not in text
