"""A real Kubernetes API server for the tests: ``scripts/test-cluster.sh`` plus helpers.

Import as ``from helpers.k8s_cluster import KubeCluster`` (pytest puts ``tests/`` on ``sys.path``; ``helpers`` is a package there); the
session-scoped ``kube_cluster`` fixture in ``conftest.py`` starts one (etcd + kube-apiserver on
loopback, RBAC on, a static token file, a client CA) and stops it by PID at the end::

    def test_x(kube_cluster: KubeCluster) -> None:
        ns = kube_cluster.namespace()                      # a fresh namespace for this test
        kube_cluster.put_secret(ns, "site", tls_data)      # server-side apply, as admin
        kube_cluster.kubeconfig                            # admin (client certificate)
        kube_cluster.write_kubeconfig(path, token=...)     # any other identity
        kube_cluster.request("GET", "/api/v1/secrets", token=kube_cluster.reader_token)

The binaries are built from their Go modules by ``scripts/test-cluster.sh build`` (``make test``
runs it first; about 15 minutes the first time, cached under ``~/.cache/certscope``). Without
them the fixture fails with that instruction: it never skips.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

__all__ = [
    "AuditCall",
    "KubeCluster",
    "binaries_missing",
    "object_path",
    "prometheus_operator_crds",
    "secret",
    "start_cluster",
]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "test-cluster.sh"
FIELD_MANAGER = "certscope-tests"


def binaries_missing() -> list[str]:
    """The cached binaries ``scripts/test-cluster.sh build`` has not made yet."""
    out = subprocess.run([SCRIPT, "paths"], check=True, capture_output=True, text=True).stdout
    paths = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return [p for p in paths.values() if not os.access(p, os.X_OK)]


def start_cluster(workdir: Path, *apiserver_args: str) -> KubeCluster:
    missing = binaries_missing()
    if missing:
        raise RuntimeError(
            f"the test cluster's binaries are not built ({', '.join(missing)}): run "
            f"`scripts/test-cluster.sh build` (or `make test`, which does); it needs the Go "
            "toolchain and the Go module proxy, about 15 minutes the first time"
        )
    env = {**os.environ, "CERTSCOPE_APISERVER_ARGS": " ".join(apiserver_args)}
    done = subprocess.run(
        [SCRIPT, "start", str(workdir)], env=env, capture_output=True, text=True, timeout=180
    )
    if done.returncode != 0:
        subprocess.run([SCRIPT, "stop", str(workdir)], check=False)
        raise RuntimeError(f"test cluster did not start:\n{done.stderr[-4000:]}")
    return KubeCluster(workdir)


@dataclass(frozen=True)
class AuditCall:
    """One request as the API server's audit log recorded it."""

    verb: str  # list, watch, get, create...
    path: str
    query: dict[str, str]
    status: int
    user: str


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str]


