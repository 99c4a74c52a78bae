"""The Helm chart applied to a real API server, and its RBAC put to work.

Every object the chart renders (default values and each ``ci/*-values.yaml``) is applied with
server-side apply and ``fieldValidation=Strict`` to the test cluster, whose Prometheus Operator
CRDs come from the operator's published Go module: the API server's own validation (OpenAPI,
CRD structural schemas, RBAC escalation checks) judges each one. Then a token minted for the
chart's ServiceAccount (TokenRequest) runs certscope's kubernetes source with the rendered
configuration, and the API server says what that identity may and may not do.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import trustme
import yaml

from certscope.config import KubernetesSource, parse_config
from certscope.sources.kubernetes import KubernetesReader
from helpers.chart import CASES, CHART, case_values, objects, strip
from helpers.k8s_cluster import KubeCluster, object_path, prometheus_operator_crds
from helpers.kube_source import names, tls

Obj = dict[str, Any]
MONITORING = "monitoring.coreos.com/v1"
CHART_CRDS = ("servicemonitors.yaml", "podmonitors.yaml", "prometheusrules.yaml")


class _CRDLoader(yaml.SafeLoader):
    """YAML 1.1's ``=`` (the "value" tag) appears as a plain enum value in the CRDs."""


def _plain_value(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


_CRDLoader.add_constructor("tag:yaml.org,2002:value", _plain_value)


@pytest.fixture(scope="module")
def crds(kube_cluster: KubeCluster) -> list[str]:
    """The Prometheus Operator CRDs of the kinds the chart renders, applied and established."""
    applied = []
    for path in prometheus_operator_crds():
        if path.name.split("_")[-1] not in CHART_CRDS:
            continue
        crd = yaml.load(path.read_text(), Loader=_CRDLoader)
        resp = kube_cluster.apply(crd)
        assert resp.status in (200, 201), (path.name, resp.body)
        applied.append(crd["metadata"]["name"])
    deadline = time.monotonic() + 60
    for name in applied:
        while True:
            got = kube_cluster.ok(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            )
            # Right after the apply the API server may answer "conditions": null.
            status = got.get("status") or {}
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            if conditions.get("Established") == "True":
                break
            assert time.monotonic() < deadline, f"CRD {name} not established: {conditions}"
            time.sleep(0.2)
    assert len(applied) == len(CHART_CRDS)
    return applied


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def ensure_namespace(cluster: KubeCluster, name: str) -> None:
    resp = cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert resp.status in (201, 409), resp.body


def install(
    cluster: KubeCluster, chart: helm.Chart, case: str, release: str, namespace: str
) -> list[Obj]:
    """Render ``case`` as ``release`` in ``namespace`` and apply every object; returns them."""
    values = case_values(case)
    objs = [
        strip(o)
        for o in objects(chart.render(values, name=release, namespace=namespace, is_install=True))
    ]
    ensure_namespace(cluster, namespace)
    for ns in chart.merge_values(values)["rbac"]["namespaces"] or ():
        ensure_namespace(cluster, ns)
    # CRD-backed objects last: everything else does not depend on them.
    for obj in sorted(objs, key=lambda o: o["apiVersion"] == MONITORING):
        obj.setdefault("metadata", {})
        if _namespaced(obj):
            obj["metadata"].setdefault("namespace", namespace)
        resp = cluster.apply(obj)
        assert resp.status in (200, 201), (obj["kind"], obj["metadata"]["name"], resp.body)
    return objs


def _namespaced(obj: Obj) -> bool:
    return obj["kind"] not in ("ClusterRole", "ClusterRoleBinding", "Namespace")


@pytest.mark.parametrize("case", CASES)
def test_every_object_is_accepted_by_the_api_server(
    kube_cluster: KubeCluster, crds: list[str], chart: helm.Chart, case: str
) -> None:
    release = f"r{CASES.index(case)}"
    objs = install(kube_cluster, chart, case, release, f"chart-{release}")
    assert objs
    for obj in objs:  # and each one is there, as applied
        got = kube_cluster.ok("GET", object_path(obj))
        assert got["metadata"]["name"] == obj["metadata"]["name"]
    if case == "monitoring-values.yaml":
        kinds = {o["kind"] for o in objs if o["apiVersion"] == MONITORING}
        assert kinds, "the monitoring case renders Prometheus Operator objects"


def test_strict_validation_rejects_what_the_schema_does_not_know(
    kube_cluster: KubeCluster, crds: list[str]
) -> None:
    # The judge can say no: an unknown field in a ServiceMonitor endpoint is refused.
    ns = kube_cluster.namespace("chart")
    bad = {
        "apiVersion": MONITORING,
        "kind": "ServiceMonitor",
        "metadata": {"name": "bad", "namespace": ns},
        "spec": {"selector": {}, "endpoints": [{"port": "metrics", "intervall": "30s"}]},
    }
    resp = kube_cluster.apply(bad)
    message = str(resp.body.get("message"))
    # Server-side apply answers a field its typed schema lacks with 500 and says which one.
    assert resp.status >= 400, resp
    assert "intervall" in message and "not declared in schema" in message, message


# --- RBAC, put to work ---------------------------------------------------------------------------


def service_account_token(cluster: KubeCluster, objs: list[Obj]) -> tuple[str, str]:
    (sa,) = [o for o in objs if o["kind"] == "ServiceAccount"]
    ns, name = sa["metadata"]["namespace"], sa["metadata"]["name"]
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    got = cluster.ok("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token", body)
    return str(got["status"]["token"]), f"system:serviceaccount:{ns}:{name}"


def rendered_sources(objs: list[Obj], kubeconfig: Path) -> list[KubernetesSource]:
    """The chart's kubernetes sources, as certscope parses them, pointed at ``kubeconfig``."""
    (cm,) = [o for o in objs if o["kind"] == "ConfigMap" and "certscope.yml" in o.get("data", {})]
    config = parse_config(cm["data"]["certscope.yml"], "rendered")
    return [
        dataclasses.replace(s, kubeconfig=str(kubeconfig))
        for s in config.sources
        if isinstance(s, KubernetesSource)
    ]


def may(
    cluster: KubeCluster, token: str, verb: str, namespace: str, resource: str = "secrets"
) -> bool:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace}
        },
    }
    got = cluster.ok(
        "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review, token=token
    )
    return bool(got["status"]["allowed"])


