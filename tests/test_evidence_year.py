"""A 12-month evidence report against a real Prometheus serving a year of synthetic blocks.

The blocks (tests/helpers/synthetic_year.py, built once with ``promtool tsdb create-blocks-from
openmetrics`` and cached) hold a year at a 15 s scrape interval with exporter outages of 2
minutes, 20 minutes and 2 hours, Prometheus outages of 1 hour and 10 minutes, renewals with
and without a new key, a finding and two alert episodes. Every gap, episode and verdict is
asserted exactly, at the automatic 5-minute step and at 1 hour, and every SOC 2 dashboard
panel is evaluated over ranges before the data, during an exporter outage and with no data.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from certscope.evidence import query, refine, verdict
from certscope.evidence.model import Grid, iso
from helpers import synthetic_year as year
from helpers.promserver import Prometheus, free_port

ROOT = Path(__file__).resolve().parent.parent
PERIOD_SECONDS = year.END - year.START


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    blocks = year.build()
    tmp = tmp_path_factory.mktemp("year")
    shutil.copytree(blocks, tmp / "tsdb", ignore=shutil.ignore_patterns("done"))
    server = Prometheus(
        tmp,
        [f"127.0.0.1:{free_port()}"],  # nothing listens: the job exists, as in production
        interval="15s",
        extra_args=["--storage.tsdb.retention.time=30y"],
    )
    config = yaml.safe_load(server.config_path.read_text())
    config["global"]["evaluation_interval"] = "1m"
    server.config_path.write_text(yaml.safe_dump(config))
    with server:
        yield server


def run(prom: Prometheus, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "certscope.evidence.cli", "--prometheus.url", prom.url),
            *("--out", str(out), *args),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module", params=["auto", "1h"])
def report(
    request: pytest.FixtureRequest, prom: Prometheus, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("year-report") / "out"
    step = [] if request.param == "auto" else ["--step", request.param]
    proc = run(prom, out, "--from", "2025-01-01", "--to", "2025-12-31", *step)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads((out / "summary.json").read_text())
    data["_out"] = out
    return data


def test_every_gap_exactly_whatever_the_step(report: dict[str, Any]) -> None:
    assert report["parameters"]["step_seconds"] in (300, 3600)
    assert report["parameters"]["smallest_detectable_gap_seconds"] == 30
    job = [g for g in report["monitoring_gaps"] if g["scope"] == "exporter"]
    assert [(g["kind"], g["start"], g["end"]) for g in job] == [
        (kind, iso(a), iso(b)) for kind, a, b in year.expected_gaps()
    ]
    assert [g["seconds"] for g in job] == [120, 1200, 7200, 3600, 600]
    (coverage,) = [c for c in report["coverage"]["exporter"] if c["instance"] == "*"]
    assert coverage["unmonitored_seconds"] == 12720
    assert coverage["coverage_ratio"] == round(1 - 12720 / PERIOD_SECONDS, 6)
    # the endpoint was unmonitored during every exporter gap too
    web = [g for g in report["monitoring_gaps"] if g.get("source") == "web"]
    assert len(web) == 5 and {g["kind"] for g in web} == {"not_monitored"}


def test_verdicts(report: dict[str, Any]) -> None:
    controls = report["controls"]
    assert {c: v["result"] for c, v in controls.items()} == {
        "CC6.1": "pass",
        "CC6.6": "pass",
        "CC6.7": "fail",  # protocol_deprecated for two days in May
        "CC7.1": "pass",
        "CC7.2": "fail",  # the exporter was down (up == 0) at evaluated steps
    }
    coverage = 1 - 12720 / PERIOD_SECONDS
    for c in ("CC6.1", "CC6.6", "CC7.1"):
        assert 0.999 < controls[c]["observed_ratio"] <= round(coverage, 6)


def test_renewals_and_key_rotation(report: dict[str, Any]) -> None:
    renewals = [(r["old_serial"], r["new_serial"], r["key_changed"]) for r in report["renewals"]]
    assert renewals == [("01", "02", "no"), ("02", "03", "yes")]
    step = report["parameters"]["step_seconds"]
    for r, at in zip(
        report["renewals"], (year.RENEWED_SAME_KEY, year.RENEWED_NEW_KEY), strict=True
    ):
        assert 0 <= year.ts(r["at"][:-1]) - at <= step


def test_alert_episodes_span_a_prometheus_outage(report: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO((report["_out"] / "alerts.csv").read_text())))
    assert [(r["alertname"], r["start_state"], r["end_state"], r["gaps_inside"]) for r in rows] == [
        ("CertscopeCertificateExpiring", "fired", "resolved", "0"),
        ("CertscopeCertificateExpiring", "fired", "resolved", "1"),  # not split by the outage
    ]
    step = report["parameters"]["step_seconds"]
    for row, (fired, resolved) in zip(rows, year.EXPIRING, strict=True):
        assert 0 <= year.ts(row["fired_at"][:-1]) - fired <= step
        assert abs(year.ts(row["resolved_at"][:-1]) - resolved) <= step
    assert report["alerts"]["interrupted"] == 0 and report["alerts"]["resolved"] == 2


def test_a_period_before_the_data_is_partial(prom: Prometheus, tmp_path: Path) -> None:
    args = ["--from", "2024-12-01", "--to", "2025-01-31", "--step", "1h", "--no-pdf"]
    proc = run(prom, tmp_path / "a", *args)
    assert proc.returncode == 3, proc.stderr
    first = iso(year.FIRST)
    assert f"the first scrape of the exporter job in the period is at {first}" in proc.stderr
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["retention"]["storage.tsdb.retention.time"] == "30y"
    assert summary["retention"]["period_starts_before_data"] is True
    assert {c["result"] for c in summary["controls"].values()} == {"insufficient_data"}
    assert run(prom, tmp_path / "b", *args, "--allow-partial").returncode == 0


# --- the SOC 2 dashboard: never PASS without data -----------------------------------------------

DASHBOARD = ROOT / "grafana" / "dashboards" / "certscope-soc2.json"
RECORDED = re.compile(r'certscope:soc2_control_failing\{control="(CC[0-9.]+)"\}')
# (range, why nothing there may show PASS)
RANGES = {
    "before the data": ("2024-12-01T00:00:00", "2024-12-31T00:00:00"),
    "exporter outage": ("2025-06-01T10:06:00", "2025-06-01T11:58:00"),
    "Prometheus outage": ("2025-08-01T10:06:00", "2025-08-01T10:58:00"),
}


def _panels() -> Iterator[dict[str, Any]]:
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _shows_pass(panel: dict[str, Any]) -> set[float]:
    """The values the panel maps to PASS (0 for the status panels)."""
    out = set()
    for mapping in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        for value, result in (mapping.get("options") or {}).items():
            if isinstance(result, dict) and result.get("text") == "PASS":
                out.add(float(value))
    return out


def _inline_rules(expr: str) -> str:
    """The panel's query with the recorded verdict replaced by its expression, so that
    data that was never recorded (the blocks hold raw series only) is judged the same way."""
    rules = verdict.expressions(verdict.RULES_JOB)
    return RECORDED.sub(lambda m: f"({rules[m.group(1)]})", expr)


def _substitute(expr: str, seconds: float) -> str:
    values = {"__range": f"{seconds:.0f}s", "__range_s": f"{seconds:.0f}", "__interval": "1m"}
    values["__rate_interval"] = "4m"
    return re.sub(
        r"\$(?:\{(\w+)\}|(\w+))",
        lambda m: values.get(m.group(1) or m.group(2), ".*"),
        expr,
    )


def test_no_panel_shows_pass_without_data(prom: Prometheus) -> None:
    checked = 0
    for panel in _panels():
        passing = _shows_pass(panel)
        if not passing:
            continue
        for target in panel["targets"]:
            for name, (lo, hi) in RANGES.items():
                start, end = year.ts(lo), year.ts(hi)
                expr = _substitute(_inline_rules(target["expr"]), end - start)
                step = str(max(120, (end - start) // 1000))  # under 11,000 points
                data = prom.api(
                    "query_range", query=expr, start=str(start), end=str(end), step=step
                )
                values = {float(v) for s in data["result"] for _, v in s["values"]}
                where = (panel["title"], target["refId"], name)
                if name == "exporter outage" and "CC7.2" in panel["title"] + target["expr"]:
                    assert values == {1.0}, where  # monitoring fails while the exporter is down
                else:
                    assert values.isdisjoint(passing), where
                checked += 1
    assert checked >= 3 * 10  # the timeline's five lanes and the five status panels


def test_availability_counts_time_without_data(prom: Prometheus) -> None:
    """A range half before the data: half of it was not monitored."""
    panels = {p["title"]: p for p in _panels()}
    start, end = year.ts("2024-12-31T00:00:00"), year.ts("2025-01-02T00:00:00")
    for title, expected in (("Exporter availability", 0.5), ("Time not monitored", 86400)):
        expr = _substitute(panels[title]["targets"][0]["expr"], end - start)
        (sample,) = prom.api("query", query=expr, time=str(end))["result"]
        assert float(sample["value"][1]) == pytest.approx(expected, rel=0.002), title


def test_endpoints_positive_evidence(report: dict[str, Any]) -> None:
    """What the endpoint accepted at the end of the year and at its worst within it."""
    out = report["_out"]
    (row,) = list(csv.DictReader(io.StringIO((out / "endpoints.csv").read_text())))
    last = max(t for t in year.scrape_times(year.EVAL, year.OFFSET) if t <= year.END)
    assert row == {
        "source": "web",
        "location": "web.example:443",
        "exposure": "external",
        "environment": "prod",
        "owner": "team-web",
        "protocols_at_end": "TLSv1.2 TLSv1.3",
        "deprecated_protocols_at_end": "none",
        "suites_at_end": "TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (recommended)",
        "grade_at_end": "A",
        "verified_at_end": "true",
        "last_probe": iso(last - 3),
        "last_scan": iso(last // 3600 * 3600),
        "protocols_accepted_in_period": "TLSv1.0 TLSv1.2 TLSv1.3",
        "deprecated_protocols_in_period": "TLSv1.0",
        "insecure_or_weak_suites_in_period": "TLS_RSA_WITH_3DES_EDE_CBC_SHA (insecure)",
        "grades_in_period": "A C",
        "lowest_grade_score_in_period": "60.0",
        "unverified_in_period": "false",
    }
    inventory = list(csv.DictReader(io.StringIO((out / "inventory.csv").read_text())))
    current = next(r for r in inventory if r["serial"] == "03")
    assert current["public_key_sha256"] == "bb" * 32
    assert float(current["days_left_at_period_end"]) == pytest.approx(
        (year.CERTS[2][2] - year.END) / 86400
    )
    assert current["verified"] == "true" and current["renewal_method"] == "not configured"
    assert next(r for r in inventory if r["serial"] == "01")["days_left_at_period_end"] == ""
    html = (out / "report.html").read_text()
    assert ">TLS endpoints</h2>" in html and "TLS_RSA_WITH_3DES_EDE_CBC_SHA (insecure)" in html


@pytest.mark.timeout(600)  # the year at 15 s is fetched twice, plainly and in levels
async def test_levelled_fetch_equals_the_plain_fetch(prom: Prometheus) -> None:
    """Bucket aggregates and drill-downs give the plain range query's runs, exactly, for every
    query of the report, and fetch a fraction of the bytes."""
    grid = Grid(year.START, 300.0, int(PERIOD_SECONDS // 300))
    assert refine.levels(grid) == [4096, 256, 16]
    queries = [
        *query.plan("certscope.*", 300.0, 300.0, 300.0, 900.0),
        *query.coverage_plan("certscope.*", 300.0, year.SCRAPE),
    ]
    async with query.PrometheusClient(prom.url) as levelled:
        ticks: list[tuple[int, int]] = []
        got = await refine.fetch(
            levelled, queries, grid, lambda d, t, _: ticks.append((d, t)), coarse_first=True
        )
    async with query.PrometheusClient(prom.url) as plain:
        want = {q.name: await plain.range(q, grid) for q in queries}
    for q in queries:
        assert got[q.name] == want[q.name], q.name
    assert sum(len(m.series) for m in want.values()) > 10  # the comparison is not empty
    assert levelled.failed == [] and plain.failed == []
    assert ticks[-1] == (4 * len(queries), 4 * len(queries))
    assert any("@count:4096" in r.name for r in levelled.records)
    # least and largest values of the exporter series come from the raw samples, not subqueries
    raw = [r.expr for r in levelled.records if r.name.startswith(("cert_info@min", "alerts@max"))]
    assert raw and not any(":300s]" in e for e in raw)
    assert levelled.bytes_received * 5 < plain.bytes_received
    # a period not starting on a multiple of the step is fetched as is
    assert refine.levels(Grid(year.START + 7, 300.0, grid.count)) == []


async def test_a_failed_coarse_request_is_fetched_finer_not_a_gap(prom: Prometheus) -> None:
    """A proxy (hand-written: a real Prometheus does not fail on request) in front of the real
    one answers 503 to every coarse request of cert_not_after, and to every request of
    exporter_up at the report's step. The first is fetched at the next level and comes out
    exactly as a plain fetch; the second's drill-downs into the outages are failed chunks (a
    query_failed gap), while its constant buckets still count."""
    from urllib.parse import unquote_plus

    from helpers.hostile_prometheus import HostilePrometheus, forward

    grid = Grid(year.START, 300.0, int(PERIOD_SECONDS // 300))
    wanted = ("cert_not_after", "exporter_up")
    queries = [q for q in query.plan("certscope.*", 300.0, 300.0, 300.0, 900.0) if q.name in wanted]

    def fail(path: str, request: bytes) -> bool:
        body = unquote_plus(request.partition(b"\r\n\r\n")[2].decode())
        coarse = not body.endswith("step=300")  # a bucket's step: a coarse request
        return path.endswith("/query_range") and (
            ("certscope_cert_not_after" in body and coarse)
            or ("max_over_time(up{" in body and not coarse)
        )

    with HostilePrometheus(forward(prom.url, fail)) as proxy:
        async with query.PrometheusClient(proxy.url, backoff=0.01, retries=1) as client:
            got = await refine.fetch(client, queries, grid, coarse_first=True)
    async with query.PrometheusClient(prom.url) as plain:
        want = {q.name: await plain.range(q, grid) for q in queries}
    assert want["cert_not_after"].series and got["cert_not_after"] == want["cert_not_after"]
    assert not any(r.name.startswith("cert_not_after@") for r in client.records)
    assert client.failed and {f.name for f in client.failed} == {"exporter_up"}
    # where exporter_up changes (outages longer than its 5-minute window), a drill-down failed
    for _, start, end in (g for g in year.expected_gaps() if g[2] - g[1] > 900):
        assert any(f.start <= end + 600 and f.end >= start for f in client.failed), iso(start)
    (up,) = got["exporter_up"].series.values()
    assert 0 < sum(r.length for r in up) < grid.count  # the constant buckets are kept


def test_raw_bounds_cover_exactly_the_windows_of_a_bucket() -> None:
    """A bucket of m steps ending at t is evaluated at t - (m-1)·S … t, each looking back the
    query's window W: its raw bounds read (t - (m-1)·S - W, t]. A shorter range would miss a
    sample some step selects (and could call a changing bucket constant)."""
    plan = {q.name: q for q in query.plan("certscope.*", 600.0, 120.0, 300.0, 900.0)}
    _, least, most = refine.aggregates(plan["cert_not_after"], 16, 300.0)
    selector = 'certscope_cert_not_after_timestamp_seconds{job=~"certscope.*"}'
    assert least.expr == f"min without (job, instance) (min_over_time({selector}[5100s]))"
    assert most.expr == f"max without (job, instance) (max_over_time({selector}[5100s]))"
    _, least, _ = refine.aggregates(plan["alerts"], 16, 300.0)
    assert least.expr.startswith("min_over_time(ALERTS{") and least.expr.endswith("}[4620s])")
    # a query whose values are not raw samples is bounded through a subquery of itself
    _, least, _ = refine.aggregates(plan["probe_stale"], 16, 300.0)
    assert least.expr == f"min_over_time(({plan['probe_stale'].expr})[4650s:300s])"


@pytest.mark.timeout(600)
async def test_tiles_longer_than_the_step_give_the_plain_fetch(prom: Prometheus) -> None:
    """The command's fetch (levels for the queries with raw bounds, every step for the others)
    with windows of four steps (20 minutes over a 15 s scrape interval): presence is counted per
    10-minute tile, half the evaluations of a per-step count, and every query's runs are still
    exactly the plain range query's, across the outages of the year."""
    grid = Grid(year.START, 300.0, int(PERIOD_SECONDS // 300))
    queries = [
        *query.plan("certscope.*", 1200.0, 1200.0, 300.0, 900.0),
        *query.coverage_plan("certscope.*", 300.0, year.SCRAPE),
    ]
    raw = {q.name for q in queries if q.raw}
    assert {refine.tile(q, 300.0) for q in queries if q.raw} == {600.0}
    async with query.PrometheusClient(prom.url) as levelled:
        ticks: list[tuple[int, int]] = []
        got = await refine.fetch(
            levelled,
            queries,
            grid,
            lambda d, t, _: ticks.append((d, t)),
            coarse_first=True,
            raw_only=True,
        )
    async with query.PrometheusClient(prom.url) as plain:
        want = {q.name: await plain.range(q, grid) for q in queries}
    for q in queries:
        assert got[q.name] == want[q.name], q.name
    assert want["cert_info"].series and want["exporter_up"].series  # not an empty comparison
    counts = [r.expr for r in levelled.records if "@count:" in r.name]
    assert counts and all(":600s])" in e and ":300s]" not in e for e in counts)
    assert {r.name.partition("@")[0] for r in levelled.records if "@" in r.name} == raw
    assert levelled.failed == [] and plain.failed == []
    assert ticks[-1] == (4 * len(queries), 4 * len(queries))  # every query counts alike


def test_presence_tiles_fit_in_every_window_of_a_bucket() -> None:
    """A 5-minute step with 2-hour windows (a 1-hour scrape interval) counts 1-hour tiles: every
    step's window [t - 2h, t] holds the tile ending at the last hour at or before t. The tiles
    counted end in (t_1 - W + d/2, t_m], all those the bucket's steps need; a window shorter
    than a step has no tile inside it and is counted per step through a subquery."""
    plan = {q.name: q for q in query.plan("certscope.*", 7200.0, 120.0, 300.0, 900.0)}
    assert refine.tile(plan["cert_info"], 300.0) == 3600.0
    count, _, _ = refine.aggregates(plan["cert_info"], 16, 300.0)
    tiles = "[9900s:3600s]"  # 15 steps + 2 h - half an hour
    inner = 'last_over_time(certscope_cert_info{job=~"certscope.*"}[3600s])'
    assert count.expr == (
        f"count_over_time((group without (job, instance) ({inner})){tiles})"
        f" - scalar(count_over_time(vector(1){tiles})) + 16"
    )
    assert refine.tile(plan["alerts"], 300.0) == 300.0  # alert window 120 s < step
    count, _, _ = refine.aggregates(plan["alerts"], 16, 300.0)
    assert count.expr == f"count_over_time(({plan['alerts'].expr})[4650s:300s])"
    assert refine.tile(plan["probe_stale"], 300.0) == 300.0  # no raw bounds


async def test_a_chunk_over_prometheus_sample_limit_is_split_not_a_gap(
    prom: Prometheus, tmp_path: Path
) -> None:
    """A second Prometheus on the same blocks refuses any query holding more than 5,000 samples
    (``--query.max-samples``, 50 million by default: a year's chunk of thousands of targets
    passes it). Its refusals (HTTP 422, "too many samples") split the chunk in halves until the
    pieces pass: the runs are the unlimited server's, and nothing is a gap."""
    blocks = year.build()
    shutil.copytree(blocks, tmp_path / "tsdb", ignore=shutil.ignore_patterns("done"))
    limited = Prometheus(
        tmp_path,
        [f"127.0.0.1:{free_port()}"],
        interval="15s",
        extra_args=["--storage.tsdb.retention.time=30y", "--query.max-samples=5000"],
    )
    grid = Grid(year.START, 300.0, int(PERIOD_SECONDS // 300))
    (q,) = [
        q for q in query.plan("certscope.*", 300.0, 300.0, 300.0, 900.0) if q.name == "cert_info"
    ]
    with limited:
        async with query.PrometheusClient(limited.url) as client:
            got = await client.range(q, grid)
    async with query.PrometheusClient(prom.url) as plain:
        want = await plain.range(q, grid)
    assert want.series and got == want
    assert client.failed == []
    sizes = {round((r.end - r.start) / 300) + 1 for r in client.records if r.start and r.end}
    assert max(sizes) < 11_000 and len(client.records) > len(grid.chunks(11_000))


def test_the_automatic_chunk_size_follows_the_fleet() -> None:
    # Small fleets get every evaluation Prometheus allows per request; 2,000 targets get the
    # 2,000 that answered in time in the benchmark; no fleet goes below the floor.
    assert query.auto_chunk_points(0) == query.MAX_POINTS  # unknown: as before
    assert query.auto_chunk_points(200) == query.MAX_POINTS
    assert query.auto_chunk_points(363) == query.MAX_POINTS
    assert query.auto_chunk_points(364) == 10_989
    assert query.auto_chunk_points(2_000) == 2_000
    assert query.auto_chunk_points(8_000) == query.MIN_AUTO_POINTS == 500
    assert query.auto_chunk_points(8_001) == query.MIN_AUTO_POINTS
    assert query.auto_chunk_points(1_000_000) == query.MIN_AUTO_POINTS


def test_the_report_asks_for_the_fleet_size(report: dict[str, Any]) -> None:
    manifest = json.loads((report["_out"] / "manifest.json").read_text())
    (asked,) = [q for q in manifest["queries"] if q["name"] == "tls_targets"]
    assert asked["kind"] == "instant"
    assert asked["expr"].startswith("count(certscope_probe_success{job=~")
