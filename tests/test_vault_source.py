"""The Vault source against a real OpenBao dev server: KV v2, PKI, auth methods and failures.

One server (``world``) is set up once per session through the HTTP API: KV secrets under
``secret/tls/`` (a single certificate, a bundle, one stored with its private key, a corrupt
block, one without the key, a nested one, a deleted one), a PKI root with three issued leaves
(one revoked) and an intermediate mount, AppRole and Kubernetes auth, a namespace. Tests that
seal or stop a server start their own (``tls_bao``, HTTPS).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from certscope.collector import source_fragments
from certscope.config import SecretRef, VaultAuth, VaultKV, VaultPKI, VaultSource, parse_config
from certscope.results import SourceResult
from certscope.sources import reader_for
from certscope.sources import vault as vault_module
from certscope.sources.vault import VaultReader, parse_pem_value
from helpers.openbao import OpenBao
from helpers.pki import TestPKI
from helpers.sshservers import HostKeys, OpenSSHServer

CORRUPT = "-----BEGIN CERTIFICATE-----\nnot base64 !!!\n-----END CERTIFICATE-----\n"
POLICY = """
path "secret/metadata/tls/*" { capabilities = ["list"] }
path "secret/data/tls/*" { capabilities = ["read"] }
path "pki/*" { capabilities = ["read", "list"] }
path "pki_int/*" { capabilities = ["read", "list"] }
"""


@dataclass
class World:
    bao: OpenBao
    policy_token: str  # policy "certscope": exactly what the reader needs
    default_token: str  # the default policy only: may look itself up, may read nothing
    role_id: str
    secret_id: str
    key_pem: str  # stored beside a certificate in secret/tls/withkey
    kv_expected: dict[tuple[str, int], str]  # (location, position) → subject CN
    pki_expected: dict[tuple[str, int], str]  # include_revoked false, issuers true
    revoked: tuple[str, int]
    int_issuer: str
    int_root_issuer: str


def _cn(pem: str) -> list[str]:
    return [
        str(c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)
        for c in x509.load_pem_x509_certificates(pem.encode())
    ]


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, pki: TestPKI) -> Iterator[World]:
    bao = OpenBao.start(tmp_path_factory.mktemp("openbao"))
    try:
        yield _populate(bao, pki)
    finally:
        bao.stop()


def _populate(bao: OpenBao, pki: TestPKI) -> World:
    kv, key_pem = _populate_kv(bao, pki)
    pki_expected, revoked, int_issuer, int_root = _populate_pki(bao)
    policy_token, default_token, role_id, secret_id = _populate_auth(bao)
    return World(
        bao=bao,
        policy_token=policy_token,
        default_token=default_token,
        role_id=role_id,
        secret_id=secret_id,
        key_pem=key_pem,
        kv_expected=kv,
        pki_expected=pki_expected,
        revoked=revoked,
        int_issuer=int_issuer,
        int_root_issuer=int_root,
    )


def _populate_kv(bao: OpenBao, pki: TestPKI) -> tuple[dict[tuple[str, int], str], str]:
    """KV secrets under ``secret/``: the expected (location, position) → CN, and the key stored
    beside a certificate."""
    kv: dict[tuple[str, int], str] = {}

    def put(path: str, data: dict[str, str]) -> None:
        bao.ok("POST", f"secret/data/{path}", {"data": data})

    web_ = pki.leaf("web.test")
    put("tls/web", {"certificate": web_.pem.decode()})
    kv["secret/tls/web#certificate", 0] = "web.test"
    bundle = pki.leaf("bundle.test").fullchain.read_text()
    put("tls/bundle", {"certificate": bundle})
    for pos, cn in enumerate(_cn(bundle)):
        kv["secret/tls/bundle#certificate", pos] = cn
    withkey = pki.leaf("withkey.test")
    put(
        "tls/withkey",
        {"certificate": withkey.pem.decode(), "private_key": withkey.key_pem.decode()},
    )
    kv["secret/tls/withkey#certificate", 0] = "withkey.test"
    put("tls/corrupt", {"certificate": CORRUPT + pki.leaf("corrupt.test").pem.decode()})
    kv["secret/tls/corrupt#certificate", 1] = "corrupt.test"  # position kept past the bad block
    put("tls/nokey", {"other": "not a certificate"})
    put("tls/sub/deep", {"certificate": pki.leaf("deep.test").pem.decode()})
    kv["secret/tls/sub/deep#certificate", 0] = "deep.test"
    put("tls/gone", {"certificate": pki.leaf("gone.test").pem.decode()})
    bao.ok("DELETE", "secret/data/tls/gone")  # latest version deleted: skipped, no error
    put("other/outside", {"certificate": pki.leaf("outside.test").pem.decode()})
    return kv, withkey.key_pem.decode()


def _populate_pki(bao: OpenBao) -> tuple[dict[tuple[str, int], str], tuple[str, int], str, str]:
    """A root, three leaves (one revoked), and an intermediate in its own mount: the expected
    (location, position) → CN, the revoked leaf, the intermediate's issuer and its root's."""
    ten_years = {"config": {"max_lease_ttl": "87600h"}}
    bao.ok("POST", "sys/mounts/pki", {"type": "pki", **ten_years})
    root = bao.ok(
        "POST",
        "pki/root/generate/internal",
        {"common_name": "Certscope Vault Root", "key_type": "ec", "ttl": "87600h"},
    )["data"]
    role = {"allowed_domains": ["vault.test"], "allow_subdomains": True, "key_type": "ec"}
    bao.ok("POST", "pki/roles/web", {**role, "max_ttl": "72h"})
    pki_expected = {
        (f"pki/certs/{root['serial_number']}", 0): "Certscope Vault Root",
        (f"pki/issuer/{root['issuer_id']}", 0): "Certscope Vault Root",
    }
    serials = {}
    for name in ("a", "b", "c"):
        cn = f"{name}.vault.test"
        serials[cn] = bao.ok("POST", "pki/issue/web", {"common_name": cn, "ttl": "1h"})["data"][
            "serial_number"
        ]
        pki_expected[f"pki/certs/{serials[cn]}", 0] = cn
    bao.ok("POST", "pki/revoke", {"serial_number": serials["b.vault.test"]})
    revoked = (f"pki/certs/{serials['b.vault.test']}", 0)
    del pki_expected[revoked]
    bao.ok("POST", "sys/mounts/pki_int", {"type": "pki", **ten_years})
    csr = bao.ok(
        "POST",
        "pki_int/intermediate/generate/internal",
        {"common_name": "Certscope Vault Intermediate", "key_type": "ec"},
    )["data"]["csr"]
    signed = bao.ok(
        "POST", "pki/root/sign-intermediate", {"csr": csr, "format": "pem", "ttl": "43800h"}
    )["data"]
    pki_expected[f"pki/certs/{signed['serial_number']}", 0] = "Certscope Vault Intermediate"
    imported = bao.ok(
        "POST",
        "pki_int/intermediate/set-signed",
        {"certificate": signed["certificate"] + "\n" + root["certificate"]},
    )["data"]["mapping"]
    int_issuer = next(i for i, key in imported.items() if key)
    int_root = next(i for i, key in imported.items() if not key)
    return pki_expected, revoked, int_issuer, int_root


def _populate_auth(bao: OpenBao) -> tuple[str, str, str, str]:
    """The policy, two tokens and an AppRole: the policy token, the default-policy token, the
    role id and a secret id."""
    bao.ok("POST", "sys/policies/acl/certscope", {"policy": POLICY})
    policy_token = bao.ok("POST", "auth/token/create", {"policies": ["certscope"], "ttl": "1h"})
    default_token = bao.ok("POST", "auth/token/create", {"policies": ["default"], "ttl": "1h"})
    bao.ok("POST", "sys/auth/approle", {"type": "approle"})
    bao.ok(
        "POST",
        "auth/approle/role/certscope",
        {"token_policies": ["certscope"], "token_ttl": "1h", "secret_id_ttl": "1h"},
    )
    role_id = bao.ok("GET", "auth/approle/role/certscope/role-id")["data"]["role_id"]
    secret_id = bao.ok("POST", "auth/approle/role/certscope/secret-id")["data"]["secret_id"]
    return (
        policy_token["auth"]["client_token"],
        default_token["auth"]["client_token"],
        role_id,
        secret_id,
    )


def _source(
    address: str,
    auth: VaultAuth,
    *,
    kv: tuple[VaultKV, ...] = (VaultKV("secret", "tls/"),),
    pki: tuple[VaultPKI, ...] = (VaultPKI("pki"),),
    **kw: Any,
) -> VaultSource:
    return VaultSource(name="vault", address=address, auth=auth, kv=kv, pki=pki, **kw)


def _file(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content + "\n")
    return str(path)


def _token_auth(tmp_path: Path, token: str) -> VaultAuth:
    return VaultAuth("token", token=SecretRef(file=_file(tmp_path, "token", token)))


def _approle(tmp_path: Path, role_id: str, secret_id: str) -> VaultAuth:
    return VaultAuth(
        "approle",
        role_id=SecretRef(file=_file(tmp_path, "role_id", role_id)),
        secret_id=SecretRef(file=_file(tmp_path, "secret_id", secret_id)),
    )


def _found(result: SourceResult) -> dict[tuple[str, int], str]:
    return {(c.location, c.position): c.facts.subject_cn for c in result.certs}


def _errors(result: SourceResult) -> set[tuple[str, str]]:
    return {(e.location, e.reason) for e in result.errors}


def _assert_no_secrets(texts: list[object], *secrets: str) -> None:
    """No credential or private key anywhere in the results, their errors or the logs."""
    blob = "\n".join(t if isinstance(t, str) else repr(t) for t in texts)
    for secret in secrets:
        assert secret
        assert secret not in blob
    assert "PRIVATE KEY" not in blob


def _key_body(key_pem: str) -> str:
    return key_pem.strip().splitlines()[1]  # a line of the key's base64


KV_ERRORS = {
    ("secret/tls/corrupt#certificate", "corrupt_pem"),
    ("secret/tls/nokey", "missing_key"),
}


# --- inventory -------------------------------------------------------------------------------


async def test_approle_reads_kv_and_pki(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    reader = VaultReader(
        _source(world.bao.address, _approle(tmp_path, world.role_id, world.secret_id))
    )
    result = await reader.refresh(None)
    assert result.up, result.error
    assert (result.kind, result.name, result.error_reason) == ("vault", "vault", None)
    assert _found(result) == {**world.kv_expected, **world.pki_expected}
    assert _errors(result) == KV_ERRORS
    assert not any(c.revoked for c in result.certs)
    assert result.last_success == result.timestamp
    corrupt = next(e for e in result.errors if e.reason == "corrupt_pem")
    assert corrupt.message == "PEM block 0: invalid base64 in PEM block"
    _assert_no_secrets(
        [result, vars(reader), reader, caplog.text],
        world.role_id,
        world.secret_id,
        reader._login.token if reader._login else "missing",
        _key_body(world.key_pem),
    )


async def test_revoked_included_and_marked(world: World, tmp_path: Path) -> None:
    reader = VaultReader(
        _source(
            world.bao.address,
            _token_auth(tmp_path, world.policy_token),
            kv=(),
            pki=(VaultPKI("pki", include_revoked=True, issuers=False),),
        )
    )
    result = await reader.refresh(None)
    assert result.up, result.error
    certs = {(c.location, c.position): c.revoked for c in result.certs}
    expected = {k for k in world.pki_expected if "/issuer/" not in k[0]} | {world.revoked}
    assert set(certs) == expected
    assert [k for k, revoked in certs.items() if revoked] == [world.revoked]


async def test_intermediate_issuers_and_their_chain(world: World, tmp_path: Path) -> None:
    reader = VaultReader(
        _source(
            world.bao.address,
            _token_auth(tmp_path, world.policy_token),
            kv=(),
            pki=(VaultPKI("pki_int"),),  # it has issued nothing: no certs, two issuers
        )
    )
    result = await reader.refresh(None)
    assert result.up, result.error
    assert _found(result) == {
        (f"pki_int/issuer/{world.int_issuer}", 0): "Certscope Vault Intermediate",
        (f"pki_int/issuer/{world.int_issuer}", 1): "Certscope Vault Root",
        (f"pki_int/issuer/{world.int_root_issuer}", 0): "Certscope Vault Root",
    }
    assert result.errors == ()


async def test_single_secret_path_and_missing_paths(world: World, tmp_path: Path) -> None:
    kv = (
        VaultKV("secret", "tls/withkey", ("certificate", "private_key")),  # a secret, not a folder
        VaultKV("secret", "tls/nothing/"),  # an empty folder
        VaultKV("nosuch", ""),  # no such mount
    )
    reader = VaultReader(
        _source(
            world.bao.address,
            _token_auth(tmp_path, world.bao.root_token),
            kv=kv,
            pki=(VaultPKI("nopki"),),
        )
    )
    result = await reader.refresh(None)
    assert result.up, result.error
    assert _found(result) == {("secret/tls/withkey#certificate", 0): "withkey.test"}
    # The private key was asked for by name: it is not a certificate, and nothing of it is kept.
    assert _errors(result) == {
        ("secret/tls/withkey#private_key", "no_certificate"),
        ("secret/tls/nothing/", "not_found"),
        ("nosuch/", "not_found"),
        ("nopki", "not_found"),
    }
    _assert_no_secrets([result], _key_body(world.key_pem), world.bao.root_token)


async def test_limits(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault_module, "MAX_SECRETS", 3)
    monkeypatch.setattr(vault_module, "MAX_PKI_CERTS", 2)
    reader = VaultReader(
        _source(
            world.bao.address,
            _token_auth(tmp_path, world.policy_token),
            pki=(VaultPKI("pki", include_revoked=True, issuers=False),),
        )
    )
    result = await reader.refresh(None)
    assert result.up, result.error
    # Entries are taken in name order: bundle, corrupt, gone (deleted) — then the cap.
    kv = {c.location for c in result.certs if c.location.startswith("secret/")}
    assert kv == {"secret/tls/bundle#certificate", "secret/tls/corrupt#certificate"}
    assert len({c.location for c in result.certs if c.location.startswith("pki/")}) == 2
    assert {e.reason for e in result.errors} == {
        "corrupt_pem",
        "too_many_secrets",
        "too_many_certs",
    }


def test_parse_pem_value_limits_and_types(monkeypatch: pytest.MonkeyPatch) -> None:
    pem = trustme.CA().cert_pem.bytes().decode()
    certs, errors = parse_pem_value("m/p#k", pem + pem)
    assert [(c.location, c.position) for c in certs] == [("m/p#k", 0), ("m/p#k", 1)]
    assert errors == []
    for value, reason in (
        (42, "unknown_format"),
        (None, "unknown_format"),
        ("x", "no_certificate"),
    ):
        certs, errors = parse_pem_value("m/p#k", value)
        assert (certs, [e.reason for e in errors]) == ([], [reason])
    monkeypatch.setattr(vault_module, "MAX_VALUE_BYTES", 100)
    _, errors = parse_pem_value("m/p#k", pem)
    assert [e.reason for e in errors] == ["too_large"]


async def test_namespace_header(world: World, tmp_path: Path, pki: TestPKI) -> None:
    bao = world.bao
    bao.ok("POST", "sys/namespaces/team", {})
    bao.ok("POST", "sys/mounts/kv", {"type": "kv", "options": {"version": "2"}}, namespace="team")
    cert = pki.leaf("team.test").pem.decode()
    bao.ok("POST", "kv/data/certs/team", {"data": {"certificate": cert}}, namespace="team")
    auth = _token_auth(tmp_path, bao.root_token)
    kv = (VaultKV("kv", "certs/"),)
    inside = await VaultReader(_source(bao.address, auth, kv=kv, pki=(), namespace="team")).refresh(
        None
    )
    assert inside.up, inside.error
    assert _found(inside) == {("kv/certs/team#certificate", 0): "team.test"}
    outside = await VaultReader(_source(bao.address, auth, kv=kv, pki=())).refresh(None)
    assert (outside.up, _found(outside), _errors(outside)) == (
        True,
        {},
        {("kv/certs/", "not_found")},
    )


# --- authentication --------------------------------------------------------------------------


async def test_approle_token_cached_relogin_on_403_and_rotation(
    world: World, tmp_path: Path
) -> None:
    bao = world.bao
    once = bao.ok("POST", "auth/approle/role/certscope/secret-id", {"num_uses": 1})["data"]
    auth = _approle(tmp_path, world.role_id, once["secret_id"])
    reader = VaultReader(_source(bao.address, auth, kv=(VaultKV("secret", "tls/sub/"),), pki=()))
    first = await reader.refresh(None)
    assert first.up, first.error
    # The secret_id is used up: the second refresh works only because the token was kept.
    second = await reader.refresh(first)
    assert second.up, second.error
    # Revoke every AppRole token: the cached one now gets 403, the reader logs in again and
    # the spent secret_id is refused.
    bao.ok("POST", "sys/leases/revoke-prefix/auth/approle")
    third = await reader.refresh(second)
    assert (third.up, third.error_reason) == (False, "auth_failed")
    assert "invalid role or secret ID" in third.error
    assert third.certs == second.certs and third.last_success == second.last_success
    # A new secret_id in the file is read at the next login: rotation without a restart.
    fresh = bao.ok("POST", "auth/approle/role/certscope/secret-id")["data"]["secret_id"]
    _file(tmp_path, "secret_id", fresh)
    fourth = await reader.refresh(third)
    assert fourth.up, fourth.error
    _assert_no_secrets([first, second, third, fourth], once["secret_id"], fresh, world.role_id)


async def test_wrong_secret_id_is_auth_failed(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    wrong = "0000dead-beef-0000-0000-" + "c0ffee" * 2
    reader = VaultReader(_source(world.bao.address, _approle(tmp_path, world.role_id, wrong)))
    result = await reader.refresh(None)
    assert (result.up, result.error_reason, result.certs) == (False, "auth_failed", ())
    assert result.error.startswith("approle login at /v1/auth/approle/login refused (HTTP 400)")
    _assert_no_secrets([result, caplog.text], wrong, world.role_id)


async def test_token_file_env_forbidden_and_rejected(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = world.bao.address
    token_file = tmp_path / "token"
    auth = _token_auth(tmp_path, world.policy_token)
    reader = VaultReader(_source(address, auth))
    good = await reader.refresh(None)
    assert good.up, good.error
    assert _found(good) == {**world.kv_expected, **world.pki_expected}

    # The file is read at every refresh: a token with too little policy is "forbidden"...
    token_file.write_text(world.default_token)
    forbidden = await reader.refresh(good)
    assert (forbidden.up, forbidden.error_reason) == (False, "forbidden")
    assert forbidden.error == "permission denied: LIST /v1/secret/metadata/tls/"
    assert forbidden.certs == good.certs and forbidden.last_success == good.last_success
    # ... and one Vault does not know at all is "auth_failed".
    bogus = "s.notarealtoken0123456789"
    token_file.write_text(bogus)
    rejected = await reader.refresh(forbidden)
    assert (rejected.up, rejected.error_reason) == (False, "auth_failed")
    token_file.unlink()
    missing = await reader.refresh(rejected)
    assert (missing.error_reason, missing.error) == (
        "auth_failed",
        f"cannot read token_file {token_file}: No such file or directory",
    )

    monkeypatch.setenv("CERTSCOPE_TEST_VAULT_TOKEN", world.policy_token)
    env_auth = VaultAuth("token", token=SecretRef(env="CERTSCOPE_TEST_VAULT_TOKEN"))
    from_env = await VaultReader(_source(address, env_auth)).refresh(None)
    assert from_env.up, from_env.error
    monkeypatch.delenv("CERTSCOPE_TEST_VAULT_TOKEN")
    unset = await VaultReader(_source(address, env_auth)).refresh(None)
    assert (unset.error_reason, unset.error) == (
        "auth_failed",
        "environment variable CERTSCOPE_TEST_VAULT_TOKEN (token) is not set",
    )
    _assert_no_secrets(
        [good, forbidden, rejected, missing, from_env, unset],
        world.policy_token,
        world.default_token,
        bogus,
        _key_body(world.key_pem),
    )


def _jwt(claims: dict[str, Any]) -> str:
    """A signed (ES256) service-account-shaped JWT; Vault leaves the real check to TokenReview."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    key = ec.generate_private_key(ec.SECP256R1())
    head = b64(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256())))
    return f"{head}.{body}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@pytest.fixture
