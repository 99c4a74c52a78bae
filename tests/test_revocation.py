"""Revocation against real services on loopback: an ``openssl ocsp`` responder answering from a
CA index, CRLs served by a plain HTTP file server, and nginx stapling OCSP responses fetched
from that responder (``openssl ocsp -respout``). Plus the pure judgements' failure cases.
"""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from prometheus_client.parser import text_string_to_metric_families

from certscope import revocation
from certscope.app import make_app
from certscope.collector import render_once
from certscope.config import (
    Policy,
    RevocationOptions,
    Target,
    TLSOptions,
    load_config,
    parse_config,
)
from certscope.errors import VerifyFailure
from certscope.httpfetch import FetchError, fetch
from certscope.policy import Rule, assess_endpoint
from certscope.probe import probe
from certscope.results import ProbeResult
from certscope.revocation import Status, judge_crl, judge_ocsp, ocsp_get_url, ocsp_request
from helpers.app import MetricValue, find
from helpers.pki import Leaf, TestPKI
from helpers.revocation import ca_index_line, signed_crl, write_key_file
from helpers.servers import FileServer, NginxServer, OCSPResponder, silent_server, tls_server

GOOD, REVOKED, UNKNOWN, CRL_ONLY = 0x1001, 0x1002, 0x1003, 0x1004


@dataclass
class RevocationPKI:
    pki: TestPKI
    responder: OCSPResponder
    files: FileServer
    key_file: Path
    directory: Path
    good: Leaf
    revoked: Leaf
    unknown: Leaf
    crl_only: Leaf
    must_staple: Leaf


@pytest.fixture(scope="module")
def rev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RevocationPKI]:
    d = tmp_path_factory.mktemp("revocation")
    pki = TestPKI(d, name="Revocation")
    key_file = write_key_file(pki, d / "intermediate.key")
    index = d / "index.txt"
    index.write_text(
        ca_index_line("V", GOOD, "good.test")
        + ca_index_line("R", REVOKED, "revoked.test", "261101000000Z,keyCompromise")
        + ca_index_line("V", CRL_ONLY, "crl-only.test")
        + ca_index_line("V", 0x1005, "staple.test")
    )
    (d / "crl").mkdir()
    (d / "crl" / "int.crl").write_bytes(signed_crl(pki, [REVOKED, CRL_ONLY], timedelta(hours=1)))
    responder = OCSPResponder(index, pki.intermediate.path, key_file).__enter__()
    files = FileServer(d / "crl").__enter__()
    pki.ocsp_url = responder.url + "/ocsp"
    pki.crl_url = f"http://127.0.0.1:{files.port}/int.crl"
    out = RevocationPKI(
        pki,
        responder,
        files,
        key_file,
        d,
        good=pki.leaf("good.test", serial=GOOD),
        revoked=pki.leaf("revoked.test", serial=REVOKED),
        unknown=pki.leaf("unknown.test", serial=UNKNOWN),
        crl_only=pki.leaf("crl-only.test", serial=CRL_ONLY),
        must_staple=pki.leaf("staple.test", serial=0x1005, must_staple=True),
    )
    yield out
    responder.__exit__(None, None, None)
    files.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    revocation.clear_caches()


async def _probe(port: int, name: str, pki: TestPKI, **options: object) -> ProbeResult:
    checks = RevocationOptions(**options)  # type: ignore[arg-type]
    opts = TLSOptions(sni=name, ca_file=str(pki.ca_file), timeout=10, revocation=checks)
    return await probe(Target("rev", "127.0.0.1", port, opts))


def _statuses(r: ProbeResult) -> dict[str, tuple[str, str]]:
    assert r.revocation is not None
    return {str(c.method): (str(c.status), c.source) for c in r.revocation.checks}


async def _probe_leaf(leaf: Leaf, pki: TestPKI, **options: object) -> ProbeResult:
    with tls_server(leaf.chain, leaf.key) as srv:
        return await _probe(srv.port, leaf.name, pki, **options)


# --- responder and CRL -------------------------------------------------------------------------


async def test_good(rev: RevocationPKI, metric_value: MetricValue) -> None:
    r = await _probe_leaf(rev.good, rev.pki)
    assert _statuses(r) == {
        "ocsp": ("good", rev.pki.ocsp_url),
        "crl": ("good", rev.pki.crl_url),
    }
    assert r.verdict is not None and r.verdict.verified
    text = render_once([r])
    leaf = {"source_kind": "tls", "source": "rev"}
    for method in ("ocsp", "crl"):  # one series a method, and it says good
        assert len(find(text, "certscope_cert_revocation_status", method=method, **leaf)) == 1
        good = metric_value(text, "certscope_cert_revocation_status", method=method, status="good")
        assert good == 1
    assert metric_value(text, "certscope_ocsp_stapled", source_kind="tls", source="rev") == 0


