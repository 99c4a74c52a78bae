"""File formats: PKCS#7, PKCS#12, JKS/JCEKS, kubeconfig, keys beside certificates, passwords.

Every container is built here with cryptography and pyjks, so the tests say exactly what is in
each file; no fixture files are checked in.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import jks
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from certscope.config import FilesSource
from certscope.errors import ItemFailure
from certscope.results import ItemError, SourceResult
from certscope.sources import formats
from certscope.sources.files import FilesReader, _read_capped
from helpers.pki import Leaf, PrivateKey, TestPKI, private_key

P12_PW = "p12-S3cret!pw"
STORE_PW = "st0re-Pa55word"
WRONG_PW = "not-the-Password-9"
ENV = "CERTSCOPE_TEST_STORE_PW"


@pytest.fixture(scope="module")
def one(pki: TestPKI) -> Leaf:
    return pki.leaf("one.test")  # EC P-256


@pytest.fixture(scope="module")
def two(pki: TestPKI) -> Leaf:
    return pki.leaf("two.test", key="rsa")


@pytest.fixture(scope="module")
def stranger() -> PrivateKey:
    """A key that belongs to no certificate here."""
    return private_key("ec", "formats-mismatch")


@pytest.fixture(autouse=True)
def _no_env_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(ser.Encoding.DER)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(ser.Encoding.PEM)


def _key(
    key: PrivateKey,
    fmt: ser.PrivateFormat = ser.PrivateFormat.PKCS8,
    encoding: ser.Encoding = ser.Encoding.PEM,
    password: bytes | None = None,
) -> bytes:
    enc: ser.KeySerializationEncryption = (
        ser.BestAvailableEncryption(password) if password else ser.NoEncryption()
    )
    return key.private_bytes(encoding, fmt, enc)


def _reader(tmp_path: Path, *patterns: str, **kwargs: Any) -> FilesReader:
    paths = tuple(str(tmp_path / p) for p in patterns)
    return FilesReader(FilesSource(name="disk", paths=paths, **kwargs))


def _got(result: SourceResult) -> dict[tuple[str, int], tuple[str, bool | None]]:
    """``(file name + location suffix, position) -> (first SAN or subject CN, key_matches)``."""
    return {
        (Path(c.location).name, c.position): (
            c.facts.sans[0] if c.facts.sans else c.facts.subject_cn,
            c.key_matches,
        )
        for c in result.certs
    }


def _errors(result: SourceResult) -> set[tuple[str, str]]:
    return {(Path(e.location).name, e.reason) for e in result.errors}


def _secret_markers(*keys: PrivateKey) -> list[str]:
    """Strings that would betray private key material in a repr."""
    out: list[str] = []
    for key in keys:
        der = _key(key, encoding=ser.Encoding.DER)
        pem = _key(key)
        out.append(der[-24:].hex())
        out += [line.decode() for line in pem.splitlines()[1:-1] if len(line) > 20]
        out.append(base64.b64encode(pem).decode()[40:100])  # kubeconfig's client-key-data
    return out


def _assert_clean(reader: FilesReader, result: SourceResult, *secrets: str) -> None:
    text = repr(result) + repr(reader._cache)
    for secret in secrets:
        assert secret not in text


def _cn(cert: x509.Certificate) -> str:
    value = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    return value if isinstance(value, str) else value.decode()


# --- detection ---------------------------------------------------------------------------------


def test_formats_are_detected_by_content(one: Leaf, pki: TestPKI) -> None:
    chain = [one.certificate, pki.intermediate.certificate]
    p12 = pkcs12.serialize_key_and_certificates(
        b"one", one.key_object, one.certificate, None, ser.NoEncryption()
    )
    store = jks.KeyStore.new("jks", [jks.TrustedCertEntry.new("root", _der(pki.root.certificate))])
    kubeconfig = b"apiVersion: v1\nkind: Config\nclusters: []\nusers: []\n"
    assert formats.sniff(one.pem) == "pem"
    assert formats.sniff(one.der) == "der"
    assert formats.sniff(pkcs7.serialize_certificates(chain, ser.Encoding.DER)) == "pkcs7"
    assert formats.sniff(pkcs7.serialize_certificates(chain, ser.Encoding.PEM)) == "pem"
    assert formats.sniff(p12) == "pkcs12"
    assert formats.sniff(p12[:-40]) == "pkcs12"  # truncated: still told apart, then unparseable
    assert formats.sniff(store.saves(STORE_PW)) == "jks"
    assert formats.sniff(kubeconfig) == "kubeconfig"
    assert formats.sniff(b'{"kind": "Config", "clusters": []}') == "kubeconfig"  # JSON too
    assert formats.sniff(_key(one.key_object, encoding=ser.Encoding.DER)) == "key"
    assert formats.sniff(b"0 s:CN = text that starts like DER\n") == "der"  # unparseable later
    assert formats.sniff(b"\x00\x01binary junk") == "unknown"
    assert "secret" not in repr(formats.Password("password_env X", "secret"))


def test_a_flood_of_broken_blocks_is_summarised(one: Leaf) -> None:
    broken = b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"
    unterminated = b"-----BEGIN CERTIFICATE-----\nMIIB\n"
    parsed = formats.parse("f.pem", broken * 150 + one.pem + unterminated * 50)
    assert [(c.location, c.position) for c in parsed.certs] == [("f.pem", 150)]
    assert len(parsed.errors) == 101
    assert parsed.errors[99] == ItemError(
        "f.pem#99", ItemFailure.CORRUPT_PEM, "invalid base64 in PEM block"
    )
    assert parsed.errors[100] == ItemError(
        "f.pem", ItemFailure.CORRUPT_PEM, "100 more like this not listed"
    )


# --- PKCS#7 ------------------------------------------------------------------------------------


async def test_pkcs7_pem_and_der_every_certificate_in_file_order(
    tmp_path: Path, one: Leaf, two: Leaf, pki: TestPKI
) -> None:
    chain = [one.certificate, two.certificate, pki.intermediate.certificate, pki.root.certificate]
    der = pkcs7.serialize_certificates(chain, ser.Encoding.DER)
    (tmp_path / "chain.p7c").write_bytes(der)
    (tmp_path / "chain.p7b").write_bytes(pkcs7.serialize_certificates(chain, ser.Encoding.PEM))
    (tmp_path / "misnamed.txt").write_bytes(der)  # the content decides, not the extension
    # A PEM file mixing a certificate, a PKCS7 block and another certificate: one count.
    p7_pem = pkcs7.serialize_certificates(chain[:2], ser.Encoding.PEM)
    (tmp_path / "mixed.pem").write_bytes(_pem(pki.root.certificate) + p7_pem + two.pem)

    result = await _reader(tmp_path, "*").refresh(None)

    assert result.up
    assert result.errors == ()
    # DER SET OF sorts the certificates: "position kept" means the order in the file.
    in_file = sorted(chain, key=lambda c: der.find(_der(c)))
    names = [c.subject.rfc4514_string() for c in in_file]
    for name in ("chain.p7c", "chain.p7b", "misnamed.txt"):
        got = sorted(
            (c.position, c.facts.subject) for c in result.certs if c.location.endswith(name)
        )
        assert got == list(enumerate(names)), name
    p7_order = sorted(chain[:2], key=lambda c: der.find(_der(c)))
    mixed = sorted((c.position, c.facts.subject) for c in result.certs if "mixed" in c.location)
    expected = [pki.root.certificate, *p7_order, two.certificate]
    assert mixed == [(i, c.subject.rfc4514_string()) for i, c in enumerate(expected)]


# --- PKCS#12 -----------------------------------------------------------------------------------


async def test_pkcs12_with_password_from_env_and_without_encryption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one: Leaf, two: Leaf, pki: TestPKI
) -> None:
    monkeypatch.setenv(ENV, P12_PW)
    extra = [pki.intermediate.certificate, pki.root.certificate]
    (tmp_path / "enc.p12").write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"one",
            one.key_object,
            one.certificate,
            extra,
            ser.BestAvailableEncryption(P12_PW.encode()),
        )
    )
    (tmp_path / "plain.pfx").write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"two", two.key_object, two.certificate, None, ser.NoEncryption()
        )
    )
    (tmp_path / "trust.p12").write_bytes(  # a trust store: certificates, no key
        pkcs12.serialize_key_and_certificates(None, None, None, extra, ser.NoEncryption())
    )
    reader = _reader(tmp_path, "*", password_env=ENV)

    result = await reader.refresh(None)

    assert result.errors == ()
    int_cn, root_cn = _cn(pki.intermediate.certificate), _cn(pki.root.certificate)
    assert _got(result) == {  # per alias (friendlyName), the chain of its key
        ("enc.p12#one", 0): ("one.test", True),
        ("enc.p12#one", 1): (int_cn, None),
        ("enc.p12#one", 2): (root_cn, None),
        ("plain.pfx#two", 0): ("two.test", True),  # the empty password is always tried
        ("trust.p12", 0): (int_cn, None),
        ("trust.p12", 1): (root_cn, None),
    }
    keys = {Path(k.location).name: dict(k.attributes)["encrypted"] for k in result.keys}
    assert keys == {"enc.p12#one": "true", "plain.pfx#two": "false"}
    _assert_clean(reader, result, P12_PW, *_secret_markers(one.key_object, two.key_object))


async def test_pkcs12_wrong_or_missing_password_and_corrupt_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one: Leaf
) -> None:
    data = pkcs12.serialize_key_and_certificates(
        b"one", one.key_object, one.certificate, None, ser.BestAvailableEncryption(P12_PW.encode())
    )
    (tmp_path / "a.p12").write_bytes(data)
    (tmp_path / "cut.p12").write_bytes(data[:-40])

    unconfigured = await _reader(tmp_path, "a.p12").refresh(None)
    assert _errors(unconfigured) == {("a.p12", "bad_password")}
    assert unconfigured.errors[0].message == ("PKCS#12 could not be opened with the empty password")

    monkeypatch.setenv(ENV, WRONG_PW)
    reader = _reader(tmp_path, "*.p12", password_env=ENV)
    result = await reader.refresh(None)
    assert result.certs == ()
    assert _errors(result) == {("a.p12", "bad_password"), ("cut.p12", "unparseable")}
    (cut,) = [e for e in result.errors if e.reason == "unparseable"]
    assert cut.message == "PKCS#12: Could not deserialize PKCS12 data"
    (bad,) = [e for e in result.errors if e.reason == "bad_password"]
    assert bad.message == (
        f"PKCS#12 could not be opened with the password from password_env {ENV} "
        "or the empty password"
    )
    _assert_clean(reader, result, WRONG_PW, P12_PW)

    monkeypatch.delenv(ENV)
    unset = await reader.refresh(result)
    assert ("env:" + ENV, "password_unavailable") in {(e.location, e.reason) for e in unset.errors}


async def test_password_change_reparses_keystores_and_only_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one: Leaf
) -> None:
    (tmp_path / "a.p12").write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"one",
            one.key_object,
            one.certificate,
            None,
            ser.BestAvailableEncryption(P12_PW.encode()),
        )
    )
    (tmp_path / "b.pem").write_bytes(one.pem)
    pw_file = tmp_path / "secrets" / "password"
    pw_file.parent.mkdir()
    pw_file.write_text(P12_PW + "\n")  # the trailing newline is not part of the password
    reader = _reader(tmp_path, "*.p12", "*.pem", password_file=str(pw_file))
    p12, pem = str(tmp_path / "a.p12"), str(tmp_path / "b.pem")

    first = await reader.refresh(None)
    assert _got(first) == {("a.p12#one", 0): ("one.test", True), ("b.pem", 0): ("one.test", None)}
    entries = dict(reader._cache)
    second = await reader.refresh(first)
    assert reader._cache[p12] is entries[p12]  # same password: not even re-read

    pw_file.write_text(WRONG_PW + "\n")  # rotated, and the bundle not (yet) re-exported
    third = await reader.refresh(second)
    assert _errors(third) == {("a.p12", "bad_password")}
    assert f"password_file {pw_file}" in third.errors[0].message
    assert reader._cache[pem] is entries[pem]  # files that need no password are untouched

    pw_file.write_text(P12_PW)
    fourth = await reader.refresh(third)
    assert ("a.p12#one", 0) in _got(fourth)
    assert fourth.errors == ()

    # Both sources configured: the environment variable is one more candidate.
    monkeypatch.setenv(ENV, WRONG_PW)
    both = _reader(tmp_path, "*.p12", password_env=ENV, password_file=str(pw_file))
    assert ("a.p12#one", 0) in _got(await both.refresh(None))

    # The cache keeps a keyed hash, not the password nor its plain hash.
    tag = reader._cache[p12].password_tag
    assert tag is not None
    assert tag != hashlib.sha256(P12_PW.encode()).hexdigest()
    _assert_clean(reader, fourth, P12_PW, WRONG_PW)


async def test_password_from_env_change_reparses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one: Leaf
) -> None:
    (tmp_path / "a.pfx").write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"one",
            one.key_object,
            one.certificate,
            None,
            ser.BestAvailableEncryption(P12_PW.encode()),
        )
    )
    reader = _reader(tmp_path, "a.pfx", password_env=ENV)
    monkeypatch.setenv(ENV, WRONG_PW)
    assert _errors(await reader.refresh(None)) == {("a.pfx", "bad_password")}
    monkeypatch.setenv(ENV, P12_PW)
    assert _got(await reader.refresh(None)) == {("a.pfx#one", 0): ("one.test", True)}


# --- Java keystores ----------------------------------------------------------------------------


def _keystore_bytes(one: Leaf, two: Leaf, stranger: PrivateKey, pki: TestPKI, pw: str) -> bytes:
    entries = [
        jks.TrustedCertEntry.new("root", _der(pki.root.certificate)),
        jks.PrivateKeyEntry.new(
            "server",
            [one.der, _der(pki.intermediate.certificate)],
            _key(one.key_object, encoding=ser.Encoding.DER),
        ),
        jks.PrivateKeyEntry.new(  # a key that does not belong to its certificate
            "wrong", [two.der], _key(stranger, encoding=ser.Encoding.DER)
        ),
    ]
    data: bytes = jks.KeyStore.new("jks", entries).saves(pw)
    return data


def _as_jceks(jks_bytes: bytes, pw: str) -> bytes:
    """pyjks cannot write JCEKS; the layout is JKS's with another magic number."""
    body = b"\xce\xce\xce\xce" + jks_bytes[4:-20]
    return body + hashlib.sha1(pw.encode("utf-16be") + b"Mighty Aphrodite" + body).digest()


