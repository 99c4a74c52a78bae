"""Private keys in every container format, made by the real tools (keytool, openssl, kubectl),
as inventory records: type, size, encryption, public key hash and the certificate that holds
it; never the key. Also the formats that came with them: PKCS#12 per alias, TRUSTED
CERTIFICATE, DER with a trailing newline, kubeconfig duplicate names and a YAML alias bomb.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certscope import inventory
from certscope.collector import source_fragments
from certscope.config import FilesSource, Policy, Waiver
from certscope.policy import KeyFacts, Rule, assess_stored, private_key_findings
from certscope.results import SourceResult, StoredKey
from certscope.sources.files import FilesReader
from certscope.sources.kubeconfig import MAX_YAML_ALIASES
from helpers.exporter import Exporter
from helpers.pki import TestPKI

STORE_PW = "store-secret-1"
KEY_PW = "key-secret-2"
ENV = "CERTSCOPE_TEST_KEYSTORE_PW"


def _run(*args: str, cwd: Path) -> None:
    assert shutil.which(args[0]), f"{args[0]} is missing: run scripts/install-system-deps.sh"
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=120)


@pytest.fixture(autouse=True)
def _no_env_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)


def _reader(tmp_path: Path, *patterns: str, **kwargs: object) -> FilesReader:
    paths = tuple(str(tmp_path / p) for p in patterns)
    return FilesReader(FilesSource(name="disk", paths=paths, **kwargs))  # type: ignore[arg-type]


def _keys(result: SourceResult, root: Path) -> dict[str, tuple[str, int | None, str, str]]:
    """location (relative) → (algorithm, bits, encrypted, certificate_location (relative))."""
    out = {}
    for k in result.keys:
        attrs = dict(k.attributes)
        cert = attrs["certificate_location"]
        out[k.location.removeprefix(f"{root}/")] = (
            k.algorithm,
            k.bits,
            attrs["encrypted"],
            cert.removeprefix(f"{root}/"),
        )
    return out


def _certs(result: SourceResult, root: Path) -> dict[tuple[str, int], tuple[str, bool | None]]:
    return {
        (c.location.removeprefix(f"{root}/"), c.position): (c.facts.subject_cn, c.key_matches)
        for c in result.certs
    }


def _key_body_lines(*paths: Path) -> list[str]:
    """Lines of base64 from the middle of each PEM key: none may appear in any output."""
    lines: list[str] = []
    for p in paths:
        body = [ln for ln in p.read_text().splitlines() if ln and not ln.startswith("-----")]
        lines += [ln for ln in body if ":" not in ln][1:3]
    return lines


def _assert_no_key_material(result: SourceResult, *key_files: Path) -> None:
    text = "".join(line for lines in source_fragments(result).values() for line in lines)
    rows = json.dumps(list(inventory.rows([], [result], datetime.now(UTC))))
    for secret in _key_body_lines(*key_files):
        assert secret not in text and secret not in rows and secret not in repr(result)
    assert "PRIVATE KEY" not in text and "PRIVATE KEY" not in rows


# --- PEM and DER keys (openssl) ---------------------------------------------------------------


async def test_pem_and_der_keys_plain_and_encrypted(tmp_path: Path, rsa_pki: TestPKI) -> None:
    leaf = rsa_pki.leaf("web.test", key="rsa")
    key = tmp_path / "src.key"
    key.write_bytes(leaf.key.read_bytes())
    (tmp_path / "tls.crt").write_bytes(leaf.cert.read_bytes())
    shutil.copy(key, tmp_path / "tls.key")  # the sibling of tls.crt, PKCS#8
    _run("openssl", "pkey", "-in", "src.key", "-traditional", "-out", "rsa1.pem", cwd=tmp_path)
    _run(
        "openssl", "pkey", "-in", "src.key", "-traditional", "-aes256",
        "-passout", "pass:pw", "-out", "legacy-enc.pem", cwd=tmp_path,
    )  # fmt: skip
    _run(
        "openssl", "pkcs8", "-topk8", "-in", "src.key", "-v2", "aes256",
        "-passout", "pass:pw", "-out", "pkcs8-enc.pem", cwd=tmp_path,
    )  # fmt: skip
    _run("openssl", "pkey", "-in", "src.key", "-outform", "DER", "-out", "plain.der", cwd=tmp_path)
    _run(
        "openssl", "pkcs8", "-topk8", "-in", "src.key", "-outform", "DER",
        "-passout", "pass:pw", "-out", "enc.der", cwd=tmp_path,
    )  # fmt: skip
    key.unlink()
    reader = _reader(tmp_path, "*.crt", "*.pem", "*.der")
    result = await reader.refresh(None)
    assert result.errors == ()
    assert _certs(result, tmp_path) == {("tls.crt", 0): ("web.test", True)}
    spki = result.certs[0].facts.public_key_sha256
    assert _keys(result, tmp_path) == {
        "tls.key": ("RSA", 2048, "false", "tls.crt"),
        "rsa1.pem": ("RSA", 2048, "false", "tls.crt"),  # found by its public key
        "legacy-enc.pem": ("", None, "true", ""),  # Proc-Type: 4,ENCRYPTED: nothing known
        "pkcs8-enc.pem": ("", None, "true", ""),
        "plain.der": ("RSA", 2048, "false", "tls.crt"),
        "enc.der": ("", None, "true", ""),
    }
    assert {k.public_key_sha256 for k in result.keys if k.algorithm} == {spki}
    _assert_no_key_material(result, tmp_path / "tls.key", tmp_path / "rsa1.pem")


async def test_key_with_certificate_in_one_pem_and_an_orphan(tmp_path: Path, pki: TestPKI) -> None:
    leaf = pki.leaf("both.test")
    stray = pki.leaf("stray.test", key="p384")
    (tmp_path / "both.pem").write_bytes(leaf.cert.read_bytes() + leaf.key.read_bytes())
    (tmp_path / "stray.key").write_bytes(stray.key.read_bytes())
    result = await _reader(tmp_path, "*").refresh(None)
    assert _keys(result, tmp_path) == {
        "both.pem": ("EC", 256, "false", "both.pem"),
        "stray.key": ("EC", 384, "false", ""),  # no certificate uses it
    }
    fragments = source_fragments(result)
    assert (
        'certscope_private_key_info{source_kind="files",source="disk",'
        f'location="{tmp_path}/stray.key",key_algorithm="EC",key_bits="384",encrypted="false",'
        f'public_key_sha256="{result.keys[1].public_key_sha256}",certificate_location=""}} 1\n'
    ) in fragments["certscope_private_key_info"]


async def test_trusted_certificate_block_and_der_with_trailing_newline(
    tmp_path: Path, pki: TestPKI
) -> None:
    leaf = pki.leaf("trusted.test")
    (tmp_path / "leaf.pem").write_bytes(leaf.cert.read_bytes())
    _run(
        "openssl", "x509", "-in", "leaf.pem", "-trustout", "-addtrust", "serverAuth",
        "-out", "trusted.pem", cwd=tmp_path,
    )  # fmt: skip
    assert b"BEGIN TRUSTED CERTIFICATE" in (tmp_path / "trusted.pem").read_bytes()
    der = x509.load_pem_x509_certificate(leaf.cert.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    (tmp_path / "leaf.der").write_bytes(der + b"\r\n")
    result = await _reader(tmp_path, "trusted.pem", "leaf.der").refresh(None)
    assert result.errors == ()
    assert _certs(result, tmp_path) == {
        ("trusted.pem", 0): ("trusted.test", None),
        ("leaf.der", 0): ("trusted.test", None),
    }


# --- PKCS#12 (openssl, keytool) ---------------------------------------------------------------


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy-3des-rc2", "aes"])
async def test_openssl_pkcs12_per_alias(
    tmp_path: Path, pki: TestPKI, monkeypatch: pytest.MonkeyPatch, legacy: bool
) -> None:
    leaf = pki.leaf("p12.test")
    (tmp_path / "leaf.pem").write_bytes(leaf.cert.read_bytes())
    (tmp_path / "leaf.key").write_bytes(leaf.key.read_bytes())
    (tmp_path / "ca.pem").write_bytes(
        pki.intermediate.path.read_bytes() + pki.root.path.read_bytes()
    )
    extra = ["-legacy"] if legacy else []
    _run(
        "openssl", "pkcs12", "-export", *extra, "-in", "leaf.pem", "-inkey", "leaf.key",
        "-certfile", "ca.pem", "-name", "web", "-passout", f"pass:{STORE_PW}",
        "-out", "store.p12", cwd=tmp_path,
    )  # fmt: skip
    _run(
        "openssl", "pkcs12", "-export", "-in", "leaf.pem", "-inkey", "leaf.key",
        "-keypbe", "NONE", "-certpbe", "NONE", "-nomac", "-passout", "pass:",
        "-out", "open.p12", cwd=tmp_path,
    )  # fmt: skip
    monkeypatch.setenv(ENV, STORE_PW)
    result = await _reader(tmp_path, "*.p12", password_env=ENV).refresh(None)
    assert result.errors == ()
    certs = _certs(result, tmp_path)
    assert certs[("store.p12#web", 0)] == ("p12.test", True)
    assert ("store.p12#web", 1) in certs and ("store.p12#web", 2) in certs  # the chain
    assert certs[("open.p12", 0)] == ("p12.test", True)  # no -name: the file itself
    assert _keys(result, tmp_path) == {
        "store.p12#web": ("EC", 256, "true", "store.p12#web"),
        "open.p12": ("EC", 256, "false", "open.p12"),  # no password: not encrypted at rest
    }


def _keytool(tmp_path: Path, store: str, storetype: str, alias: str, keypass: str) -> None:
    _run(
        "keytool", "-genkeypair", "-alias", alias, "-keyalg", "RSA", "-keysize", "2048",
        "-dname", f"CN={alias}.test", "-validity", "30", "-keystore", store,
        "-storetype", storetype, "-storepass", STORE_PW, "-keypass", keypass, cwd=tmp_path,
    )  # fmt: skip


async def test_keytool_pkcs12_several_aliases_and_a_trusted_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for alias in ("web", "api"):
        _keytool(tmp_path, "ks.p12", "PKCS12", alias, STORE_PW)
    _keytool(tmp_path, "other.p12", "PKCS12", "ca", STORE_PW)
    _run(
        "keytool", "-exportcert", "-rfc", "-alias", "ca", "-keystore", "other.p12",
        "-storepass", STORE_PW, "-file", "ca.pem", cwd=tmp_path,
    )  # fmt: skip
    _run(
        "keytool", "-importcert", "-noprompt", "-alias", "trusted-ca", "-file", "ca.pem",
        "-keystore", "ks.p12", "-storepass", STORE_PW, cwd=tmp_path,
    )  # fmt: skip
    monkeypatch.setenv(ENV, STORE_PW)
    result = await _reader(tmp_path, "ks.p12", password_env=ENV).refresh(None)
    assert result.errors == ()
    assert _certs(result, tmp_path) == {  # each key checked against its own certificate
        ("ks.p12#web", 0): ("web.test", True),
        ("ks.p12#api", 0): ("api.test", True),
        ("ks.p12#trusted-ca", 0): ("ca.test", None),
    }
    assert _keys(result, tmp_path) == {
        "ks.p12#web": ("RSA", 2048, "true", "ks.p12#web"),
        "ks.p12#api": ("RSA", 2048, "true", "ks.p12#api"),
    }


@pytest.mark.parametrize("storetype", ["JKS", "JCEKS"])
async def test_keytool_keystores_with_different_key_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storetype: str
) -> None:
    store = f"ks.{storetype.lower()}"
    _keytool(tmp_path, store, storetype, "web", STORE_PW)
    _keytool(tmp_path, store, storetype, "api", KEY_PW)  # its own password
    _keytool(tmp_path, store, storetype, "db", "third-password-3")  # one nobody configured
    (tmp_path / "key.pw").write_text(KEY_PW + "\n")
    monkeypatch.setenv(ENV, STORE_PW)
    reader = _reader(tmp_path, store, password_env=ENV, password_file=str(tmp_path / "key.pw"))
    result = await reader.refresh(None)
    assert result.errors == ()
    fmt = storetype.lower()
    assert _keys(result, tmp_path) == {
        f"{store}#web": ("RSA", 2048, "true", f"{store}#web"),
        f"{store}#api": ("RSA", 2048, "true", f"{store}#api"),
        f"{store}#db": ("", None, "true", f"{store}#db"),  # paired by its entry, unopened
    }
    assert {dict(k.attributes)["format"] for k in result.keys} == {fmt}
    assert _certs(result, tmp_path)[(f"{store}#api", 0)] == ("api.test", True)
    assert _certs(result, tmp_path)[(f"{store}#db", 0)] == ("db.test", None)


async def test_keystore_with_javas_default_password_is_not_encrypted(tmp_path: Path) -> None:
    _run(
        "keytool", "-genkeypair", "-alias", "web", "-keyalg", "EC", "-dname", "CN=web.test",
        "-keystore", "default.jks", "-storetype", "JKS", "-storepass", "changeit",
        "-keypass", "changeit", cwd=tmp_path,
    )  # fmt: skip
    result = await _reader(tmp_path, "default.jks").refresh(None)
    assert _keys(result, tmp_path) == {"default.jks#web": ("EC", 256, "false", "default.jks#web")}


# --- kubeconfig (kubectl) ---------------------------------------------------------------------


def _kubeconfig(tmp_path: Path, pki: TestPKI) -> Path:
    leaf = pki.leaf("admin.test")
    (tmp_path / "ca.pem").write_bytes(pki.root.path.read_bytes())
    (tmp_path / "admin.pem").write_bytes(leaf.cert.read_bytes())
    (tmp_path / "admin.key").write_bytes(leaf.key.read_bytes())
    kc = tmp_path / "config"
    base = ["kubectl", "config", f"--kubeconfig={kc}"]
    _run(
        *base, "set-cluster", "prod", "--server=https://127.0.0.1:6443",
        "--certificate-authority=ca.pem", "--embed-certs=true", cwd=tmp_path,
    )  # fmt: skip
    _run(
        *base, "set-credentials", "admin", "--client-certificate=admin.pem",
        "--client-key=admin.key", "--embed-certs=true", cwd=tmp_path,
    )  # fmt: skip
    for name in ("ca.pem", "admin.pem", "admin.key"):
        (tmp_path / name).rename(tmp_path / f"{name}.src")
    return kc


async def test_kubectl_kubeconfig_client_key(tmp_path: Path, pki: TestPKI) -> None:
    kc = _kubeconfig(tmp_path, pki)
    result = await _reader(tmp_path, "config").refresh(None)
    assert result.errors == ()
    assert _certs(result, tmp_path) == {
        ("config#cluster:prod", 0): ("certscope Test Root CA", None),
        ("config#user:admin", 0): ("admin.test", True),
    }
    assert _keys(result, tmp_path) == {
        "config#user:admin": ("EC", 256, "false", "config#user:admin")
    }
    assert dict(result.keys[0].attributes)["format"] == "kubeconfig"
    assert kc.exists()


async def test_kubeconfig_duplicate_names_are_errors(tmp_path: Path, pki: TestPKI) -> None:
    kc = _kubeconfig(tmp_path, pki)
    doc = yaml.safe_load(kc.read_text())
    doc["clusters"].append(doc["clusters"][0])  # kubectl refuses such a file
    kc.write_text(yaml.safe_dump(doc))
    result = await _reader(tmp_path, "config").refresh(None)
    assert {(e.location.removeprefix(f"{tmp_path}/"), e.reason) for e in result.errors} == {
        ("config#cluster:prod", "duplicate_name")
    }
    assert ("config#cluster:prod", 0) not in _certs(result, tmp_path)  # no duplicate series
    assert ("config#user:admin", 0) in _certs(result, tmp_path)


async def test_yaml_alias_bomb_is_refused(tmp_path: Path, pki: TestPKI) -> None:
    ca = base64.b64encode(pki.root.path.read_bytes()).decode()
    text = (
        "apiVersion: v1\nkind: Config\nclusters:\n"
        f"- &c {{name: prod, cluster: {{certificate-authority-data: {ca}}}}}\n" + "- *c\n" * 200_000
    )
    (tmp_path / "bomb").write_text(text)
    assert len(text) > 1_000_000
    started = time.monotonic()
    result = await _reader(tmp_path, "bomb").refresh(None)
    assert time.monotonic() - started < 10
    assert result.certs == ()
    assert [(e.reason, e.message) for e in result.errors] == [
        ("unparseable", f"kubeconfig: more than {MAX_YAML_ALIASES} YAML alias references")
    ]


# --- policy -----------------------------------------------------------------------------------


def _facts(
    algorithm: str = "EC",
    bits: int | None = 256,
    encrypted: bool = False,
    has_certificate: bool = True,
    kind: str = "files",
) -> KeyFacts:
    return KeyFacts(algorithm, bits, encrypted, has_certificate, kind)


def _rules(facts: KeyFacts, policy: Policy | None = None) -> dict[str, str]:
    return {f.rule: f.severity for f in private_key_findings(facts, policy or Policy())}


def test_unencrypted_key_findings_depend_on_the_source_kind() -> None:
    assert _rules(_facts()) == {"private_key_unencrypted": "warning"}
    assert _rules(_facts(encrypted=True)) == {}
    assert _rules(_facts(kind="kubernetes")) == {}  # tls.key must be plain PEM
    assert _rules(_facts(kind="vault")) == {}  # Vault encrypts its storage
    strict = Policy(allow_unencrypted_private_keys=())
    assert _rules(_facts(kind="kubernetes"), strict) == {"private_key_unencrypted": "warning"}


def test_weak_and_orphaned_keys() -> None:
    assert _rules(_facts("RSA", 1024, True)) == {"private_key_weak": "critical"}
    assert _rules(_facts("RSA", 2047, True)) == {"private_key_weak": "warning"}
    assert _rules(_facts("RSA", 2048, True)) == {}
    assert _rules(_facts("EC", 224, True)) == {"private_key_weak": "warning"}
    assert _rules(_facts("DSA", 2048, True)) == {"private_key_weak": "warning"}
    assert _rules(_facts("EC", 256, True, has_certificate=False)) == {
        "private_key_orphaned": "info"
    }
    # An encrypted key nobody can open: neither weak nor orphaned can be told.
    assert _rules(_facts("", None, True, has_certificate=False)) == {}
    for rule in ("private_key_unencrypted", "private_key_orphaned", "private_key_weak"):
        assert Rule(rule).value == rule


def test_key_findings_map_to_cc61_and_can_be_waived() -> None:
    a = assess_stored(("disk", "/k.pem"), [], Policy(), datetime.now(UTC), keys=[_facts()])
    assert [(f.rule, f.control, f.active) for f in a.findings] == [
        ("private_key_unencrypted", "CC6.1", True)
    ]
    waiver = Waiver("disk", "private_key_unencrypted", "pki", "why", date(2999, 1, 1))
    policy = Policy(exceptions=(waiver,))
    a = assess_stored(("disk", "/k.pem"), [], policy, datetime.now(UTC), keys=[_facts()])
    assert [f.active for f in a.findings] == [False]


def test_store_key_record_never_holds_key_material() -> None:
    fields = set(StoredKey.__dataclass_fields__)
    assert fields == {
        "kind", "location", "algorithm", "bits", "public_key_sha256",
        "attributes", "labels", "created", "not_after", "source_kind",
    }  # fmt: skip


# --- end to end -------------------------------------------------------------------------------


def test_exporter_serves_private_keys_and_findings(tmp_path: Path, pki: TestPKI) -> None:
    leaf = pki.leaf("served.test")
    store = tmp_path / "store"
    store.mkdir()
    (store / "tls.crt").write_bytes(leaf.cert.read_bytes())
    (store / "tls.key").write_bytes(leaf.key.read_bytes())
    config = tmp_path / "config.yml"
    config.write_text(f"sources:\n  - {{name: disk, kind: files, paths: ['{store}/*.crt']}}\n")
    with Exporter(config, tmp_path / "exporter.log") as exporter:
        metrics = urllib.request.urlopen(f"{exporter.url}/metrics").read().decode()
        rows = json.load(urllib.request.urlopen(f"{exporter.url}/inventory"))
    assert (
        f'certscope_private_key_info{{source_kind="files",source="disk",location="{store}/tls.key"'
        in metrics
    )
    assert f'certificate_location="{store}/tls.crt"' in metrics
    assert (
        f'certscope_policy_violation{{source_kind="files",source="disk",location="{store}/tls.key",'
        'rule="private_key_unencrypted",severity="warning",control="CC6.1"} 1'
    ) in metrics
    keys = [r for r in rows if r["kind"] == "private_key"]
    assert [(r["location"], r["attributes"]["encrypted"]) for r in keys] == [
        (f"{store}/tls.key", "false")
    ]
    for secret in _key_body_lines(store / "tls.key"):
        assert secret not in metrics and secret not in json.dumps(rows)


def test_link_prefers_the_nearest_certificate_and_stays_linear() -> None:
    from certscope.certs import CertFacts
    from certscope.results import StoredCert
    from certscope.sources.keys import attributes, link

    shared = CertFacts(der_sha256="x", public_key_sha256="ab" * 32)
    # 20,000 Secrets whose certificates share one key (one wildcard leaf key, a bench).
    certs = [StoredCert(f"ns/s{i:05}#tls.crt", 0, shared) for i in range(20_000)]
    keys = [
        StoredKey(
            "private_key", f"ns/s{i:05}#tls.key", "EC", 256, "ab" * 32, attributes(False, "secret")
        )
        for i in range(20_000)
    ]
    keys.append(
        StoredKey("private_key", "/etc/tls/web.key", "EC", 256, "ab" * 32, attributes(False, "pem"))
    )
    started = time.monotonic()
    linked = link(keys, certs)
    assert time.monotonic() - started < 5  # a quadratic search takes minutes here
    where = {k.location: dict(k.attributes)["certificate_location"] for k in linked}
    assert where["ns/s00042#tls.key"] == "ns/s00042#tls.crt"  # its own Secret, not the first
    assert where["/etc/tls/web.key"] == "ns/s00000#tls.crt"  # elsewhere: the first by location


@pytest.mark.parametrize("curve", ["P-256", "P-384", "P-521", "secp256k1"])
def test_ec_public_facts_from_der_equal_openssls(curve: str) -> None:
    """EC keys are read without loading the secret scalar (the stored public point); the hash
    must equal what OpenSSL gives for the certificate's key, in PKCS#8 and SEC 1, PEM and DER
    (secp256k1 is not in the shortcut's table: OpenSSL is asked)."""
    import hashlib

    from cryptography.hazmat.primitives.asymmetric import ec

    from certscope.sources.formats import keys_in

    named = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
    key = ec.generate_private_key(named.get(curve, ec.SECP256K1()))
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for encoding in (serialization.Encoding.PEM, serialization.Encoding.DER):
        for fmt in (
            serialization.PrivateFormat.PKCS8,
            serialization.PrivateFormat.TraditionalOpenSSL,
        ):
            data = key.private_bytes(encoding, fmt, serialization.NoEncryption())
            (record,), corrupt = keys_in("k", data)
            assert not corrupt
            assert (record.algorithm, record.bits) == ("EC", key.curve.key_size)
            assert record.public_key_sha256 == hashlib.sha256(spki).hexdigest()