WRITES = ("create", "update", "patch", "delete", "deletecollection")


async def test_namespaced_rbac_reads_its_namespaces_only(
    kube_cluster: KubeCluster, chart: helm.Chart, tmp_path: Path
) -> None:
    objs = install(kube_cluster, chart, "namespaced-rbac-values.yaml", "nsrbac", "chart-nsrbac")
    token, user = service_account_token(kube_cluster, objs)
    ca = trustme.CA()
    outside = kube_cluster.namespace("outside")
    for ns in ("ingress", "payments", outside):
        kube_cluster.put_secret(ns, "rbac-probe", tls(ca, f"{ns}.test"))
    kubeconfig = kube_cluster.write_kubeconfig(tmp_path / "kc", token=token)
    (source,) = rendered_sources(objs, kubeconfig)
    assert set(source.namespaces) == {"ingress", "payments"}
    result = await KubernetesReader(dataclasses.replace(source, label_selector="")).refresh(None)
    assert result.up, result.error
    assert {"ingress/rbac-probe", "payments/rbac-probe"} <= names(result)
    assert not any(n.startswith(f"{outside}/") for n in names(result))

    for ns in ("ingress", "payments"):
        assert all(may(kube_cluster, token, v, ns) for v in ("get", "list", "watch"))
        assert not any(may(kube_cluster, token, v, ns) for v in WRITES)
        assert not any(may(kube_cluster, token, v, ns, "configmaps") for v in WRITES)
    for verb in ("get", "list", "watch", *WRITES):
        assert not may(kube_cluster, token, verb, outside)
    # And for real: other namespaces, all namespaces, and any write are refused.
    assert (
        kube_cluster.request("GET", f"/api/v1/namespaces/{outside}/secrets", token=token).status
        == 403
    )
    assert kube_cluster.request("GET", "/api/v1/secrets", token=token).status == 403
    created = kube_cluster.request(
        "POST", "/api/v1/namespaces/ingress/secrets", {"metadata": {"name": "x"}}, token=token
    )
    assert created.status == 403
    deleted = kube_cluster.request(
        "DELETE", "/api/v1/namespaces/ingress/secrets/rbac-probe", token=token
    )
    assert deleted.status == 403
    audit = kube_cluster.audit("/api/v1/namespaces/ingress/secrets", user)
    assert any(c.verb == "list" and c.status == 200 for c in audit)


async def test_cluster_wide_rbac_reads_everywhere_and_writes_nowhere(
    kube_cluster: KubeCluster, chart: helm.Chart, tmp_path: Path
) -> None:
    objs = install(kube_cluster, chart, "sharding-values.yaml", "wide", "chart-wide")
    assert any(o["kind"] == "ClusterRole" for o in objs)
    token, _ = service_account_token(kube_cluster, objs)
    ca = trustme.CA()
    ns = kube_cluster.namespace("anywhere")
    kube_cluster.put_secret(ns, "site", tls(ca, "anywhere.test"))
    kubeconfig = kube_cluster.write_kubeconfig(tmp_path / "kc", token=token)
    (source,) = rendered_sources(objs, kubeconfig)
    result = await KubernetesReader(source).refresh(None)
    assert result.up, result.error
    assert f"{ns}/site" in names(result)
    for verb in ("list", "watch"):
        assert may(kube_cluster, token, verb, ns)
    for verb in WRITES:
        assert not may(kube_cluster, token, verb, ns)
        assert not may(kube_cluster, token, verb, ns, "configmaps")
        assert not may(kube_cluster, token, verb, ns, "pods")
    assert not may(kube_cluster, token, "get", ns, "pods")
    patched = kube_cluster.request(
        "PATCH",
        f"/api/v1/namespaces/{ns}/secrets/site",
        b'{"metadata": {"labels": {"x": "y"}}}',
        token=token,
        content_type="application/merge-patch+json",
    )
    assert patched.status == 403
