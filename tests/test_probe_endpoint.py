"""``/probe``: the allow-list, allowed networks, the concurrency limit and input checks.

Each security-relevant line has a test that fails when it is changed back: ``fullmatch`` in
the allow-list, the exemption of configured targets, address patterns never matching names,
the connection going to the checked address, the scrape-timeout header.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from certscope.app import PROBE_GATE, STATE, make_app
from certscope.config import Target, TLSOptions, load_config
from certscope.probe import probe
from certscope.web.allowlist import target_allowed

Client = TestClient[aiohttp.web.Request, aiohttp.web.Application]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def _tls_server(ca: trustme.CA, host: str) -> tuple[asyncio.Server, int]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("web.test", "localhost", host).configure_cert(ctx)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, host, 0, ssl=ctx)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def tls_port(ca: trustme.CA) -> AsyncIterator[int]:
    server, port = await _tls_server(ca, "127.0.0.1")
    yield port
    server.close()
    await server.wait_closed()


@pytest.fixture
async def tarpit_port() -> AsyncIterator[int]:
    """A server that accepts and never says anything: misbehaviour no real server shows on
    purpose, needed to hold a probe open for its whole timeout."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for w in held:
        w.close()
    server.close()
    await server.wait_closed()


async def _client(tmp_path: Path, text: str) -> Client:
    path = tmp_path / "c.yml"
    path.write_text(text)
    app = make_app(load_config(str(path)), lambda: load_config(str(path)), start_scheduler=False)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


def values(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == name
    ]


# --- the allow-list ---------------------------------------------------------------------------


def test_patterns_match_whole_addresses_only() -> None:
    # match() instead of fullmatch() would admit the longer port
    assert not target_allowed("127.0.0.1:443", ("127.0.0.1:44",))
    assert not target_allowed("a.example.test:4430", ("*.example.test:443",))
    assert not target_allowed("x127.0.0.1:443", ("127.0.0.1:443",))
    assert target_allowed("127.0.0.1:44", ("127.0.0.1:44",))


def test_address_patterns_never_match_names() -> None:
    assert target_allowed("127.0.1.5:443", ("127.0.1.*:443",))
    assert not target_allowed("127.0.1.evil:443", ("127.0.1.*:443",))
    assert not target_allowed("10.0.0.1.nip.io:443", ("10.*:443",))
    assert target_allowed("[::1]:8443", ("[::1]:*",))
    assert target_allowed("[::1]:8443", ("::1:*",))


def test_name_patterns_never_match_addresses() -> None:
    # "fe80*" is a name pattern (it has letters); as text it would match an IPv6 address
    assert not target_allowed("[fe80::1]:443", ("fe80*:443",))
    assert target_allowed("fe80-gw.example.test:443", ("fe80*:443",))
    assert target_allowed("[fe80::1]:443", ("[fe80::*]:443",))


def test_a_lone_star_matches_both_kinds() -> None:
    assert target_allowed("10.1.2.3:443", ("*:443",))
    assert target_allowed("web.example.test:443", ("*:443",))
    assert not target_allowed("web.example.test:80", ("*:443",))


async def test_configured_targets_are_exempt_from_the_allow_list(
    tmp_path: Path, tls_port: int
) -> None:
    client = await _client(tmp_path, f"targets: [{{address: '127.0.0.1:{tls_port}'}}]\n")
    try:
        resp = await client.get("/probe", params={"target": f"127.0.0.1:{tls_port}"})
        assert resp.status == 200
        assert values(await resp.text(), "certscope_probe_success")[0][1] == 1
        other = await client.get("/probe", params={"target": f"127.0.0.1:{tls_port + 1}"})
        assert other.status == 403
    finally:
        await client.close()


async def test_address_pattern_refuses_a_name_over_http(tmp_path: Path, tls_port: int) -> None:
    client = await _client(tmp_path, "probe: {allowed_targets: ['127.0.0.*:*']}\n")
    try:
        name = await client.get("/probe", params={"target": f"localhost:{tls_port}"})
        assert name.status == 403
        address = await client.get("/probe", params={"target": f"127.0.0.1:{tls_port}"})
        assert address.status == 200
    finally:
        await client.close()


# --- allowed networks -------------------------------------------------------------------------