async def test_revoked_by_ocsp_and_crl(rev: RevocationPKI) -> None:
    r = await _probe_leaf(rev.revoked, rev.pki)
    assert _statuses(r) == {
        "ocsp": ("revoked", rev.pki.ocsp_url),
        "crl": ("revoked", rev.pki.crl_url),
    }
    assert r.verdict is not None
    assert VerifyFailure.REVOKED in r.verdict.errors
    assert not r.verdict.verified
    assert r.verdict.chain_trusted  # revocation is its own reason, not a trust failure
    a = assess_endpoint(("rev", "x"), r.facts, r.verdict, None, Policy(), datetime.now(UTC))
    assert {f.rule: f.severity for f in a.findings} == {Rule.CERT_REVOKED: "critical"}
    assert 'certscope_cert_verification_failure{source_kind="tls",source="rev"' in render_once([r])


async def test_unknown_to_the_responder(rev: RevocationPKI) -> None:
    r = await _probe_leaf(rev.unknown, rev.pki, crl=False)
    assert _statuses(r) == {"ocsp": ("unknown", rev.pki.ocsp_url)}
    assert r.verdict is not None and r.verdict.verified  # unknown is not revoked


async def test_revoked_only_in_the_crl(rev: RevocationPKI) -> None:
    r = await _probe_leaf(rev.crl_only, rev.pki)
    assert _statuses(r) == {
        "ocsp": ("good", rev.pki.ocsp_url),
        "crl": ("revoked", rev.pki.crl_url),
    }
    assert r.verdict is not None and VerifyFailure.REVOKED in r.verdict.errors


async def test_switched_off_per_target(rev: RevocationPKI) -> None:
    r = await _probe_leaf(rev.revoked, rev.pki, ocsp=False, crl=False)
    assert _statuses(r) == {}
    assert r.verdict is not None and VerifyFailure.REVOKED not in r.verdict.errors
    cfg = parse_config(
        "targets:\n - address: a.test:443\n   revocation: false\n"
        " - address: b.test:443\n   revocation: {crl: false, timeout: 2s}\n",
        "t.yaml",
    )
    a, b = (t.tls.revocation for t in cfg.targets)
    assert (a.ocsp, a.crl) == (False, False)
    assert (b.ocsp, b.crl, b.timeout) == (True, False, 2.0)


async def test_answers_are_cached_until_next_update(rev: RevocationPKI) -> None:
    def asked() -> tuple[int, int]:
        return (
            rev.responder.output().count("OCSP Request Data:"),
            rev.files.output().count("GET /int.crl"),
        )

    with tls_server(rev.good.chain, rev.good.key) as srv:
        before = asked()
        first = await _probe(srv.port, "good.test", rev.pki)
        after_first = asked()
        second = await _probe(srv.port, "good.test", rev.pki)
        after_second = asked()
    assert _statuses(first) == _statuses(second)
    assert after_first == (before[0] + 1, before[1] + 1)  # one POST, one CRL download
    assert after_second == after_first  # both answers came from the cache


async def test_a_silent_responder_costs_no_more_than_the_probe_timeout(pki: TestPKI) -> None:
    with silent_server() as silent:
        base = TestPKI(pki.directory / "silent", name="Silent", base_url=f"http://{silent.address}")
        leaf = base.leaf("slow.test")
        with tls_server(leaf.chain, leaf.key) as srv, tls_server(leaf.chain, leaf.key) as other:
            opts = TLSOptions(
                sni="slow.test", timeout=1.5, revocation=RevocationOptions(timeout=30)
            )
            fast = TLSOptions(
                sni="slow.test", timeout=5, revocation=RevocationOptions(False, False)
            )
            started = time.monotonic()
            slow_task = asyncio.create_task(probe(Target("slow", "127.0.0.1", srv.port, opts)))
            await asyncio.sleep(0.3)
            # The event loop is free while the responder stalls: another probe completes.
            quick = await probe(Target("quick", "127.0.0.1", other.port, fast))
            quick_done = time.monotonic() - started
            slow = await slow_task
            elapsed = time.monotonic() - started
    assert quick.success and quick_done < 1.4
    assert slow.success
    assert elapsed < 2.5
    assert slow.revocation is not None
    assert [c.status for c in slow.revocation.checks] == [Status.ERROR]


async def test_get_form_against_the_responder(rev: RevocationPKI) -> None:
    # RFC 6960 A.1 GET, the fallback for responders that refuse POST: openssl ocsp answers both.
    request = ocsp_request(rev.good.certificate, rev.pki.intermediate.certificate)
    url = ocsp_get_url(rev.responder.url, request)
    der = await fetch(url, max_bytes=65536, timeout=10)
    now = datetime.now(UTC)
    answer = judge_ocsp(der, rev.good.certificate, rev.pki.intermediate.certificate, now)
    assert answer.status is Status.GOOD


