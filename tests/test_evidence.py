"""``certscope evidence`` end to end, plus its pure parts.

A real Prometheus (1 s scrape and rule evaluation, the rules pack loaded) scrapes a real
certscope (subprocess) that probes a loopback TLS server and reads a files store. During the
period the test

- renews a stored certificate: it overwrites ``renew.pem`` (20 days left, EC P-256) with a new
  certificate for the same name (90 days left, EC P-384). A files source is used rather than a
  TLS server restarted on the same port: rewriting a file is deterministic, a port can be lost
  between two servers;
- gets an alert that fires and resolves: the rules pack's ``CertscopeCertificateExpiring``
  (window 30d) has no ``for``, so it fires at the first evaluation for the 20-day certificate
  and resolves at the first evaluation after the renewal. No extra rule file is needed, and the
  alert is the real one auditors will see; ``CertscopeCertificateExpired`` (an expired stored
  certificate) stays firing to the end;
- stops certscope for 12 s and starts it again: a monitoring gap.

It then runs ``python -m certscope.evidence.cli`` with ``--step 1s`` and checks the files, and
opens report.html in headless Chromium.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from certscope.evidence import analyse, cli, facts, gaps, query, refine
from certscope.evidence.model import Grid, Matrix, Run, iso, series_key
from helpers.browser import FLAGS
from helpers.exporter import Exporter
from helpers.pki import Leaf, TestPKI
from helpers.promserver import Prometheus, binary, free_port, running
from helpers.servers import tls_server

ROOT = Path(__file__).resolve().parent.parent
RULES = [ROOT / "rules" / "certscope-recording.yml", ROOT / "rules" / "certscope-alerts.yml"]
GAP_SECONDS = 12
FILES = (
    "report.html",
    "inventory.csv",
    "findings.csv",
    "alerts.csv",
    "coverage.csv",
    "renewals.csv",
    "summary.json",
    "expiry-timeline.png",
    "coverage.png",
    "findings.png",
    "manifest.json",
    "manifest.json.sha256",
    "endpoints.csv",
    "rules.json",
    "alertmanager.yml",
    "certscope-config.yml",
    "report.pdf",
    "private-keys.csv",
    "source-item-errors.csv",
    "ssh-keys.csv",
    "ssh-departed-keys.csv",
    "ssh-host-key-changes.csv",
    "key-rotation.csv",
    "storage-encryption.csv",
    "revocation.csv",
)


def serial_hex(leaf: Leaf) -> str:
    hexa = f"{leaf.certificate.serial_number:X}"
    return hexa if len(hexa) % 2 == 0 else "0" + hexa


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@dataclass
class Scenario:
    prom: Prometheus
    tmp: Path
    start: int  # period under test
    end: int
    renewed_at: float
    gap_from: float  # exporter stopped
    gap_to: float  # exporter ready again
    renew_old: Leaf
    renew_new: Leaf
    store: Path


def evidence(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "certscope.evidence.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


@pytest.fixture(scope="module")
def scenario(pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("evidence")
    store = tmp / "store"
    store.mkdir()
    renew_old = pki.leaf("renew.test", days_left=20)
    renew_new = pki.leaf("renew.test", days_left=90, key="p384")
    shutil.copy(renew_old.cert, store / "renew.pem")
    shutil.copy(pki.leaf("long.test", days_left=400).cert, store / "long.pem")
    shutil.copy(pki.leaf("old.test", days_left=-3).cert, store / "expired.pem")
    web = pki.leaf("web.test", days_left=90)
    with ExitStack() as stack:
        srv = stack.enter_context(tls_server(web.chain, web.key))
        config = tmp / "certscope.yml"
        config.write_text(
            "defaults: {enumerate: false, interval: 1s, timeout: 900ms,"
            " labels: {owner: team-a, renewal: manual}}\n"
            "targets:\n"
            f"  - {{address: {srv.address}, name: web, sni: web.test, ca_file: {pki.ca_file}}}\n"
            "sources:\n"
            f"  - {{name: store, kind: files, paths: ['{store}/*.pem']}}\n"
            "policy:\n"
            "  exceptions:\n"
            "    - {target: store, location: '*long*', rule: cert_lifetime_too_long,"
            " owner: sec-team, reason: vendor appliance, expires: 2099-12-31}\n"
        )
        port = free_port()
        exporter = Exporter(config, tmp / "exporter.log", port=port)
        stack.callback(exporter.stop)
        exporter.start()
        prom = stack.enter_context(Prometheus(tmp, [f"127.0.0.1:{port}"], RULES))
        expiring = (
            'ALERTS{alertstate="firing", alertname="CertscopeCertificateExpiring",'
            ' location=~".*renew.pem"}'
        )
        prom.wait_for(expiring, lambda r: len(r) == 1, timeout=30)
        prom.wait_for('certscope_probe_success{source="web"}', lambda r: len(r) == 1)
        prom.wait_for('certscope_policy_waived{rule="cert_lifetime_too_long"}', bool)
        start = math.floor(time.time())
        time.sleep(4)

        write_atomic(store / "renew.pem", renew_new.cert.read_bytes())
        renewed_at = time.time()
        prom.wait_for(expiring, lambda r: not r, timeout=20)
        prom.wait_for(
            f'certscope_cert_info{{serial="{serial_hex(renew_new)}"}}', lambda r: len(r) == 1
        )
        time.sleep(3)

        exporter.stop()
        gap_from = time.time()
        time.sleep(GAP_SECONDS)
        exporter.start()
        gap_to = time.time()
        prom.wait_for('up{job="certscope"} == 1', bool)
        prom.wait_for('certscope_probe_success{source="web"} == 1', bool)
        time.sleep(5)
        end = math.ceil(time.time())
        time.sleep(1.5)  # the last scrapes of the period are in the TSDB
        yield Scenario(
            prom, tmp, start, end, renewed_at, gap_from, gap_to, renew_old, renew_new, store
        )


#: secrets in the Alertmanager configuration that must never reach the package
AM_SECRETS = ("hunter2-smtp", "SLACKTOKEN", "TOKEN123", "pd-routing-secret")
AM_CONFIG = f"""
global:
  smtp_smarthost: mail.example.net:587
  smtp_from: certscope@example.net
  smtp_auth_username: alerts
  smtp_auth_password: {AM_SECRETS[0]}
  slack_api_url: https://hooks.slack.com/services/T000/B000/{AM_SECRETS[1]}