async def test_jks_and_jceks_entries_chains_and_key_match(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    one: Leaf,
    two: Leaf,
    stranger: PrivateKey,
    pki: TestPKI,
) -> None:
    data = _keystore_bytes(one, two, stranger, pki, STORE_PW)
    (tmp_path / "store.jks").write_bytes(data)
    (tmp_path / "store.jceks").write_bytes(_as_jceks(data, STORE_PW))
    (tmp_path / "default").write_bytes(_keystore_bytes(one, two, stranger, pki, "changeit"))
    monkeypatch.setenv(ENV, STORE_PW)
    reader = _reader(tmp_path, "*", password_env=ENV)

    result = await reader.refresh(None)

    assert result.errors == ()
    int_cn, root_cn = _cn(pki.intermediate.certificate), _cn(pki.root.certificate)
    for name in ("store.jks", "store.jceks", "default"):  # "changeit" tried after ours
        got = {k: v for k, v in _got(result).items() if k[0].startswith(name + "#")}
        assert got == {
            (f"{name}#root", 0): (root_cn, None),
            (f"{name}#server", 0): ("one.test", True),
            (f"{name}#server", 1): (int_cn, None),
            (f"{name}#wrong", 0): ("two.test", False),
        }
    _assert_clean(reader, result, STORE_PW, *_secret_markers(one.key_object, stranger))


