"""The Helm chart (helm/certscope), rendered by the real Helm engine.

helm-python-sdk binds Helm v4's Go library (no ``helm`` binary): ``helm_python.lint``,
``Chart.load(path).render(values, name=, namespace=)`` and ``Chart.validate_schema``. Every
object rendered for the default values and for each ``ci/*-values.yaml`` is validated against
the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate`` (strict: unknown fields are
errors). ServiceMonitor, PodMonitor and PrometheusRule are CRDs that kubernetes-validate does not
know; they are checked against small structural schemas below (the Prometheus Operator CRD's
required fields, field names and duration pattern).

The rendered ``certscope.yml`` of each case goes through certscope's own parser
(:func:`certscope.config.parse_config`). The parser checks that credential and CA files are
readable, and those paths are container paths (mounted Secrets) that do not exist here, so the
test creates each referenced file under ``tmp_path`` and points the config at the copy; nothing
else is changed. A separate test checks that those container paths lie under a volume the chart
mounts into the container.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from certscope.config import RULE_IDS, SOURCE_KINDS, parse_config
from certscope.config import keys as certscope_config
from certscope.sharding import parse_shard
from helpers.chart import CASES, CHART, Obj, case_values, objects, strip

ROOT = Path(__file__).resolve().parent.parent
SYNC = ROOT / "scripts" / "sync-chart-assets.sh"
RELEASE = "cs"
NAMESPACE = "certscope"
# The oldest Kubernetes minor the chart is checked against, and the newest the package ships.
KUBE_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
MONITORING_API = "monitoring.coreos.com/v1"
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
READ_ONLY_RULE = {
    "apiGroups": [""],
    "resources": ["secrets", "configmaps"],
    "verbs": ["get", "list", "watch"],
}

# --- rendering ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render_raw(chart: helm.Chart, values: dict[str, Any]) -> dict[str, str]:
    return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


_cache: dict[str, list[Obj]] = {}


def rendered(chart: helm.Chart, case: str) -> list[Obj]:
    if case not in _cache:
        _cache[case] = objects(render_raw(chart, case_values(case)))
    return copy.deepcopy(_cache[case])


def of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[Obj], kind: str) -> Obj:
    found = of_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def workloads(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["kind"] in WORKLOADS]


def containers(pod_spec: Obj) -> list[Obj]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def main_container(workload: Obj) -> Obj:
    (c,) = [
        c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == "certscope"
    ]
    assert isinstance(c, dict)
    return c


def config_maps_by_name(objs: list[Obj]) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in of_kind(objs, "ConfigMap")}


def config_of(objs: list[Obj], workload: Obj) -> dict[str, Any]:
    """The certscope config a workload's pods read (from the ConfigMap volume named config)."""
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    cm = config_maps_by_name(objs)[volumes["config"]["configMap"]["name"]]
    return yaml.safe_load(cm["data"]["certscope.yml"]) or {}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --- lint, schema ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_lint_is_clean(case: str) -> None:
    report = helm.lint(CHART, case_values(case) or None, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]  # 2 warning, 3 error
    assert problems == []


@pytest.mark.parametrize("case", CASES)
def test_values_satisfy_the_schema(chart: helm.Chart, case: str) -> None:
    chart.validate_schema(chart.merge_values(case_values(case)))


BAD_VALUES = [
    pytest.param({"replica": 2}, "additional properties 'replica'", id="unknown-top-level-key"),
    pytest.param({"replicas": "3"}, "/replicas", id="replicas-string"),
    pytest.param({"replicas": 0}, "/replicas", id="replicas-zero"),
    pytest.param({"image": {"tag": 1.2}}, "/image/tag", id="tag-number"),
    pytest.param({"image": {"pullpolicy": "Always"}}, "'pullpolicy'", id="unknown-nested-key"),
    pytest.param({"sharding": {"enabled": "yes"}}, "/sharding/enabled", id="bool-as-string"),
    pytest.param({"sharding": {"indexSource": "ordinal"}}, "/sharding/indexSource", id="enum"),
    pytest.param({"serviceMonitor": {"interval": 60}}, "/serviceMonitor/interval", id="interval"),
    pytest.param(
        {"serviceMonitor": {"interval": "1 minute"}}, "/serviceMonitor/interval", id="duration"
    ),
    pytest.param(
        {"prometheusRule": {"severityOverrides": {"CertscopeWeakKey": "page"}}},
        "/prometheusRule/severityOverrides",
        id="severity",
    ),
    pytest.param(
        {"prometheusRule": {"disabledAlerts": "CertscopeWeakKey"}},
        "/prometheusRule/disabledAlerts",
        id="disabled-alerts-string",
    ),
    pytest.param({"rbac": {"namespaces": "payments"}}, "/rbac/namespaces", id="ns-string"),
    pytest.param(
        {"credentials": [{"name": "vault"}]}, "existingSecret", id="credentials-no-secret"
    ),
    pytest.param(
        {"credentials": [{"name": "vault", "existingSecret": "s", "token": "hvs.x"}]},
        "'token'",
        id="credentials-inline-token",
    ),
    pytest.param(
        {"config": {"targets": [{"adress": "example.com:443"}]}},
        "'adress'",
        id="config-target-typo",
    ),
    pytest.param(
        {"config": {"targets": [{"address": "a:443", "port": 70000}]}},
        "/config/targets/0/port",
        id="config-port",
    ),
    pytest.param(
        {"config": {"sources": [{"name": "s", "kind": "files", "path": ["/x"]}]}},
        "'path'",
        id="config-files-key",
    ),
    pytest.param(
        {"config": {"sources": [{"name": "s", "kind": "consul"}]}},
        "/config/sources/0/kind",
        id="config-source-kind",
    ),
    pytest.param(
        {
            "config": {
                "sources": [
                    {"name": "v", "kind": "vault", "address": "https://v", "auth": {"token": "x"}}
                ]
            }
        },
        "'token'",
        id="config-vault-inline-token",
    ),
    pytest.param(
        {"config": {"defaults": {"interval": "5 minutes"}}},
        "/config/defaults/interval",
        id="config-duration",
    ),
    pytest.param(
        {"config": {"policy": {"min_protocol": "TLSv1.4"}}},
        "/config/policy/min_protocol",
        id="config-policy-enum",
    ),
    pytest.param(
        {"config": {"defaults": {"labels": {"bad-name": "x"}}}},
        "'bad-name'",
        id="config-label-name",
    ),
    pytest.param({"daemonset": {"hostPaths": [{"name": "x"}]}}, "hostPath", id="hostpath"),
    pytest.param({"daemonset": {"config": {"sourcez": []}}}, "'sourcez'", id="ds-config"),
    pytest.param({"livenessProbe": {"path": "/x"}}, "'path'", id="probe-timing"),
]


