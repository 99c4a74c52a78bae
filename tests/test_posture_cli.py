"""Posture end to end: `certscope scan --enumerate` and the exporter's posture metrics, against
real `openssl s_server` instances with known configurations."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from helpers.app import StartApp, find
from helpers.pki import TestPKI
from helpers.servers import OpenSSLServer

SCAN = [sys.executable, "-m", "certscope.cli", "scan"]


def _scan(*args: str) -> tuple[int, list[dict[str, object]]]:
    res = subprocess.run([*SCAN, *args], capture_output=True, text=True, timeout=120)
    return res.returncode, json.loads(res.stdout) if res.stdout.startswith("[") else []


def test_scan_enumerate_json(pki: TestPKI, tmp_path: Path) -> None:
    leaf = pki.leaf("web.test", days_left=40)
    with OpenSSLServer(
        leaf.cert,
        leaf.key,
        "-tls1_2",
        "-cipher",
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-SHA",
        "-serverpref",
        chain=leaf.chain,
    ) as srv:
        code, out = _scan(
            "--enumerate",
            "--format",
            "json",
            "--sni",
            "web.test",
            "--ca-file",
            str(pki.ca_file),
            srv.address,
        )
    assert code == 0
    (obj,) = out
    posture = obj["posture"]
    assert isinstance(posture, dict)
    assert posture["complete"] is True
    assert posture["protocols"] == {
        "SSLv2": False,
        "SSLv3": False,
        "TLSv1.0": False,
        "TLSv1.1": False,
        "TLSv1.2": True,
        "TLSv1.3": False,
    }
    assert posture["cipher_suites"] == {
        "TLSv1.2": [
            {
                "code": "0xC02B",
                "name": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "class": "recommended",
            },
            {"code": "0xC00A", "name": "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "class": "weak"},
        ]
    }
    assert posture["server_cipher_order"] is True
    assert posture["grade"] == "A"
    assert posture["mozilla"] == {"modern": False, "intermediate": False}
    findings = {(f["rule"], f["severity"], f["control"]) for f in posture["findings"]}
    assert findings == {("cipher_weak", "warning", "CC6.7")}


def test_scan_enumerate_table_and_policy_from_config(pki: TestPKI, tmp_path: Path) -> None:
    leaf = pki.leaf("web.test", days_left=40)
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "policy:\n  min_protocol: TLSv1.3\n  exceptions:\n"
        "    - {target: '*', rule: cipher_weak, owner: web-team, reason: test, expires: 2099-01-01}\n"
    )
    with OpenSSLServer(
        leaf.cert, leaf.key, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA", chain=leaf.chain
    ) as srv:
        res = subprocess.run(
            [
                *SCAN,
                "--enumerate",
                "--config.file",
                str(cfg),
                "--ca-file",
                str(pki.ca_file),
                "--sni",
                "web.test",
                srv.address,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert res.returncode == 0, res.stderr
    assert "protocols: SSLv2- SSLv3- TLSv1.0- TLSv1.1- TLSv1.2+ TLSv1.3-" in res.stdout
    assert "0xC00A TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA" in res.stdout
    assert "finding:  protocol_deprecated [warning, CC6.7] accepts TLSv1.2" in res.stdout
    assert "cipher_weak" not in res.stdout  # waived by the exception
    assert "grade:    B" in res.stdout  # no AEAD suite caps at B


async def test_exporter_exposes_posture_after_enumeration(
    pki: TestPKI, tmp_path: Path, app_client: StartApp
) -> None:
    leaf = pki.leaf("web.test", days_left=40)
    with OpenSSLServer(leaf.cert, leaf.key, "-tls1_3", chain=leaf.chain) as srv:
        cfg = tmp_path / "c.yml"
        cfg.write_text(
            f"targets:\n  - {{address: {srv.address}, name: web, sni: web.test, ca_file: {pki.ca_file},"
            " enumerate_interval: 1h, labels: {owner: web-team}}\n"
            "policy:\n  exceptions:\n"
            "    - {target: legacy, rule: protocol_deprecated, owner: o, reason: r, expires: 2030-01-31}\n"
        )
        client = await app_client(cfg)
        text = ""
        for _ in range(100):
            text = await (await client.get("/metrics")).text()
            if "certscope_tls_grade_info" in text:
                break
            await asyncio.sleep(0.1)
    web = {"source": "web", "owner": "web-team"}
    assert find(text, "certscope_tls_protocol_supported", **web, protocol="TLSv1.3") == [1]
    assert find(text, "certscope_tls_protocol_supported", **web, protocol="TLSv1.2") == [0]
    suites = find(
        text,
        "certscope_tls_cipher_suite_supported",
        **web,
        protocol="TLSv1.3",
        **{"class": "recommended"},
    )
    assert len(suites) == 3
    assert find(text, "certscope_tls_grade_info", **web, grade="A") == [1]
    assert find(text, "certscope_tls_mozilla_profile_conformant", **web, profile="modern") == [1]
    assert find(text, "certscope_tls_scan_complete", **web) == [1]
    assert find(text, "certscope_tls_scan_interval_seconds", **web) == [3600]
    assert find(text, "certscope_tls_scan_last_success_timestamp_seconds", **web)
    assert find(text, "certscope_policy_violation", **web) == []
    expiry = find(
        text,
        "certscope_policy_exception_expiry_timestamp_seconds",
        target="legacy",
        rule="protocol_deprecated",
    )
    assert expiry == [1896134399]  # 2030-01-31T23:59:59Z