class KubeCluster:
    """Handles on a running test cluster; see the module docstring."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        env = _env_file(workdir / "env")
        tokens = _env_file(workdir / "tokens.env")
        self.url = env["APISERVER_URL"]
        self.etcd_url = env["ETCD_URL"]
        self.etcdctl = env["ETCDCTL"]
        self.admin_token = tokens["ADMIN_TOKEN"]
        self.reader_token = tokens["READER_TOKEN"]  # user "reader": no permissions of its own
        self.nobody_token = tokens["NOBODY_TOKEN"]  # user "nobody": never granted anything
        self.ca_file = workdir / "ca.crt"
        self.kubeconfig = workdir / "kubeconfig"
        self.sa_key = workdir / "sa.key"  # the service account token signing key
        self._ssl = ssl.create_default_context(cafile=str(self.ca_file))

    def stop(self) -> None:
        subprocess.run([SCRIPT, "stop", str(self.dir)], check=True, timeout=60)

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port: every open watch ends."""
        done = subprocess.run(
            [SCRIPT, "restart-apiserver", str(self.dir)],
            capture_output=True,
            text=True,
            timeout=180,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kube-apiserver did not restart:\n{done.stderr[-4000:]}")

    # -- requests --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        token: str | None = None,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
    ) -> Response:
        """One request (as admin unless ``token``); never raises for an HTTP status."""
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.admin_token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=60) as resp:
                return Response(resp.status, _json(resp.read()), dict(resp.headers))
        except urllib.error.HTTPError as err:
            return Response(err.code, _json(err.read()), dict(err.headers))

    def ok(self, method: str, path: str, body: object = None, **kw: Any) -> dict[str, Any]:
        resp = self.request(method, path, body, **kw)
        if resp.status >= 300:
            raise AssertionError(f"{method} {path}: HTTP {resp.status} {resp.body}")
        return resp.body

    def apply(self, obj: Mapping[str, Any], *, token: str | None = None) -> Response:
        """Server-side apply of one object (created or updated; the server validates it)."""
        return self.request(
            "PATCH",
            object_path(obj),
            yaml.safe_dump(dict(obj)).encode(),
            token=token,
            content_type="application/apply-patch+yaml",
            # Strict: an unknown or duplicate field is an error, not silently dropped.
            query={"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"},
        )

    def namespace(self, prefix: str = "t") -> str:
        """A fresh namespace (its name unique in the session)."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.ok("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        return name

    def put_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, bytes],
        *,
        type: str = "kubernetes.io/tls",
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        resp = self.apply(secret(namespace, name, data, type, labels, annotations))
        if resp.status >= 300:
            raise AssertionError(f"apply {namespace}/{name}: HTTP {resp.status} {resp.body}")
        return resp.body

    def delete_secret(self, namespace: str, name: str) -> None:
        self.ok("DELETE", f"/api/v1/namespaces/{namespace}/secrets/{name}")

    def grant(self, namespace: str, subject: Mapping[str, str], verbs: Iterable[str]) -> None:
        """A Role on Secrets in ``namespace`` with ``verbs``, bound to ``subject``."""
        role = f"secrets-{'-'.join(sorted(verbs))}"
        base = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
        self.ok(
            "POST",
            f"{base}/roles",
            {
                "metadata": {"name": role},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": sorted(verbs)}],
            },
        )
        self.ok(
            "POST",
            f"{base}/rolebindings",
            {
                "metadata": {"name": f"{role}-{uuid.uuid4().hex[:6]}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                "subjects": [dict(subject)],
            },
        )

    def audit(self, path: str, user: str | None = None) -> list[AuditCall]:
        """Requests for exactly ``path`` (watches when they start, others when done)."""
        calls = []
        with (self.dir / "audit.log").open() as log:
            for line in log:
                event = json.loads(line)
                uri = urllib.parse.urlsplit(event["requestURI"])
                if uri.path != path or (user and event["user"].get("username") != user):
                    continue
                wanted = "ResponseStarted" if event["verb"] == "watch" else "ResponseComplete"
                if event["stage"] != wanted:
                    continue
                calls.append(
                    AuditCall(
                        event["verb"],
                        uri.path,
                        dict(urllib.parse.parse_qsl(uri.query)),
                        int(event.get("responseStatus", {}).get("code", 0)),
                        event["user"]["username"],
                    )
                )
        return calls

    def metrics(self) -> str:
        req = urllib.request.Request(self.url + "/metrics")
        req.add_header("Authorization", f"Bearer {self.admin_token}")
        with urllib.request.urlopen(req, context=self._ssl, timeout=60) as resp:
            return str(resp.read().decode())

    # -- identities --------------------------------------------------------------------------

    def write_kubeconfig(
        self, path: Path, *, token: str | None = None, token_file: Path | None = None
    ) -> Path:
        """A kubeconfig for this cluster with a bearer token (or a token file)."""
        user: dict[str, str] = {}
        if token is not None:
            user["token"] = token
        if token_file is not None:
            user["tokenFile"] = str(token_file)
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": "user", "user": user}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "user"}}],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    # -- etcd --------------------------------------------------------------------------------

    def compact(self) -> int:
        """Compact etcd's history up to its current revision; returns that revision."""
        status = subprocess.run(
            [self.etcdctl, f"--endpoints={self.etcd_url}", "endpoint", "status", "-w", "json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        revision = int(json.loads(status)[0]["Status"]["header"]["revision"])
        subprocess.run(
            [self.etcdctl, f"--endpoints={self.etcd_url}", "compact", str(revision), "--physical"],
            check=True,
            capture_output=True,
        )
        return revision

    # -- many objects at once ------------------------------------------------------------------

    async def create_secrets(
        self, objects: Iterable[Mapping[str, Any]], concurrency: int = 32
    ) -> int:
        """POST many Secrets concurrently (as admin); returns how many were created."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue()
        for obj in objects:
            queue.put_nowait(obj)
        created = 0

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal created
            while not queue.empty():
                obj = queue.get_nowait()
                ns = obj["metadata"]["namespace"]
                async with session.post(
                    f"{self.url}/api/v1/namespaces/{ns}/secrets", json=obj, ssl=ctx
                ) as resp:
                    if resp.status != 201:
                        raise AssertionError(f"create: HTTP {resp.status} {await resp.text()}")
                    await resp.read()
                created += 1

        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return created


PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"


def prometheus_operator_crds() -> list[Path]:
    """The Prometheus Operator's CRD manifests, from its published Go module (cached)."""
    if shutil.which("go") is None:
        raise RuntimeError(
            "the Go toolchain is missing (no 'go' on PATH): it fetches the Prometheus Operator "
            f"CRDs from the Go module {PROMETHEUS_OPERATOR}"
        )
    done = subprocess.run(
        ["go", "mod", "download", "-json", PROMETHEUS_OPERATOR],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        env={**os.environ, "GOFLAGS": "-mod=mod"},
        timeout=600,
    )
    info = json.loads(done.stdout or "{}")
    if done.returncode != 0 or "Dir" not in info:
        raise RuntimeError(
            f"cannot download {PROMETHEUS_OPERATOR} from the Go module proxy "
            f"({info.get('Error') or done.stderr.strip()})"
        )
    return sorted((Path(info["Dir"]) / "example" / "prometheus-operator-crd").glob("*.yaml"))


def secret(
    namespace: str,
    name: str,
    data: Mapping[str, bytes],
    type: str = "kubernetes.io/tls",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": type,
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


_CORE = {
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "ServiceAccount": "serviceaccounts",
    "Service": "services",
    "Namespace": "namespaces",
    "Pod": "pods",
}


def object_path(obj: Mapping[str, Any]) -> str:
    """The REST path of an object (core kinds and those whose plural is kind + "s")."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    meta = obj["metadata"]
    plural = _CORE.get(kind) or _plural(kind)
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    ns = meta.get("namespace")
    scope = f"/namespaces/{ns}" if ns and kind != "Namespace" else ""
    return f"{base}{scope}/{plural}/{meta['name']}"


def _plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    if lower.endswith("s"):
        return lower + "es"
    return lower + "s"


def _json(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        return {"raw": raw[:2000].decode("utf-8", "replace")}
    return doc if isinstance(doc, dict) else {"value": doc}


def _env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