@pytest.mark.parametrize(("values", "where"), BAD_VALUES)
def test_schema_rejects_bad_values(chart: helm.Chart, values: dict[str, Any], where: str) -> None:
    with pytest.raises(helm.HelmValuesError) as exc:
        render_raw(chart, values)
    assert where in str(exc.value)


def _schema_props(node: dict[str, Any]) -> set[str]:
    assert node.get("additionalProperties") is False, node
    return set(node["properties"])


def test_schema_mirrors_the_certscope_config_keys() -> None:
    """values.schema.json must accept exactly the keys certscope's parser accepts."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    cfg = schema["definitions"]["config"]
    props = cfg["properties"]
    c = certscope_config
    assert _schema_props(cfg) == set(c.TOP_KEYS)
    assert _schema_props(props["defaults"]) == set(c.DEFAULT_KEYS)
    assert _schema_props(props["targets"]["items"]) == set(c.TARGET_KEYS)
    assert _schema_props(props["policy"]) == set(c.POLICY_KEYS)
    exceptions = props["policy"]["properties"]["exceptions"]["items"]
    assert _schema_props(exceptions) == set(c.EXCEPTION_KEYS)
    assert _schema_props(props["probe"]["properties"]["modules"]["additionalProperties"]) == set(
        c.TLS_KEYS
    )
    assert _schema_props(props["probe"]) == set(c.PROBE_KEYS)
    assert _schema_props(props["scheduler"]) == {"concurrency", "jitter"}
    by_kind = {
        branch["if"]["properties"]["kind"]["const"]: set(branch["then"]["properties"])
        for branch in props["sources"]["items"]["allOf"]
    }
    assert by_kind == {
        "files": set(c.FILES_KEYS),
        "vault": set(c.VAULT_KEYS),
        "kubernetes": set(c.K8S_KEYS),
        "ssh_authorized_keys": set(c.SSH_KEYS_KEYS),
        "aws": set(c.AWS_KEYS),
    }
    assert _schema_props(props["policy"]["properties"]["ssh"]) == set(c.SSH_POLICY_KEYS)
    assert set(props["sources"]["items"]["properties"]["kind"]["enum"]) == set(SOURCE_KINDS)
    vault_auth = _vault_auth_schema(schema)
    assert _schema_props(vault_auth) == set(c.VAULT_AUTH_KEYS)
    rules = props["policy"]["properties"]["exceptions"]["items"]["properties"]["rule"]["enum"]
    assert set(rules) == set(RULE_IDS)


def _vault_auth_schema(schema: dict[str, Any]) -> dict[str, Any]:
    found = [
        node
        for node in _walk(schema)
        if isinstance(node, dict) and "role_id_file" in node.get("properties", {})
    ]
    assert len(found) == 1
    return found[0]


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _documented_paths() -> list[str]:
    """Key paths of values.yaml preceded by a ``# --`` comment (helm-docs convention)."""
    paths: list[str] = []
    stack: list[tuple[int, str]] = []
    pending = False
    for line in (CHART / "values.yaml").read_text().splitlines():
        if re.match(r"^\s*# -- ", line):
            pending = True
            continue
        if re.match(r"^\s*#", line):
            continue
        m = re.match(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*):", line)
        if not m:
            pending = False
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        if pending:
            paths.append(".".join(k for _, k in stack))
        pending = False
    return paths


def test_every_value_is_documented_in_values_yaml_and_the_readme() -> None:
    documented = _documented_paths()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    undocumented: list[str] = []

    def visit(node: Any, path: str) -> None:
        if path in documented:
            return
        if isinstance(node, dict) and node:
            for key, value in node.items():
                visit(value, f"{path}.{key}" if path else key)
        else:
            undocumented.append(path)

    visit(values, "")
    assert undocumented == []
    readme = (CHART / "README.md").read_text()
    table_keys = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    assert set(documented) <= table_keys, sorted(set(documented) - table_keys)
    assert table_keys <= set(documented), sorted(table_keys - set(documented))


# --- Kubernetes validation ---------------------------------------------------------------------

_DURATION = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
_RELABEL = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sourceLabels": {"type": "array", "items": {"type": "string"}},
        "separator": {"type": "string"},
        "targetLabel": {"type": "string"},
        "regex": {"type": "string"},
        "modulus": {"type": "integer"},
        "replacement": {"type": "string"},
        "action": {
            "enum": [
                *(
                    a
                    for b in ("replace", "keep", "drop", "hashmod", "labelmap", "labeldrop")
                    for a in (b, b.capitalize())
                ),
                *(
                    a
                    for b in ("labelkeep", "lowercase", "uppercase", "keepequal", "dropequal")
                    for a in (b, b.capitalize())
                ),
            ]
        },
    },
}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
            "maxLength": 253,
        },
        "namespace": {"type": "string", "minLength": 1},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _closed(**properties: Any) -> dict[str, Any]:
    """A JSON schema object with exactly these properties."""
    return {"type": "object", "additionalProperties": False, "properties": properties}