async def test_keystore_with_wrong_password_and_corrupt_keystore(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    one: Leaf,
    two: Leaf,
    stranger: PrivateKey,
    pki: TestPKI,
) -> None:
    data = _keystore_bytes(one, two, stranger, pki, STORE_PW)
    (tmp_path / "store.jks").write_bytes(data)
    (tmp_path / "cut.jks").write_bytes(data[:200])

    alone = await _reader(tmp_path, "store.jks").refresh(None)
    assert _errors(alone) == {("store.jks", "bad_password")}
    assert alone.errors[0].message == (
        "keystore integrity check failed with Java's default password "
        "(no password_env or password_file configured)"
    )

    monkeypatch.setenv(ENV, WRONG_PW)
    reader = _reader(tmp_path, "*.jks", password_env=ENV)
    result = await reader.refresh(None)
    assert result.certs == ()
    assert _errors(result) == {("store.jks", "bad_password"), ("cut.jks", "unparseable")}
    (cut,) = [e for e in result.errors if e.reason == "unparseable"]
    assert cut.message.startswith("keystore: BadKeystoreFormatException: ")
    (bad,) = [e for e in result.errors if e.reason == "bad_password"]
    assert bad.message == (
        f"keystore integrity check failed with the password from password_env {ENV} "
        "and with Java's default password"
    )
    _assert_clean(reader, result, WRONG_PW, STORE_PW)


