"""Grafana dashboards as the dashboard tests read them: the JSON model (panels, variables,
queries), the checks every certscope dashboard passes, and queries against a real Prometheus
with the variables substituted the way Grafana sends them on "All".

A module that tests a dashboard runs every check of ``MODEL_CHECKS`` on it, and every panel
query through ``instant`` against a Prometheus that scraped a real scenario.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from .promserver import Prometheus

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
RULES = [ROOT / "rules" / "certscope-recording.yml", ROOT / "rules" / "certscope-alerts.yml"]
DS = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's built-in variables, and the values the live tests give them.
BUILTINS = {
    "__range": "1h",
    "__range_s": "3600",
    "__rate_interval": "1m",
    "__interval": "15s",
}
VAR_RE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
METRIC_RE = re.compile(r"certscope[_:][a-zA-Z0-9_:]+")
SELECTOR_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
RANGE_FN_RE = re.compile(r"\b(rate|irate|increase)\(")
LABEL_VALUES_RE = re.compile(r"^label_values\((.*),\s*(\w+)\)$", re.S)
NO_DATASOURCE = {"row", "text"}
RANGE_PANELS = {"timeseries", "state-timeline"}
# Table columns that organize may name although the test scenarios do not produce them.
OPTIONAL_COLUMNS = {
    "alert": "certscope_probe_error_info's TLS alert name, empty (so dropped by Prometheus)"
    " unless reason is tls_alert; the scenario's unreachable endpoint is connect_refused",
}
# (file name, JSON model) of one dashboard
Dashboard = tuple[str, dict[str, Any]]


def load(name: str) -> dict[str, Any]:
    dash: dict[str, Any] = json.loads((DASHBOARD_DIR / name).read_text())
    return dash


def all_panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dash["panels"]:
        yield panel
        yield from panel.get("panels", [])


def variables(dash: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dash["templating"]["list"]}


def variable_query(var: dict[str, Any]) -> str:
    query = var["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def queries(dash: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in all_panels(dash):
        for target in panel.get("targets", []):
            yield panel, target


def substitute(expr: str) -> str:
    """What Grafana sends with every variable on "All" (allValue ``.*``)."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name.isdigit():  # a regex group reference ($1) in label_replace
            return m.group(0)
        return BUILTINS.get(name, ".*")

    return VAR_RE.sub(value, expr.replace("${datasource}", "").replace("$datasource", ""))


def documented_metrics() -> set[str]:
    text = (ROOT / "docs" / "metrics.md").read_text()
    return set(re.findall(r"`(certscope_[a-z0-9_]+)`", text))


def recorded_series() -> set[str]:
    doc = yaml.safe_load((ROOT / "rules" / "certscope-recording.yml").read_text())
    return {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}


def check_panel_ids_unique(dashboard: Dashboard) -> None:
    ids = [p["id"] for p in all_panels(dashboard[1])]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def _overlaps(panels: list[dict[str, Any]]) -> list[tuple[str, str]]:
    boxes = []
    for p in panels:
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0, p["title"]
        assert g["x"] + g["w"] <= 24, f"{p['title']!r} is wider than the 24-column grid"
        boxes.append((p["title"], g["x"], g["y"], g["x"] + g["w"], g["y"] + g["h"]))
    return [
        (a[0], b[0])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
    ]


def check_grid_has_no_overlaps(dashboard: Dashboard) -> None:
    dash = dashboard[1]
    assert _overlaps(dash["panels"]) == []
    for panel in dash["panels"]:
        if panel["type"] == "row" and panel.get("collapsed"):
            assert _overlaps(panel["panels"]) == [], panel["title"]
        else:
            assert panel.get("panels", []) == [], f"expanded row {panel['title']!r} nests panels"


def _datasource_refs(node: object) -> Iterator[object]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_refs(item)


def check_datasources_are_the_variable(dashboard: Dashboard) -> None:
    dash = dashboard[1]
    for panel in all_panels(dash):
        assert panel.get("title", "").strip(), f"panel {panel['id']} has no title"
        if panel["type"] in NO_DATASOURCE:
            continue
        assert panel.get("description", "").strip(), f"{panel['title']!r}: no description"
        assert panel.get("datasource") == DS, panel["title"]
        assert panel["targets"], f"{panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target.get("datasource") == DS, (panel["title"], target["refId"])
    # no hard-coded datasource anywhere (annotations, variables, nested options)
    assert all(ref == DS for ref in _datasource_refs(dash))


def check_template_variables(dashboard: Dashboard) -> None:
    vars_ = variables(dashboard[1])
    assert {"datasource", "job", "instance", "owner", "environment", "source"} <= set(vars_)
    assert variable_query(vars_["job"]) == "label_values(certscope_build_info, job)"
    assert "certscope_build_info" in variable_query(vars_["instance"])
    for name in ("job", "instance", "owner", "environment", "source"):
        var = vars_[name]
        assert var["type"] == "query" and var["datasource"] == DS
        assert var["includeAll"] and var["multi"] and var["allValue"] == ".*", name
        assert LABEL_VALUES_RE.match(variable_query(var)), name


