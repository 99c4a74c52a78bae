"""End to end: a real Prometheus loads rules/, scrapes a real certscope that probes real TLS
servers with certificates at known distances from expiry, and fires exactly the expected
alert and window per server."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

from helpers.exporter import Exporter
from helpers.pki import TestPKI
from helpers.promserver import Prometheus
from helpers.servers import tls_server

ROOT = Path(__file__).resolve().parent.parent
RULES = [ROOT / "rules" / "certscope-alerts.yml", ROOT / "rules" / "certscope-recording.yml"]

EXPECTED = {
    "d5": ("CertscopeCertificateExpiring", "7d"),
    "d12": ("CertscopeCertificateExpiring", "14d"),
    "d25": ("CertscopeCertificateExpiring", "30d"),
    "d45": ("CertscopeCertificateExpiring", "60d"),
    "d90": None,
    "expired": ("CertscopeCertificateExpired", None),
}
DAYS = {"d5": 5, "d12": 12, "d25": 25, "d45": 45, "d90": 90, "expired": -3}


def test_expiry_alerts_fire_per_window(pki: TestPKI, tmp_path: Path) -> None:
    with ExitStack() as stack:
        lines = []
        for name, days in DAYS.items():
            leaf = pki.leaf(f"{name}.test", days_left=days)
            srv = stack.enter_context(tls_server(leaf.chain, leaf.key))
            lines.append(
                f"  - {{address: {srv.address}, name: {name}, sni: {name}.test, "
                f"ca_file: {pki.ca_file}, labels: {{owner: team-{name}}}}}"
            )
        cfg = tmp_path / "certscope.yml"
        cfg.write_text(
            "defaults: {enumerate: false, interval: 1m}\ntargets:\n" + "\n".join(lines) + "\n"
        )
        exporter = stack.enter_context(Exporter(cfg, tmp_path / "exporter.log"))
        port = exporter.port
        prom = stack.enter_context(Prometheus(tmp_path, [f"127.0.0.1:{port}"], RULES))
        want = {k: v for k, v in EXPECTED.items() if v is not None}
        alerts = prom.wait_for(
            'ALERTS{alertstate="firing", alertname=~"CertscopeCertificateExp.*"}',
            lambda r: {a["metric"].get("source") for a in r} >= set(want),
        )
        time.sleep(2)  # a few more evaluations: nothing else may show up, nothing may move
        alerts = prom.query('ALERTS{alertstate="firing", alertname=~"CertscopeCertificateExp.*"}')
        leaf_alerts = [a["metric"] for a in alerts if a["metric"].get("chain_position") == "0"]
        got = {(m["source"], m["alertname"], m.get("window")) for m in leaf_alerts}
        assert got == {(src, name, window) for src, (name, window) in want.items()}
        # exactly one alert per certificate, and the intermediates (years left) fire none
        assert len(leaf_alerts) == len(want)
        assert all(a["metric"].get("chain_position") == "0" for a in alerts)
        by_source = {m["source"]: m for m in leaf_alerts}
        assert by_source["d5"]["severity"] == "critical"
        assert by_source["d45"]["severity"] == "info"
        assert by_source["d12"]["owner"] == "team-d12"
        assert by_source["d12"]["soc2_control"]
        left = prom.query('certscope:cert_expiry_days_left{source="d25", chain_position="0"}')
        assert len(left) == 1 and 24 < float(left[0]["value"][1]) <= 25