# --- kubeconfig --------------------------------------------------------------------------------


async def test_kubeconfig_embedded_data(
    tmp_path: Path, one: Leaf, two: Leaf, stranger: PrivateKey, pki: TestPKI
) -> None:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "prod",
                "cluster": {
                    "server": "https://prod.test:6443",
                    "certificate-authority-data": b64(
                        _pem(pki.root.certificate) + _pem(pki.intermediate.certificate)
                    ),
                },
            },
            {
                "name": "dev",
                "cluster": {"server": "https://dev.test", "certificate-authority": "ca.crt"},
            },
            {"name": "broken", "cluster": {"certificate-authority-data": "!!not base64!!"}},
        ],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate-data": b64(one.pem),
                    "client-key-data": b64(_key(one.key_object)),
                },
            },
            {
                "name": "mismatched",
                "user": {
                    "client-certificate-data": b64(two.pem),
                    "client-key-data": b64(
                        _key(stranger, fmt=ser.PrivateFormat.TraditionalOpenSSL)
                    ),
                },
            },
            {"name": "robot", "user": {"token": "not-a-certificate"}},
        ],
        "contexts": [],
    }
    (tmp_path / "config").write_text(yaml.safe_dump(doc))  # no extension: found by content
    reader = _reader(tmp_path, "config")

    result = await reader.refresh(None)

    assert _got(result) == {
        ("config#cluster:prod", 0): (_cn(pki.root.certificate), None),
        ("config#cluster:prod", 1): (_cn(pki.intermediate.certificate), None),
        ("config#user:admin", 0): ("one.test", True),
        ("config#user:mismatched", 0): ("two.test", False),
    }
    assert _errors(result) == {("config#cluster:broken#0", "unparseable")}
    _assert_clean(reader, result, "not-a-certificate", *_secret_markers(one.key_object, stranger))


