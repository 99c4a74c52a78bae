"""Reloads: a failure never looks like success; lifecycle is opt-in and not cross-site.

Against the real ``certscope serve`` process: the gauge, the status page, the answer of
``POST /-/reload`` and SIGHUP, for files that raise something other than a config error.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import trustme
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from certscope.app import make_app
from certscope.config import Config, load_config, parse_config
from certscope.scheduler import Scheduler
from certscope.snapshot import State
from helpers.exporter import Exporter

GOOD = "targets:\n  - {address: 127.0.0.1:1, name: first}\n"


def post(
    url: str, headers: dict[str, str] | None = None, data: bytes | None = None
) -> tuple[int, str]:
    req = urllib.request.Request(url, method="POST", headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode())


def gauge(url: str, name: str) -> float:
    for fam in text_string_to_metric_families(get(url + "/metrics")):
        for s in fam.samples:
            if s.name == name:
                return float(s.value)
    raise AssertionError(f"{name} not exposed")


@pytest.fixture
def lifecycle(tmp_path: Path) -> Iterator[tuple[Exporter, Path]]:
    cfg = tmp_path / "c.yml"
    cfg.write_text(GOOD)
    with Exporter(cfg, tmp_path / "exporter.log", ["--web.enable-lifecycle"]) as exporter:
        yield exporter, cfg


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        # int() refuses 5,000 digits with ValueError, which is not a YAML error
        ("scheduler: {concurrency: " + "9" * 5000 + "}\n", "cannot load the configuration"),
        ("targets: " + "[" * 300 + "]" * 300 + "\n", "nested deeper than 64"),
        ("defaults: {interval: .nan}\n", "defaults.interval: must be a finite number"),
        ("probe: {}\nprobe: {}\n", "duplicate key 'probe'"),
    ],
)
def test_failed_reload_sets_the_gauge_shows_the_problem_and_keeps_running(
    lifecycle: tuple[Exporter, Path], text: str, problem: str
) -> None:
    exporter, cfg = lifecycle
    assert gauge(exporter.url, "certscope_config_last_reload_successful") == 1
    cfg.write_text(text)
    status, body = post(exporter.url + "/-/reload")
    assert status == 500
    assert problem in body and "Traceback" not in body
    assert gauge(exporter.url, "certscope_config_last_reload_successful") == 0
    page = get(exporter.url + "/")
    assert "Last reload failed" in page and problem.replace("'", "&#39;") in page
    assert 'source="first"' in get(exporter.url + "/metrics")  # the old config still runs
    log = exporter.log.read_text()
    assert log.count("reload failed") == 1 and "Traceback" not in log

    cfg.write_text(GOOD.replace("first", "second"))
    assert post(exporter.url + "/-/reload") == (200, "configuration reloaded\n")
    assert gauge(exporter.url, "certscope_config_last_reload_successful") == 1
    assert "Last reload failed" not in get(exporter.url + "/")


def test_sighup_failure_sets_the_gauge_too(lifecycle: tuple[Exporter, Path]) -> None:
    exporter, cfg = lifecycle
    assert exporter.proc is not None
    cfg.write_text("scheduler: {concurrency: " + "9" * 5000 + "}\n")
    os.kill(exporter.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while gauge(exporter.url, "certscope_config_last_reload_successful") != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert exporter.proc.poll() is None


def test_reload_endpoint_is_off_without_the_lifecycle_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(GOOD)
    with Exporter(cfg, tmp_path / "exporter.log") as exporter:
        cfg.write_text(GOOD.replace("first", "second"))
        status, body = post(exporter.url + "/-/reload")
        assert status == 403 and "--web.enable-lifecycle" in body
        assert 'source="first"' in get(exporter.url + "/metrics")


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "multipart/form-data; boundary=x"},
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_cross_site_reloads_are_refused(
    lifecycle: tuple[Exporter, Path], headers: dict[str, str]
) -> None:
    exporter, cfg = lifecycle
    cfg.write_text(GOOD.replace("first", "second"))
    status, body = post(
        exporter.url + "/-/reload", headers, b"x" if "Content-Type" in headers else None
    )
    assert status == 403, body
    assert "refused" in body
    assert 'source="first"' in get(exporter.url + "/metrics")


def test_same_origin_reload_is_accepted(lifecycle: tuple[Exporter, Path]) -> None:
    exporter, _ = lifecycle
    headers = {"Origin": exporter.url, "Sec-Fetch-Site": "same-origin"}
    assert post(exporter.url + "/-/reload", headers)[0] == 200


async def test_policy_change_is_reassessed_on_reload(tmp_path: Path) -> None:
    """Only the policy changes: the findings of the unchanged target must follow it."""
    ca = trustme.CA()
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("web.test").configure_cert(ctx)  # untrusted: the system store lacks this CA

    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(close, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    cfg = tmp_path / "c.yml"
    target = (
        f"targets: [{{address: '127.0.0.1:{port}', name: web, sni: web.test, enumerate: false}}]\n"
    )
    cfg.write_text(target)
    app = make_app(load_config(str(cfg)), lambda: load_config(str(cfg)), lifecycle=True)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:

        async def violations() -> set[str]:
            text = await (await client.get("/metrics")).text()
            return {
                s.labels["rule"]
                for fam in text_string_to_metric_families(text)
                for s in fam.samples
                if s.name == "certscope_policy_violation" and s.value == 1
            }

        for _ in range(100):
            if "chain_untrusted" in await violations():
                break
            await asyncio.sleep(0.05)
        assert "chain_untrusted" in await violations()
        cfg.write_text(target + "policy: {require_trusted_chain: false}\n")
        assert (await client.post("/-/reload")).status == 200
        assert "chain_untrusted" not in await violations()
    finally:
        await client.close()
        server.close()
        await server.wait_closed()


async def test_any_exception_while_reloading_is_a_reported_failure(tmp_path: Path) -> None:
    """The reload boundary: the loader (here one that overflows the stack, as a pathological
    file once did) raising anything still yields the problem list, the gauge and the page."""
    cfg = tmp_path / "c.yml"
    cfg.write_text(GOOD)
    calls = 0

    def loader() -> Config:
        nonlocal calls
        calls += 1
        raise RecursionError("maximum recursion depth exceeded")

    app = make_app(load_config(str(cfg)), loader, start_scheduler=False, lifecycle=True)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        resp = await client.post("/-/reload")
        assert resp.status == 500
        assert "cannot load the configuration (RecursionError)" in await resp.text()
        text = await (await client.get("/metrics")).text()
        assert "certscope_config_last_reload_successful 0.0" in text
        assert "RecursionError" in await (await client.get("/")).text()
        assert calls == 1
    finally:
        await client.close()


async def test_scheduler_reassesses_when_the_state_already_holds_the_new_policy() -> None:
    """Whatever order a caller uses, the scheduler compares with the policy it last applied."""
    old = parse_config("targets: [{address: '127.0.0.1:1', name: t, enumerate: false}]\n", "t")
    new = replace(old, policy=replace(old.policy, require_trusted_chain=False))
    state = State(old)
    sched = Scheduler(state)
    assessed: list[str] = []
    sched._reassess_all = lambda: assessed.append("all")  # type: ignore[method-assign]
    state.set_config(new)
    sched.apply(new)
    assert assessed == ["all"]
    sched.apply(new)
    assert assessed == ["all"]  # unchanged policy: nothing to redo