# Prometheus Operator's SecretKeySelector / ConfigMapKeySelector, SecretOrConfigMap,
# SafeTLSConfig and BasicAuth (monitoring.coreos.com/v1).
_KEY_SELECTOR = {
    **_closed(name={"type": "string"}, key={"type": "string"}, optional={"type": "boolean"}),
    "required": ["key"],
}
_SECRET_OR_CONFIGMAP = _closed(secret=_KEY_SELECTOR, configMap=_KEY_SELECTOR)
_TLS_VERSION = {"enum": ["TLS10", "TLS11", "TLS12", "TLS13"]}
_TLS_CONFIG = _closed(
    ca=_SECRET_OR_CONFIGMAP,
    cert=_SECRET_OR_CONFIGMAP,
    keySecret=_KEY_SELECTOR,
    serverName={"type": "string"},
    insecureSkipVerify={"type": "boolean"},
    minVersion=_TLS_VERSION,
    maxVersion=_TLS_VERSION,
)
_BASIC_AUTH = _closed(username=_KEY_SELECTOR, password=_KEY_SELECTOR)
_ENDPOINT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["port"],
    "properties": {
        "tlsConfig": _TLS_CONFIG,
        "basicAuth": _BASIC_AUTH,
        "port": {"type": "string"},
        "path": {"type": "string"},
        "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
        "interval": {"type": "string", "pattern": _DURATION},
        "scrapeTimeout": {"type": "string", "pattern": _DURATION},
        "honorLabels": {"type": "boolean"},
        "relabelings": {"type": "array", "items": _RELABEL},
        "metricRelabelings": {"type": "array", "items": _RELABEL},
    },
}
_SELECTOR = {
    "type": "object",
    "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}},
}
_NAMESPACE_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array"}},
}


def _crd(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": MONITORING_API},
            "kind": {"type": "string"},
            "metadata": _METADATA,
            "spec": spec,
        },
    }


CRD_SCHEMAS = {
    "ServiceMonitor": _crd(
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "jobLabel": {"type": "string"},
                "targetLabels": {"type": "array", "items": {"type": "string"}},
                "selector": _SELECTOR,
                "namespaceSelector": _NAMESPACE_SELECTOR,
                "endpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
            },
        }
    ),
    "PodMonitor": _crd(
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "podMetricsEndpoints"],
            "properties": {
                "jobLabel": {"type": "string"},
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "selector": _SELECTOR,
                "namespaceSelector": _NAMESPACE_SELECTOR,
                "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": _ENDPOINT},
            },
        }
    ),
    "PrometheusRule": _crd(
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "limit": {"type": "integer"},
                            "query_offset": {"type": "string", "pattern": _DURATION},
                            "labels": {"type": "object"},
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["expr"],
                                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": {"type": "string", "pattern": _DURATION},
                                        "keep_firing_for": {"type": "string", "pattern": _DURATION},
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                        "annotations": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                }
            },
        }
    ),
}


