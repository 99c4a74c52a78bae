"""The HTTP endpoints, through a real HTTP client against a real server and real TLS targets."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import signal
import ssl
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp.test_utils import TestClient, TestServer

from certscope.app import EXPOSITION, STATE, make_app
from certscope.certs import CertFacts
from certscope.collector import Exposition, probe_fragments
from certscope.config import Config, Target, TLSOptions
from certscope.probe import probe
from certscope.results import ProbeResult
from certscope.snapshot import State
from certscope.web.allowlist import target_allowed
from helpers.app import find
from helpers.app import start_client as _client
from helpers.app import wait_ready as _wait_ready
from helpers.exporter import Exporter
from helpers.results import expected_exposition, probe_result


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def _serve_tls(ctx: ssl.SSLContext) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def tls_port(ca: trustme.CA) -> AsyncIterator[int]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("web.test", "127.0.0.1").configure_cert(ctx)
    server, port = await _serve_tls(ctx)
    yield port
    server.close()
    await server.wait_closed()


def _write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def ca_file(tmp_path: Path, ca: trustme.CA) -> str:
    p = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(p))
    return str(p)


async def test_metrics_health_ready_and_index(tmp_path: Path, tls_port: int, ca_file: str) -> None:
    cfg = _write_config(
        tmp_path / "c.yml",
        f"""
targets:
  - address: 127.0.0.1:{tls_port}
    name: web
    sni: web.test
    ca_file: {ca_file}
    labels: {{owner: payments, renewal: acme}}
  - address: 127.0.0.1:1
    name: closed
""",
    )
    client = await _client(cfg)
    try:
        assert (await client.get("/-/healthy")).status == 200
        await _wait_ready(client)
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
        web = {"source_kind": "tls", "source": "web", "location": f"127.0.0.1:{tls_port}"}
        assert find(text, "certscope_probe_success", **web, owner="payments") == [1]
        assert find(text, "certscope_cert_verified", **web) == [1]
        assert find(text, "certscope_cert_hostname_match", **web) == [1]
        leaf = find(
            text,
            "certscope_cert_not_after_timestamp_seconds",
            **web,
            chain_position="0",
            renewal="acme",
        )
        assert len(leaf) == 1 and leaf[0] > time.time()
        assert find(text, "certscope_tls_version_info", **web, version="TLSv1.3") == [1]
        assert find(text, "certscope_probe_success", source="closed") == [0]
        assert find(
            text, "certscope_probe_error_info", source="closed", reason="connect_refused"
        ) == [1]
        assert find(text, "certscope_targets") == [2]
        assert find(text, "certscope_build_info")
        page = await (await client.get("/")).text()
        assert "web.test" in page and "connect_refused" in page
    finally:
        await client.close()


async def test_metrics_head_then_get_on_one_connection(
    tmp_path: Path, tls_port: int, ca_file: str
) -> None:
    """/metrics is streamed part by part: HEAD must send no body (or the next response on the
    keep-alive connection is corrupt) and the announced length must be the body's."""
    cfg = _write_config(
        tmp_path / "c.yml",
        f"targets:\n  - address: 127.0.0.1:{tls_port}\n    name: web\n    ca_file: {ca_file}\n",
    )
    client = await _client(cfg)
    try:
        await _wait_ready(client)
        head = await client.head("/metrics")
        assert head.status == 200 and await head.read() == b""
        resp = await client.get("/metrics")
        body = await resp.read()
        assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(body)
        assert find(body.decode(), "certscope_probe_success", source="web") == [1]
        assert find(body.decode(), "certscope_build_info")
    finally:
        await client.close()


