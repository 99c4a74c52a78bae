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

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from helpers.exporter import Exporter
from helpers.grafana import (
    BUILTINS,
    LABEL_VALUES_RE,
    MODEL_CHECKS,
    RANGE_PANELS,
    ROOT,
    RULES,
    Dashboard,
    all_panels,
    api_get,
    instant,
    load,
    queries,
    substitute,
    table_fields,
    variable_query,
    variables,
)
from helpers.pki import TestPKI
from helpers.promserver import Prometheus, free_port
from helpers.servers import OpenSSLServer, tls_server

UIDS = {
    "certscope-inventory.json": "certscope-inventory",
    "certscope-posture.json": "certscope-posture",
    "certscope-soc2.json": "certscope-soc2",
}
# (dashboard uid, panel title, refId) -> why an empty result is correct in the scenario.
# Every other query must return data. Empty on purpose: the scenario gives every panel data
# (insecure suites, firing alerts, a renewal, a lapsed exception ...), and count-style
# panels use `or vector(0)` so that "none" is an explicit 0. Add an entry only for a query
# that cannot have data in any realistic scenario, with the reason.
MAY_BE_EMPTY: dict[tuple[str, str, str], str] = {}


ALL_TARGETS = [(name, panel, target) for name in UIDS for panel, target in queries(load(name))]


def _target_id(item: tuple[str, dict[str, Any], dict[str, Any]]) -> str:
    name, panel, target = item
    return f"{name.removesuffix('.json')}:{panel['title']}:{target['refId']}"


# --- the JSON model ------------------------------------------------------------------------


@pytest.fixture(params=sorted(UIDS), ids=lambda n: n.removesuffix(".json"))
def dashboard(request: pytest.FixtureRequest) -> Dashboard:
    return request.param, load(request.param)


@pytest.mark.parametrize("check", MODEL_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_model(dashboard: Dashboard, check: Callable[[Dashboard], None]) -> None:
    check(dashboard)


def test_model_header(dashboard: Dashboard) -> None:
    name, dash = dashboard
    assert dash["uid"] == UIDS[name]
    assert dash["schemaVersion"] >= 38
    assert dash["title"].strip() and dash["description"].strip()
    assert dash.get("id") is None  # importable into any Grafana
    assert "certscope" in dash["tags"]
    ds = variables(dash)["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"


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
    response = builder.sign(issuer.key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)


def _store(tmp: Path, pki: TestPKI) -> tuple[Path, Path]:
    """The files source's directory, and the certificate that is renewed while Prometheus
    watches."""
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

    return store, renewable


def _config(pki: TestPKI, addresses: dict[str, str], legacy: str, store: Path) -> str:
    """Every kind of target the panels show, the store, and one live and one lapsed exception."""

    def target(name: str, address: str, sni: str, labels: str, extra: str = "") -> str:
        return f"  - {{address: {address}, name: {name}, sni: {sni}, labels: {{{labels}}}{extra}}}"

    no_enum = ", enumerate: false"
    return "\n".join(
        [
            f"defaults: {{interval: 1m, enumerate_interval: 1h, ca_file: {pki.ca_file}}}",
            "targets:",
            target(
                "web",
                addresses["web"],
                "web.test",
                "owner: team-web, environment: prod, renewal: acme",
            ),
            target(
                "payments-api",
                addresses["pay"],
                "payments.test",
                "owner: payments, environment: prod, renewal: manual",
            ),
            target("legacy", legacy, "legacy.test", "owner: payments, environment: prod"),
            target(
                "expired",
                addresses["exp"],
                "expired.test",
                "owner: payments, environment: staging",
                no_enum,
            ),
            target(
                "mismatch",
                addresses["mis"],
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
        store, renewable = _store(tmp, pki)
        addresses = {name: srv.address for name, srv in servers.items()}
        config = _config(pki, addresses, old.address, store)
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
        series = api_get(prom, "query_range", params)["result"]
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
            series = api_get(prom, "series", {"match[]": selector})
            values = {s[label] for s in series if isinstance(s, dict) and s.get(label)}
            assert values, (name, var["name"])


def test_table_columns_exist(prom: Prometheus) -> None:
    """Transformations, sorting and per-column overrides name columns the queries produce."""
    for name in UIDS:
        for panel in all_panels(load(name)):
            if panel["type"] != "table":
                continue
            fields = set(table_fields(prom, panel))
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