async def test_allowed_networks_check_the_resolved_address(tmp_path: Path, tls_port: int) -> None:
    client = await _client(
        tmp_path,
        "probe:\n  allowed_targets: ['localhost:*', '*.invalid:*', '127.0.0.1:*']\n"
        "  allowed_networks: ['10.0.0.0/8']\n",
    )
    try:
        for target in (f"localhost:{tls_port}", f"127.0.0.1:{tls_port}"):
            resp = await client.get("/probe", params={"target": target})
            assert resp.status == 403, target
            assert "probe.allowed_networks" in await resp.text()
        # a name that does not resolve is a probe result with reason dns, not an error page
        resp = await client.get("/probe", params={"target": "no-such-host.invalid:443"})
        assert resp.status == 200
        text = await resp.text()
        assert values(text, "certscope_probe_success")[0][1] == 0
        assert values(text, "certscope_probe_error_info")[0][0]["reason"] == "dns"
    finally:
        await client.close()
    client = await _client(
        tmp_path,
        "probe:\n  allowed_targets: ['localhost:*']\n  allowed_networks: ['127.0.0.0/8']\n",
    )
    try:
        resp = await client.get("/probe", params={"target": f"localhost:{tls_port}"})
        assert resp.status == 200
        text = await resp.text()
        assert values(text, "certscope_probe_success")[0][1] == 1
        # the series still name the target as asked, not the address connected to
        assert values(text, "certscope_probe_success")[0][0]["location"] == f"localhost:{tls_port}"
    finally:
        await client.close()


async def test_the_probe_connects_to_the_checked_address_only(ca: trustme.CA) -> None:
    """``connect_to`` replaces resolution: "localhost" is 127.0.0.1, the server is on 127.0.0.2
    only, and the probe reaches it (and would not, were the name resolved again)."""
    server, port = await _tls_server(ca, "127.0.0.2")
    try:
        opts = TLSOptions(timeout=5)
        pinned = Target("t", "localhost", port, opts, connect_to="127.0.0.2")
        assert (await probe(pinned)).success
        resolved = await probe(Target("t", "localhost", port, opts))
        assert not resolved.success
        assert resolved.outcome.error is not None
        assert resolved.outcome.error.reason == "connect_refused"
    finally:
        server.close()
        await server.wait_closed()


# --- concurrency, input checks, the scrape timeout ----------------------------------------------


async def test_overflow_is_429(tmp_path: Path, tarpit_port: int) -> None:
    client = await _client(
        tmp_path,
        f"probe: {{allowed_targets: ['127.0.0.1:{tarpit_port}'], max_concurrent: 2, timeout: 2s}}\n",
    )
    try:
        params = {"target": f"127.0.0.1:{tarpit_port}"}
        held = [asyncio.create_task(client.get("/probe", params=params)) for _ in range(2)]
        await asyncio.sleep(0.3)
        overflow = await client.get("/probe", params=params)
        assert overflow.status == 429
        assert overflow.headers["Retry-After"] == "1"
        assert "probe.max_concurrent" in await overflow.text()
        assert [r.status for r in await asyncio.gather(*held)] == [200, 200]
        after = await client.get("/probe", params={"target": "127.0.0.1:1"})
        assert after.status == 403  # the slots were given back: no 429
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"sni": "a" * 40 + "-"}, 400, "sni is not a valid host name"),
        ({"sni": "bad\x00name"}, 400, "sni is not a valid host name"),
        ({"sni": "x" * 300}, 400, "sni is not a valid host name"),
        ({"sni": ".."}, 400, "sni is not a valid host name"),
        ({"module": "nope"}, 400, "unknown module"),
        ({"starttls": "gopher"}, 400, "starttls must be one of"),
        ({"target": "a" * 40 + "-:443"}, 400, "bad target"),
        ({"target": "x" * 5000 + ":443"}, 400, "bad target"),
    ],
)
async def test_invalid_parameters_are_400(
    tmp_path: Path, tls_port: int, params: dict[str, str], status: int, message: str
) -> None:
    client = await _client(tmp_path, f"probe: {{allowed_targets: ['127.0.0.1:{tls_port}']}}\n")
    try:
        started = time.perf_counter()
        resp = await client.get("/probe", params={"target": f"127.0.0.1:{tls_port}", **params})
        assert time.perf_counter() - started < 1
        assert resp.status == status
        body = await resp.text()
        assert message in body
        assert "x" * 100 not in body  # the input is not echoed back
    finally:
        await client.close()