def _used_variables(text: str) -> set[str]:
    names = {m.group(1) or m.group(2) for m in VAR_RE.finditer(text)}
    return {n for n in names if not n.isdigit()}  # $1: a group reference in label_replace


def check_variables_used_are_defined(dashboard: Dashboard) -> None:
    dash = dashboard[1]
    defined = set(variables(dash)) | set(BUILTINS)
    texts = [dash["title"]]
    texts += [variable_query(v) for v in dash["templating"]["list"] if v["type"] == "query"]
    for panel in all_panels(dash):
        texts.append(panel["title"])
        texts += [t["expr"] for t in panel.get("targets", [])]
    undefined = {v for t in texts for v in _used_variables(t)} - defined
    assert not undefined


def check_metrics_are_in_the_contract(dashboard: Dashboard) -> None:
    """Only docs/metrics.md names, recording rules, `up` and `ALERTS`."""
    dash = dashboard[1]
    allowed = documented_metrics() | recorded_series()
    texts = [variable_query(v) for v in dash["templating"]["list"] if v["type"] == "query"]
    texts += [t["expr"] for _, t in queries(dash)]
    used = {m for t in texts for m in METRIC_RE.findall(t)}
    assert used and used - allowed == set()
    selectors = {m.group(1) for t in texts for m in SELECTOR_RE.finditer(t)}
    assert selectors - allowed - {"up", "ALERTS"} == set()


def check_queries_are_filtered_and_use_rate_interval(dashboard: Dashboard) -> None:
    for panel, target in queries(dashboard[1]):
        expr, where = target["expr"], (panel["title"], target["refId"])
        # raw exporter series always honour the job and instance selection
        for m in SELECTOR_RE.finditer(expr):
            if m.group(1).startswith("certscope_") or m.group(1) == "up":
                assert 'job=~"$job"' in m.group(2), where
                assert 'instance=~"$instance"' in m.group(2), where
        # rate()/irate() over $__rate_interval; increase() also over the whole $__range
        for m in RANGE_FN_RE.finditer(expr):
            window = re.search(r"\[([^\]]*)\]", expr[m.end() :])
            assert window is not None, where
            ok = {"$__rate_interval"} | ({"$__range"} if m.group(1) == "increase" else set())
            assert window.group(1) in ok, where
        if target.get("format") == "table":
            assert target.get("instant") is True, where


def api_get(prom: Prometheus, path: str, params: dict[str, str]) -> Any:
    url = f"{prom.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            status, body = r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, json.load(exc)
    assert status == 200 and body.get("status") == "success", (params, body)
    return body["data"]


def instant(prom: Prometheus, expr: str) -> list[dict[str, Any]]:
    return list(api_get(prom, "query", {"query": substitute(expr)})["result"])


def table_fields(prom: Prometheus, panel: dict[str, Any]) -> list[str]:
    """The column names Grafana gives a table panel after its transformations.

    Prometheus table queries become one frame per query: ``Time``, one column per label and
    ``Value`` (``Value #<refId>`` when the panel has several queries).
    """
    targets = panel["targets"]
    frames = []
    rows: list[dict[str, str]] = []
    for target in targets:
        result = instant(prom, target["expr"])
        labels = sorted({k for r in result for k in r["metric"]} - {"__name__"})
        value = "Value" if len(targets) == 1 else f"Value #{target['refId']}"
        frames.append(["Time", *labels, value])
        rows += [{**r["metric"], value: r["value"][1]} for r in result]
    fields = frames[0]
    for step in panel["transformations"]:
        opts = step["options"]
        if step["id"] == "merge":
            fields = list(dict.fromkeys(f for frame in frames for f in frame))
        elif step["id"] == "groupingToMatrix":
            assert {opts["rowField"], opts["columnField"], opts["valueField"]} <= set(fields)
            columns = sorted({r[opts["columnField"]] for r in rows})
            fields = [f"{opts['rowField']}\\{opts['columnField']}", *columns]
        elif step["id"] == "organize":
            named = set(opts["indexByName"]) | set(opts["renameByName"])
            missing = named - set(fields) - set(OPTIONAL_COLUMNS)
            assert not missing, f"{panel['title']!r}: organize names unknown columns {missing}"
            fields = [
                opts["renameByName"].get(f, f) for f in fields if not opts["excludeByName"].get(f)
            ]
        else:
            raise AssertionError(f"{panel['title']!r}: unexpected transformation {step['id']}")
    return fields


# Every check a dashboard's JSON model must pass, run by each module that tests a dashboard.
MODEL_CHECKS: tuple[Callable[[Dashboard], None], ...] = (
    check_panel_ids_unique,
    check_grid_has_no_overlaps,
    check_datasources_are_the_variable,
    check_template_variables,
    check_variables_used_are_defined,
    check_metrics_are_in_the_contract,
    check_queries_are_filtered_and_use_rate_interval,
)