async def token_review() -> AsyncIterator[tuple[int, list[str]]]:
    """A fake Kubernetes API that approves the service account monitoring/certscope."""
    seen: list[str] = []

    async def review(request: web.Request) -> web.Response:
        token = (await request.json())["spec"]["token"]
        seen.append(token)
        user = {"username": "system:serviceaccount:monitoring:certscope", "uid": "uid-1"}
        status = {"authenticated": token.count(".") == 2, "user": user}
        return web.json_response({"apiVersion": "authentication.k8s.io/v1", "status": status})

    app = web.Application()
    app.router.add_post("/apis/authentication.k8s.io/v1/tokenreviews", review)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1], seen
    finally:
        await runner.cleanup()


async def test_kubernetes_auth(
    world: World, tmp_path: Path, token_review: tuple[int, list[str]]
) -> None:
    port, seen = token_review
    bao = world.bao
    bao.ok("POST", "sys/auth/k8s", {"type": "kubernetes"})
    bao.ok(
        "POST",
        "auth/k8s/config",
        {
            "kubernetes_host": f"http://127.0.0.1:{port}",
            "disable_local_ca_jwt": True,
            "kubernetes_ca_cert": trustme.CA().cert_pem.bytes().decode(),
        },
    )
    bao.ok(
        "POST",
        "auth/k8s/role/certscope",
        {
            "bound_service_account_names": ["certscope"],
            "bound_service_account_namespaces": ["monitoring"],
            "token_policies": ["certscope"],
            "token_ttl": "1h",
        },
    )
    now = int(time.time())
    jwt = _jwt(
        {
            "iss": "kubernetes/serviceaccount",
            "sub": "system:serviceaccount:monitoring:certscope",
            "kubernetes.io/serviceaccount/namespace": "monitoring",
            "kubernetes.io/serviceaccount/service-account.name": "certscope",
            "kubernetes.io/serviceaccount/service-account.uid": "uid-1",
            "iat": now,
            "exp": now + 600,
        }
    )
    jwt_file = _file(tmp_path, "jwt", jwt)
    auth = VaultAuth("kubernetes", role="certscope", jwt_file=jwt_file, mount="k8s")
    reader = VaultReader(_source(bao.address, auth, kv=(VaultKV("secret", "tls/web"),), pki=()))
    result = await reader.refresh(None)
    assert result.up, result.error
    assert _found(result) == {("secret/tls/web#certificate", 0): "web.test"}
    assert seen == [jwt]  # the JWT from jwt_file went to Vault, which had Kubernetes check it
    wrong_role = replace(auth, role="nobody")
    denied = await VaultReader(_source(bao.address, wrong_role, pki=())).refresh(None)
    assert (denied.up, denied.error_reason) == (False, "auth_failed")
    _assert_no_secrets([result, denied], jwt)