# --- private keys beside certificates ----------------------------------------------------------


async def test_key_in_the_same_pem_file(
    tmp_path: Path, one: Leaf, two: Leaf, stranger: PrivateKey, pki: TestPKI
) -> None:
    intermediate = _pem(pki.intermediate.certificate)
    trad = ser.PrivateFormat.TraditionalOpenSSL
    files = {
        "combined.pem": _key(one.key_object) + one.pem + intermediate,  # HAProxy style
        "after.pem": one.pem + intermediate + _key(one.key_object, fmt=trad),  # EC PRIVATE KEY
        "rsa.pem": _key(two.key_object, fmt=trad) + two.pem,  # RSA PRIVATE KEY
        "wrong.pem": one.pem + _key(stranger),
        "encrypted.pem": one.pem + _key(one.key_object, password=b"key-pw-1234"),
        "chain-only.pem": intermediate + one.pem,  # the leaf need not come first
    }
    files["chain-only.pem"] += _key(one.key_object)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    reader = _reader(tmp_path, "*.pem")

    result = await reader.refresh(None)

    assert result.errors == ()
    int_cn = _cn(pki.intermediate.certificate)
    assert _got(result) == {
        ("combined.pem", 0): ("one.test", True),
        ("combined.pem", 1): (int_cn, None),
        ("after.pem", 0): ("one.test", True),
        ("after.pem", 1): (int_cn, None),
        ("rsa.pem", 0): ("two.test", True),
        ("wrong.pem", 0): ("one.test", False),
        ("encrypted.pem", 0): ("one.test", None),  # no password for keys: nothing noted
        ("chain-only.pem", 0): (int_cn, None),
        ("chain-only.pem", 1): ("one.test", True),
    }
    _assert_clean(reader, result, *_secret_markers(one.key_object, two.key_object, stranger))


