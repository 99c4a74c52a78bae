"""Private keys and item errors from the Kubernetes and Vault sources: ``tls.key`` of a TLS
Secret and PEM keys in Vault KV values become private-key records (public facts only), and
broken items are errors with their location. The Kubernetes API is the in-test API server
(real list protocol over TLS); Vault is a real OpenBao dev server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from certscope import inventory
from certscope.collector import source_fragments
from certscope.config import KubernetesSource, SecretRef, VaultAuth, VaultKV, VaultSource
from certscope.results import SourceResult
from certscope.sources.kubernetes import KubernetesReader
from certscope.sources.vault import VaultReader
from helpers.k8s_api import FakeKubeAPI
from helpers.openbao import OpenBao
from helpers.pki import TestPKI


def _keys(result: SourceResult) -> dict[str, tuple[str, int | None, str, str]]:
    return {
        k.location: (
            k.algorithm,
            k.bits,
            dict(k.attributes)["encrypted"],
            dict(k.attributes)["certificate_location"],
        )
        for k in result.keys
    }


def _no_key_material(result: SourceResult, key_pem: bytes) -> None:
    body = [ln for ln in key_pem.decode().splitlines() if not ln.startswith("-----")]
    text = "".join(line for lines in source_fragments(result).values() for line in lines)
    rows = json.dumps(list(inventory.rows([], [result], datetime.now(UTC))))
    for secret in body[1:3]:
        assert secret not in text and secret not in rows and secret not in repr(result)


# --- Kubernetes -------------------------------------------------------------------------------


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[FakeKubeAPI]:
    async with FakeKubeAPI(tmp_path) as server:
        yield server


async def test_kubernetes_tls_key_records_and_item_errors(api: FakeKubeAPI) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("web.test")
    key_pem = leaf.private_key_pem.bytes()
    api.put_secret("web", "site", {"tls.crt": leaf.cert_chain_pems[0].bytes(), "tls.key": key_pem})
    api.put_secret("web", "no-key", {"tls.crt": leaf.cert_chain_pems[0].bytes()})
    api.put_secret("web", "bad-key", raw_data={"tls.crt": "", "tls.key": "!!! not base64 !!!"})
    api.put_secret(
        "web",
        "junk-key",
        {
            "tls.crt": b"",
            "tls.key": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        },
    )
    source = KubernetesSource(name="cluster", kubeconfig=str(api.kubeconfig))
    result = await KubernetesReader(source).refresh(None)
    assert result.up
    assert _keys(result) == {
        "web/site#tls.key": ("EC", 256, "false", "web/site#tls.crt"),
    }
    errors = {(e.location, e.reason) for e in result.errors}
    assert {
        ("web/no-key#tls.key", "missing_key"),
        ("web/bad-key#tls.key", "corrupt_data"),
        ("web/junk-key#tls.key", "corrupt_key"),
    } <= errors
    text = "".join(source_fragments(result)["certscope_private_key_info"])
    assert 'source_kind="kubernetes",source="cluster",location="web/site#tls.key"' in text
    _no_key_material(result, key_pem)


# --- Vault ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    server = OpenBao.start(tmp_path_factory.mktemp("openbao-keys"))
    try:
        yield server
    finally:
        server.stop()


async def test_vault_kv_private_keys(bao: OpenBao, pki: TestPKI, tmp_path: Path) -> None:
    leaf = pki.leaf("vault-key.test")
    stray = pki.leaf("stray.test", key="rsa")
    bao.ok(
        "POST",
        "secret/data/keys/web",
        {"data": {"certificate": leaf.pem.decode(), "private_key": leaf.key_pem.decode()}},
    )
    bao.ok(
        "POST",
        "secret/data/keys/stray",
        {
            "data": {
                "certificate": leaf.pem.decode(),
                "old_key": stray.key_pem.decode(),
                "note": "not a key",
            }
        },
    )
    bao.ok(
        "POST",
        "secret/data/keys/broken",
        {
            "data": {
                "certificate": leaf.pem.decode(),
                "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            }
        },
    )
    token = tmp_path / "token"
    token.write_text(bao.root_token)
    source = VaultSource(
        name="vault",
        address=bao.address,
        auth=VaultAuth(method="token", token=SecretRef(file=str(token))),
        kv=(VaultKV("secret", "keys/"),),
    )
    result = await VaultReader(source).refresh(None)
    assert result.up, result.error
    assert _keys(result) == {
        "secret/keys/web#private_key": ("EC", 256, "false", "secret/keys/web#certificate"),
        "secret/keys/stray#old_key": ("RSA", 2048, "false", ""),  # orphaned
    }
    assert ("secret/keys/broken#private_key", "corrupt_key") in {
        (e.location, e.reason) for e in result.errors
    }
    _no_key_material(result, leaf.key_pem)


async def test_kubernetes_forbidden_namespace_is_an_item_error_too(api: FakeKubeAPI) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("ns.test")
    api.put_secret("team", "site", {"tls.crt": leaf.cert_chain_pems[0].bytes(), "tls.key": b""})
    source = KubernetesSource(
        name="cluster", kubeconfig=str(api.kubeconfig), namespaces=("team",), configmaps=True
    )
    api.fail(403, times=None, resource="configmaps")  # the role may not list ConfigMaps there
    reader = KubernetesReader(source, debounce=0.05, backoff_base=0.05, backoff_cap=0.4)
    published: list[SourceResult] = []
    seen = asyncio.Event()

    def publish(result: SourceResult) -> None:
        published.append(result)
        if result.errors:
            seen.set()

    task = asyncio.create_task(reader.watch(publish))
    try:
        await asyncio.wait_for(seen.wait(), 20)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    result = next(r for r in published if r.errors)
    assert (result.up, result.error_reason) == (True, None)  # the namespace's, not the source's
    assert "team/site#tls.crt" in {c.location for c in result.certs}
    assert ("configmap:team/*", "forbidden") in {(e.location, e.reason) for e in result.errors}
