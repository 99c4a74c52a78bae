"""SSH end to end: ``certscope serve`` with an SSH target (a real sshd) and an
ssh_authorized_keys source; ``certscope scan ssh://`` and ``certscope inventory``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from helpers.exporter import Exporter
from helpers.sshservers import WEAK, HostKeys, OpenSSHServer, keygen


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSSHServer]:
    d = tmp_path_factory.mktemp("e2e-sshd")
    keys = HostKeys.generate(
        d / "keys", ("ed25519", "rsa1024"), certify=("ed25519",), validity="-1d:+10d"
    )
    with OpenSSHServer(d, keys, WEAK) as srv:
        yield srv


def write_config(tmp_path: Path, sshd: OpenSSHServer) -> Path:
    home = tmp_path / "home" / "bob" / ".ssh"
    home.mkdir(parents=True)
    keygen("-t", "ed25519", "-N", "", "-C", "bob@old-laptop", "-f", str(tmp_path / "bob"))
    (home / "authorized_keys").write_text((tmp_path / "bob.pub").read_text())
    people = tmp_path / "people.yml"
    people.write_text("- {person: Bob, status: departed, keys: [bob@old-laptop]}\n")
    config = {
        "targets": [
            {"address": sshd.address, "protocol": "ssh", "name": "bastion", "timeout": "5s"}
        ],
        "sources": [
            {
                "name": "hosts",
                "kind": "ssh_authorized_keys",
                "paths": [str(tmp_path / "home/*/.ssh/authorized_keys")],
                "people": str(people),
                "state_file": str(tmp_path / "ssh-state.json"),
            }
        ],
        "policy": {"ssh": {"min_versions": {"OpenSSH": "9.6"}}},
    }
    path = tmp_path / "certscope.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def certscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "certscope.cli", *args], capture_output=True, text=True, timeout=60
    )


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode())


def test_serve_exposes_ssh_posture_keys_and_findings(tmp_path: Path, sshd: OpenSSHServer) -> None:
    config = write_config(tmp_path, sshd)
    with Exporter(config, tmp_path / "exporter.log") as exp:
        metrics = get(f"{exp.url}/metrics")
        deadline = time.monotonic() + 20
        while "certscope_ssh_host_key_info" not in metrics and time.monotonic() < deadline:
            time.sleep(0.2)
            metrics = get(f"{exp.url}/metrics")
        inventory = json.loads(get(f"{exp.url}/inventory"))
    base = f'source_kind="ssh",source="bastion",location="{sshd.address}"'
    assert f"certscope_probe_success{{{base}}} 1" in metrics
    assert (
        f'certscope_ssh_algorithm_supported{{{base},kind="cipher",algorithm="3des-cbc",class="broken"}} 1'
        in metrics
    )
    assert f'certscope_ssh_host_key_info{{{base},algorithm="rsa-sha2-512",bits="1024"' in metrics
    cert_slot = f'certscope_cert_not_after_timestamp_seconds{{source_kind="ssh",source="bastion",location="{sshd.address}#ssh-ed25519-cert-v01@openssh.com"'
    assert cert_slot in metrics
    for rule, severity in [
        ("ssh_cipher_weak", "critical"),
        ("ssh_host_key_weak", "critical"),
        ("ssh_software_outdated", "warning"),
        ("ssh_host_certificate_expiring", "warning"),
    ]:
        assert f'{base},rule="{rule}",severity="{severity}"' in metrics, rule
    departed = (
        'certscope_policy_violation{source_kind="ssh_authorized_keys",source="hosts",location="'
    )
    assert departed in metrics
    assert (
        'owner="Bob",rule="ssh_key_departed_owner",severity="critical",control="CC6.1"} 1'
        in metrics
    )
    assert 'certscope_key_info{source_kind="ssh_authorized_keys",source="hosts"' in metrics
    assert 'owner_status="departed"' in metrics
    kinds = {(row["kind"], row["source_kind"]) for row in inventory}
    assert ("ssh_host_key", "ssh") in kinds
    assert ("ssh_authorized_key", "ssh_authorized_keys") in kinds
    host_cert = next(
        r for r in inventory if r["location"].endswith("#ssh-ed25519-cert-v01@openssh.com")
    )
    assert host_cert["attributes"]["key_id"] == "host-ed25519"
    assert host_cert["not_after"] is not None


def test_scan_ssh_json(sshd: OpenSSHServer) -> None:
    out = certscope("scan", "--format", "json", f"ssh://{sshd.address}")
    assert out.returncode == 0, out.stderr
    (obj,) = json.loads(out.stdout)
    assert obj["ok"] is True
    ssh = obj["ssh"]
    assert ssh["banner"].startswith("SSH-2.0-OpenSSH_")
    assert "3des-cbc" in ssh["ciphers"]
    assert ssh["algorithm_classes"]["cipher"]["3des-cbc"] == "broken"
    keys = {k["algorithm"]: k for k in ssh["host_keys"]}
    assert keys["rsa-sha2-512"]["bits"] == 1024
    cert = keys["ssh-ed25519-cert-v01@openssh.com"]["certificate"]
    assert cert["principals"] == ["localhost", "127.0.0.1"]
    assert cert["serial"] == 42
    assert {f["rule"] for f in obj["findings"]} >= {
        "ssh_kex_weak",
        "ssh_cipher_weak",
        "ssh_mac_weak",
    }


def test_scan_ssh_failure_exit_code_and_usage_errors() -> None:
    from helpers.promserver import free_port

    port = free_port()
    out = certscope("scan", "--format", "json", f"ssh://127.0.0.1:{port}")
    assert out.returncode == 1
    assert json.loads(out.stdout)[0]["error"]["reason"] == "connect_refused"
    mixed = subprocess.run(
        [sys.executable, "-m", "certscope.cli", "scan", "ssh://a:22", "b:443"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert mixed.returncode == 2
    assert "separate runs" in mixed.stderr


def test_inventory_command_lists_ssh_host_keys(tmp_path: Path, sshd: OpenSSHServer) -> None:
    config = write_config(tmp_path, sshd)
    out = certscope("inventory", "--config.file", str(config), "--format", "json")
    assert out.returncode == 0, out.stderr
    items = json.loads(out.stdout)
    host = [r for r in items if r["kind"] == "ssh_host_key"]
    assert {r["attributes"]["host_key_algorithm"] for r in host} == {
        "rsa-sha2-512",
        "ssh-ed25519",
        "ssh-ed25519-cert-v01@openssh.com",
    }
    assert any(r["kind"] == "ssh_authorized_key" and r["owner"] == "Bob" for r in items)