# --- stapling (nginx) --------------------------------------------------------------------------


def _staple(rev: RevocationPKI, leaf: Leaf, out: Path) -> Path:
    subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(rev.pki.intermediate.path),
            "-cert",
            str(leaf.cert),
            "-url",
            rev.responder.url,
            "-respout",
            str(out),
            "-noverify",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return out


@pytest.mark.parametrize("which", ["good", "revoked"])
async def test_nginx_stapling(rev: RevocationPKI, tmp_path: Path, which: str) -> None:
    leaf = rev.good if which == "good" else rev.revoked
    staple = _staple(rev, leaf, tmp_path / "staple.der")
    directives = ["ssl_stapling on", f"ssl_stapling_file {staple}"]
    with NginxServer(tmp_path / "nginx", leaf.chain, leaf.key, directives) as srv:
        r = await _probe(srv.port, leaf.name, rev.pki, crl=False)
    assert r.revocation is not None
    assert r.revocation.stapled
    assert _statuses(r) == {"ocsp": (which, "staple")}
    assert r.revocation.staple_next_update is not None
    assert 0 < r.revocation.staple_next_update - time.time() <= 5 * 60 + 60  # -nmin 5
    text = render_once([r])
    next_update = find(text, "certscope_ocsp_staple_next_update_timestamp_seconds")
    assert next_update == [pytest.approx(r.revocation.staple_next_update)]
    assert find(text, "certscope_ocsp_stapled") == [1.0]


async def test_must_staple_without_a_staple(rev: RevocationPKI, tmp_path: Path) -> None:
    leaf = rev.must_staple
    with NginxServer(tmp_path / "off", leaf.chain, leaf.key, ["ssl_stapling off"]) as srv:
        r = await _probe(srv.port, leaf.name, rev.pki, crl=False)
    staple = _staple(rev, leaf, tmp_path / "staple.der")
    on = ["ssl_stapling on", f"ssl_stapling_file {staple}"]
    with NginxServer(tmp_path / "on", leaf.chain, leaf.key, on) as srv:
        stapled = await _probe(srv.port, leaf.name, rev.pki, crl=False)
    assert r.revocation is not None and not r.revocation.stapled and r.revocation.must_staple
    assert _statuses(r) == {"ocsp": ("good", rev.pki.ocsp_url)}  # the responder instead
    now = datetime.now(UTC)
    off = assess_endpoint(("t", "x"), r.facts, r.verdict, None, Policy(), now, stapled=False)
    assert {f.rule: f.severity for f in off.findings} == {Rule.OCSP_MUST_STAPLE_MISSING: "critical"}
    assert stapled.revocation is not None and stapled.revocation.stapled
    ok = assess_endpoint(
        ("t", "x"), stapled.facts, stapled.verdict, None, Policy(), now, stapled=True
    )
    assert ok.findings == ()


# --- pure judgements ---------------------------------------------------------------------------


def _response(
    rev: RevocationPKI,
    leaf: Leaf,
    *,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    this_update: timedelta = timedelta(minutes=-1),
    next_update: timedelta | None = timedelta(hours=1),
    signer: TestPKI | None = None,
) -> bytes:
    signing = signer or rev.pki
    now = datetime.now(UTC)
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=leaf.certificate,
        issuer=rev.pki.intermediate.certificate,
        algorithm=hashes.SHA1(),
        cert_status=status,
        this_update=now + this_update,
        next_update=now + next_update if next_update is not None else None,
        revocation_time=now if status is ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None,
    )
    builder = builder.responder_id(
        ocsp.OCSPResponderEncoding.HASH, signing.intermediate.certificate
    )
    resp = builder.sign(signing.intermediate.key, hashes.SHA256())
    return resp.public_bytes(serialization.Encoding.DER)


def test_judge_ocsp_failures(rev: RevocationPKI, other_pki: TestPKI) -> None:
    leaf, issuer = rev.good.certificate, rev.pki.intermediate.certificate
    now = datetime.now(UTC)
    assert judge_ocsp(_response(rev, rev.good), leaf, issuer, now).status is Status.GOOD
    stale = _response(
        rev, rev.good, this_update=timedelta(hours=-3), next_update=timedelta(hours=-1)
    )
    assert "stale" in judge_ocsp(stale, leaf, issuer, now).detail
    future = _response(rev, rev.good, this_update=timedelta(hours=1))
    assert "future" in judge_ocsp(future, leaf, issuer, now).detail
    forged = _response(rev, rev.good, signer=other_pki)
    got = judge_ocsp(forged, leaf, issuer, now)
    assert got.status is Status.ERROR and "signed" in got.detail
    other = judge_ocsp(_response(rev, rev.revoked), leaf, issuer, now)
    assert other.status is Status.ERROR and "another certificate" in other.detail
    assert judge_ocsp(b"\x30\x03\x0a\x01\x01", leaf, issuer, now).status is Status.ERROR
    assert judge_ocsp(b"junk", leaf, issuer, now).status is Status.ERROR


