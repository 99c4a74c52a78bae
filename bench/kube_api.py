"""The real Kubernetes API server behind the store benchmark (``--api real``).

:class:`RealKubeAPI` offers what ``bench/store_bench.py`` asks of its API server (the same
methods as ``tests/helpers/k8s_api.py``'s in-test server) on top of ``scripts/test-cluster.sh``: a real
etcd and kube-apiserver on loopback. Writes go through the API server as an admin token; the
reader under test uses the kubeconfig's client certificate, so the audit log tells its requests
apart (:meth:`RealKubeAPI.reader_requests`).
"""

from __future__ import annotations

import asyncio
import collections
import json
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from _harness import tests_on_path

tests_on_path()
from helpers.k8s_cluster import KubeCluster, start_cluster  # noqa: E402

READER_USER = "certscope-admin"  # the kubeconfig's client certificate


class RealKubeAPI:
    def __init__(self, workdir: Path, bookmark_interval: float = 60.0) -> None:
        del bookmark_interval  # the real API server bookmarks on its own schedule
        self.workdir = workdir / "cluster"
        self.cluster: KubeCluster | None = None
        self._namespaces: set[str] = set()

    @property
    def kubeconfig(self) -> Path:
        assert self.cluster is not None
        return self.cluster.kubeconfig

    async def __aenter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster = await asyncio.to_thread(start_cluster, self.workdir)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.cluster is not None:
            await asyncio.to_thread(self.cluster.stop)

    def _namespace(self, name: str) -> None:
        assert self.cluster is not None
        if name not in self._namespaces:
            resp = self.cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
            assert resp.status in (201, 409), resp.body
            self._namespaces.add(name)

    def put_secret(
        self,
        namespace: str,
        name: str,
        data: dict[str, bytes],
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        assert self.cluster is not None
        self._namespace(namespace)
        self.cluster.put_secret(namespace, name, data, labels=labels, annotations=annotations)

    def put_configmap(self, namespace: str, name: str, data: dict[str, str]) -> None:
        assert self.cluster is not None
        self._namespace(namespace)
        obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": data,
        }
        resp = self.cluster.apply(obj)
        assert resp.status in (200, 201), resp.body

    def compact(self) -> None:
        assert self.cluster is not None
        self.cluster.compact()

    def break_watches(self) -> None:
        """Restart kube-apiserver: every open watch ends (its watch cache starts empty)."""
        assert self.cluster is not None
        self.cluster.restart_apiserver()

    def reader_requests(self) -> dict[str, int]:
        """Requests the reader made so far, by verb, from the audit log."""
        assert self.cluster is not None
        counts: collections.Counter[str] = collections.Counter()
        with (self.cluster.dir / "audit.log").open() as log:
            for line in log:
                event: dict[str, Any] = json.loads(line)
                if event["user"].get("username") != READER_USER:
                    continue
                wanted = "ResponseStarted" if event["verb"] == "watch" else "ResponseComplete"
                if event["stage"] == wanted:
                    counts[event["verb"]] += 1
        return dict(counts)
