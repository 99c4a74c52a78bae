"""Grafana dashboards: the JSON models are well formed and keep to the metric contract, and
every panel query runs against a real Prometheus (loaded with rules/) that scraped a real
certscope probing real TLS servers and a certificate store.

The scenario (one module-scoped fixture, started once) is built so that every panel has
something to show: certificates in every expiry window, an expired one, a host name
mismatch, an unreachable endpoint, an OpenSSL server that accepts TLS 1.0 with insecure and
weak suites, a store with an over-long certificate, a renewal that was stored but not
deployed, a certificate renewed while Prometheus watched, one live and one lapsed policy
exception. Queries that may legitimately return nothing are listed in ``MAY_BE_EMPTY``.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from exporter import Exporter
from pki import TestPKI
from promserver import Prometheus, free_port
from servers import OpenSSLServer, tls_server

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
RULES = [ROOT / "rules" / "certscope-recording.yml", ROOT / "rules" / "certscope-alerts.yml"]
UIDS = {
    "certscope-inventory.json": "certscope-inventory",
    "certscope-posture.json": "certscope-posture",
    "certscope-soc2.json": "certscope-soc2",
}
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

# Table columns that organize may name although the scenario does not produce them.
OPTIONAL_COLUMNS = {
    "alert": "certscope_probe_error_info's TLS alert name, empty (so dropped by Prometheus)"
    " unless reason is tls_alert; the scenario's unreachable endpoint is connect_refused",
}
# (dashboard uid, panel title, refId) -> why an empty result is correct in the scenario.
# Every other query must return data. Empty on purpose: the scenario gives every panel data
# (insecure suites, firing alerts, a renewal, a lapsed exception ...), and count-style
# panels use `or vector(0)` so that "none" is an explicit 0. Add an entry only for a query
# that cannot have data in any realistic scenario, with the reason.
MAY_BE_EMPTY: dict[tuple[str, str, str], str] = {}


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


ALL_TARGETS = [(name, panel, target) for name in UIDS for panel, target in queries(load(name))]


def _target_id(item: tuple[str, dict[str, Any], dict[str, Any]]) -> str:
    name, panel, target = item
    return f"{name.removesuffix('.json')}:{panel['title']}:{target['refId']}"


# --- the JSON model ------------------------------------------------------------------------


@pytest.fixture(params=sorted(UIDS), ids=lambda n: n.removesuffix(".json"))
def dashboard(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, load(request.param)


def test_model_header(dashboard: tuple[str, dict[str, Any]]) -> None:
    name, dash = dashboard
    assert dash["uid"] == UIDS[name]
    assert dash["schemaVersion"] >= 38
    assert dash["title"].strip() and dash["description"].strip()
    assert dash.get("id") is None  # importable into any Grafana
    assert "certscope" in dash["tags"]
    ds = variables(dash)["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"


def test_panel_ids_unique(dashboard: tuple[str, dict[str, Any]]) -> None:
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


def test_grid_has_no_overlaps(dashboard: tuple[str, dict[str, Any]]) -> None:
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


def test_datasources_are_the_variable(dashboard: tuple[str, dict[str, Any]]) -> None:
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


def test_template_variables(dashboard: tuple[str, dict[str, Any]]) -> None:
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


def test_variables_used_are_defined(dashboard: tuple[str, dict[str, Any]]) -> None:
    dash = dashboard[1]
    defined = set(variables(dash)) | set(BUILTINS)
    texts = [dash["title"]]
    texts += [variable_query(v) for v in dash["templating"]["list"] if v["type"] == "query"]
    for panel in all_panels(dash):
        texts.append(panel["title"])
        texts += [t["expr"] for t in panel.get("targets", [])]
    undefined = {v for t in texts for v in _used_variables(t)} - defined
    assert not undefined


def test_metrics_are_in_the_contract(dashboard: tuple[str, dict[str, Any]]) -> None:
    """Only docs/metrics.md names, recording rules, `up` and `ALERTS`."""
    dash = dashboard[1]
    allowed = documented_metrics() | recorded_series()
    texts = [variable_query(v) for v in dash["templating"]["list"] if v["type"] == "query"]
    texts += [t["expr"] for _, t in queries(dash)]
    used = {m for t in texts for m in METRIC_RE.findall(t)}
    assert used and used - allowed == set()
    selectors = {m.group(1) for t in texts for m in SELECTOR_RE.finditer(t)}
    assert selectors - allowed - {"up", "ALERTS"} == set()


def test_queries_are_filtered_and_use_rate_interval(
    dashboard: tuple[str, dict[str, Any]],
) -> None:
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


def test_readme_lists_every_dashboard() -> None:
    readme = (ROOT / "grafana" / "README.md").read_text()
    for name, uid in UIDS.items():
        assert name in readme and load(name)["title"] in readme, uid


# --- the live scenario -----------------------------------------------------------------------


def _ocsp_response(pki: TestPKI, cert: x509.Certificate, valid: timedelta) -> bytes:
    """A good OCSP response for ``cert`` signed by its issuer, as a server would staple it."""
    now = datetime.now(UTC)
    issuer = pki.intermediate
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert,
            issuer=issuer.certificate,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=now - timedelta(minutes=1),
            next_update=now + valid,
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer.certificate)
    )
    response = builder.sign(issuer.key, hashes.SHA256())  # type: ignore[arg-type]
    return response.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def prom(pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("dashboards")
    with ExitStack() as stack:
        web = pki.leaf("web.test", days_left=80)
        pay = pki.leaf("payments.test", days_left=5)
        expired = pki.leaf("expired.test", days_left=-3)
        other = pki.leaf("other.test", days_left=40)
        legacy = pki.leaf("legacy.test", days_left=20)
        servers = {
            name: stack.enter_context(tls_server(leaf.chain, leaf.key))
            for name, leaf in [("web", web), ("pay", pay), ("exp", expired), ("mis", other)]
        }
        # TLS 1.0 only, with anonymous/NULL (insecure) and CBC-SHA (weak) suites; it staples
        # an OCSP response (good, valid for 12 hours)
        staple = tmp / "legacy-staple.der"
        staple.write_bytes(_ocsp_response(pki, legacy.certificate, timedelta(hours=12)))
        old = stack.enter_context(
            OpenSSLServer(
                legacy.cert,
                legacy.key,
                "-tls1",
                "-cipher",
                "ALL:eNULL:@SECLEVEL=0",
                "-status_file",
                str(staple),
                chain=pki.intermediate.path,
            )
        )
        store = tmp / "store"
        store.mkdir()
        # over-long lifetime (cert_lifetime_too_long, CC6.1)
        internal = pki.leaf("internal.test", days_left=400)
        (store / "internal.pem").write_bytes(internal.pem)
        # its private key beside it, unencrypted (private keys panels, private_key_unencrypted)
        (store / "internal.key").write_bytes(internal.key_pem)
        # a renewal of payments.test that was stored but never deployed (CC7.1)
        (store / "payments.pem").write_bytes(pki.leaf("payments.test", days_left=90).pem)
        renewable = store / "renew.pem"
        renewable.write_bytes(pki.leaf("renew.test", days_left=100).pem)

        def target(name: str, address: str, sni: str, labels: str, extra: str = "") -> str:
            return (
                f"  - {{address: {address}, name: {name}, sni: {sni}, labels: {{{labels}}}{extra}}}"
            )

        no_enum = ", enumerate: false"
        config = "\n".join(
            [
                f"defaults: {{interval: 1m, enumerate_interval: 1h, ca_file: {pki.ca_file}}}",
                "targets:",
                target(
                    "web",
                    servers["web"].address,
                    "web.test",
                    "owner: team-web, environment: prod, renewal: acme",
                ),
                target(
                    "payments-api",
                    servers["pay"].address,
                    "payments.test",
                    "owner: payments, environment: prod, renewal: manual",
                ),
                target("legacy", old.address, "legacy.test", "owner: payments, environment: prod"),
                target(
                    "expired",
                    servers["exp"].address,
                    "expired.test",
                    "owner: payments, environment: staging",
                    no_enum,
                ),
                target(
                    "mismatch",
                    servers["mis"].address,
                    "mismatch.test",
                    "owner: team-web, environment: staging",
                    no_enum,
                ),
                target(
                    "down",
                    f"127.0.0.1:{free_port()}",
                    "down.test",
                    "owner: team-web, environment: prod",
                    no_enum + ", timeout: 2s",
                ),
                "sources:",
                f"  - {{name: internal-store, kind: files, interval: 1s, paths: ['{store}/*.pem',"
                # the second glob matches nothing: an item error
                f" '{store}/retired/*.pem'],"
                " labels: {owner: platform, environment: prod, renewal: manual}}",
                "policy:",
                "  exceptions:",
                "    - {target: legacy, rule: cipher_weak, owner: payments-team,"
                " reason: vendor appliance, expires: 2099-12-31}",
                "    - {target: legacy, rule: protocol_deprecated, owner: payments-team,"
                " reason: lapsed, expires: 2020-01-31}",
            ]
        )
        cfg = tmp / "certscope.yml"
        cfg.write_text(config + "\n")
        exporter = stack.enter_context(Exporter(cfg, tmp / "exporter.log"))
        port = exporter.port
        prom = stack.enter_context(Prometheus(tmp, [f"127.0.0.1:{port}"], RULES))
        prom.wait_for("certscope_tls_grade_info", lambda r: len(r) == 3)
        prom.wait_for('certscope_cert_info{subject_cn="renew.test"}', lambda r: len(r) == 1)
        renewable.write_bytes(pki.leaf("renew.test", days_left=200).pem)
        prom.wait_for(
            'changes(certscope_cert_not_after_timestamp_seconds{subject_cn="renew.test"}[1h]) > 0',
            lambda r: len(r) == 1,
        )
        prom.wait_for("certscope:policy_violations:count", lambda r: len(r) > 0)
        prom.wait_for('ALERTS{alertstate="firing"}', lambda r: len(r) > 0)
        # enough history for `offset $__interval` (15s) and rate() windows
        prom.wait_for("count_over_time(up[1h])", lambda r: float(r[0]["value"][1]) >= 18)
        yield prom


def _get(prom: Prometheus, path: str, params: dict[str, str]) -> Any:
    url = f"{prom.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            status, body = r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, json.load(exc)
    assert status == 200 and body.get("status") == "success", (params, body)
    return body["data"]


def instant(prom: Prometheus, expr: str) -> list[dict[str, Any]]:
    return list(_get(prom, "query", {"query": substitute(expr)})["result"])


@pytest.mark.parametrize("item", ALL_TARGETS, ids=[_target_id(t) for t in ALL_TARGETS])
def test_panel_query_runs_and_returns_data(
    prom: Prometheus, item: tuple[str, dict[str, Any], dict[str, Any]]
) -> None:
    name, panel, target = item
    key = (UIDS[name], panel["title"], target["refId"])
    result = instant(prom, target["expr"])
    if key not in MAY_BE_EMPTY:
        assert result, f"{key}: no data for {substitute(target['expr'])}"
    if panel["type"] in RANGE_PANELS:
        now = time.time()
        params = {
            "query": substitute(target["expr"]),
            "start": str(now - 60),
            "end": str(now),
            "step": BUILTINS["__interval"],
        }
        series = _get(prom, "query_range", params)["result"]
        assert series or key in MAY_BE_EMPTY, f"{key}: no data over the last minute"


def test_may_be_empty_names_real_queries() -> None:
    keys = {(UIDS[n], p["title"], t["refId"]) for n, p, t in ALL_TARGETS}
    assert set(MAY_BE_EMPTY) <= keys


def test_template_variables_have_values(prom: Prometheus) -> None:
    for name in UIDS:
        for var in load(name)["templating"]["list"]:
            if var["type"] != "query":
                continue
            m = LABEL_VALUES_RE.match(variable_query(var))
            assert m is not None
            selector, label = substitute(m.group(1)), m.group(2)
            series = _get(prom, "series", {"match[]": selector})
            values = {s[label] for s in series if isinstance(s, dict) and s.get(label)}
            assert values, (name, var["name"])


def _table_fields(prom: Prometheus, panel: dict[str, Any]) -> list[str]:
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


def test_table_columns_exist(prom: Prometheus) -> None:
    """Transformations, sorting and per-column overrides name columns the queries produce."""
    for name in UIDS:
        for panel in all_panels(load(name)):
            if panel["type"] != "table":
                continue
            fields = set(_table_fields(prom, panel))
            named = {s["displayName"] for s in panel["options"].get("sortBy", [])}
            named |= {
                o["matcher"]["options"]
                for o in panel["fieldConfig"]["overrides"]
                if o["matcher"]["id"] == "byName"
            }
            assert named <= fields, (name, panel["title"], named - fields)


def panel_by_title(uid_name: str, title: str) -> dict[str, Any]:
    (panel,) = [p for p in all_panels(load(uid_name)) if p["title"] == title]
    return panel


def value_of(prom: Prometheus, uid_name: str, title: str, ref: str = "A") -> float:
    (target,) = [t for t in panel_by_title(uid_name, title)["targets"] if t["refId"] == ref]
    (sample,) = instant(prom, target["expr"])
    return float(sample["value"][1])


def rows_of(prom: Prometheus, uid_name: str, title: str, ref: str = "A") -> list[dict[str, str]]:
    (target,) = [t for t in panel_by_title(uid_name, title)["targets"] if t["refId"] == ref]
    return [{**r["metric"], "value": r["value"][1]} for r in instant(prom, target["expr"])]


def test_inventory_counts_match_the_scenario(prom: Prometheus) -> None:
    inv = "certscope-inventory.json"
    # 5 endpoints x (leaf + intermediate) + 3 files
    assert value_of(prom, inv, "Certificates monitored") == 13
    assert value_of(prom, inv, "Expired") == 1
    assert value_of(prom, inv, "Expiring within 7 days") == 1  # payments.test, 5 days
    assert value_of(prom, inv, "Expiring within 14 days") == 1
    assert value_of(prom, inv, "Expiring within 30 days") == 2  # + legacy.test, 20 days
    assert value_of(prom, inv, "Expiring within 60 days") == 3  # + other.test, 40 days
    table = rows_of(prom, inv, "All certificates: identity, owner, renewal method and expiry")
    assert len(table) == 13
    web = next(r for r in table if r["subject_cn"] == "web.test")
    assert web["owner"] == "team-web" and web["renewal"] == "acme"
    assert web["sans"] == "web.test" and web["issuer_cn"].endswith("Intermediate CA")
    assert 79 < float(web["value"]) <= 80
    assert value_of(prom, inv, "Renewals in the selected period") >= 1
    renewed = rows_of(prom, inv, "Certificates renewed in the selected period")
    assert {r["subject_cn"] for r in renewed} == {"renew.test"}
    assert value_of(prom, inv, "Private keys found") == 1
    assert value_of(prom, inv, "Stored unencrypted") == 1
    assert value_of(prom, inv, "Keys without a certificate") == 0
    assert value_of(prom, inv, "Unreadable items") == 1
    (key,) = rows_of(prom, inv, "Private keys: type, size, encryption and certificate")
    assert key["location"].endswith("/store/internal.key")
    assert key["certificate_location"].endswith("/store/internal.pem")
    assert (key["key_algorithm"], key["encrypted"]) == ("EC", "false")
    (error,) = rows_of(prom, inv, "Items that could not be read: location and reason")
    assert (error["location"].endswith("/retired/*.pem"), error["reason"]) == (True, "no_match")


def test_posture_panels_match_the_scenario(prom: Prometheus) -> None:
    pos = "certscope-posture.json"
    assert value_of(prom, pos, "Endpoints scanned") == 3
    assert value_of(prom, pos, "Accepting SSL / TLS 1.0 / TLS 1.1") == 1
    assert value_of(prom, pos, "Accepting insecure suites") == 1
    assert value_of(prom, pos, "Endpoints not reachable") == 1
    matrix = rows_of(prom, pos, "Protocol versions accepted per endpoint")
    legacy = {r["protocol"]: r["value"] for r in matrix if r["endpoint"].startswith("legacy @")}
    assert legacy["TLSv1.0"] == "1" and legacy["TLSv1.2"] == "0"
    failures = rows_of(prom, pos, "Certificate verification failures")
    assert {(r["source"], r["reason"]) for r in failures} == {
        ("expired", "expired"),
        ("mismatch", "hostname_mismatch"),
    }
    (down,) = rows_of(prom, pos, "Probe failures now")
    assert (down["source"], down["reason"]) == ("down", "connect_refused")
    assert value_of(prom, pos, "Revoked certificates served") == 0
    revocation = rows_of(prom, pos, "Revocation status per endpoint")
    # The test PKI's responder and CRL hosts do not resolve: an honest "error", never "good".
    assert {(r["source"], r["method"], r["status"]) for r in revocation} >= {
        ("web", "ocsp", "error"),
        ("web", "crl", "error"),
        ("legacy", "ocsp", "good"),  # the staple
    }
    stapled = {r["source"]: r["value"] for r in rows_of(prom, pos, "OCSP stapling")}
    assert stapled["legacy"] == "1" and stapled["web"] == "0"
    dhe = rows_of(prom, pos, "DHE groups per endpoint")
    assert dhe and {r["source"] for r in dhe} == {"legacy"}  # anonymous DH at TLS 1.0
    assert all(int(r["value"]) >= 1024 and r["group"] for r in dhe)
    (left,) = rows_of(prom, pos, "OCSP stapling", "B")
    assert 11 * 3600 < float(left["value"]) <= 12 * 3600


def test_soc2_status_matches_the_scenario(prom: Prometheus) -> None:
    soc = "certscope-soc2.json"
    for control in ("CC6.1", "CC6.6", "CC6.7", "CC7.1"):
        assert value_of(prom, soc, f"{control} status now") >= 1, control  # FAIL
    assert value_of(prom, soc, "CC7.2 status now") == 0  # PASS: monitoring alerts quiet
    assert value_of(prom, soc, "CC6.7 findings waived by exception") == 1
    assert value_of(prom, soc, "Exceptions in force") == 1
    assert value_of(prom, soc, "Exceptions lapsed") == 1
    timeline = "Control status over the evidence period"
    assert value_of(prom, soc, timeline, "A") == 1  # CC6.1 failing
    assert value_of(prom, soc, timeline, "E") == 0  # CC7.2 passing
    exceptions = rows_of(prom, soc, "Policy exceptions: scope, owner and end date")
    assert {r["exception_owner"] for r in exceptions} == {"payments-team"}
    deployed = rows_of(prom, soc, "CC7.1 renewed certificates deployed")
    assert [(r["source"], r["value"]) for r in deployed] == [("payments-api", "0")]
    cc71 = {r["rule"] for r in rows_of(prom, soc, "CC7.1 active findings")}
    assert cc71 == {"exception_expired", "served_not_stored"}