def test_judge_crl_failures(rev: RevocationPKI, other_pki: TestPKI) -> None:
    leaf, issuer = rev.revoked.certificate, rev.pki.intermediate.certificate
    now = datetime.now(UTC)
    crl = x509.load_der_x509_crl(signed_crl(rev.pki, [REVOKED], timedelta(hours=1)))
    assert judge_crl(crl, leaf, issuer, now).status is Status.REVOKED
    stale = x509.load_der_x509_crl(signed_crl(rev.pki, [], timedelta(minutes=-30)))
    assert judge_crl(stale, leaf, issuer, now).status is Status.ERROR
    foreign = x509.load_der_x509_crl(signed_crl(other_pki, [REVOKED], timedelta(hours=1)))
    assert judge_crl(foreign, leaf, issuer, now).status is Status.ERROR
    forged = x509.load_der_x509_crl(signed_crl(rev.pki, [], timedelta(hours=1), key=other_pki))
    got = judge_crl(forged, leaf, issuer, now)
    assert got.status is Status.ERROR and "signature" in got.detail


# --- probe.allowed_networks holds for the certificate's URLs too --------------------------------


async def test_fetches_are_held_to_the_allowed_networks(rev: RevocationPKI) -> None:
    """A /probe target's certificate names its own OCSP and CRL URLs; under
    ``probe.allowed_networks`` they are resolved, checked and pinned like the target."""
    url = f"http://localhost:{rev.files.port}/int.crl"
    inside = (ipaddress.ip_network("127.0.0.0/8"),)
    outside = (ipaddress.ip_network("10.0.0.0/8"),)
    with pytest.raises(FetchError) as refused:
        await fetch(url, max_bytes=1 << 20, timeout=5, allowed_networks=outside)
    assert refused.value.reason == "not_allowed"
    # the same URL inside the networks is fetched at the checked address, named by its Host
    assert (
        await fetch(url, max_bytes=1 << 20, timeout=5, allowed_networks=inside)
        == (rev.directory / "crl" / "int.crl").read_bytes()
    )


async def test_probe_endpoint_does_not_fetch_outside_the_allowed_networks(
    rev: RevocationPKI, tmp_path: Path
) -> None:
    """The responder and the CRL server are on 127.0.0.1; the target is on 127.0.0.2. With
    only 127.0.0.2 allowed, /probe reports ``error`` for both methods and asks neither; with
    127.0.0.0/8 allowed, the same probe gets real answers (so the refusal is the networks').
    A module's ``revocation: false`` is honoured: no check at all."""
    leaf = rev.good
    statuses = {}
    with tls_server(leaf.chain, leaf.key, host="127.0.0.2") as srv:
        for networks, module in (
            ("127.0.0.2/32", "rev"),
            ("127.0.0.0/8", "rev"),
            ("127.0.0.0/8", "norev"),
        ):
            path = tmp_path / "c.yml"
            path.write_text(
                f"probe:\n  allowed_targets: ['127.0.0.2:*']\n  allowed_networks: ['{networks}']\n"
                f"  modules:\n    rev: {{ca_file: '{rev.pki.ca_file}', sni: {leaf.name}}}\n"
                f"    norev: {{ca_file: '{rev.pki.ca_file}', sni: {leaf.name}, revocation: false}}\n"
            )
            # no cache clearing in between: a refusal is never cached as the URL's answer
            reload = partial(load_config, str(path))
            app = make_app(reload(), reload, start_scheduler=False)
            async with TestClient(TestServer(app, host="127.0.0.1")) as client:
                resp = await client.get(
                    "/probe", params={"target": f"127.0.0.2:{srv.port}", "module": module}
                )
                assert resp.status == 200
                text = await resp.text()
            statuses[networks, module] = {
                s.labels["method"]: s.labels["status"]
                for fam in text_string_to_metric_families(text)
                for s in fam.samples
                if s.name == "certscope_cert_revocation_status" and s.value == 1
            }
    assert statuses["127.0.0.2/32", "rev"] == {"ocsp": "error", "crl": "error"}
    assert statuses["127.0.0.0/8", "rev"] == {"ocsp": "good", "crl": "good"}
    assert statuses["127.0.0.0/8", "norev"] == {}