async def test_results_are_rendered_when_stored_and_forgotten_when_replaced(
    tls_port: int, ca_file: str
) -> None:
    """Each stored result is rendered once, as it is stored; a replaced or removed result's
    lines are dropped at once, so the cache holds one entry per current result even when
    nobody scrapes."""
    config = Config(origin="<test>")
    app = make_app(config, lambda: config, start_scheduler=False)
    state, exposition = app[STATE], app[EXPOSITION]
    target = Target(
        name="web", host="127.0.0.1", port=tls_port, tls=TLSOptions(ca_file=ca_file, timeout=5)
    )
    first = await probe(target)
    for _ in range(50):
        state.put_probe(dataclasses.replace(first, timestamp=first.timestamp + 1))
    gc.collect()
    # The replaced results and their renderings are gone: the exposition holds none of them.
    assert sum(isinstance(o, ProbeResult) and o.name == "web" for o in gc.get_objects()) == 2
    newest = dataclasses.replace(first, timestamp=first.timestamp + 60)
    state.put_probe(newest)
    assert newest.rendered is not None  # rendered as it was stored, before any scrape
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        text = await (await client.get("/metrics")).text()
        assert find(text, "certscope_probe_timestamp_seconds", source="web") == [newest.timestamp]
        state.forget_probe("web")
        assert exposition._policy is not None and exposition._policy[0] is config.policy
        text = await (await client.get("/metrics")).text()
        assert find(text, "certscope_probe_success", source="web") == []
    finally:
        await client.close()


def test_a_result_is_kept_when_rendering_it_fails() -> None:
    """Rendering happens after the state changed: a renderer bug costs the early rendering,
    never the result (the scrape renders it again, the scheduler logs the error)."""

    def broken(stored: Sequence[object], dropped: Sequence[object]) -> None:
        raise RuntimeError("renderer bug")

    state = State(Config(origin="<test>"), prepare=broken)
    result = probe_result("web")
    with pytest.raises(RuntimeError):
        state.put_probe(result)
    assert state.previous_probe("web") is result
    assert state.snapshot().probes["web"] is result


async def test_probe_allow_list(tmp_path: Path, tls_port: int, ca_file: str) -> None:
    cfg = _write_config(
        tmp_path / "c.yml",
        f"""
targets: []
probe:
  allowed_targets: ["127.0.0.1:{tls_port}", "*.allowed.test:443"]
  modules:
    private: {{ca_file: {ca_file}}}
""",
    )
    client = await _client(cfg)
    try:
        resp = await client.get("/probe", params={"target": "127.0.0.1:1"})
        assert resp.status == 403
        assert "probe.allowed_targets" in await resp.text()
        resp = await client.get("/probe", params={"target": "evil.example.com:443"})
        assert resp.status == 403
        assert (await client.get("/probe")).status == 400
        assert (await client.get("/probe", params={"target": "no-port"})).status == 400
        bad_module = await client.get(
            "/probe", params={"target": f"127.0.0.1:{tls_port}", "module": "nope"}
        )
        assert bad_module.status == 400

        resp = await client.get(
            "/probe",
            params={"target": f"127.0.0.1:{tls_port}", "sni": "web.test", "module": "private"},
        )
        assert resp.status == 200
        text = await resp.text()
        assert find(text, "certscope_probe_success") == [1]
        assert find(text, "certscope_cert_verified") == [1]
        # without the module the private CA is unknown: still reported, verification fails
        resp = await client.get(
            "/probe", params={"target": f"127.0.0.1:{tls_port}", "sni": "web.test"}
        )
        text = await resp.text()
        assert find(text, "certscope_probe_success") == [1]
        assert find(text, "certscope_cert_verified") == [0]
        assert find(text, "certscope_cert_not_after_timestamp_seconds", chain_position="0")
    finally:
        await client.close()


def test_allow_list_matching() -> None:
    patterns = ("127.0.0.1:*", "*.example.test:443", "[::1]:8443")
    assert target_allowed("127.0.0.1:9", patterns)
    assert target_allowed("web.example.test:443", patterns)
    assert target_allowed("WEB.Example.Test:443", patterns)
    assert target_allowed("[::1]:8443", patterns)
    assert not target_allowed("web.example.test:444", patterns)
    assert not target_allowed("example.test:443", patterns)
    assert not target_allowed("127.0.0.2:9", patterns)
    assert not target_allowed("127.0.0.1:9", ())
    assert not target_allowed("garbage", patterns)


