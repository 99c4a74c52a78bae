"""Certificate Transparency facts: embedded SCTs counted and their logs named, and the
``sct_missing`` finding for a publicly trusted leaf without them. The "public" trust store is
the system store pointed at the test root (``SSL_CERT_FILE``), as on a host whose bundle holds
it; the server is Python ``ssl`` on loopback.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from certscope import verify
from certscope.certs import facts_from_der
from certscope.collector import render_once
from certscope.config import Policy, RevocationOptions, Target, TLSOptions
from certscope.policy import CONTROLS, Rule, assess_endpoint
from certscope.probe import probe
from certscope.results import ProbeResult
from helpers.app import MetricValue, find
from helpers.pki import TestPKI
from helpers.servers import tls_server

LOGS = (bytes(range(32)), bytes(range(32, 64)))


@pytest.fixture
def public_store(pki: TestPKI, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    monkeypatch.setenv("SSL_CERT_DIR", "/nonexistent")
    verify._store.cache_clear()
    verify._trust_errors.cache_clear()
    yield
    verify._store.cache_clear()
    verify._trust_errors.cache_clear()


def test_embedded_scts_are_counted(pki: TestPKI) -> None:
    facts = facts_from_der(pki.leaf("ct.test", sct_logs=LOGS).der)
    assert facts.sct_log_ids == tuple(base64.b64encode(log).decode() for log in LOGS)
    assert facts.parse_errors == ()
    assert facts_from_der(pki.leaf("no-ct.test").der).sct_log_ids == ()


async def _probe(pki: TestPKI, sct_logs: tuple[bytes, ...], ca_file: str | None) -> ProbeResult:
    leaf = pki.leaf("ct.test", sct_logs=sct_logs)
    off = RevocationOptions(ocsp=False, crl=False)
    with tls_server(leaf.chain, leaf.key) as srv:
        opts = TLSOptions(sni="ct.test", ca_file=ca_file, timeout=5, revocation=off)
        return await probe(Target("ct", "127.0.0.1", srv.port, opts))


async def test_sct_metrics(pki: TestPKI, metric_value: MetricValue) -> None:
    r = await _probe(pki, LOGS, str(pki.ca_file))
    text = render_once([r])
    leaf = {"source_kind": "tls", "source": "ct", "chain_position": "0"}
    assert metric_value(text, "certscope_cert_sct_count", **leaf) == 2
    for log in LOGS:
        log_id = base64.b64encode(log).decode()
        assert metric_value(text, "certscope_cert_sct_info", log_id=log_id, **leaf) == 1
    assert len(find(text, "certscope_cert_sct_info")) == 2
    # The intermediate (a CA) gets no SCT series.
    assert len(find(text, "certscope_cert_sct_count")) == 1


async def test_sct_missing_only_for_public_trust(pki: TestPKI, public_store: None) -> None:
    now = datetime.now(UTC)
    bare = await _probe(pki, (), None)
    logged = await _probe(pki, LOGS, None)
    private = await _probe(pki, (), str(pki.ca_file))
    rules = {}
    for name, r in (("bare", bare), ("logged", logged), ("private", private)):
        a = assess_endpoint(("ct", "x"), r.facts, r.verdict, None, Policy(), now)
        rules[name] = {f.rule: f.severity for f in a.findings}
    assert bare.verdict is not None and bare.verdict.public_trust
    assert rules["bare"] == {Rule.SCT_MISSING: "warning"}
    assert rules["logged"] == {}
    assert rules["private"] == {}  # a private CA (ca_file): CT does not apply
    assert CONTROLS[Rule.SCT_MISSING] == "CC6.6"