def validate_object(obj: Obj) -> None:
    if obj["apiVersion"] == MONITORING_API:
        jsonschema.validate(obj, CRD_SCHEMAS[obj["kind"]])
        names = [g["name"] for g in obj["spec"].get("groups", [])]
        assert len(names) == len(set(names)), "PrometheusRule group names must be unique"
        return
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("case", CASES)
def test_every_object_is_valid_kubernetes(chart: helm.Chart, case: str) -> None:
    objs = rendered(chart, case)
    assert objs
    for obj in objs:
        try:
            validate_object(strip(obj))
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            pytest.fail(f"{obj['__template__']}: {obj['kind']} {obj['metadata']['name']}: {exc}")
        assert obj["metadata"]["namespace" if _namespaced(obj) else "name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


def _namespaced(obj: Obj) -> bool:
    return obj["kind"] not in ("ClusterRole", "ClusterRoleBinding")


def test_the_validators_catch_mistakes(chart: helm.Chart) -> None:
    """A control for the test above: a misspelt field fails both kinds of validation."""
    deployment = strip(one(rendered(chart, "default"), "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_object(deployment)
    monitor = strip(one(rendered(chart, "monitoring-values.yaml"), "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["scrapeTimout"] = "10s"
    with pytest.raises(jsonschema.ValidationError):
        validate_object(monitor)


@pytest.mark.parametrize("case", CASES)
def test_one_kind_per_template_file(chart: helm.Chart, case: str) -> None:
    kinds: dict[str, set[str]] = {}
    for obj in rendered(chart, case):
        kinds.setdefault(obj["__template__"], set()).add(obj["kind"])
    assert {t: k for t, k in kinds.items() if len(k) > 1} == {}


def test_default_values_enable_no_cluster_features(chart: helm.Chart) -> None:
    kinds = sorted(o["kind"] for o in rendered(chart, "default"))
    assert kinds == ["ConfigMap", "Deployment", "Service", "ServiceAccount"]
    deployment = one(rendered(chart, "default"), "Deployment")
    assert deployment["spec"]["replicas"] == 1


# --- pods ----------------------------------------------------------------------------------------


def _expects_token(config: dict[str, Any]) -> bool:
    for src in config.get("sources") or []:
        if src["kind"] == "kubernetes":
            return True
        if src["kind"] == "vault" and src.get("auth", {}).get("method") == "kubernetes":
            return True
    return False


@pytest.mark.parametrize("case", CASES)
def test_pods_are_hardened(chart: helm.Chart, case: str) -> None:
    objs = rendered(chart, case)
    assert workloads(objs)
    for workload in workloads(objs):
        pod = workload["spec"]["template"]["spec"]
        sc = pod["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["runAsUser"] == 65532
        assert sc["runAsGroup"] == 65532
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is _expects_token(config_of(objs, workload))
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes["tmp"]
        for c in containers(pod):
            csc = c["securityContext"]
            assert csc["runAsNonRoot"] is True
            assert csc["runAsUser"] == 65532
            assert csc["allowPrivilegeEscalation"] is False
            assert csc["readOnlyRootFilesystem"] is True
            assert csc["privileged"] is False
            assert csc["capabilities"] == {"drop": ["ALL"]}
            assert csc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
            mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
            assert mounts["/tmp"]["name"] == "tmp"
            assert all(
                m.get("readOnly") is True for m in c["volumeMounts"] if m["name"] != "tmp"
            ), c["name"]
            assert not any(
                "hostPath" in volumes[m["name"]] and not m.get("readOnly")
                for m in c["volumeMounts"]
            )
        main = main_container(workload)
        web = case_values(case).get("web", {}).get("config", {})
        if "basic_auth_users" in web:  # the kubelet cannot authenticate: a TCP check
            assert main["livenessProbe"]["tcpSocket"] == {"port": "http"}
            assert main["readinessProbe"]["tcpSocket"] == {"port": "http"}
        else:
            scheme = {"scheme": "HTTPS"} if "tls_server_config" in web else {}
            liveness = {"path": "/-/healthy", "port": "http", **scheme}
            assert main["livenessProbe"]["httpGet"] == liveness
            assert main["readinessProbe"]["httpGet"] == {
                "path": "/-/ready",
                "port": "http",
                **scheme,
            }
        assert main["ports"] == [{"name": "http", "containerPort": 9793, "protocol": "TCP"}]
        assert main["args"][0] == "serve"
        assert {"name": "HOME", "value": "/tmp"} in main["env"]


def test_kubernetes_sources_mount_the_token_and_others_do_not(chart: helm.Chart) -> None:
    base = {"config": {"sources": [{"name": "c", "kind": "kubernetes"}]}}
    pod = one(objects(render_raw(chart, base)), "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    vault_k8s = {
        "config": {
            "sources": [
                {
                    "name": "v",
                    "kind": "vault",
                    "address": "https://vault:8200",
                    "auth": {"method": "kubernetes", "role": "certscope"},
                    "pki": [{"mount": "pki"}],
                }
            ]
        }
    }
    pod = one(objects(render_raw(chart, vault_k8s)), "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    forced = {"serviceAccount": {"automountToken": False}, **base}
    pod = one(objects(render_raw(chart, forced)), "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    sa = one(rendered(chart, "default"), "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False


# --- RBAC ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_rbac_is_read_only_on_secrets_and_configmaps(chart: helm.Chart, case: str) -> None:
    objs = rendered(chart, case)
    sa_name = one(objs, "ServiceAccount")["metadata"]["name"]
    roles = of_kind(objs, "ClusterRole") + of_kind(objs, "Role")
    for role in roles:
        assert role["rules"] == [READ_ONLY_RULE]
    for binding in of_kind(objs, "ClusterRoleBinding") + of_kind(objs, "RoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": sa_name, "namespace": NAMESPACE}
        ]
        role_kind = "ClusterRole" if binding["kind"] == "ClusterRoleBinding" else "Role"
        assert binding["roleRef"]["kind"] == role_kind
        targets = [
            r
            for r in of_kind(objs, role_kind)
            if r["metadata"]["name"] == binding["roleRef"]["name"]
            and r["metadata"].get("namespace") == binding["metadata"].get("namespace")
        ]
        assert len(targets) == 1
    reads_api = any(
        s["kind"] == "kubernetes"
        for w in workloads(objs)
        for s in config_of(objs, w).get("sources") or []
    )
    assert bool(roles) == reads_api


def test_namespaced_rbac_creates_one_role_per_namespace(chart: helm.Chart) -> None:
    objs = rendered(chart, "namespaced-rbac-values.yaml")
    assert of_kind(objs, "ClusterRole") == [] and of_kind(objs, "ClusterRoleBinding") == []
    assert sorted(r["metadata"]["namespace"] for r in of_kind(objs, "Role")) == [
        "ingress",
        "payments",
    ]
    assert sorted(r["metadata"]["namespace"] for r in of_kind(objs, "RoleBinding")) == [
        "ingress",
        "payments",
    ]


def test_cluster_wide_kubernetes_source_gets_a_cluster_role(chart: helm.Chart) -> None:
    objs = rendered(chart, "sharding-values.yaml")
    assert len(of_kind(objs, "ClusterRole")) == 1
    assert len(of_kind(objs, "ClusterRoleBinding")) == 1
    assert of_kind(objs, "Role") == []


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ([{"name": "c", "kind": "kubernetes"}], "reads every namespace"),
        (
            [{"name": "c", "kind": "kubernetes", "namespaces": ["payments", "billing"]}],
            'reads namespace "billing"',
        ),
    ],
)
def test_namespaced_rbac_must_cover_the_sources(
    chart: helm.Chart, sources: list[dict[str, Any]], message: str
) -> None:
    values = {"config": {"sources": sources}, "rbac": {"namespaces": ["payments"]}}
    with pytest.raises(helm.HelmRenderError, match=message):
        render_raw(chart, values)


# --- labels and selectors ------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_selectors_match_the_pods_they_mean(chart: helm.Chart, case: str) -> None:
    objs = rendered(chart, case)
    pods = {w["kind"]: w["spec"]["template"]["metadata"]["labels"] for w in workloads(objs)}
    for workload in workloads(objs):
        selector = workload["spec"]["selector"]["matchLabels"]
        own = workload["spec"]["template"]["metadata"]["labels"]
        assert matches(selector, own), workload["kind"]
        others = [labels for kind, labels in pods.items() if kind != workload["kind"]]
        assert not any(matches(selector, labels) for labels in others), workload["kind"]
    for service in of_kind(objs, "Service"):
        selected = [k for k, labels in pods.items() if matches(service["spec"]["selector"], labels)]
        assert len(selected) == 1, service["metadata"]["name"]
        assert service["spec"]["ports"][0]["targetPort"] == "http"
    for sm in of_kind(objs, "ServiceMonitor"):
        selected = [
            s
            for s in of_kind(objs, "Service")
            if matches(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        assert len(selected) == len(of_kind(objs, "Service"))
        assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
        job_label = sm["spec"]["jobLabel"]
        assert all(s["metadata"]["labels"][job_label] == "certscope" for s in selected)
    for pm in of_kind(objs, "PodMonitor"):
        assert all(matches(pm["spec"]["selector"]["matchLabels"], p) for p in pods.values())
    for pdb in of_kind(objs, "PodDisruptionBudget"):
        exporter = [
            k for k, p in pods.items() if matches(pdb["spec"]["selector"]["matchLabels"], p)
        ]
        assert exporter in (["Deployment"], ["StatefulSet"])
    for np in of_kind(objs, "NetworkPolicy"):
        assert all(matches(np["spec"]["podSelector"]["matchLabels"], p) for p in pods.values())


def test_service_monitor_and_pod_monitor_are_exclusive(chart: helm.Chart) -> None:
    values = {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}}
    with pytest.raises(helm.HelmRenderError, match="choose one"):
        render_raw(chart, values)
    objs = objects(render_raw(chart, {"podMonitor": {"enabled": True}}))
    pm = one(objs, "PodMonitor")
    validate_object(strip(pm))
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "http"


def test_service_monitor_settings(chart: helm.Chart) -> None:
    sm = one(rendered(chart, "monitoring-values.yaml"), "ServiceMonitor")
    values = case_values("monitoring-values.yaml")["serviceMonitor"]
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == values["interval"]
    assert endpoint["scrapeTimeout"] == values["scrapeTimeout"]
    assert endpoint["relabelings"] == values["relabelings"]
    assert endpoint["metricRelabelings"] == values["metricRelabelings"]


# --- config ConfigMaps ---------------------------------------------------------------------------


def checksum(objs: list[Obj], kind: str) -> str:
    return str(one(objs, kind)["spec"]["template"]["metadata"]["annotations"]["checksum/config"])


def test_config_checksum_rolls_the_pods_on_config_changes(chart: helm.Chart) -> None:
    base = rendered(chart, "default")
    again = objects(render_raw(chart, {}))
    assert re.fullmatch(r"[0-9a-f]{64}", checksum(base, "Deployment"))
    assert checksum(again, "Deployment") == checksum(base, "Deployment")
    changed = objects(render_raw(chart, {"config": {"defaults": {"interval": "1m"}}}))
    assert checksum(changed, "Deployment") != checksum(base, "Deployment")
    unrelated = objects(render_raw(chart, {"podAnnotations": {"a": "b"}}))
    assert checksum(unrelated, "Deployment") == checksum(base, "Deployment")
    sharded = rendered(chart, "sharding-values.yaml")
    resharded = objects(
        render_raw(
            chart,
            {**case_values("sharding-values.yaml"), "config": {"scheduler": {"concurrency": 8}}},
        )
    )
    assert checksum(resharded, "StatefulSet") != checksum(sharded, "StatefulSet")

    ds_values = case_values("daemonset-values.yaml")
    ds = rendered(chart, "daemonset-values.yaml")
    ds_changed = copy.deepcopy(ds_values)
    ds_changed["daemonset"]["config"]["defaults"]["interval"] = "20m"
    ds2 = objects(render_raw(chart, ds_changed))
    assert checksum(ds2, "DaemonSet") != checksum(ds, "DaemonSet")
    assert checksum(ds2, "Deployment") == checksum(ds, "Deployment")


_PATH_KEYS = frozenset(
    {
        "ca_file",
        "client_cert",
        "client_key",
        "kubeconfig",
        "password_file",
        "token_file",
        "role_id_file",
        "secret_id_file",
        "jwt_file",
    }
)
_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "placeholder: the parser only checks that a CA file holds a PEM certificate block\n"
    "-----END CERTIFICATE-----\n"
)


def file_paths(node: Any) -> Iterator[tuple[str, str]]:
    """(key, path) of every file-valued key of a certscope config."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _PATH_KEYS and isinstance(value, str):
                yield key, value
            else:
                yield from file_paths(value)
    elif isinstance(node, list):
        for value in node:
            yield from file_paths(value)


def relocate(node: Any, root: Path) -> Any:
    """A copy of a config whose file paths point at placeholder files under ``root``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _PATH_KEYS and isinstance(value, str):
                copy_path = root / value.lstrip("/")
                copy_path.parent.mkdir(parents=True, exist_ok=True)
                copy_path.write_text(_PEM if key == "ca_file" else "placeholder\n")
                out[key] = str(copy_path)
            else:
                out[key] = relocate(value, root)
        return out
    if isinstance(node, list):
        return [relocate(v, root) for v in node]
    return node


def run_node_label_script(cm: Obj, tmp_path: Path, node: str, label: str) -> str:
    """Run the DaemonSet's init container script as the pod would, on local copies."""
    workdir = tmp_path / "node"
    workdir.mkdir(exist_ok=True)
    (workdir / "add-node-label.py").write_text(cm["data"]["add-node-label.py"])
    (workdir / "certscope.yml").write_text(cm["data"]["certscope.yml"])
    out = workdir / "tmp" / "certscope" / "certscope.yml"
    subprocess.run(
        [
            sys.executable,  # the image runs it with its own Python, which has PyYAML too
            str(workdir / "add-node-label.py"),
            str(workdir / "certscope.yml"),
            str(out),
            label,
        ],
        env={**os.environ, "NODE_NAME": node},
        check=True,
        timeout=60,
    )
    return out.read_text()


@pytest.mark.parametrize("case", CASES)
def test_rendered_config_is_accepted_by_certscope(
    chart: helm.Chart, case: str, tmp_path: Path
) -> None:
    objs = rendered(chart, case)
    values = chart.merge_values(case_values(case))
    for workload in workloads(objs):
        raw = config_of(objs, workload)
        if workload["kind"] == "DaemonSet":
            cm = config_maps_by_name(objs)[f"{RELEASE}-certscope-host-config"]
            label = values["daemonset"]["nodeNameLabel"]
            raw = yaml.safe_load(run_node_label_script(cm, tmp_path, "node-a.example", label))
            expected = {k: v for k, v in values["daemonset"]["config"].items() if v}
            defaults = expected.get("defaults") or {}
            expected["defaults"] = {
                **defaults,
                "labels": {**(defaults.get("labels") or {}), label: "node-a.example"},
            }
        else:
            # The ConfigMap holds exactly the configured sections (empty ones left out).
            expected = {k: v for k, v in values["config"].items() if v}
        assert raw == expected
        parsed = parse_config(
            yaml.safe_dump(relocate(raw, tmp_path / workload["kind"])), f"{case}:{workload['kind']}"
        )
        assert len(parsed.targets) == len(raw.get("targets") or [])
        assert len(parsed.sources) == len(raw.get("sources") or [])
        if workload["kind"] == "DaemonSet":
            assert all((label, "node-a.example") in s.labels for s in parsed.sources)


@pytest.mark.parametrize("case", CASES)
def test_config_file_paths_are_mounted(chart: helm.Chart, case: str) -> None:
    """Credential and CA files named in the config are on a volume mounted into the container."""
    objs = rendered(chart, case)
    for workload in workloads(objs):
        mounts = [
            m["mountPath"].rstrip("/") + "/" for m in main_container(workload)["volumeMounts"]
        ]
        for key, path in file_paths(config_of(objs, workload)):
            if key == "jwt_file":  # the service account token, mounted by Kubernetes
                continue
            assert any(path.startswith(m) for m in mounts), f"{workload['kind']}: {key} {path}"


def test_credentials_come_from_existing_secrets(chart: helm.Chart) -> None:
    objs = rendered(chart, "credentials-values.yaml")
    assert of_kind(objs, "Secret") == []
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    values = case_values("credentials-values.yaml")
    assert {s["secretName"] for s in secrets.values()} == {
        c["existingSecret"] for c in values["credentials"]
    }
    mounts = {m["name"]: m for m in main_container(one(objs, "Deployment"))["volumeMounts"]}
    for cred in values["credentials"]:
        mount = mounts[f"credentials-{cred['name']}"]
        assert mount["readOnly"] is True
        assert mount["mountPath"] == cred.get(
            "mountPath", f"/etc/certscope/credentials/{cred['name']}"
        )
        assert secrets[f"credentials-{cred['name']}"]["defaultMode"] == 0o440
    text = config_maps_by_name(objs)[f"{RELEASE}-certscope-config"]["data"]["certscope.yml"]
    assert "role_id_file: /etc/certscope/credentials/vault/role_id" in text


def test_daemonset_reads_host_paths_read_only(chart: helm.Chart) -> None:
    objs = rendered(chart, "daemonset-values.yaml")
    ds = one(objs, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    host = {v["name"]: v["hostPath"] for v in pod["volumes"] if "hostPath" in v}
    values = case_values("daemonset-values.yaml")["daemonset"]
    assert {h["path"] for h in host.values()} == {h["hostPath"] for h in values["hostPaths"]}
    main = main_container(ds)
    assert "--config.file=/tmp/certscope/certscope.yml" in main["args"]
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in main[
        "env"
    ]
    (init,) = pod["initContainers"]
    assert init["command"][-1] == values["nodeNameLabel"]
    assert init["command"][-2] == "/tmp/certscope/certscope.yml"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    # Each workload mounts only its own credentials.
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert secrets == {c["existingSecret"] for c in values["credentials"]}
    exporter_pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert not any("secret" in v for v in exporter_pod["volumes"])
    headless = [s for s in of_kind(objs, "Service") if s["spec"].get("clusterIP") == "None"]
    assert [s["metadata"]["name"] for s in headless] == [f"{RELEASE}-certscope-host"]


# --- sharding ------------------------------------------------------------------------------------


def test_sharding_renders_a_statefulset_with_one_shard_per_pod(chart: helm.Chart) -> None:
    objs = rendered(chart, "sharding-values.yaml")
    assert of_kind(objs, "Deployment") == []
    sts = one(objs, "StatefulSet")
    service = one(objs, "Service")
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    main = main_container(sts)
    shard_args = [a for a in main["args"] if a.startswith("--shard")]
    assert shard_args == ["--shard=$(CERTSCOPE_SHARD_INDEX)/3"]
    env = {e["name"]: e for e in main["env"]}
    assert env["CERTSCOPE_SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    # Kubernetes substitutes $(VAR) in args; what each pod then runs parses to its own shard.
    for index in range(3):
        arg = shard_args[0].replace("$(CERTSCOPE_SHARD_INDEX)", str(index))
        assert parse_shard(arg.split("=", 1)[1]) == (index, 3)


def test_sharding_by_hostname_uses_auto(chart: helm.Chart) -> None:
    values = case_values("sharding-values.yaml")
    values["sharding"]["indexSource"] = "hostname"
    objs = objects(render_raw(chart, values))
    sts = one(objs, "StatefulSet")
    main = main_container(sts)
    assert not any(a.startswith("--shard") for a in main["args"])
    env = {e["name"]: e for e in main["env"]}
    assert env["CERTSCOPE_SHARD"] == {"name": "CERTSCOPE_SHARD", "value": "auto/3"}
    name = sts["metadata"]["name"]
    for index in range(3):  # StatefulSet pods are named <name>-<ordinal>, their host name too
        assert parse_shard(env["CERTSCOPE_SHARD"]["value"], f"{name}-{index}") == (index, 3)


def test_without_sharding_no_shard_flag(chart: helm.Chart) -> None:
    for case in ("default", "monitoring-values.yaml"):
        main = main_container(one(rendered(chart, case), "Deployment"))
        assert not any("shard" in a for a in main["args"])
        assert not any("SHARD" in e["name"] for e in main["env"])


# --- rules pack ----------------------------------------------------------------------------------


def rule_files() -> list[Path]:
    """The rule files of rules/ (the Alertmanager example has no groups)."""
    return [
        p
        for p in sorted((ROOT / "rules").glob("*.yml"))
        if "groups" in (yaml.safe_load(p.read_text()) or {})
    ]


def pack_groups() -> list[dict[str, Any]]:
    return [g for p in rule_files() for g in yaml.safe_load(p.read_text())["groups"]]


def test_prometheus_rule_groups_equal_the_rule_files(chart: helm.Chart) -> None:
    objs = objects(render_raw(chart, {"prometheusRule": {"enabled": True}}))
    rule = one(objs, "PrometheusRule")
    assert rule_files()
    assert rule["spec"]["groups"] == pack_groups()


def test_prometheus_rule_overrides(chart: helm.Chart) -> None:
    values = case_values("monitoring-values.yaml")["prometheusRule"]
    rule = one(rendered(chart, "monitoring-values.yaml"), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    got = rule["spec"]["groups"]
    assert got[-1] == values["additionalGroups"][0]
    got = got[:-1]

    expected = []
    for group in pack_groups():
        rules = []
        for r in group["rules"]:
            if "alert" in r:
                window = r.get("labels", {}).get("window")
                if r["alert"] == "CertscopeWeakCipherSuiteAccepted" or (
                    r["alert"] == "CertscopeCertificateExpiring" and window == "60d"
                ):
                    continue
                r = copy.deepcopy(r)
                r["labels"] = {"team": "platform", **r.get("labels", {})}
                if r["alert"] == "CertscopeWeakKey":
                    r["labels"]["severity"] = "critical"
                if r["alert"] == "CertscopeCertificateExpiring" and window == "30d":
                    r["labels"]["severity"] = "info"
            rules.append(r)
        if rules:
            expected.append({**group, "rules": rules})
    assert got == expected
    names = [r.get("alert") for g in got for r in g["rules"]]
    assert "CertscopeWeakCipherSuiteAccepted" not in names
    assert names.count("CertscopeCertificateExpiring") == 3


def test_prometheus_rule_recording_labels_and_whole_groups(chart: helm.Chart) -> None:
    values = {
        "prometheusRule": {
            "enabled": True,
            "additionalRecordingRuleLabels": {"cluster": "eu-1"},
            "disabledAlerts": [
                r["alert"]
                for g in pack_groups()
                if g["name"] == "certscope-monitoring"
                for r in g["rules"]
            ],
        }
    }
    groups = one(objects(render_raw(chart, values)), "PrometheusRule")["spec"]["groups"]
    assert "certscope-monitoring" not in [g["name"] for g in groups]  # emptied groups go
    for group in groups:
        for r in group["rules"]:
            if "record" in r:
                assert r["labels"]["cluster"] == "eu-1"
            else:
                assert "cluster" not in r.get("labels", {})


def test_chart_assets_are_in_sync() -> None:
    result = subprocess.run(
        ["bash", str(SYNC), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    copies = sorted(p.name for p in (CHART / "files" / "rules").glob("*.yml"))
    assert copies == [p.name for p in rule_files()]


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A copy of the parts of the repository the sync script reads and writes."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(SYNC, tmp_path / "scripts" / SYNC.name)
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    (tmp_path / "helm" / "certscope").mkdir(parents=True)
    return tmp_path


def test_sync_script_copies_checks_and_prunes(sandbox: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(sandbox / "scripts" / SYNC.name), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    files = sandbox / "helm" / "certscope" / "files"
    assert run("--check").returncode == 1  # nothing copied yet
    dashboards = sandbox / "grafana" / "dashboards"
    dashboards.mkdir(parents=True)
    (dashboards / "overview.json").write_text('{"title": "x", "panels": []}\n')
    (dashboards / "draft.json").write_text('{"title": ')  # being written: refused
    result = run()
    assert result.returncode == 1 and "draft.json" in result.stderr
    assert not (files / "dashboards" / "draft.json").exists()
    (dashboards / "draft.json").write_text('{"title": "y"}')
    assert run().returncode == 0
    assert run("--check").returncode == 0
    assert sorted(p.name for p in (files / "rules").iterdir()) == [p.name for p in rule_files()]
    assert not (files / "rules" / "alertmanager.example.yml").exists()
    (dashboards / "overview.json").write_text('{"title": "changed"}\n')
    (dashboards / "draft.json").unlink()
    check = run("--check")
    assert check.returncode == 1
    assert "differs: helm/certscope/files/dashboards/overview.json" in check.stdout
    assert "stale:   helm/certscope/files/dashboards/draft.json" in check.stdout
    assert run().returncode == 0
    assert (files / "dashboards" / "overview.json").read_text() == '{"title": "changed"}\n'
    assert not (files / "dashboards" / "draft.json").exists()
    assert run("--check").returncode == 0


# --- dashboards ----------------------------------------------------------------------------------


def dashboard_maps(objs: list[Obj]) -> dict[str, Obj]:
    return {
        key: cm
        for cm in of_kind(objs, "ConfigMap")
        if "grafana_dashboard" in cm["metadata"]["labels"]
        for key in cm["data"]
    }


def test_dashboard_configmaps_equal_the_grafana_files(chart: helm.Chart) -> None:
    objs = rendered(chart, "monitoring-values.yaml")
    maps = dashboard_maps(objs)
    sources = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
    assert sorted(maps) == [p.name for p in sources]
    for path in sources:
        cm = maps[path.name]
        assert cm["data"] == {path.name: path.read_text()}
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"]["grafana_folder"] == "Security"
        assert len(path.read_bytes()) < 900 * 1024  # ConfigMaps hold at most 1 MiB
        json.loads(path.read_text())


def test_dashboard_template_round_trips_any_json(tmp_path: Path) -> None:
    """Dashboards may not exist yet; exercise the template with a tricky one in a chart copy."""
    copy_dir = tmp_path / "certscope"
    shutil.copytree(CHART, copy_dir)
    shutil.rmtree(copy_dir / "files" / "dashboards", ignore_errors=True)
    (copy_dir / "files" / "dashboards").mkdir()
    tricky = json.dumps(
        {
            "title": "Certificates: {{ not a template }}",
            "panels": [
                {"targets": [{"expr": 'sum by (owner) (x{a="b"})', "legendFormat": "{{owner}}"}]}
            ],
            "description": "line one\nline two\t# not a comment: yes",
        },
        indent=2,
    )
    (copy_dir / "files" / "dashboards" / "TLS_Overview.json").write_text(tricky + "\n")
    (copy_dir / "files" / "dashboards" / "compact.json").write_text('{"title":"c"}')
    values = {
        "dashboards": {
            "enabled": True,
            "label": "grafana_dashboard",
            "labelValue": "yes",
            "folder": "",
            "namespace": "monitoring",
        }
    }
    with helm.Chart.load(copy_dir) as c:
        objs = objects(c.render(values, name=RELEASE, namespace=NAMESPACE))
    maps = dashboard_maps(objs)
    assert maps["TLS_Overview.json"]["data"]["TLS_Overview.json"] == tricky + "\n"
    assert maps["compact.json"]["data"]["compact.json"] == '{"title":"c"}'
    for cm in maps.values():
        validate_object(strip(cm))
        assert cm["metadata"]["namespace"] == "monitoring"
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "yes"
        assert "annotations" not in cm["metadata"]
    assert (
        maps["TLS_Overview.json"]["metadata"]["name"]
        == f"{RELEASE}-certscope-dashboard-tls-overview"
    )


# --- NOTES ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_notes_render(chart: helm.Chart, case: str) -> None:
    notes = next(
        v for k, v in render_raw(chart, case_values(case)).items() if k.endswith("NOTES.txt")
    )
    assert f"{RELEASE}-certscope" in notes
    assert "<no value>" not in notes


# --- the exporter's own endpoint (web) -------------------------------------------------------------


def test_lifecycle_and_web_config_are_off_by_default(chart: helm.Chart) -> None:
    objs = rendered(chart, "default")
    args = main_container(one(objs, "Deployment"))["args"]
    assert not any(a.startswith(("--web.enable-lifecycle", "--web.config.file")) for a in args)
    assert not [o for o in of_kind(objs, "Secret") if o["metadata"]["name"].endswith("web-config")]


def test_web_config_is_a_mounted_secret_and_the_monitor_follows_it(chart: helm.Chart) -> None:
    values = case_values("web-values.yaml")
    objs = rendered(chart, "web-values.yaml")
    (secret,) = [o for o in of_kind(objs, "Secret") if o["metadata"]["name"].endswith("web-config")]
    assert yaml.safe_load(secret["stringData"]["web-config.yml"]) == values["web"]["config"]
    deployment = one(objs, "Deployment")
    main = main_container(deployment)
    assert "--web.enable-lifecycle" in main["args"]
    assert "--web.config.file=/etc/certscope/web/web-config.yml" in main["args"]
    mounts = {m["name"]: m for m in main["volumeMounts"]}
    assert mounts["web-config"] == {
        "name": "web-config",
        "mountPath": "/etc/certscope/web",
        "readOnly": True,
    }
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["web-config"]["secret"]["secretName"] == secret["metadata"]["name"]
    (endpoint,) = one(objs, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == values["serviceMonitor"]["tlsConfig"]
    assert endpoint["basicAuth"] == values["serviceMonitor"]["basicAuth"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    changed = copy.deepcopy(values)
    changed["web"]["config"]["http_server_config"]["headers"]["X-Frame-Options"] = "deny"
    again = one(objects(render_raw(chart, changed)), "Deployment")
    assert (
        again["spec"]["template"]["metadata"]["annotations"]["checksum/web-config"]
        != annotations["checksum/web-config"]
    )


def test_web_config_in_the_daemonset_too(chart: helm.Chart) -> None:
    values = {**case_values("daemonset-values.yaml"), "web": {"enableLifecycle": True}}
    ds = one(objects(render_raw(chart, values)), "DaemonSet")
    assert "--web.enable-lifecycle" in main_container(ds)["args"]


def test_web_schema_rejects_plain_passwords_and_unsupported_auth(chart: helm.Chart) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    bad: dict[str, Any]
    for bad in (
        {"web": {"config": {"basic_auth_users": {"prometheus": "hunter2"}}}},
        {
            "web": {
                "config": {
                    "tls_server_config": {
                        "cert_file": "/a",
                        "key_file": "/b",
                        "client_auth_type": "RequestClientCert",
                    }
                }
            }
        },
        {"web": {"config": {"tls_config": {}}}},
        {"serviceMonitor": {"scheme": "ftp"}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_prometheus_rule_runbook_url_base(chart: helm.Chart) -> None:
    base = "https://wiki.example.net/ops/runbooks.md"
    values = {"prometheusRule": {"enabled": True, "runbookUrlBase": base + "/"}}
    groups = one(objects(render_raw(chart, values)), "PrometheusRule")["spec"]["groups"]
    urls = [r["annotations"]["runbook_url"] for g in groups for r in g["rules"] if "alert" in r]
    assert urls and all(u.startswith(base + "#certscope") for u in urls), urls[:3]
    default = one(
        objects(render_raw(chart, {"prometheusRule": {"enabled": True}})), "PrometheusRule"
    )
    kept = [
        r["annotations"]["runbook_url"]
        for g in default["spec"]["groups"]
        for r in g["rules"]
        if "alert" in r
    ]
    assert all(
        u.startswith("https://github.com/certscope/certscope/blob/main/docs/runbooks.md#")
        for u in kept
    )
