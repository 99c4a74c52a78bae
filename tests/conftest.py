"""Fixtures shared by every test module: one test PKI per session (keys are the slow part)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from k8s_cluster import KubeCluster, start_cluster
from pki import TestPKI


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
