"""The ssh_authorized_keys source on real files: every key type, options, certificates,
malformed lines, CRLF, people files, first-seen state, and 10,000 keys."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from certscope.config import SSHKeysSource
from certscope.inventory import rows
from certscope.results import SourceResult, StoredKey
from certscope.sources import reader_for
from certscope.sources.ssh_keys import SSHKeysReader, account_for
from certscope.ssh import wire
from certscope.ssh.authorized_keys import parse_options
from helpers.sshservers import keygen, keygen_fingerprint


def make_key(d: Path, name: str, *args: str) -> tuple[str, str]:
    """(type, base64) of a key made by ssh-keygen."""
    keygen(*args, "-N", "", "-C", name, "-f", str(d / name))
    t, b64 = (d / f"{name}.pub").read_text().split()[:2]
    return t, b64


def sk_key() -> tuple[str, str]:
    """A FIDO security-key public key (sk-ssh-ed25519): ssh-keygen needs a token to make one,
    so the public blob is written from its format (PROTOCOL.u2f)."""
    blob = (
        wire.string(b"sk-ssh-ed25519@openssh.com")
        + wire.string(os.urandom(32))
        + wire.string(b"ssh:")
    )
    return "sk-ssh-ed25519@openssh.com", base64.b64encode(blob).decode()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    d = tmp_path_factory.mktemp("userkeys")
    return {
        "ed25519": make_key(d, "ed25519", "-t", "ed25519"),
        "ecdsa256": make_key(d, "ecdsa256", "-t", "ecdsa", "-b", "256"),
        "ecdsa384": make_key(d, "ecdsa384", "-t", "ecdsa", "-b", "384"),
        "ecdsa521": make_key(d, "ecdsa521", "-t", "ecdsa", "-b", "521"),
        "rsa2048": make_key(d, "rsa2048", "-t", "rsa", "-b", "2048"),
        "rsa4096": make_key(d, "rsa4096", "-t", "rsa", "-b", "4096"),
        "dsa": make_key(d, "dsa", "-t", "dsa"),
        "ca": make_key(d, "ca", "-t", "ed25519"),
        "sk": sk_key(),
    }


def refresh(source: SSHKeysSource) -> SourceResult:
    return asyncio.run(reader_for(source).refresh(None))


def by_location(result: SourceResult) -> dict[str, StoredKey]:
    return {k.location: k for k in result.keys}


def write_home(root: Path, keys: dict[str, tuple[str, str]]) -> Path:
    k = {name: f"{t} {b}" for name, (t, b) in keys.items()}
    lines = [
        "# managed by hand",
        f"{k['ed25519']} alice@laptop",
        f'from="10.0.0.0/8,192.168.1.1",no-pty,command="/usr/bin/backup --token=S3CRET" {k["rsa4096"]} backup',
        f"cert-authority {k['ca']} open-ca",
        f'cert-authority,principals="alice",expiry-time="20301231" {k["ca"]} restricted-ca',
        f'environment="TOKEN=S3CRET two",expiry-time="202001011200Z" {k["ecdsa256"]} expired',
        f"{k['ecdsa384']}",
        f"{k['ecdsa521']} p521",
        f"{k['rsa2048']} rsa2048",
        f"{k['dsa']} old-dsa",
        f"{k['sk']} yubikey",
        "ssh-ed25519 !!!notbase64 broken",
        f"ssh-rsa {keys['ed25519'][1]} says-rsa-is-ed25519",
        f'command="unterminated {k["ed25519"]}',
        "",
    ]
    path = root / "home" / "alice" / ".ssh" / "authorized_keys"
    path.parent.mkdir(parents=True)
    path.write_bytes("\r\n".join(lines).encode())  # CRLF, as a file edited on Windows
    return path


def test_every_key_type_options_and_malformed_lines(
    tmp_path: Path, keys: dict[str, tuple[str, str]]
) -> None:
    path = write_home(tmp_path, keys)
    result = refresh(SSHKeysSource("hosts", (str(tmp_path / "home/*/.ssh/authorized_keys"),)))
    assert result.up
    found = by_location(result)
    p = str(path)
    assert sorted(found) == sorted(f"{p}:{n}" for n in range(2, 12))
    algos = {loc.rsplit(":", 1)[1]: (k.algorithm, k.bits) for loc, k in found.items()}
    assert algos == {
        "2": ("ssh-ed25519", 256),
        "3": ("ssh-rsa", 4096),
        "4": ("ssh-ed25519", 256),
        "5": ("ssh-ed25519", 256),
        "6": ("ecdsa-sha2-nistp256", 256),
        "7": ("ecdsa-sha2-nistp384", 384),
        "8": ("ecdsa-sha2-nistp521", 521),
        "9": ("ssh-rsa", 2048),
        "10": ("ssh-dss", 1024),
        "11": ("sk-ssh-ed25519@openssh.com", 256),
    }
    first = dict(found[f"{p}:2"].attributes)
    assert first["account"] == "alice"
    assert first["comment"] == "alice@laptop"
    assert first["fingerprint_sha256"] == keygen_fingerprint(*keys["ed25519"])
    assert first["cert_authority"] == "false"
    backup = dict(found[f"{p}:3"].attributes)
    assert backup["options"] == "from,no-pty,command"
    assert backup["from"] == "10.0.0.0/8,192.168.1.1"
    assert "S3CRET" not in repr(result)  # command= and environment= values are never kept
    assert dict(found[f"{p}:4"].attributes)["cert_authority"] == "true"
    restricted = dict(found[f"{p}:5"].attributes)
    assert (restricted["principals"], restricted["expiry_time"]) == ("alice", "20301231")
    assert found[f"{p}:6"].not_after == 1577880000.0  # 2020-01-01 12:00 UTC
    errors = {e.location: e.reason for e in result.errors}
    assert errors == {f"{p}:12": "unparseable", f"{p}:13": "unparseable", f"{p}:14": "unparseable"}
    messages = " ".join(e.message for e in result.errors)
    assert keys["ed25519"][1] not in messages  # no key material in error messages


def test_inventory_rows_for_ssh_keys(tmp_path: Path, keys: dict[str, tuple[str, str]]) -> None:
    from datetime import UTC, datetime

    write_home(tmp_path, keys)
    result = refresh(SSHKeysSource("hosts", (str(tmp_path / "home/*/.ssh/authorized_keys"),)))
    items = list(rows([], [result], datetime.now(UTC)))
    assert {r["kind"] for r in items} == {"ssh_authorized_key", "error"}
    # the malformed lines are error rows at their place, as for certificate files
    assert {r["location"] for r in items if r["kind"] == "error"} == {
        e.location for e in result.errors
    }
    row = next(r for r in items if r["location"].endswith(":2"))
    assert row["source_kind"] == "ssh_authorized_keys"
    assert row["key_algorithm"] == "ssh-ed25519"
    assert row["attributes"]["account"] == "alice"
    assert row["not_before"] is not None  # first seen


def test_people_file_by_fingerprint_and_comment(
    tmp_path: Path, keys: dict[str, tuple[str, str]]
) -> None:
    write_home(tmp_path, keys)
    people = tmp_path / "people.yml"
    people.write_text(
        json.dumps(
            [
                {
                    "person": "Alice",
                    "status": "active",
                    "keys": [keygen_fingerprint(*keys["ed25519"])],
                },
                {"person": "Bob", "status": "departed", "keys": ["backup"]},
            ]
        )
    )
    src = SSHKeysSource(
        "hosts", (str(tmp_path / "home/*/.ssh/authorized_keys"),), people=str(people)
    )
    found = {k.location.rsplit(":", 1)[1]: k for k in refresh(src).keys}
    assert dict(found["2"].labels) == {"owner": "Alice"}
    assert dict(found["2"].attributes)["owner_status"] == "active"
    assert dict(found["3"].labels) == {"owner": "Bob"}
    assert dict(found["3"].attributes)["owner_status"] == "departed"
    assert found["9"].labels == ()
    assert dict(found["9"].attributes)["owner_status"] == "unknown"


def test_people_csv(tmp_path: Path, keys: dict[str, tuple[str, str]]) -> None:
    write_home(tmp_path, keys)
    people = tmp_path / "people.csv"
    people.write_text("person,status,key\nCarol,departed,old-dsa\n")
    src = SSHKeysSource(
        "hosts", (str(tmp_path / "home/*/.ssh/authorized_keys"),), people=str(people)
    )
    found = {k.location.rsplit(":", 1)[1]: k for k in refresh(src).keys}
    assert dict(found["10"].labels) == {"owner": "Carol"}


def test_a_broken_people_file_fails_the_refresh_and_keeps_the_last_keys(
    tmp_path: Path, keys: dict[str, tuple[str, str]]
) -> None:
    write_home(tmp_path, keys)
    people = tmp_path / "people.yml"
    people.write_text("- {person: Alice, status: active, keys: [x]}\n")
    src = SSHKeysSource(
        "hosts", (str(tmp_path / "home/*/.ssh/authorized_keys"),), people=str(people)
    )
    reader = SSHKeysReader(src)
    good = asyncio.run(reader.refresh(None))
    assert good.up
    people.write_text("- {person: Alice, status: retired, keys: [x]}\n")
    bad = asyncio.run(reader.refresh(good))
    assert not bad.up
    assert bad.error_reason == "people_or_state"
    assert "status must be active or departed" in bad.error
    assert bad.keys == good.keys


def test_first_seen_survives_restarts_and_line_moves(
    tmp_path: Path, keys: dict[str, tuple[str, str]]
) -> None:
    path = tmp_path / "root" / ".ssh" / "authorized_keys"
    path.parent.mkdir(parents=True)
    a, b = (" ".join(keys[n]) for n in ("ed25519", "rsa2048"))
    path.write_text(f"{a} a\n{b} b\n")
    state = tmp_path / "state.json"
    src = SSHKeysSource("hosts", (str(path),), state_file=str(state))
    first = {dict(k.attributes)["comment"]: k.created for k in refresh(src).keys}
    assert json.loads(state.read_text())["version"] == 1
    time.sleep(0.05)
    path.write_text(f"{b} b\n")  # a removed: b moves to line 1
    second = refresh(src)  # a new reader: as after a restart
    (kb,) = second.keys
    assert kb.location == f"{path}:1"
    assert kb.created == first["b"]
    assert dict(kb.attributes)["account"] == "root"
    path.write_text(f"{a} a\n{b} b\n")  # a comes back: new again
    third = {dict(k.attributes)["comment"]: k.created for k in refresh(src).keys}
    assert third["a"] is not None and first["a"] is not None
    assert third["a"] > first["a"]
    assert third["b"] == first["b"]


def test_user_certificates_and_trusted_ca_keys(tmp_path: Path) -> None:
    keygen("-t", "ed25519", "-N", "", "-C", "user-ca", "-f", str(tmp_path / "ca"))
    keygen("-t", "ed25519", "-N", "", "-C", "alice", "-f", str(tmp_path / "id_ed25519"))
    keygen(
        "-s", str(tmp_path / "ca"), "-I", "alice@corp", "-n", "alice,admin",
        "-V", "20260101:20270101", "-z", "9", str(tmp_path / "id_ed25519.pub"),
    )  # fmt: skip
    (tmp_path / "bad-cert.pub").write_text("ssh-ed25519-cert-v01@openssh.com AAAA broken\n")
    src = SSHKeysSource(
        "certs",
        (),
        certificate_paths=(str(tmp_path / "*-cert.pub"),),
        ca_key_paths=(str(tmp_path / "ca.pub"),),
    )
    result = refresh(src)
    kinds = {k.kind: k for k in result.keys}
    cert = kinds["ssh_user_certificate"]
    attrs = dict(cert.attributes)
    assert attrs["key_id"] == "alice@corp"
    assert attrs["principals"] == "alice,admin"
    assert attrs["serial"] == "9"
    assert attrs["certificate_type"] == "user"
    assert attrs["signature_valid"] == "true"
    assert cert.not_after is not None and cert.created is not None
    assert cert.not_after - cert.created == 365 * 86400
    ca = kinds["ssh_ca_key"]
    assert dict(ca.attributes)["comment"] == "user-ca"
    assert [(e.location, e.reason) for e in result.errors] == [
        (f"{tmp_path / 'bad-cert.pub'}:1", "unparseable")
    ]


def test_ten_thousand_keys(tmp_path: Path) -> None:
    lines = []
    for i in range(10_000):
        raw = (
            ed25519.Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        )
        lines.append(raw.decode() + f" user{i}@example.com")
    path = tmp_path / "etc" / "ssh" / "authorized_keys" / "deploy"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    result = refresh(SSHKeysSource("bulk", (str(path),), state_file=str(tmp_path / "s.json")))
    elapsed = time.perf_counter() - started
    assert len(result.keys) == 10_000
    assert result.errors == ()
    assert {dict(k.attributes)["account"] for k in result.keys} == {"deploy"}
    assert len({k.public_key_sha256 for k in result.keys}) == 10_000
    assert elapsed < 20  # generous for a shared machine; docs/benchmarks.md has the figure


@pytest.mark.parametrize(
    ("path", "account"),
    [
        ("/home/alice/.ssh/authorized_keys", "alice"),
        ("/root/.ssh/authorized_keys2", "root"),
        ("/etc/ssh/authorized_keys/bob", "bob"),
        ("/var/lib/git/.ssh/authorized_keys", "git"),
    ],
)
def test_account_from_path(path: str, account: str) -> None:
    assert account_for(path) == account


@pytest.mark.parametrize(
    ("text", "options", "rest"),
    [
        ("no-pty ssh-ed25519 AAAA c", [("no-pty", None)], "ssh-ed25519 AAAA c"),
        (
            'from="a,b",command="echo \\"hi, there\\"" ssh-rsa X',
            [("from", "a,b"), ("command", 'echo "hi, there"')],
            "ssh-rsa X",
        ),
        ("Restrict,PTY\tssh-ed25519 K", [("restrict", None), ("pty", None)], "ssh-ed25519 K"),
    ],
)
def test_options_grammar(text: str, options: list[tuple[str, str | None]], rest: str) -> None:
    assert parse_options(text) == (options, rest)


@pytest.mark.parametrize("bad", ['command="x', "from=x ssh-rsa K", ",no-pty ssh-rsa K", "a;b K"])
def test_bad_options(bad: str) -> None:
    with pytest.raises(ValueError, match="option"):
        parse_options(bad)
