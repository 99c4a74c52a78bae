"""The exporter's aiohttp app in process, behind a real HTTP server on loopback, and a reader for
the exposition it serves (parsed with prometheus_client's own parser, never grepped by hand).

    client = await start_client(config_path)
    await wait_ready(client)
    text = await (await client.get("/metrics")).text()
    find(text, "certscope_probe_success", target="web")   # → [1.0]
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from certscope.app import make_app
from certscope.config import load_config

AppClient = TestClient[aiohttp.web.Request, aiohttp.web.Application]
#: ``await app_client(config_path)``, the ``app_client`` fixture of ``tests/conftest.py``.
StartApp = Callable[[Path], Awaitable[AppClient]]
#: ``metric_value(text, name, **labels)``, the ``metric_value`` fixture of ``tests/conftest.py``.
MetricValue = Callable[..., float | None]


async def start_client(config_path: Path, lifecycle: bool = True) -> AppClient:
    """The app for ``config_path`` on a free loopback port; reload re-reads the same file."""
    app = make_app(
        load_config(str(config_path)), lambda: load_config(str(config_path)), lifecycle=lifecycle
    )
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def wait_ready(client: AppClient) -> None:
    """Until ``/-/ready`` answers 200 (the first round is done), at most ten seconds."""
    for _ in range(200):
        resp = await client.get("/-/ready")
        if resp.status == 200:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("exporter never became ready")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (name, labels) → value."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def find(text: str, name: str, **labels: str) -> list[float]:
    """The values of the samples called ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return [v for (n, ls), v in samples(text).items() if n == name and want <= ls]