async def test_reload_drops_removed_targets_and_keeps_old_config_on_error(
    tmp_path: Path, tls_port: int
) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        f"targets:\n  - {{address: 127.0.0.1:{tls_port}, name: a}}\n"
        f"  - {{address: 127.0.0.1:{tls_port}, name: b}}\n"
    )
    client = await _client(cfg)
    try:
        await _wait_ready(client)
        text = await (await client.get("/metrics")).text()
        assert find(text, "certscope_probe_success", source="a") == [1]
        assert find(text, "certscope_probe_success", source="b") == [1]

        cfg.write_text(f"targets:\n  - {{address: 127.0.0.1:{tls_port}, name: a}}\n")
        resp = await client.post("/-/reload")
        assert resp.status == 200
        text = await (await client.get("/metrics")).text()
        assert find(text, "certscope_probe_success", source="a") == [1]
        assert find(text, "certscope_probe_success", source="b") == []
        assert find(text, "certscope_cert_not_after_timestamp_seconds", source="b") == []

        cfg.write_text("targets: [{address: 'x:0'}]\n")
        resp = await client.post("/-/reload")
        assert resp.status == 500
        assert "targets[0].port" in await resp.text()
        text = await (await client.get("/metrics")).text()
        assert find(text, "certscope_config_last_reload_successful") == [0]
        assert find(text, "certscope_probe_success", source="a") == [1]  # old config still runs
    finally:
        await client.close()


@pytest.fixture
def exporter_process(tmp_path: Path) -> Iterator[tuple[Exporter, Path]]:
    cfg = tmp_path / "c.yml"
    cfg.write_text("targets:\n  - {address: 127.0.0.1:1, name: first}\n")
    with Exporter(cfg, tmp_path / "exporter.log") as exporter:
        yield exporter, cfg


async def _get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def _until(port: int, path: str, predicate: object, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            status, last = await _get(port, path)
            if status == 200 and callable(predicate) and predicate(last):
                return last
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met on {path}; last body:\n{last[:2000]}")


async def test_sighup_reloads_a_running_exporter(
    exporter_process: tuple[Exporter, Path],
) -> None:
    exporter, cfg = exporter_process
    port, proc = exporter.port, exporter.proc
    assert proc is not None
    await _until(port, "/metrics", lambda t: 'source="first"' in t)
    cfg.write_text("targets:\n  - {address: 127.0.0.1:2, name: second}\n")
    os.kill(proc.pid, signal.SIGHUP)
    text = await _until(port, "/metrics", lambda t: 'source="second"' in t)
    assert 'source="first"' not in text
    assert proc.poll() is None


def test_exposition_groups_each_result_family_under_one_header() -> None:
    """Each result is held as one buffer with byte offsets per family: lines with multi-byte
    text, results past 64 KiB (wider offsets) and results sharing families must come out
    exactly as rendering every family straight from the results would write them."""
    big = tuple(
        CertFacts(der_sha256=f"{i:064x}", subject=f"CN=ünïcødé-{i}-" + "x" * 400, serial=str(i))
        for i in range(200)
    )
    results = [
        probe_result("a", labels=(("team", "ünï"),)),
        probe_result("b-big", labels=(("team", 'q"\\n'),), facts=big),
        probe_result("c", facts=big[:2]),
    ]
    exposition = Exposition()
    exposition.prepare(results, ())
    got = exposition.render_bytes(results).decode()
    assert len(probe_fragments(results[1])["certscope_cert_info"]) == 200
    assert got == expected_exposition(results)
    assert exposition.held_bytes(results) == sum(
        len("".join(line for lines in probe_fragments(r).values() for line in lines).encode())
        for r in results
    )
    assert exposition.held_bytes(results) > 65536