async def test_unicode_sni_is_sent_in_idna_form(tmp_path: Path, tls_port: int) -> None:
    client = await _client(tmp_path, f"probe: {{allowed_targets: ['127.0.0.1:{tls_port}']}}\n")
    try:
        resp = await client.get(
            "/probe", params={"target": f"127.0.0.1:{tls_port}", "sni": "bücher.example"}
        )
        assert resp.status == 200
        text = await resp.text()
        assert values(text, "certscope_probe_success")[0][1] == 1
        assert not values(text, "certscope_probe_error_info")
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, 3.0),  # the module timeout
        ("2.5", 2.0),  # the scrape timeout less the 0.5 s margin
        ("0.2", 0.5),  # never below half a second
        ("nan", 3.0),
        ("inf", 3.0),
        ("-inf", 3.0),  # nonsense: ignored, not read as "as short as possible"
        ("garbage", 3.0),
    ],
)
async def test_scrape_timeout_header_bounds_the_probe(
    tmp_path: Path, tarpit_port: int, header: str | None, expected: float
) -> None:
    client = await _client(
        tmp_path, f"probe: {{allowed_targets: ['127.0.0.1:{tarpit_port}'], timeout: 3s}}\n"
    )
    try:
        headers = {"X-Prometheus-Scrape-Timeout-Seconds": header} if header else {}
        resp = await client.get(
            "/probe", params={"target": f"127.0.0.1:{tarpit_port}"}, headers=headers
        )
        text = await resp.text()
        (labels, _), *_ = values(text, "certscope_probe_error_info")
        assert labels["reason"] == "timeout"
        (_, duration), *_ = values(text, "certscope_probe_duration_seconds")
        assert expected <= duration < expected + 0.4
    finally:
        await client.close()


# --- targets built once per query --------------------------------------------------------------


async def test_a_repeated_query_reuses_its_target_until_the_configuration_changes(
    tmp_path: Path, tls_port: int, tarpit_port: int
) -> None:
    """The same query string and scrape-timeout header give the same ``Target`` object (it is
    a pure function of them and the configuration); another header or a reload builds anew,
    and a refusal is never kept."""
    allowed = f"probe: {{allowed_targets: ['127.0.0.1:{tls_port}', '127.0.0.1:{tarpit_port}']}}\n"
    client = await _client(tmp_path, allowed)
    try:
        gate = client.app[PROBE_GATE]
        params = {"target": f"127.0.0.1:{tls_port}"}
        assert (await client.get("/probe", params=params)).status == 200
        (first,) = gate.targets.values()
        assert (await client.get("/probe", params=params)).status == 200
        assert tuple(gate.targets.values()) == (first,)
        assert first is next(iter(gate.targets.values()))
        # Another scrape timeout is another target (its timeout differs).
        headers = {"X-Prometheus-Scrape-Timeout-Seconds": "2.5"}
        assert (await client.get("/probe", params=params, headers=headers)).status == 200
        assert sorted(t.tls.timeout for t in gate.targets.values()) == [2.0, 10.0]
        # Refusals are built anew every time, never held.
        refused = await client.get("/probe", params={"target": f"127.0.0.1:{tls_port + 1}"})
        assert refused.status == 403
        assert len(gate.targets) == 2
        # A new configuration drops every target built for the old one.
        state = client.app[STATE]
        state.set_config(load_config(str(tmp_path / "c.yml")))
        assert (await client.get("/probe", params=params)).status == 200
        (again,) = gate.targets.values()
        assert again is not first and again == first
    finally:
        await client.close()


async def test_a_probe_builds_no_snapshot(tmp_path: Path, tls_port: int) -> None:
    """/probe reads the configuration, not a snapshot: with the scheduler storing results, a
    snapshot (a copy of every result) would otherwise be rebuilt for nearly every request."""
    client = await _client(tmp_path, f"probe: {{allowed_targets: ['127.0.0.1:{tls_port}']}}\n")
    try:
        state = client.app[STATE]
        state.set_config(state.config)  # a change: the next snapshot is built afresh
        assert state._cached is None
        resp = await client.get("/probe", params={"target": f"127.0.0.1:{tls_port}"})
        assert resp.status == 200
        assert state._cached is None
    finally:
        await client.close()
