"""The cloud dashboard (grafana/dashboards/certscope-cloud.json): the same model checks as the
other dashboards (tests/helpers/grafana.py), and every panel query run against a real
Prometheus that scraped a real certscope reading a real AWS API emulator (moto_server) seeded
with the scenario of tests/test_aws_source.py. A KMS key rotates while Prometheus watches, so
the rotations panel has something to show.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from helpers import grafana as dashboards
from helpers.aws_scenario import key_id, seed
from helpers.exporter import Exporter
from helpers.motoserver import MotoServer, aws_env
from helpers.pki import TestPKI
from helpers.promserver import Prometheus

NAME = "certscope-cloud.json"
UID = "certscope-cloud"
DASH = dashboards.load(NAME)
TARGETS = [(panel, target) for panel, target in dashboards.queries(DASH)]


def test_model() -> None:
    assert DASH["uid"] == UID and DASH["schemaVersion"] >= 38
    assert DASH["title"].strip() and DASH["description"].strip()
    assert DASH.get("id") is None and "certscope" in DASH["tags"]
    pair = (NAME, DASH)
    for check in dashboards.MODEL_CHECKS:
        check(pair)


def test_readme_lists_the_dashboard() -> None:
    readme = (dashboards.ROOT / "grafana" / "README.md").read_text()
    assert NAME in readme and DASH["title"] in readme


@pytest.fixture(scope="module")
def prom(pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("cloud-dashboard")
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in aws_env().items() if k.startswith("AWS_")})
    try:
        with ExitStack() as stack:
            moto = MotoServer.start(tmp / "moto")
            stack.callback(moto.stop)
            ids = seed(moto, pki)
            config = tmp / "certscope.yml"
            config.write_text(
                "sources:\n"
                "  - name: aws-prod\n"
                "    kind: aws\n"
                "    regions: [us-east-1, eu-west-1]\n"
                f"    endpoint_url: {moto.url}\n"
                "    interval: 2s\n"
                "    intervals: {kms: 2s, s3: 2s}\n"
                "    labels: {environment: production, owner: platform}\n"
            )
            exporter = stack.enter_context(Exporter(config, tmp / "exporter.log"))
            prom = stack.enter_context(
                Prometheus(
                    tmp,
                    [f"127.0.0.1:{exporter.port}"],
                    [dashboards.ROOT / "rules" / "certscope-aws.yml"],
                )
            )
            prom.wait_for(
                "certscope_kms_key_last_rotation_timestamp_seconds", lambda r: len(r) == 1
            )
            time.sleep(2)
            moto.client("kms").rotate_key_on_demand(KeyId=key_id(ids["rotating"]))
            prom.wait_for(
                "changes(certscope_kms_key_last_rotation_timestamp_seconds[1h]) > 0",
                lambda r: len(r) == 1,
            )
            prom.wait_for("count_over_time(up[1h])", lambda r: float(r[0]["value"][1]) >= 10)
            yield prom
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("item", TARGETS, ids=[f"{p['title']}:{t['refId']}" for p, t in TARGETS])
def test_panel_query_returns_data(
    prom: Prometheus, item: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    panel, target = item
    result = dashboards.instant(prom, target["expr"])
    assert result, f"{panel['title']}: no data for {dashboards.substitute(target['expr'])}"
    if panel["type"] in dashboards.RANGE_PANELS:
        now = time.time()
        params = {
            "query": dashboards.substitute(target["expr"]),
            "start": str(now - 30),
            "end": str(now),
            "step": "5",
        }
        assert dashboards.api_get(prom, "query_range", params)["result"], panel["title"]


def test_variables_have_values(prom: Prometheus) -> None:
    for var in DASH["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = dashboards.LABEL_VALUES_RE.match(dashboards.variable_query(var))
        assert m is not None
        selector, label = dashboards.substitute(m.group(1)), m.group(2)
        series = dashboards.api_get(prom, "series", {"match[]": selector})
        assert {s[label] for s in series if s.get(label)}, var["name"]


def test_table_columns_exist(prom: Prometheus) -> None:
    for panel in dashboards.all_panels(DASH):
        if panel["type"] != "table":
            continue
        fields = set(dashboards.table_fields(prom, panel))
        named = {
            o["matcher"]["options"]
            for o in panel["fieldConfig"]["overrides"]
            if o["matcher"]["id"] == "byName"
        }
        assert named <= fields, (panel["title"], named - fields)


def test_counts_match_the_scenario(prom: Prometheus) -> None:
    def value(title: str) -> float:
        (panel,) = [p for p in dashboards.all_panels(DASH) if p["title"] == title]
        (sample,) = dashboards.instant(prom, panel["targets"][0]["expr"])
        return float(sample["value"][1])

    assert value("Customer-managed KMS keys") == 5
    assert value("KMS keys without automatic rotation") == 1  # static (doomed: unknown)
    assert value("KMS keys pending deletion") == 1
    # plain bucket, db-clear, the clear volume and its snapshot
    assert value("Unencrypted storage resources") == 4
    assert value("Secrets without rotation") == 2  # db-password, tls-bundle
    assert value("Secrets overdue for rotation") == 0
    rows = json.dumps(
        dashboards.instant(
            prom,
            next(
                p for p in dashboards.all_panels(DASH) if p["title"].startswith("KMS key rotations")
            )["targets"][0]["expr"],
        )
    )
    assert "aws_kms" in rows