async def test_an_address_that_is_not_http(tmp_path: Path) -> None:
    """The address points at another service (here a real sshd, whose banner comes first):
    the answer is named as not HTTP, not as an unreachable Vault."""
    keys = HostKeys.generate(tmp_path / "keys", ("ed25519",))
    with OpenSSHServer(tmp_path, keys) as sshd:
        auth = _token_auth(tmp_path, "t-123")
        address = f"http://{sshd.host}:{sshd.port}"
        result = await VaultReader(_source(address, auth, pki=())).refresh(None)
    assert (result.up, result.error_reason) == (False, "bad_response")
    assert result.error == "LIST /v1/secret/metadata/tls/: the answer is not HTTP"
    _assert_no_secrets([result], "t-123")


# --- failures keep the last good data -------------------------------------------------------


@pytest.fixture
def tls_bao(tmp_path: Path) -> Iterator[OpenBao]:
    bao = OpenBao.start(tmp_path / "bao", tls=True)
    try:
        yield bao
    finally:
        bao.stop()


async def test_tls_sealed_and_stopped_keep_last_good(
    tls_bao: OpenBao, tmp_path: Path, pki: TestPKI
) -> None:
    bao = tls_bao
    bao.ok(
        "POST", "secret/data/tls/web", {"data": {"certificate": pki.leaf("web.test").pem.decode()}}
    )
    auth = _token_auth(tmp_path, bao.root_token)
    kv = (VaultKV("secret", "tls/"),)
    untrusted = await VaultReader(_source(bao.address, auth, kv=kv, pki=())).refresh(None)
    assert (untrusted.up, untrusted.error_reason) == (False, "tls_error")
    assert untrusted.error.startswith("certificate of 127.0.0.1:")

    # http:// for an https listener: the address's scheme is named as the thing to fix.
    plain = bao.address.replace("https://", "http://")
    assert plain != bao.address
    misaddressed = await VaultReader(_source(plain, auth, kv=kv, pki=())).refresh(None)
    assert (misaddressed.up, misaddressed.error_reason) == (False, "bad_response")
    assert misaddressed.error == (
        "HTTP 400 from LIST /v1/secret/metadata/tls/: the server speaks HTTPS; "
        "use https:// in address"
    )

    reader = VaultReader(_source(bao.address, auth, kv=kv, pki=(), ca_file=bao.ca_file))
    good = await reader.refresh(None)
    assert good.up, good.error
    assert _found(good) == {("secret/tls/web#certificate", 0): "web.test"}

    bao.ok("PUT", "sys/seal")
    sealed = await reader.refresh(good)
    assert (sealed.up, sealed.error_reason) == (False, "sealed")
    assert sealed.error == "Vault is sealed (LIST /v1/secret/metadata/tls/)"
    assert (sealed.certs, sealed.last_success) == (good.certs, good.last_success)

    bao.stop()
    down = await reader.refresh(sealed)
    assert (down.up, down.error_reason) == (False, "unreachable")
    assert down.error.startswith("cannot connect to 127.0.0.1:")
    assert (down.certs, down.last_success) == (good.certs, good.last_success)
    _assert_no_secrets([untrusted, misaddressed, good, sealed, down], bao.root_token)