async def test_sibling_key_file_and_its_changes(
    tmp_path: Path, one: Leaf, two: Leaf, stranger: PrivateKey
) -> None:
    (tmp_path / "a.crt").write_bytes(one.pem)
    (tmp_path / "a.key").write_bytes(_key(one.key_object))
    (tmp_path / "b.pem").write_bytes(one.pem)
    (tmp_path / "b.key").write_bytes(_key(stranger))
    (tmp_path / "c.crt").write_bytes(one.pem)
    (tmp_path / "c.key").write_bytes(_key(one.key_object, password=b"key-pw-1234"))
    (tmp_path / "d.crt").write_bytes(one.pem)  # no key at all
    (tmp_path / "e.der").write_bytes(two.der)
    (tmp_path / "e.key").write_bytes(_key(two.key_object, encoding=ser.Encoding.DER))
    (tmp_path / "f.crt").write_bytes(two.pem)
    (tmp_path / "f.key").write_bytes(b"this is not a key\n")
    (tmp_path / "g.crt").write_bytes(two.pem)
    (tmp_path / "g.key").write_bytes(_key(two.key_object))
    (tmp_path / "g.key").chmod(0)  # the usual 0600-root key the exporter cannot read
    (tmp_path / "h.crt").write_bytes(two.pem)
    (tmp_path / "h.key").mkdir()  # not a file: nothing to note either
    reader = _reader(tmp_path, "*.crt", "*.pem", "*.der")

    result = await reader.refresh(None)

    expected: dict[tuple[str, int], tuple[str, bool | None]] = {
        ("a.crt", 0): ("one.test", True),
        ("b.pem", 0): ("one.test", False),
        ("c.crt", 0): ("one.test", None),
        ("d.crt", 0): ("one.test", None),
        ("e.der", 0): ("two.test", True),
        ("f.crt", 0): ("two.test", None),
        ("g.crt", 0): ("two.test", None if os.geteuid() else True),  # root reads anything
        ("h.crt", 0): ("two.test", None),
    }
    assert _got(result) == expected
    assert _errors(result) == {("f.key", "corrupt_key")}
    first_entries = dict(reader._cache)

    # The certificate files do not change; their keys do.
    (tmp_path / "b.key").write_bytes(_key(one.key_object))
    (tmp_path / "a.key").unlink()
    (tmp_path / "d.key").write_bytes(_key(stranger))
    second = await reader.refresh(result)
    expected[("a.crt", 0)] = ("one.test", None)
    expected[("b.pem", 0)] = ("one.test", True)
    expected[("d.crt", 0)] = ("one.test", False)
    assert _got(second) == expected
    c_crt = str(tmp_path / "c.crt")
    assert reader._cache[c_crt] is first_entries[c_crt]  # unchanged key: not re-read

    # Key files alone are not certificate files: matched by a glob, they are skipped quietly.
    keys_only = await _reader(tmp_path, "[abcde].key").refresh(None)
    assert keys_only.certs == ()
    assert keys_only.errors == ()
    _assert_clean(reader, second, *_secret_markers(one.key_object, two.key_object, stranger))


# --- bad input ---------------------------------------------------------------------------------


async def test_bad_input_is_one_error_per_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one: Leaf, two: Leaf
) -> None:
    big = tmp_path / "big.p12"
    with big.open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)
    (tmp_path / "junk.bin").write_bytes(bytes(range(1, 256)) * 8)
    (tmp_path / "text.crt").write_bytes(b"hello, I am not a certificate\n")
    (tmp_path / "cut.pem").write_bytes(  # an unterminated block does not swallow the next one
        b"-----BEGIN CERTIFICATE-----\nMIIB\n" + two.pem
    )
    (tmp_path / "broken.yaml").write_bytes(
        b"clusters:\n- name: x\n  cluster: {certificate-authority-data: 'c2VjcmV0'\n"
    )
    (tmp_path / "good.pem").write_bytes(one.pem)
    fifo = tmp_path / "pipe.pem"
    os.mkfifo(fifo)  # a glob that matches a FIFO must not hang the reader

    opened: list[str] = []
    real_open = os.open

    def spy_open(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy_open)
    result = await _reader(tmp_path, "*").refresh(None)

    assert result.up
    assert _got(result) == {("good.pem", 0): ("one.test", None), ("cut.pem", 1): ("two.test", None)}
    assert _errors(result) == {
        ("big.p12", "too_large"),
        ("junk.bin", "unknown_format"),
        ("text.crt", "unknown_format"),
        ("cut.pem#0", "corrupt_pem"),
        ("broken.yaml", "unparseable"),
        ("pipe.pem", "unreadable"),
    }
    (yaml_error,) = [e for e in result.errors if e.reason == "unparseable"]
    assert yaml_error.message == "kubeconfig: not valid YAML (line 4)"  # no content quoted
    assert str(big) not in opened  # the size cap is checked before anything is read
    monkeypatch.undo()

    # A file that grows past the cap after its stat is still read only up to the cap.
    assert len(_read_capped(str(big), 1000)) == 1001
