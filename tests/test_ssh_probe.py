"""The SSH probe against real servers (OpenSSH's sshd and Dropbear), compared in the same run
with ssh-audit and ssh-keyscan; hand-written servers only for what a real one cannot show."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from certscope.config import Target, TLSOptions
from certscope.errors import ProbeFailure
from certscope.ssh import wire
from certscope.ssh.model import SSHScan
from certscope.ssh.probe import plan_host_keys, probe_target, scan
from helpers.promserver import binary
from helpers.servers import (
    Connection,
    Server,
    garbage_server,
    hangup_server,
    http_server,
    silent_server,
)
from helpers.sshservers import (
    STRONG,
    WEAK,
    DropbearServer,
    HostKeys,
    OpenSSHServer,
    keygen_fingerprint,
)

STRONG_KEYS = ("ed25519", "ecdsa", "rsa")


@pytest.fixture(scope="module")
def strong(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OpenSSHServer, HostKeys]]:
    d = tmp_path_factory.mktemp("strong")
    keys = HostKeys.generate(d / "keys", STRONG_KEYS, certify=("ed25519", "rsa"))
    with OpenSSHServer(d, keys, STRONG) as srv:
        yield srv, keys


@pytest.fixture(scope="module")
def weak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OpenSSHServer, HostKeys]]:
    d = tmp_path_factory.mktemp("weak")
    keys = HostKeys.generate(d / "keys", ("rsa1024", "dsa", "ecdsa"))
    with OpenSSHServer(d, keys, WEAK) as srv:
        yield srv, keys


@pytest.fixture(scope="module")
def dropbear(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DropbearServer]:
    with DropbearServer(tmp_path_factory.mktemp("dropbear")) as srv:
        yield srv


def run_scan(host: str, port: int) -> SSHScan:
    return asyncio.run(scan(host, port))


def ssh_audit(host: str, port: int) -> dict[str, object]:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ssh-audit"), "-j", "-p", str(port), host],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


def names(entries: object) -> list[str]:
    assert isinstance(entries, list)
    return [e["algorithm"] if isinstance(e, dict) else e for e in entries]


def keyscan_fingerprints(host: str, port: int, certs: bool = False) -> dict[str, str]:
    """blob type -> SHA256 fingerprint, from ssh-keyscan and ssh-keygen -l."""
    args = [binary("ssh-keyscan", "openssh-client"), "-p", str(port)]
    args += ["-t", "ed25519,ecdsa,rsa,dsa", *(["-c"] if certs else []), host]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=True).stdout
    found = {}
    for line in out.splitlines():
        # "host type key", or with -c (certificates) "type key"
        blob_type, b64 = line.split()[1:3] if not certs else line.split()[:2]
        fp = keygen_fingerprint(blob_type, b64)
        found[blob_type] = fp
    return found


def scan_and_audit(host: str, port: int) -> tuple[SSHScan, dict[str, object]]:
    """certscope's scan and ssh-audit's, with the lists both report checked equal."""
    result = run_scan(host, port)
    assert result.error is None, result.error
    info = result.info
    assert info is not None
    audit = ssh_audit(host, port)
    assert list(info.kex) == names(audit["kex"])
    assert list(info.ciphers) == names(audit["enc"])
    assert list(info.macs) == names(audit["mac"])
    assert sorted(info.compression) == sorted(names(audit["compression"]))
    # ssh-audit lists only the host-key algorithms it could fetch a key for
    assert set(names(audit["key"])) <= set(info.host_key_algorithms)
    return result, audit


def test_strong_openssh_algorithms_match_ssh_audit(strong: tuple[OpenSSHServer, HostKeys]) -> None:
    srv, _ = strong
    result, audit = scan_and_audit(srv.host, srv.port)
    assert result.info is not None
    banner = audit["banner"]
    assert isinstance(banner, dict)
    assert result.info.banner == banner["raw"]
    assert result.info.software == banner["software"]
    assert result.info.compression == tuple(names(audit["compression"]))
    assert result.info.kex[0] == "sntrup761x25519-sha512@openssh.com"  # what STRONG configured


def test_strong_openssh_host_keys_match_ssh_keyscan(strong: tuple[OpenSSHServer, HostKeys]) -> None:
    srv, _ = strong
    result = run_scan(srv.host, srv.port)
    got = {
        k.facts.blob_type: k.facts.fingerprint_sha256
        for k in result.host_keys
        if k.facts is not None and k.facts.certificate is None
    }
    expected = keyscan_fingerprints(srv.host, srv.port)
    assert {"ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"} == set(expected)
    assert got == expected
    assert all(k.error == "" for k in result.host_keys)
    # every key proved itself: the signature over the exchange hash verified
    sigs = {k.algorithm: k.signature_algorithm for k in result.host_keys}
    assert sigs["rsa-sha2-512"] == "rsa-sha2-512"
    assert sigs["ssh-ed25519"] == "ssh-ed25519"
    # one connection per key: ed25519, its certificate, ecdsa, RSA, the RSA certificate
    assert result.connections == 5


def test_host_certificates_match_ssh_keygen(strong: tuple[OpenSSHServer, HostKeys]) -> None:
    srv, keys = strong
    result = run_scan(srv.host, srv.port)
    certs = {k.algorithm: k.facts for k in result.host_keys if k.facts and k.facts.certificate}
    assert set(certs) == {"ssh-ed25519-cert-v01@openssh.com", "rsa-sha2-512-cert-v01@openssh.com"}
    facts = certs["ssh-ed25519-cert-v01@openssh.com"]
    assert facts is not None and facts.certificate is not None
    c = facts.certificate
    listing = subprocess.run(
        [binary("ssh-keygen", "openssh-client"), "-L", "-f", str(keys.certs["ed25519"])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Type: ssh-ed25519-cert-v01@openssh.com host certificate" in listing
    assert f'Key ID: "{c.key_id}"' in listing
    assert f"Serial: {c.serial}" in listing
    assert f"Signing CA: ED25519 {c.ca_fingerprint_sha256}" in listing
    assert c.principals == ("localhost", "127.0.0.1")
    assert c.type == "host"
    assert c.signature_valid
    assert c.valid_before is not None and c.valid_after is not None
    assert 29 * 86400 < c.valid_before - c.valid_after - 86400 < 31 * 86400
    # the certified key is the plain host key, as ssh-keygen -l shows it
    plain = keyscan_fingerprints(srv.host, srv.port)["ssh-ed25519"]
    assert facts.fingerprint_sha256 == plain
    keyscan_certs = keyscan_fingerprints(srv.host, srv.port, certs=True)
    assert keyscan_certs["ssh-ed25519-cert-v01@openssh.com"] == plain


def test_weak_openssh_dsa_rsa1024_and_legacy_algorithms(
    weak: tuple[OpenSSHServer, HostKeys],
) -> None:
    srv, _ = weak
    result, _ = scan_and_audit(srv.host, srv.port)
    info = result.info
    assert info is not None
    assert "diffie-hellman-group1-sha1" in info.kex and "3des-cbc" in info.ciphers
    bits = {k.facts.blob_type: k.facts.bits for k in result.host_keys if k.facts}
    assert bits == {"ssh-rsa": 1024, "ssh-dss": 1024, "ecdsa-sha2-nistp256": 256}
    got = {k.facts.blob_type: k.facts.fingerprint_sha256 for k in result.host_keys if k.facts}
    assert got == keyscan_fingerprints(srv.host, srv.port)


def test_dropbear_matches_ssh_audit_and_ssh_keyscan(dropbear: DropbearServer) -> None:
    result, _ = scan_and_audit(dropbear.host, dropbear.port)
    info = result.info
    assert info is not None and info.software.startswith("dropbear_")
    assert info.product_version is not None and info.product_version[0] == "dropbear"
    got = {k.facts.blob_type: k.facts.fingerprint_sha256 for k in result.host_keys if k.facts}
    assert got == keyscan_fingerprints(dropbear.host, dropbear.port)


@pytest.mark.parametrize(
    "method",
    [
        "curve25519-sha256@libssh.org",
        "ecdh-sha2-nistp256",
        "ecdh-sha2-nistp384",
        "ecdh-sha2-nistp521",
        "diffie-hellman-group14-sha256",
        "diffie-hellman-group16-sha512",
        "diffie-hellman-group18-sha512",
        "diffie-hellman-group14-sha1",
        "diffie-hellman-group1-sha1",
    ],
)
def test_every_key_exchange_method_verifies_against_sshd(tmp_path: Path, method: str) -> None:
    keys = HostKeys.generate(tmp_path / "keys", ("ed25519", "rsa2048"))
    with OpenSSHServer(tmp_path, keys, {"KexAlgorithms": method}) as srv:
        result = run_scan(srv.host, srv.port)
    assert result.error is None, result.error
    assert {k.kex for k in result.host_keys} == {method}
    assert all(k.signature_algorithm for k in result.host_keys)


def test_only_unsupported_key_exchange(tmp_path: Path) -> None:
    keys = HostKeys.generate(tmp_path / "keys", ("ed25519",))
    kex = {"KexAlgorithms": "sntrup761x25519-sha512@openssh.com"}
    with OpenSSHServer(tmp_path, keys, kex) as srv:
        result = run_scan(srv.host, srv.port)
    assert result.info is not None  # the algorithms are still reported
    assert result.error is not None
    assert result.error.reason is ProbeFailure.SSH_KEX_UNSUPPORTED
    assert result.host_keys == ()


def test_closed_port() -> None:
    srv = silent_server().start()
    port = srv.port
    srv.close()
    result = run_scan("127.0.0.1", port)
    assert result.error is not None
    assert result.error.reason is ProbeFailure.CONNECT_REFUSED


def test_connect_error_other_than_refused() -> None:
    # Linux refuses a TCP connect to the limited broadcast address at once (ENETUNREACH).
    result = run_scan("255.255.255.255", 22)
    assert result.error is not None
    assert result.error.reason is ProbeFailure.CONNECT_ERROR
    assert "cannot connect to 255.255.255.255 port 22" in result.error.message


@pytest.mark.parametrize("make", [http_server, garbage_server])
def test_not_ssh(make: object) -> None:
    assert callable(make)
    with make() as srv:
        result = run_scan(srv.host, srv.port)
    assert result.error is not None
    assert result.error.reason is ProbeFailure.NOT_SSH
    assert result.info is None


def test_silent_server_times_out() -> None:
    with silent_server() as srv:
        target = Target("silent", srv.host, srv.port, TLSOptions(timeout=0.5), 5.0, protocol="ssh")
        r = asyncio.run(probe_target(target, last_success=123.0))
    assert r.scan.error is not None
    assert r.scan.error.reason is ProbeFailure.TIMEOUT
    assert not r.success
    assert r.last_success == 123.0  # carried, not reset


def test_ssh1_only_server() -> None:
    # No packaged server speaks SSH-1 any more: a hand-written one says so.
    with garbage_server(b"SSH-1.5-OldServer\r\n") as srv:
        result = run_scan(srv.host, srv.port)
    assert result.error is not None
    assert result.error.reason is ProbeFailure.SSH_VERSION


# What real servers do only on conditions a test cannot set up on cue (a ban, an overload, a
# bug), so hand-written servers send it.
_IDENT = b"SSH-2.0-Scripted_1.0\r\n"
_DISCONNECT = wire.build_packet(wire.build_disconnect(7, "too many\x07"))


@pytest.mark.parametrize(
    ("sent", "reason", "message"),
    [
        (
            _IDENT + _DISCONNECT,
            ProbeFailure.SSH_DISCONNECT,
            "server disconnected (code 7): too many?",
        ),
        (
            _IDENT + b"\xff\xff\xff\xf0" + bytes(12),
            ProbeFailure.SSH_PROTOCOL_ERROR,
            "packet_too_large",
        ),
        # The server closes while certscope's KEXINIT is on its way: the client reads an
        # end of stream or, as often, a reset. Either is the server going away, never an
        # internal error.
        (_IDENT, ProbeFailure.CONNECTION_CLOSED, "connection"),
    ],
    ids=["disconnect", "packet-too-large", "closed-after-identification"],
)
def test_server_gives_up_after_its_identification(
    sent: bytes, reason: ProbeFailure, message: str
) -> None:
    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, c: Connection) -> None:
        w.write(sent)
        await w.drain()
        w.close()

    with Server(handler) as srv:
        result = run_scan(srv.host, srv.port)
    assert result.error is not None
    assert result.error.reason is reason
    assert message in result.error.message
    assert result.host_keys == ()


def test_server_resets_the_connection() -> None:
    """A TCP reset instead of an identification (a crashed server, a firewall): the server
    went away, ``connection_closed``, not an internal error with a traceback."""
    with hangup_server(reset=True) as srv:
        result = run_scan(srv.host, srv.port)
    assert result.error is not None
    assert result.error.reason is ProbeFailure.CONNECTION_CLOSED
    assert result.error.message == "connection lost: Connection reset by peer"


def forging_server(
    signer: ed25519.Ed25519PrivateKey, presented: ed25519.Ed25519PrivateKey
) -> Server:
    """Presents ``presented``'s public key but signs with ``signer``: what a server that does
    not hold its host key (or a man in the middle replaying one) looks like. Hand-written:
    no real server can be made to do this."""
    blob = wire.string(b"ssh-ed25519") + wire.string(
        presented.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    )

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, c: Connection) -> None:
        w.write(b"SSH-2.0-Forger_1.0\r\n")
        kexinit = wire.build_kexinit(
            ["curve25519-sha256"], ["ssh-ed25519"], ["aes128-ctr"], ["hmac-sha2-256"]
        )
        w.write(wire.build_packet(kexinit))
        await r.readline()
        await r.read(65536)  # the client's KEXINIT and KEX_ECDH_INIT
        sig = wire.string(b"ssh-ed25519") + wire.string(signer.sign(b"not the exchange hash"))
        reply = bytes([31]) + wire.string(blob) + wire.string(b"\x09" * 32) + wire.string(sig)
        w.write(wire.build_packet(reply))
        await w.drain()
        await r.read(65536)

    return Server(handler)


def test_forged_host_key_signature_is_an_error() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    with forging_server(ed25519.Ed25519PrivateKey.generate(), key) as srv:
        result = run_scan(srv.host, srv.port)
    assert result.error is not None
    assert result.error.reason is ProbeFailure.SSH_HOST_KEY_INVALID
    (hk,) = result.host_keys
    assert hk.facts is not None  # the key is reported, with what is wrong with it
    assert "does not verify" in hk.error


def test_plan_groups_rsa_signature_variants() -> None:
    plan, notes = plan_host_keys(
        [
            "rsa-sha2-256",
            "ssh-ed25519",
            "ssh-rsa",
            "rsa-sha2-512",
            "x509v3-ssh-rsa",
            "ssh-rsa-cert-v01@openssh.com",
        ]
    )
    assert plan == ("ssh-ed25519", "rsa-sha2-512", "ssh-rsa-cert-v01@openssh.com")
    assert notes == ("host-key algorithm x509v3-ssh-rsa is not fetched (no verifier)",)