async def test_timeout_keeps_last_good(monkeypatch: pytest.MonkeyPatch) -> None:
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()  # accept, read nothing, answer nothing
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        monkeypatch.setenv("CERTSCOPE_TEST_VAULT_TOKEN", "t-123")
        auth = VaultAuth("token", token=SecretRef(env="CERTSCOPE_TEST_VAULT_TOKEN"))
        reader = VaultReader(_source(f"http://127.0.0.1:{port}", auth, timeout=0.3))
        previous = SourceResult("vault", "vault", (), 1.0, 0.1, True, (), (), 1.0)
        started = time.monotonic()
        result = await reader.refresh(previous)
        assert time.monotonic() - started < 2
        assert (result.up, result.error_reason, result.last_success) == (False, "timeout", 1.0)
        assert result.error == "no answer within 0.3s to LIST /v1/secret/metadata/tls/"
    finally:
        release.set()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.01)


Answer = tuple[int, bytes, str]  # status, body, content type


@pytest.fixture
async def fake_vault() -> AsyncIterator[tuple[str, dict[str, Answer]]]:
    """An HTTP server answering ``/v1/<path>`` from a dict of prepared answers."""
    answers: dict[str, Answer] = {}

    async def handler(request: web.Request) -> web.Response:
        status, body, content_type = answers.get(
            request.path.removeprefix("/v1/"), (404, b'{"errors": []}', "application/json")
        )
        headers = {"Location": "http://elsewhere.test/"} if 300 <= status < 400 else None
        return web.Response(status=status, body=body, content_type=content_type, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", answers
    finally:
        await runner.cleanup()


JSON = "application/json"


@pytest.mark.parametrize(
    ("answer", "reason", "message"),
    [
        (
            (200, b"<html>hi</html>", "text/html"),
            "bad_response",
            "HTTP 200 from LIST /v1/pki/certs: not a JSON object",
        ),
        (
            (200, b'{"data": {"keys": "oops"}}', JSON),
            "bad_response",
            "LIST /v1/pki/certs: keys is not a list of strings",
        ),
        (
            (500, b'{"errors": ["internal error"]}', JSON),
            "http_error",
            "HTTP 500 from LIST /v1/pki/certs: internal error",
        ),
        (
            (503, b'{"errors": ["Vault is sealed"]}', JSON),
            "sealed",
            "Vault is sealed (LIST /v1/pki/certs)",
        ),
        ((307, b"", JSON), "http_error", "HTTP 307 from LIST /v1/pki/certs: no details"),
        (
            (429, b'{"errors": ["rate limited"]}', JSON),
            "http_error",
            "HTTP 429 from LIST /v1/pki/certs: rate limited",
        ),
    ],
)
async def test_bad_answers(
    fake_vault: tuple[str, dict[str, Answer]],
    monkeypatch: pytest.MonkeyPatch,
    answer: Answer,
    reason: str,
    message: str,
) -> None:
    address, answers = fake_vault
    answers["pki/certs"] = answer
    monkeypatch.setenv("CERTSCOPE_TEST_VAULT_TOKEN", "t-123")
    auth = VaultAuth("token", token=SecretRef(env="CERTSCOPE_TEST_VAULT_TOKEN"))
    result = await VaultReader(_source(address, auth, kv=())).refresh(None)
    assert (result.up, result.error_reason, result.error) == (False, reason, message)


async def test_serial_gone_between_list_and_read(
    fake_vault: tuple[str, dict[str, Answer]], monkeypatch: pytest.MonkeyPatch
) -> None:
    address, answers = fake_vault
    answers["pki/certs"] = (200, b'{"data": {"keys": ["01:02"]}}', JSON)  # pki/cert/01:02: 404
    monkeypatch.setenv("CERTSCOPE_TEST_VAULT_TOKEN", "t-123")
    auth = VaultAuth("token", token=SecretRef(env="CERTSCOPE_TEST_VAULT_TOKEN"))
    result = await VaultReader(_source(address, auth, kv=())).refresh(None)
    assert (result.up, result.certs, _errors(result)) == (
        True,
        (),
        {("pki/certs/01:02", "not_found")},
    )


async def test_dot_segments_in_key_names_are_skipped(
    fake_vault: tuple[str, dict[str, Answer]], monkeypatch: pytest.MonkeyPatch, pki: TestPKI
) -> None:
    """Key names with a ``.`` or ``..`` segment are never followed: from a name such as
    ``../pki/`` the next LIST would read outside the configured path. A real Vault or OpenBao
    cannot be made to list such a name (its router cleans dot segments from every path), so
    a prepared HTTP server answers here, with a readable certificate where a followed
    ``..`` would land."""
    address, answers = fake_vault

    def secret(cn: str) -> Answer:
        data = {"certificate": pki.leaf(cn).pem.decode()}
        body = {"data": {"data": data, "metadata": {"deletion_time": "", "destroyed": False}}}
        return 200, json.dumps(body).encode(), JSON

    listing = {"data": {"keys": ["..", "../", "./", "web", "a/../"]}}
    answers["secret/metadata/tls/"] = (200, json.dumps(listing).encode(), JSON)
    answers["secret/data/tls/web"] = secret("inside.test")
    # Where ``..`` and ``../`` would lead, normalised or not.
    outside = {"data": {"keys": ["stolen"]}}
    for folder in ("secret/metadata/", "secret/metadata/tls/../", "secret/metadata/tls/a/../"):
        answers[folder] = (200, json.dumps(outside).encode(), JSON)
    for where in ("secret/data/stolen", "secret/data/tls/../stolen", "secret/data/tls/.."):
        answers[where] = secret("outside.test")
    monkeypatch.setenv("CERTSCOPE_TEST_VAULT_TOKEN", "t-123")
    auth = VaultAuth("token", token=SecretRef(env="CERTSCOPE_TEST_VAULT_TOKEN"))
    result = await VaultReader(_source(address, auth, pki=())).refresh(None)
    assert result.up
    assert _found(result) == {("secret/tls/web#certificate", 0): "inside.test"}
    assert _errors(result) == {
        (f"secret/tls/{name}", "unsafe_name") for name in ("..", "../", "./", "a/../")
    }


# --- the whole exporter ----------------------------------------------------------------------


async def test_config_yaml_to_reader_to_metrics(world: World, tmp_path: Path) -> None:
    token_file = _file(tmp_path, "vault-token", world.policy_token)
    text = f"""
sources:
  - name: vault
    kind: vault
    address: {world.bao.address}
    auth: {{method: token, token_file: {token_file}}}
    kv: [{{mount: secret, path: tls/, keys: [certificate]}}]
    pki: [{{mount: pki}}]
"""
    config = parse_config(text, "vault.yml")
    (source,) = config.sources
    reader = reader_for(source)
    assert isinstance(reader, VaultReader)
    assert reader.kind == "vault"
    result = await reader.refresh(None)
    assert result.up, result.error
    assert _found(result) == {**world.kv_expected, **world.pki_expected}
    lines = "".join(line for group in source_fragments(result).values() for line in group)
    assert 'certscope_source_up{source_kind="vault",source="vault"} 1' in lines
    assert (
        'certscope_source_item_errors{source_kind="vault",source="vault",reason="missing_key"} 1'
        in lines
    )
    assert 'location="secret/tls/bundle#certificate",chain_position="2",subject_cn="' in lines
    _assert_no_secrets([result, lines], world.policy_token, _key_body(world.key_pem))