route:
  receiver: team
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
receivers:
  - name: team
    webhook_configs:
      - url: https://hooks.example.net/certscope/{AM_SECRETS[2]}?key=abc
  - name: pager
    pagerduty_configs:
      - routing_key: {AM_SECRETS[3]}
"""


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Alertmanager (Debian prometheus-alertmanager) with secrets in its routing."""
    tmp = tmp_path_factory.mktemp("alertmanager")
    (tmp / "am.yml").write_text(AM_CONFIG)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        binary("prometheus-alertmanager", "prometheus-alertmanager"),
        f"--config.file={tmp / 'am.yml'}",
        f"--storage.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with running(args, tmp / "am.log", f"{url}/-/ready"):
        yield url


@pytest.fixture(scope="module")
def report(scenario: Scenario, alertmanager: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = scenario.tmp / "out"
    started = time.monotonic()
    proc = evidence(
        "--alertmanager.url",
        alertmanager,
        "--config",
        str(scenario.tmp / "certscope.yml"),
        "--prometheus.url",
        scenario.prom.url,
        "--from",
        iso(scenario.start),
        "--to",
        iso(scenario.end),
        "--out",
        str(out),
        "--step",
        "1s",
        "--probe-stale-after",
        "5s",
    )
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 120  # with report.pdf, on a shared 2-core machine
    return out, proc


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def summary(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return data


# --- end to end -------------------------------------------------------------------------------


def test_writes_every_file_and_reports_progress(
    report: tuple[Path, subprocess.CompletedProcess[str]], scenario: Scenario
) -> None:
    out, proc = report
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert "certscope evidence: 100%" in proc.stderr  # not a TTY: progress lines
    assert "CC7.2\tfail" in proc.stdout
    s = summary(out)
    assert s["period"] == {
        "from": iso(scenario.start),
        "to": iso(scenario.end),
        "seconds": scenario.end - scenario.start,
        "requested_from": iso(scenario.start),
        "requested_to": iso(scenario.end),
    }
    assert s["certscope_version"]
    assert s["parameters"]["scrape_interval_seconds"] == 1
    assert s["parameters"]["scrape_interval_source"] == "from the Prometheus configuration"


def test_controls(report: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    controls = summary(report[0])["controls"]
    results = {c: v["result"] for c, v in controls.items()}
    # The 12 s gap leaves about two thirds of the short period observed: below the default
    # 90 %, nothing can pass; a finding still fails.
    assert results == {
        "CC6.1": "insufficient_data",
        "CC6.6": "insufficient_data",
        "CC6.7": "fail",  # expired.pem
        "CC7.1": "insufficient_data",
        "CC7.2": "fail",  # CC7.2 verdict: the exporter was down (up == 0)
    }
    assert "below 90%: not enough evidence" in controls["CC6.1"]["detail"]
    checks = {ch["id"]: ch for c in controls.values() for ch in c["checks"]}
    assert checks["certificate_validity"]["counts"]["violations"] == 1
    assert checks["key_signature_lifetime"]["counts"]["waived"] == 1
    # enumeration is disabled: posture is not evidenced, and says so (CC6.7 fails anyway)
    assert checks["protocols_and_ciphers"]["result"] == "insufficient_data"
    assert checks["served_matches_stored"]["result"] == "not_applicable"
    assert checks["policy_exceptions"]["counts"]["open_exceptions"] == 1
    assert checks["exporter_scraped"]["counts"]["gaps"] == 1
    assert checks["exporter_scraped"]["result"] == "insufficient_data"
    ratio = controls["CC6.1"]["observed_ratio"]
    assert 0.4 < ratio < 0.9
    # One coverage definition: every control's figure is its verdict series' share of the
    # period, capped by the exporter's coverage. A control's verdict series starts at the first
    # evaluation that has all its inputs, so on a loaded machine one may start a scrape later
    # (one step of this ~37-step period is 0.027); more than two steps apart is a second
    # definition, not timing.
    ratios = [c["observed_ratio"] for c in controls.values()]
    assert max(ratios) - min(ratios) <= 0.06, ratios


def test_thresholds_decide_pass_and_pass_with_gaps(scenario: Scenario) -> None:
    """The same data passes with lower thresholds: the ratio, not the gap, decides."""
    results = {}
    for name, (min_ratio, low) in {"lenient": ("0.3", "0.2"), "gaps": ("0.95", "0.3")}.items():
        out = scenario.tmp / f"thresholds-{name}"
        proc = evidence(
            *("--prometheus.url", scenario.prom.url, "--from", iso(scenario.start)),
            *("--to", iso(scenario.end), "--out", str(out), "--step", "1s"),
            *("--probe-stale-after", "5s", "--min-observed-ratio", min_ratio),
            *("--insufficient-below", low, "--no-pdf"),
        )
        assert proc.returncode == 0, proc.stderr
        results[name] = {c: v["result"] for c, v in summary(out)["controls"].items()}
    assert results["lenient"] == {
        "CC6.1": "pass",  # the long-lived certificate is waived by an exception
        "CC6.6": "pass",  # web.test verifies against the test CA
        "CC6.7": "fail",
        "CC7.1": "pass",
        "CC7.2": "fail",
    }
    assert results["gaps"]["CC6.1"] == results["gaps"]["CC7.1"] == "pass_with_gaps"


def test_monitoring_gap(
    report: tuple[Path, subprocess.CompletedProcess[str]], scenario: Scenario
) -> None:
    out = report[0]
    rows = read_csv(out / "coverage.csv")
    job_gaps = [
        r
        for r in rows
        if r["record"] == "gap" and r["scope"] == "exporter" and r["instance"] == "*"
    ]
    assert len(job_gaps) == 1, rows
    gap = job_gaps[0]
    assert gap["gap_kind"] == "exporter_down"  # Prometheus kept scraping: up == 0
    assert scenario.gap_from - 3 <= ts(gap["gap_start"]) <= scenario.gap_from + 1
    assert scenario.gap_to - 2 <= ts(gap["gap_end"]) <= scenario.gap_to + 2
    assert float(gap["gap_seconds"]) >= GAP_SECONDS - 1
    instance = [
        r
        for r in rows
        if r["record"] == "total" and r["scope"] == "exporter" and r["instance"] != "*"
    ]
    assert len(instance) == 1
    job = next(r for r in rows if r["record"] == "total" and r["instance"] == "*")
    # one definition: 1 - seconds in gaps / seconds judged, the same for job and instance
    period = scenario.end - scenario.start
    assert float(job["unmonitored_seconds"]) == pytest.approx(float(gap["gap_seconds"]))
    assert float(job["coverage_ratio"]) == pytest.approx(
        1 - float(gap["gap_seconds"]) / period, abs=1e-6
    )
    assert instance[0]["coverage_ratio"] == job["coverage_ratio"]
    # the targets were not monitored during the same interval
    web_gaps = [r for r in rows if r["record"] == "gap" and r["source"] == "web"]
    assert [g["gap_kind"] for g in web_gaps] == ["not_monitored"]
    assert abs(ts(web_gaps[0]["gap_start"]) - ts(gap["gap_start"])) <= 2
    store = [r for r in rows if r["record"] == "total" and r["source"] == "store"]
    assert store and store[0]["source_kind"] == "files"
    s = summary(out)
    assert s["monitoring_gaps"][0]["kind"] == "exporter_down"
    assert s["monitoring_gaps"][0]["instance"] == "*"
    assert s["counts"]["monitoring_gaps"] == 1 + 2  # the job, web and the store


def test_renewal(report: tuple[Path, subprocess.CompletedProcess[str]], scenario: Scenario) -> None:
    out = report[0]
    rows = read_csv(out / "renewals.csv")
    assert len(rows) == 1, rows
    r = rows[0]
    assert r["kind"] == "renewal"
    assert r["location"] == str(scenario.store / "renew.pem")
    assert r["subject_cn"] == "renew.test"
    assert r["old_serial"] == serial_hex(scenario.renew_old)
    assert r["new_serial"] == serial_hex(scenario.renew_new)
    assert abs(ts(r["at"]) - scenario.renewed_at) <= 3
    assert 19.9 < float(r["days_before_expiry"]) < 20.1
    assert r["key_changed"] == "yes"  # P-256 -> P-384
    assert r["key_basis"].startswith("public key changed: ")  # from public_key_sha256
    assert "certscope_cert_info public_key_sha256" in r["key_basis"]
    renewals = summary(out)["renewals"]
    assert [x["new_serial"] for x in renewals] == [serial_hex(scenario.renew_new)]
    assert summary(out)["counts"]["renewals"] == 1


def test_alerts(report: tuple[Path, subprocess.CompletedProcess[str]], scenario: Scenario) -> None:
    out = report[0]
    rows = read_csv(out / "alerts.csv")
    expiring = [r for r in rows if r["alertname"] == "CertscopeCertificateExpiring"]
    assert len(expiring) == 1, rows  # the gap did not split it: the rules bridge gaps
    e = expiring[0]
    assert (e["window"], e["severity"], e["soc2_control"]) == ("30d", "warning", "CC6.1")
    assert e["fired_before_period"] == "true"
    assert e["resolved_at"] != "still firing"
    assert abs(ts(e["resolved_at"]) - scenario.renewed_at) <= 4
    assert "subject_cn=renew.test" in e["labels"]
    expired = [r for r in rows if r["alertname"] == "CertscopeCertificateExpired"]
    assert len(expired) == 1 and expired[0]["resolved_at"] == "still firing"
    assert float(expired[0]["duration_seconds"]) == pytest.approx(
        scenario.end - scenario.start, abs=2
    )
    alerts = summary(out)["alerts"]
    assert alerts["resolved"] >= 1 and alerts["still_firing"] >= 1


def test_findings_exceptions_inventory(
    report: tuple[Path, subprocess.CompletedProcess[str]], scenario: Scenario
) -> None:
    out = report[0]
    findings = read_csv(out / "findings.csv")
    by_rule = {f["rule"]: f for f in findings}
    assert set(by_rule) == {"cert_expired", "cert_lifetime_too_long"}
    expired = by_rule["cert_expired"]
    assert (expired["status"], expired["severity"], expired["control"]) == (
        "violation",
        "critical",
        "CC6.7",
    )
    assert expired["location"].endswith("expired.pem") and expired["active_at_end"] == "true"
    assert expired["owner"] == "team-a"
    # absent while the exporter was stopped, yet one episode across that gap
    assert (expired["episodes"], expired["gaps_inside"]) == ("1", "1")
    waived = by_rule["cert_lifetime_too_long"]
    assert (waived["status"], waived["exception_owner"]) == ("waived", "sec-team")
    s = summary(out)
    assert s["policy_exceptions"] == [
        {
            "target": "store",
            "location": "*long*",
            "rule": "cert_lifetime_too_long",
            "owner": "sec-team",
            "expires": "2099-12-31T23:59:59Z",
            "status": "open",
        }
    ]
    inventory = read_csv(out / "inventory.csv")
    serials = {r["serial"] for r in inventory if r["subject_cn"] == "renew.test"}
    assert serials == {serial_hex(scenario.renew_old), serial_hex(scenario.renew_new)}
    web = [r for r in inventory if r["source"] == "web"]
    assert {r["chain_position"] for r in web} == {"0", "1"}
    leaf = next(r for r in web if r["chain_position"] == "0")
    assert leaf["sans"] == "web.test" and leaf["owner"] == "team-a"
    assert leaf["renewal"] == "manual" and leaf["issuer_cn"] == "certscope Test Intermediate CA"
    assert leaf["present_at_start"] == "true" and leaf["present_at_end"] == "true"
    old = next(r for r in inventory if r["serial"] == serial_hex(scenario.renew_old))
    assert old["present_at_end"] == "false"
    assert abs(ts(old["last_seen"]) - scenario.renewed_at) <= 3
    assert ts(old["not_after"]) == pytest.approx(
        scenario.renew_old.certificate.not_valid_after_utc.timestamp()
    )


def test_manifest(
    report: tuple[Path, subprocess.CompletedProcess[str]], scenario: Scenario
) -> None:
    out = report[0]
    manifest = json.loads((out / "manifest.json").read_text())
    hashed = {f["name"]: f["sha256"] for f in manifest["files"]}
    assert set(hashed) == set(FILES) - {"manifest.json", "manifest.json.sha256"}
    digest = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    assert (out / "manifest.json.sha256").read_text() == f"{digest}  manifest.json\n"
    assert f"manifest.json\tsha256:{digest}" in report[1].stdout
    for name, digest in hashed.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name
    ranges = [q for q in manifest["queries"] if q["kind"] == "range"]
    # one chunk each, plus the two scrape counts of the gap detection
    assert len(ranges) == len(query.plan("certscope.*", 2, 2, 1, 5)) + 2
    for q in ranges:
        assert q["start"] == iso(scenario.start + 1) and q["end"] == iso(scenario.end)
        assert q["step"] == 1
    up = next(q for q in ranges if q["name"] == "exporter_up")
    assert up["expr"] == 'max by (job, instance) (max_over_time(up{job=~"certscope.*"}[2s]))'
    # the recorded query, re-run, gives what the report was built from
    data = scenario.prom.api(
        "query_range",
        query=up["expr"],
        start=str(up["start_unix"]),
        end=str(up["end_unix"]),
        step=str(up["step"]),
    )
    assert data["result"][0]["metric"]["job"] == "certscope"


async def test_chunked_range_queries_match_one_query(scenario: Scenario) -> None:
    grid = Grid(float(scenario.start), 1.0, scenario.end - scenario.start)
    queries = [
        q
        for q in query.plan("certscope.*", 2, 2, 1, 5)
        if q.name in ("exporter_up", "cert_not_after", "alerts")
    ]
    async with query.PrometheusClient(scenario.prom.url, concurrency=3) as client:
        whole = await refine.fetch(client, queries, grid)
        calls: list[tuple[int, int]] = []
        chunked = await refine.fetch(
            client, queries, grid, lambda d, t, w: calls.append((d, t)), max_points=7
        )
    chunks = math.ceil(grid.count / 7)
    assert calls[-1] == (chunks * 3, chunks * 3)
    assert chunked == whole
    assert len(client.records) == 3 + 3 * chunks
    assert client.failed == [] and client.bytes_received > 0
    # answers over the size cap are split into halves: the same data, more requests
    async with query.PrometheusClient(scenario.prom.url, max_bytes=3000) as small:
        query.MIN_SPLIT_POINTS, saved = 4, query.MIN_SPLIT_POINTS  # the period is short
        try:
            split = await refine.fetch(small, queries, grid)
        finally:
            query.MIN_SPLIT_POINTS = saved
    assert split == whole
    assert small.failed == [] and len(small.records) > 3


def test_period_before_any_data_is_insufficient(scenario: Scenario) -> None:
    out = scenario.tmp / "before"
    args = ["--prometheus.url", scenario.prom.url, "--from", iso(scenario.start - 3600)]
    args += ["--to", iso(scenario.start - 1800), "--out", str(out), "--no-pdf"]
    proc = evidence(*args)
    assert proc.returncode == cli.EXIT_PARTIAL, proc.stderr  # written, but partial
    assert "the period starts before the data" in proc.stderr
    assert summary(out)["retention"]["period_starts_before_data"] is True
    proc = evidence(*args, "--allow-partial", "--force")
    assert proc.returncode == 0, proc.stderr
    s = summary(out)
    assert {c["result"] for c in s["controls"].values()} == {"insufficient_data"}
    assert s["counts"]["certificates"] == 0
    gaps = s["monitoring_gaps"]
    assert len(gaps) == 1 and gaps[0]["kind"] == "no_data"
    assert gaps[0]["start"] == iso(scenario.start - 3600)
    assert gaps[0]["end"] == iso(scenario.start - 1800)
    assert s["parameters"]["step_seconds"] == 15  # automatic: 30 minutes at 15 s
    coverage = read_csv(out / "coverage.csv")
    assert coverage[0]["coverage_ratio"] == "0.0"
    assert (
        "Partial evidence: the period starts before the data" in (out / "report.html").read_text()
    )
    assert "No scrape of a job" in (out / "report.html").read_text()


def test_report_renders_in_chromium(
    report: tuple[Path, subprocess.CompletedProcess[str]], scenario: Scenario
) -> None:
    from PIL import Image

    chromium = shutil.which("chromium")
    assert chromium, "chromium not found: install the Debian package 'chromium'"
    out = report[0]
    html_path = out / "report.html"
    html = html_path.read_text()
    assert "http://" not in html.replace(scenario.prom.url, "")  # no external resources
    assert "<link" not in html and "<script" not in html
    profile = scenario.tmp / "chromium"
    base = [chromium, *FLAGS, f"--user-data-dir={profile}"]
    env = {**os.environ, "HOME": str(scenario.tmp)}
    shot = scenario.tmp / "report.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1280,2000", html_path.as_uri()],
        capture_output=True,
        timeout=90,
        check=True,
        env=env,
    )
    with Image.open(shot) as img:
        assert img.size == (1280, 2000)
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 50  # text, badges, tables: not blank
    dom = subprocess.run(
        [*base, "--dump-dom", html_path.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
        env=env,
    ).stdout
    for heading in (
        ">Summary</h2>",
        ">Controls</h2>",
        ">Monitoring gaps</h2>",
        ">Certificates renewed</h2>",
        ">Alerts fired and resolved</h2>",
        ">Policy findings</h2>",
        ">Open policy exceptions</h2>",
        ">Certificate inventory</h2>",
        ">Method</h2>",
    ):
        assert heading in dom, heading
    for control in ("CC6.1", "CC6.6", "CC6.7", "CC7.1", "CC7.2"):
        assert f'id="{control}"' in dom
    assert serial_hex(scenario.renew_new) in dom
    assert dom.count('src="data:image/png;base64,') == 3


# --- usage and failures -----------------------------------------------------------------------


def test_unreachable_prometheus_exits_1(tmp_path: Path) -> None:
    proc = evidence(
        "--prometheus.url",
        f"http://127.0.0.1:{free_port()}",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-02",
        "--out",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 1
    assert "cannot reach Prometheus at http://127.0.0.1:" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2025-13-01", "--to", "2025-12-31"], "not an ISO 8601 date"),
        (["--from", "yesterday", "--to", "2025-12-31"], "not an ISO 8601 date"),
        (["--from", "2025-02-01", "--to", "2025-01-01"], "is not after --from"),
        (["--from", "2999-01-01", "--to", "2999-02-01"], "is in the future"),
        (["--from", "2025-01-01", "--to", "2025-01-02", "--step", "5x"], "--step"),
        (
            ["--from", "2025-01-01T00:00:00Z", "--to", "2025-01-01T00:00:30Z", "--step", "1m"],
            "longer than the period",
        ),
        (["--from", "2020-01-01", "--to", "2025-01-01", "--step", "1s"], "coarser step"),
        (["--from", "2025-01-01", "--to", "2025-01-02", "--job", "("], "--job"),
        (
            ["--from", "2025-01-01", "--to", "2025-01-02", "--probe-stale-after", "0s"],
            "--probe-stale-after",
        ),
    ],
)
def test_usage_errors_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--prometheus.url", "http://127.0.0.1:1", "--out", str(tmp_path / "o"), *args]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_url_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["--prometheus.url", "prometheus:9090", "--from", "2025-01-01", "--to", "2025-01-02"]
    assert cli.main([*argv, "--out", str(tmp_path)]) == 2
    assert "expected http(s)://host:port" in capsys.readouterr().err


def test_missing_argument_exits_2() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--from", "2025-01-01"])
    assert exc.value.code == 2


# --- pure parts -----------------------------------------------------------------------------


def test_dates_and_steps() -> None:
    assert iso(cli.parse_date("2025-01-31", end=False)) == "2025-01-31T00:00:00Z"
    assert iso(cli.parse_date("2025-01-31", end=True)) == "2025-02-01T00:00:00Z"
    assert iso(cli.parse_date("2025-01-31T12:00:00+02:00", end=True)) == "2025-01-31T10:00:00Z"
    assert iso(cli.parse_date("2025-01-31T12:00", end=False)) == "2025-01-31T12:00:00Z"
    assert iso(cli.parse_date("20250131", end=True)) == "2025-02-01T00:00:00Z"
    year = 365 * 86400.0
    assert cli.choose_step(year, None) == 300  # 105,120 evaluations, 10 range queries
    assert len(Grid(0, 300, int(year / 300)).chunks(query.MAX_POINTS)) == 10
    assert cli.choose_step(86400, None) == 15
    assert cli.choose_step(86400, "1m") == 60
    assert cli.choose_step(20, None) == 10


def test_grid_and_runs() -> None:
    g = Grid(1000.0, 10.0, 25)
    assert (g.time(0), g.end) == (1010.0, 1250.0)
    assert g.index(1010.0) == 0 and g.index(1250.0) == 24 and g.index(1005.0) is None
    assert g.chunks(10) == [(0, 9), (10, 19), (20, 24)]
    m = Matrix()
    for k, v in [(0, 1), (1, 1), (2, 0), (5, 0), (6, 0)]:
        m.add((("a", "b"),), k, v)
    assert m.series[(("a", "b"),)] == [Run(0, 1, 1), Run(2, 2, 0), Run(5, 6, 0)]


def test_levels_buckets_and_run_arithmetic() -> None:
    assert refine.levels(Grid(0.0, 300.0, 105_120)) == [4096, 256, 16]
    assert refine.levels(Grid(0.0, 3600.0, 8760)) == [256, 16]
    assert refine.levels(Grid(0.0, 1.0, 4095)) == []  # short: fetched as is
    assert refine.levels(Grid(150.0, 300.0, 105_120)) == []  # not on a multiple of the step
    count, least, most = refine.aggregates(query.Query("q", "up > 0", ""), 16, 300.0)
    assert count.expr == "count_over_time((up > 0)[4650s:300s])" and count.name == "q@count:16"
    assert (least.expr[:14], most.expr[:14]) == ("min_over_time(", "max_over_time(")
    # buckets 0-1 constant at 5; 2 partly present; 3 changing (min 1, max 2); 5 absent
    counts = [Run(0, 1, 16), Run(2, 2, 9), Run(3, 4, 16)]
    low, high = (
        [Run(0, 2, 5), Run(3, 3, 1), Run(4, 4, 7)],
        [Run(0, 2, 5), Run(3, 3, 2), Run(4, 4, 7)],
    )
    assert list(refine._segments(counts, low, high, 16)) == [
        (0, 1, 5),
        (2, 2, None),
        (3, 3, None),
        (4, 4, 7),
    ]
    assert refine.union([(5, 9), (0, 2), (3, 3), (12, 20), (15, 16)]) == [(0, 3), (5, 9), (12, 20)]
    spans = [(2, 3), (6, 8)]
    assert list(refine.subtract(Run(0, 10, 1), spans)) == [
        Run(0, 1, 1),
        Run(4, 5, 1),
        Run(9, 10, 1),
    ]
    assert list(refine.subtract(Run(6, 7, 1), spans)) == []
    assert list(refine.subtract(Run(4, 5, 1), spans)) == [Run(4, 5, 1)]
    m = Matrix()
    m.extend_runs((("a", "b"),), [Run(0, 3, 1), Run(4, 5, 1), Run(7, 8, 1), Run(9, 9, 2)])
    nan = float("nan")
    m.extend_runs((("a", "c"),), [Run(0, 1, nan), Run(2, 2, nan)])
    m.extend_runs((("a", "d"),), [])
    assert m.series[(("a", "b"),)] == [Run(0, 5, 1), Run(7, 8, 1), Run(9, 9, 2)]
    assert len(m.series[(("a", "c"),)]) == 1 and (("a", "d"),) not in m.series


def _params(count: int = 100, step: float = 60, window: float = 120) -> facts.Params:
    return facts.Params(Grid(0.0, step, count), window, window, 60, 900, "certscope.*")


def simulate(grid: Grid, interval: float, samples: list[tuple[float, float]]) -> facts.ScrapeData:
    """What Prometheus 2.x answers for ``samples`` of one instance: the window counts of
    :func:`gaps.count_queries` (both ends of a range are inclusive) and, for the windows
    :func:`gaps.drill_windows` picks, the raw samples."""
    key = (("instance", "a:1"), ("job", "certscope"))
    times = [t for t, _ in samples]
    w = gaps.window(grid.step, interval)
    ok, seen = Matrix(), Matrix()
    prefix = [0.0]
    for _, v in samples:
        prefix.append(prefix[-1] + v)
    for k in range(grid.count):
        t = grid.time(k)
        lo, hi = bisect.bisect_left(times, t - w), bisect.bisect_right(times, t)
        if hi > lo:
            ok.add(key, k, prefix[hi] - prefix[lo])
            seen.add(key, k, hi - lo)
    drilled = gaps.drill_windows(grid, interval, ok)
    raw: list[tuple[float, float]] = []
    for start, end in gaps.raw_ranges(grid, interval, drilled):
        raw += [s for s in samples if start <= s[0] <= end]
    raw = sorted(set(raw))
    return facts.ScrapeData(ok, seen, {("certscope", "a:1"): raw}, frozenset(drilled))


def scrapes_with(
    start: float, end: float, interval: float, down: list[tuple[float, float, float]]
) -> list[tuple[float, float]]:
    """Scrapes every ``interval`` (offset 7 s) except in ``down`` (from, to, up value or -1
    for no sample at all)."""
    out = []
    t = start - 3 * interval + 7
    while t <= end:
        value = 1.0
        for lo, hi, v in down:
            if lo <= t < hi:
                value = v
        if value >= 0:
            out.append((t, value))
        t += interval
    return out


@pytest.mark.parametrize("step", [15, 60, 300, 3600])
def test_gaps_do_not_depend_on_the_step(step: int) -> None:
    """A day at 15 s: outages of 2 and 20 minutes (exporter down: up == 0), a 2-hour
    Prometheus outage (no sample at all) and a single missed scrape (not a gap). Every gap is
    found exactly, whatever the step."""
    day, interval = 86400.0, 15.0
    down = [
        (10_000.0, 10_120.0, 0.0),  # 2 min exporter down
        (30_000.0, 31_200.0, 0.0),  # 20 min exporter down
        (50_000.0, 57_200.0, -1.0),  # 2 h Prometheus down
        (70_000.0, 70_015.0, 0.0),  # one missed scrape
    ]
    samples = scrapes_with(0, day, interval, down)
    grid = Grid(0.0, float(step), int(day / step))
    p = facts.Params(grid, max(step, 30), max(step, 30), interval, 900, "certscope")
    job = analyse.exporter_coverage(p, simulate(grid, interval, samples))[0]

    def expected(lo: float, hi: float) -> tuple[float, float]:
        last_ok = max(t for t, v in samples if v >= 1 and t < lo)
        next_ok = min(t for t, v in samples if v >= 1 and t >= hi)
        return last_ok + interval, next_ok

    assert [(g.kind, g.start, g.end) for g in job.gaps] == [
        ("exporter_down", *expected(10_000, 10_120)),
        ("exporter_down", *expected(30_000, 31_200)),
        ("no_data", *expected(50_000, 57_200)),
    ]
    assert [round(g.seconds) for g in job.gaps] == [120, 1200, 7200]
    assert job.ratio == pytest.approx(1 - (120 + 1200 + 7200) / day)
    assert gaps.smallest_detectable(interval) == 30


def test_gaps_at_the_edges_and_without_data() -> None:
    grid = Grid(0.0, 300.0, 288)
    p = facts.Params(grid, 300, 300, 15.0, 900, "certscope")
    late = [(t, v) for t, v in scrapes_with(0, 86400, 15, []) if t >= 3600]
    job = analyse.exporter_coverage(p, simulate(grid, 15, late))[0]
    assert [(g.kind, g.start, g.end) for g in job.gaps] == [("no_data", 0.0, late[0][0])]
    assert job.first_seen == late[0][0]
    nothing = analyse.exporter_coverage(p, facts.ScrapeData())[0]
    assert [(g.kind, g.start, g.end) for g in nothing.gaps] == [("no_data", 0.0, 86400.0)]
    assert nothing.ratio == 0 and not nothing.observed


def _empty(up: Matrix) -> dict[str, Matrix]:
    names = [q.name for q in query.plan("certscope.*", 60, 60, 60, 900)]
    data = {name: Matrix() for name in names}
    data["exporter_up"] = up
    return data


def test_renewal_with_same_key_type_is_unknown() -> None:
    p = _params()
    slot = {
        "source_kind": "tls",
        "source": "web",
        "location": "h:443",
        "chain_position": "0",
        "subject_cn": "web",
        "issuer_cn": "CA",
    }
    facts = {"key_algorithm": "RSA", "key_bits": "2048", "key_curve": ""}
    info = Matrix.of(
        {
            tuple(sorted({**slot, **facts, "serial": "01", "fingerprint_sha256": "aa"}.items())): [
                Run(0, 51, 1)
            ],
            tuple(sorted({**slot, **facts, "serial": "02", "fingerprint_sha256": "bb"}.items())): [
                Run(50, 99, 1)
            ],
        }
    )
    not_after = Matrix.of(
        {tuple(sorted(slot.items())): [Run(0, 49, 5 * 86400), Run(50, 99, 95 * 86400)]}
    )
    certs = analyse.inventory(p, info, not_after, Matrix())
    (r,) = analyse.renewals(certs)
    assert (r.kind, r.old.facts["serial"], r.new.facts["serial"]) == ("renewal", "01", "02")
    assert r.at == 51 * 60
    assert r.days_before_expiry == pytest.approx((5 * 86400 - 51 * 60) / 86400)
    assert r.key_changed == "unknown" and "no public-key fingerprint" in r.key_basis
    assert [c.not_after for c in certs] == [5 * 86400, 95 * 86400]


def test_csv_cells_from_labels_cannot_be_formulas() -> None:
    from certscope.evidence.report import to_csv

    data = to_csv(["cn", "n"], [['=HYPERLINK("http://x")', -3.5], ["-01", 2]]).decode()
    assert list(csv.reader(io.StringIO(data)))[1:] == [
        ['\'=HYPERLINK("http://x")', "-3.5"],  # label text: defused
        ["'-01", "2"],  # numbers stay numbers
    ]


def test_progress_lines_when_not_a_tty() -> None:
    stream = io.StringIO()
    clock = iter([0.0, 1, 2, 3, 4, 30, 31]).__next__
    progress = cli.Progress(stream, clock)
    for done in (1, 2, 3, 4, 5, 10):
        progress(done, 100, "cert_info")
    assert stream.getvalue().splitlines() == [
        "certscope evidence: 1% (1/100 requests, cert_info)",  # the first request
        "certscope evidence: 5% (5/100 requests, cert_info)",  # 10 s without a line
        "certscope evidence: 10% (10/100 requests, cert_info)",  # the next tenth
    ]


def test_parse_time_helpers_round_trip() -> None:
    t = datetime(2025, 6, 1, 12, 0, tzinfo=UTC).timestamp()
    assert ts(iso(t)) == t


def test_probed_endpoints_without_verification_data_are_not_a_pass() -> None:
    p = _params()
    data = _empty(Matrix())
    target = (("location", "h:443"), ("source", "web"), ("source_kind", "tls"))
    data["probe_success"] = Matrix.of({target: [Run(0, 99, 1)]})
    checks = {c.control: c for c in analyse.analyse(p, data).controls}
    assert checks["CC6.6"].result == "insufficient_data"
    assert "no verification result" in checks["CC6.6"].checks[0].detail
    # posture is not evidenced either: no enumeration
    assert checks["CC6.7"].result == "insufficient_data"


def test_report_and_rules_pack_share_one_verdict_logic() -> None:
    """The recording rules the dashboard reads are the expressions the report evaluates."""
    import yaml

    from certscope.evidence import verdict

    text = (ROOT / "rules" / "certscope-recording.yml").read_text()
    assert verdict.rules_yaml() in text  # generated, not edited by hand
    recorded = verdict.recorded(yaml.safe_load(text))
    assert recorded == {c: e.strip() for c, e in verdict.expressions("certscope.*").items()}
    planned = {q.name: q.expr for q in query.plan("certscope-prod", 60, 60, 60, 900)}
    for control, expr in verdict.expressions("certscope-prod").items():
        assert planned[f"verdict:{control}"] == expr
        assert 'job=~"certscope-prod"' in expr and "certscope.*" not in expr
    dashboard = json.loads((ROOT / "grafana" / "dashboards" / "certscope-soc2.json").read_text())
    status = {
        p["title"]: p["targets"][0]["expr"]
        for p in dashboard["panels"]
        if p["title"].endswith("status now")
    }
    assert status == {
        f"{c} status now": f'max(certscope:soc2_control_failing{{control="{c}"}})' for c in recorded
    }


@pytest.mark.parametrize(
    ("checks", "steps", "coverage", "result"),
    [
        ([], [Run(0, 99, 0)], 1.0, "pass"),
        ([], [Run(0, 99, 0)], 0.99, "pass"),  # exactly the threshold
        ([], [Run(0, 99, 0)], 0.989, "pass_with_gaps"),
        ([], [Run(0, 99, 0)], 0.9, "pass_with_gaps"),
        ([], [Run(0, 99, 0)], 0.899, "insufficient_data"),
        ([], [Run(0, 24, 0)], 1.0, "insufficient_data"),  # a verdict for 25 % of the period
        ([], [], 1.0, "insufficient_data"),  # no verdict at all
        ([], [Run(0, 49, 0), Run(50, 50, 1)], 0.5, "fail"),  # one failing step
        (["fail"], [Run(0, 99, 0)], 1.0, "fail"),
        (["insufficient_data", "pass"], [Run(0, 99, 0)], 1.0, "insufficient_data"),
    ],
)
def test_period_verdict(checks: list[str], steps: list[Run], coverage: float, result: str) -> None:
    from certscope.evidence import verdict

    assert verdict.over_period(steps, 100, coverage, checks).result == result


def test_control_configuration_in_the_package(
    report: tuple[Path, subprocess.CompletedProcess[str]], scenario: Scenario
) -> None:
    out = report[0]
    every_file = b"".join(p.read_bytes() for p in out.iterdir())
    for secret in AM_SECRETS:
        assert secret.encode() not in every_file, secret
    am = yaml.safe_load((out / "alertmanager.yml").read_text())
    assert am["route"]["routes"][0]["receiver"] == "pager"  # routing is kept
    assert am["receivers"][0]["webhook_configs"][0]["url"] == "https://hooks.example.net/<redacted>"
    assert am["receivers"][1]["pagerduty_configs"][0]["routing_key"] in ("<redacted>", "<secret>")
    config = scenario.tmp / "certscope.yml"
    s = summary(out)
    assert (
        s["configuration"]["certscope_config_sha256"]
        == hashlib.sha256(config.read_bytes()).hexdigest()
    )
    assert yaml.safe_load((out / "certscope-config.yml").read_text()) == yaml.safe_load(
        config.read_text()
    )  # nothing secret in it: unchanged
    rules = json.loads((out / "rules.json").read_text())
    loaded = {r["name"] for g in rules["groups"] for r in g["rules"] if r["type"] == "alerting"}
    assert "CertscopeCertificateExpiring" in loaded
    runbooks = {r["alert"]: r["runbook_url"] for r in s["configuration"]["runbooks"]}
    assert runbooks["CertscopeCertificateExpiring"].endswith(
        "docs/runbooks.md#certscopecertificateexpiring"
    )
    assert "TLS endpoints (certificates, protocols, cipher suites)" in s["configuration"]["covered"]
    not_covered = s["configuration"]["not_covered"]
    assert any(
        n.startswith("SSH host keys and authorized keys: not configured") for n in not_covered
    )
    assert "Endpoint and laptop disk encryption (MDM)" in not_covered
    html = (out / "report.html").read_text()
    assert ">Not covered</h2>" in html and ">Control configuration</h2>" in html


def test_redaction() -> None:
    from certscope.evidence.configuration import redact, redact_url

    doc = {
        "basic_auth": {"username": "u", "password": "p", "password_file": "/run/p"},
        "api_key": "k",
        "webhook_configs": [{"url": "https://user:pw@h.example:8443/path/TOKEN?x=1"}],
        "name": "team",
    }
    assert redact(doc) == {
        "basic_auth": {"username": "u", "password": "<redacted>", "password_file": "/run/p"},
        "api_key": "<redacted>",
        "webhook_configs": [{"url": "https://h.example:8443/<redacted>"}],
        "name": "team",
    }
    assert redact_url("https://alerts.example.net") == "https://alerts.example.net"


def test_report_pdf_renders(
    report: tuple[Path, subprocess.CompletedProcess[str]], scenario: Scenario
) -> None:
    """report.pdf (WeasyPrint) is a real PDF: its first page renders with text on it."""
    from PIL import Image

    out = report[0]
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF-")
    pdftoppm = binary("pdftoppm", "poppler-utils")
    prefix = scenario.tmp / "page"
    subprocess.run(
        [pdftoppm, "-png", "-r", "60", "-f", "1", "-l", "1", str(out / "report.pdf"), str(prefix)],
        check=True,
        timeout=60,
    )
    (png,) = scenario.tmp.glob("page*.png")
    with Image.open(png) as img:
        width, height = img.size
        assert width > height  # A4 landscape
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 20  # text and badges, not a blank page
    info = subprocess.run(
        [binary("pdfinfo", "poppler-utils"), str(out / "report.pdf")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert int(re.search(r"Pages:\s+(\d+)", info).group(1)) >= 3  # type: ignore[union-attr]


def test_a_failing_chunk_is_a_gap_not_the_end(scenario: Scenario) -> None:
    """A proxy (hand-written: a real Prometheus does not fail on request) in front of the real
    Prometheus answers 503 to every request of one query for the second half of the period.
    The run goes on, retries, and reports that half as a query_failed gap."""
    from helpers.hostile_prometheus import HostilePrometheus, forward

    middle = (scenario.start + scenario.end) // 2

    def fail(path: str, request: bytes) -> bool:
        body = urllib.parse.unquote_plus(request.partition(b"\r\n\r\n")[2].decode())
        start = re.search(r"(?:^|&)start=([0-9.]+)", body)
        return (
            path.endswith("/query_range")
            and "certscope_cert_not_before_timestamp_seconds" in body
            and start is not None
            and float(start.group(1)) > middle
        )

    with HostilePrometheus(forward(scenario.prom.url, fail)) as proxy:
        out = scenario.tmp / "failing-chunk"
        proc = evidence(
            *("--prometheus.url", proxy.url, "--from", iso(scenario.start)),
            *("--to", iso(scenario.end), "--out", str(out), "--step", "1s", "--no-pdf"),
            *("--query.chunk-points", "10", "--probe-stale-after", "5s"),
        )
    assert proc.returncode == 0, proc.stderr
    s = summary(out)
    failed = s["failed_requests"]
    assert failed and {f["query"] for f in failed} == {"cert_not_before"}
    assert all("HTTP 503: injected failure (4 attempts)" in f["error"] for f in failed)
    query_gaps = [g for g in s["monitoring_gaps"] if "query_failed" in g["kind"]]
    assert query_gaps and ts(query_gaps[0]["start"]) >= middle - 10
    assert "that time is a gap in the data (query_failed)" in (out / "report.html").read_text()


def test_report_escapes_hostile_label_values() -> None:
    """Label values are data: a target whose name and location hold markup shows as text in
    report.html, never as an element or attribute (the template autoescapes)."""
    from collections import defaultdict

    from certscope.evidence.meta import Meta
    from certscope.evidence.page import report_html

    hostile = 'x<script>alert(1)</script>"onload=alert(2) y'
    grid = Grid(0.0, 60.0, 10)
    labels = {"source_kind": "tls", "source": hostile, "location": f"{hostile}:443"}
    data: defaultdict[str, Matrix] = defaultdict(Matrix)
    data["cert_info"].extend(
        series_key({**labels, "chain_position": "0", "subject_cn": hostile, "serial": hostile}),
        [(k, 1.0) for k in range(10)],
    )
    data["probe_success"].extend(series_key(labels), [(k, 1.0) for k in range(10)])
    ev = analyse.analyse(facts.Params(grid, 120, 120, 60, 900, "certscope.*"), data)
    assert ev.certificates and ev.targets  # the hostile values reach the tables
    meta = Meta(0.0, "0", "http://p:9090", "", 0.0, 600.0, [query.Query(hostile, "up", "")], [])
    charts = dict.fromkeys(("coverage.png", "findings.png", "expiry-timeline.png"), b"")
    page = report_html(ev, meta, charts).decode()
    assert "<script" not in page and '"onload' not in page
    escaped = "x&lt;script&gt;alert(1)&lt;/script&gt;&#34;onload=alert(2) y"
    assert page.count(escaped) >= 5  # target, coverage, inventory (CN, serial), method
