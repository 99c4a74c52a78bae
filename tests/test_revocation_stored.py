"""Revocation of stored certificates (files and Vault sources) against real services on
loopback: an ``openssl ocsp`` responder answering from a CA index and a CRL served by a plain
HTTP file server, the same parts as tests/test_revocation.py uses for probed chains.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certscope import revocation
from certscope.collector import render_once
from certscope.config import (
    FilesSource,
    RevocationOptions,
    SecretRef,
    VaultAuth,
    VaultKV,
    VaultPKI,
    VaultSource,
    parse_config,
)
from certscope.errors import ConfigError
from certscope.inventory import rows
from certscope.policy import Rule
from certscope.results import JobKey, JobKind, SourceResult, StoredCert
from certscope.scheduler import Scheduler
from certscope.snapshot import State
from certscope.sources.files import FilesReader
from certscope.sources.revocation_check import ISSUER_ABSENT, TIMED_OUT
from certscope.sources.vault import VaultReader
from helpers.openbao import OpenBao
from helpers.pki import Leaf, TestPKI
from helpers.revocation import ca_index_line, signed_crl, write_key_file
from helpers.servers import FileServer, OCSPResponder, silent_server

GOOD, REVOKED = 0x2001, 0x2002


@dataclass
class Store:
    pki: TestPKI
    responder: OCSPResponder
    good: Leaf
    revoked: Leaf
    directory: Path  # the files source reads *.pem here


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    d = tmp_path_factory.mktemp("stored-revocation")
    pki = TestPKI(d / "pki", name="Stored")
    key_file = write_key_file(pki, d / "intermediate.key")
    index = d / "index.txt"
    index.write_text(
        ca_index_line("V", GOOD, "good.test")
        + ca_index_line("R", REVOKED, "revoked.test", "261101000000Z,keyCompromise")
    )
    (d / "crl").mkdir()
    (d / "crl" / "int.crl").write_bytes(signed_crl(pki, [REVOKED], timedelta(hours=1)))
    with (
        OCSPResponder(index, pki.intermediate.path, key_file) as responder,
        FileServer(d / "crl") as files,
    ):
        pki.ocsp_url = responder.url + "/ocsp"
        pki.crl_url = f"http://127.0.0.1:{files.port}/int.crl"
        good = pki.leaf("good.test", serial=GOOD)
        revoked = pki.leaf("revoked.test", serial=REVOKED)
        tree = d / "store"
        tree.mkdir()
        (tree / "good.pem").write_bytes(good.chain.read_bytes())  # leaf + its issuer
        (tree / "revoked.pem").write_bytes(revoked.chain.read_bytes())
        (tree / "lonely.pem").write_bytes(good.cert.read_bytes())  # no issuer beside it
        yield Store(pki, responder, good, revoked, tree)


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    revocation.clear_caches()


def _files(store: Store, **revocation_options: object) -> FilesReader:
    opts = RevocationOptions(**revocation_options)  # type: ignore[arg-type]
    source = FilesSource("disk", (str(store.directory / "*.pem"),), revocation=opts)
    return FilesReader(source)


def _statuses(result: SourceResult) -> dict[tuple[str, int], dict[str, str]]:
    return {
        (Path(c.location).name, c.position): {
            str(k.method): str(k.status) for k in c.revocation.checks
        }
        for c in result.certs
        if c.revocation is not None
    }


def _requests(store: Store) -> int:
    return store.responder.output().count("OCSP Request Data:")


async def test_files_source_checks_each_leaf_against_its_issuer(store: Store) -> None:
    result = await _files(store).refresh(None)
    assert result.up, result.error
    assert _statuses(result) == {
        ("good.pem", 0): {"ocsp": "good", "crl": "good"},
        ("revoked.pem", 0): {"ocsp": "revoked", "crl": "revoked"},
        ("lonely.pem", 0): {"ocsp": "unknown", "crl": "unknown"},  # never good
    }
    lonely = next(c for c in result.certs if c.location.endswith("lonely.pem"))
    assert lonely.revocation is not None
    assert {k.detail for k in lonely.revocation.checks} == {ISSUER_ABSENT}
    revoked = {(Path(c.location).name, c.position) for c in result.certs if c.revoked}
    assert revoked == {("revoked.pem", 0)}  # the issuer at position 1 is not checked
    # The same family as for probes, with the stored certificate's identity.
    text = render_once([result])
    where = f'source_kind="files",source="disk",location="{store.directory}/revoked.pem"'
    assert (
        f'certscope_cert_revocation_status{{{where},chain_position="0",method="ocsp",'
        'status="revoked"} 1'
    ) in text
    assert f'certscope_cert_revoked{{{where},chain_position="0"' in text
    good = f'location="{store.directory}/good.pem",chain_position="0",method="crl",status="good"'
    assert good in text
    assert "certscope_ocsp_stapled" not in text  # stapling is for servers only
    inventory = {
        (Path(r["location"]).name, r["chain_position"]): r["revoked"]
        for r in rows([], [result], datetime.now(UTC))
        if r.get("kind") == "certificate"
    }
    assert inventory[("revoked.pem", 0)] is True
    assert inventory[("good.pem", 0)] is False


async def _requests_after(store: Store, at_least: int) -> int:
    # openssl ocsp writes a request's text once it has answered: wait for it to show.
    for _ in range(100):
        if _requests(store) >= at_least:
            break
        await asyncio.sleep(0.05)
    return _requests(store)


async def test_answers_are_cached_between_refreshes(store: Store) -> None:
    reader = _files(store, crl=False)
    before = _requests(store)
    first = await reader.refresh(None)
    asked = await _requests_after(store, before + 2) - before
    assert asked == 2  # good and revoked; the lonely leaf cannot be asked
    second = await reader.refresh(first)
    # nextUpdate is minutes away: from the cache (a request would show within the wait).
    assert await _requests_after(store, before + asked + 1) - before == asked
    assert _statuses(second) == _statuses(first)
    assert all(set(s) == {"ocsp"} for s in _statuses(second).values())


async def test_off_by_default_keeps_no_der(store: Store) -> None:
    source = FilesSource("disk", (str(store.directory / "*.pem"),))
    assert not source.revocation.enabled
    before = _requests(store)
    result = await FilesReader(source).refresh(None)
    assert result.certs and all(c.der == b"" and c.revocation is None for c in result.certs)
    assert not any(c.revoked for c in result.certs)
    assert _requests(store) == before
    assert "certscope_cert_revocation_status" not in render_once([result])


async def test_a_silent_responder_is_bounded_by_the_budget(tmp_path: Path) -> None:
    with silent_server() as silent:
        pki = TestPKI(tmp_path / "silent", name="Silent", base_url=f"http://{silent.address}")
        path = tmp_path / "slow.pem"
        path.write_bytes(pki.leaf("slow.test").chain.read_bytes())
        # Each fetch may take 30 s; the refresh (timeout 1 s) allows the checks no more.
        checks = RevocationOptions(timeout=30)
        source = FilesSource("d", (str(path),), timeout=1.0, revocation=checks)
        started = time.monotonic()
        result = await FilesReader(source).refresh(None)
        assert time.monotonic() - started < 5
    leaf = next(c for c in result.certs if c.position == 0)
    assert leaf.revocation is not None
    assert {(str(k.method), str(k.status), k.detail) for k in leaf.revocation.checks} == {
        ("ocsp", "error", TIMED_OUT),
        ("crl", "error", TIMED_OUT),
    }
    assert not leaf.revoked and result.up


def test_source_key_is_validated_like_the_target_key(tmp_path: Path) -> None:
    def files(rev: str) -> str:
        return (
            "sources:\n  - name: disk\n    kind: files\n    paths: [/etc/ssl/*.pem]\n"
            f"    revocation: {rev}\n"
        )

    def revocation(text: str) -> RevocationOptions:
        (source,) = parse_config(text, "t").sources
        assert isinstance(source, FilesSource)
        return source.revocation

    opts = revocation(files("{ocsp: false, timeout: 2s, max_crl_bytes: 2048}"))
    assert (opts.ocsp, opts.crl, opts.timeout, opts.max_crl_bytes) == (False, True, 2.0, 2048)
    assert revocation(files("true")) == RevocationOptions()
    bare = "sources:\n  - name: disk\n    kind: files\n    paths: [/etc/ssl/*.pem]\n"
    assert not revocation(bare).enabled
    with pytest.raises(ConfigError) as err:
        parse_config(files("{ocsp: maybe, max_crl_bytes: 1, oscp: true}"), "t")
    text = str(err.value)
    for where in ("revocation.ocsp", "revocation.max_crl_bytes", "revocation.oscp"):
        assert where in text, text


async def test_scheduler_reports_cert_revoked_for_the_stored_leaf(store: Store) -> None:
    config = parse_config(
        "sources:\n  - name: disk\n    kind: files\n    interval: 1h\n"
        f"    paths: ['{store.directory}/*.pem']\n    revocation: true\n",
        "t",
    )
    state = State(config)
    task = asyncio.create_task(Scheduler(state).run())
    try:
        for _ in range(200):
            if JobKey(JobKind.SOURCE, "disk") in state.snapshot().assessments:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    found = {
        Path(a.location).name: {f.rule: f.severity for f in a.assessment.findings}
        for a in state.snapshot().assessed()
        if a.source == "disk"
    }
    assert found["revoked.pem"].get(Rule.CERT_REVOKED) == "critical"
    assert Rule.CERT_REVOKED not in found.get("good.pem", {})
    assert Rule.CERT_REVOKED not in found.get("lonely.pem", {})  # unknown is not revoked


async def _vault_refresh(bao: OpenBao, tmp_path: Path, **stores: Any) -> SourceResult:
    token = tmp_path / "token"
    token.write_text(bao.root_token)
    auth = VaultAuth("token", token=SecretRef(file=str(token)))
    source = VaultSource("vault", bao.address, auth, revocation=RevocationOptions(), **stores)
    return await VaultReader(source).refresh(None)


def _checked(result: SourceResult, key: Callable[[StoredCert], object]) -> dict[object, object]:
    return {
        key(c): {str(k.method): str(k.status) for k in c.revocation.checks}
        for c in result.certs
        if c.revocation is not None
    }


async def test_vault_kv_bundles(store: Store, tmp_path: Path) -> None:
    bao = OpenBao.start(tmp_path / "bao")
    try:
        bundle = {"certificate": store.revoked.chain.read_text()}
        bao.ok("POST", "secret/data/tls/revoked", {"data": bundle})
        split = {
            "certificate": store.good.pem.decode(),
            "issuing_ca": store.pki.intermediate.pem.decode(),
        }
        bao.ok("POST", "secret/data/tls/good", {"data": split})
        kv = (VaultKV("secret", "tls", ("certificate", "issuing_ca")),)
        result = await _vault_refresh(bao, tmp_path, kv=kv)
    finally:
        bao.stop()
    assert result.up, result.error
    assert _checked(result, lambda c: (c.location, c.position)) == {
        ("secret/tls/revoked#certificate", 0): {"ocsp": "revoked", "crl": "revoked"},
        # The issuer is another key of the same secret.
        ("secret/tls/good#certificate", 0): {"ocsp": "good", "crl": "good"},
    }
    assert {c.location for c in result.certs if c.revoked} == {"secret/tls/revoked#certificate"}
    assert 'source_kind="vault",source="vault",location="secret/tls/revoked#certificate"' in (
        render_once([result])
    )


async def test_vault_pki_leaves_against_the_mount_issuer(tmp_path: Path) -> None:
    # OpenBao's own OCSP responder and CRL, named in the certificates it issues.
    bao = OpenBao.start(tmp_path / "bao")
    try:
        bao.ok("POST", "sys/mounts/pki", {"type": "pki", "config": {"max_lease_ttl": "87600h"}})
        bao.ok(
            "POST",
            "pki/root/generate/internal",
            {"common_name": "Certscope Revocation Root", "key_type": "ec", "ttl": "87600h"},
        )
        bao.ok(
            "POST",
            "pki/config/urls",
            {
                "ocsp_servers": [f"{bao.address}/v1/pki/ocsp"],
                "crl_distribution_points": [f"{bao.address}/v1/pki/crl"],
            },
        )
        role = {"allowed_domains": ["vault.test"], "allow_subdomains": True, "key_type": "ec"}
        bao.ok("POST", "pki/roles/web", {**role, "max_ttl": "72h"})
        serials = {
            cn: bao.ok("POST", "pki/issue/web", {"common_name": cn, "ttl": "1h"})["data"][
                "serial_number"
            ]
            for cn in ("good.vault.test", "revoked.vault.test")
        }
        bao.ok("POST", "pki/revoke", {"serial_number": serials["revoked.vault.test"]})
        result = await _vault_refresh(bao, tmp_path, pki=(VaultPKI("pki", include_revoked=True),))
    finally:
        bao.stop()
    assert result.up, result.error
    assert _checked(result, lambda c: c.facts.subject_cn) == {
        "good.vault.test": {"ocsp": "good", "crl": "good"},
        "revoked.vault.test": {"ocsp": "revoked", "crl": "revoked"},
    }
