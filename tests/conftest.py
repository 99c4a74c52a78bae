"""Fixtures shared by every test module: one test PKI per session (keys are the slow part), the
exporter's app behind a real HTTP server, and a reader for the values of the exposition."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from helpers.app import AppClient, MetricValue, StartApp, find, start_client, wait_ready
from helpers.k8s_cluster import KubeCluster, start_cluster
from helpers.pki import TestPKI


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """Root + intermediate CA (EC P-256); issue leaves with ``pki.leaf("name", ...)``."""
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """An independent CA that no test trusts."""
    return TestPKI(tmp_path_factory.mktemp("other-pki"), name="Other")


@pytest.fixture(scope="session")
def rsa_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """A CA with RSA 2048 keys: the only kind that can still issue SHA-1 signed leaves."""
    return TestPKI(tmp_path_factory.mktemp("rsa-pki"), name="RSA", ca_key="rsa")


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A real etcd + kube-apiserver on loopback (``scripts/test-cluster.sh``), RBAC on."""
    cluster = start_cluster(tmp_path_factory.mktemp("kube-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def app_client() -> AsyncIterator[StartApp]:
    """``await app_client(config_path)``: the app on loopback, ready (first round done); every
    client started is closed when the test ends, whatever it asserted."""
    started: list[AppClient] = []

    async def start(config_path: Path) -> AppClient:
        client = await start_client(config_path)
        started.append(client)
        await wait_ready(client)
        return client

    yield start
    for client in reversed(started):
        await client.close()


@pytest.fixture
def metric_value() -> MetricValue:
    """``metric_value(text, name, **labels)``: the value of the one sample called ``name`` whose
    labels include ``labels``, parsed with prometheus_client's parser; None when there is none,
    a failed test when several match (the labels given do not pick one series)."""

    def value(text: str, name: str, /, **labels: str) -> float | None:
        found = find(text, name, **labels)
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} series"
        return found[0] if found else None

    return value
