"""The SSH dashboard (grafana/dashboards/certscope-ssh.json): the same model checks as every
dashboard (tests/helpers/grafana.py), and every panel query returns data from a real
Prometheus that scraped a real certscope watching a real sshd and authorized_keys files.

The scenario gives each panel something to show: a weak sshd (broken and weak algorithms, a
1024-bit RSA host key) with a host certificate that expires in 10 days, and a host key that
is replaced while Prometheus watches (its ECDSA key); authorized keys of a departed person, of nobody known,
and one first seen two years ago (from the state file).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import grafana as td
from helpers.exporter import Exporter
from helpers.promserver import Prometheus
from helpers.sshservers import WEAK, HostKeys, OpenSSHServer, keygen

NAME = "certscope-ssh.json"
RULES = [*td.RULES, td.ROOT / "rules" / "certscope-ssh.yml"]


@pytest.fixture(scope="module")
def dash() -> dict[str, Any]:
    return td.load(NAME)


def test_model(dash: dict[str, Any]) -> None:
    assert dash["uid"] == "certscope-ssh"
    assert dash["schemaVersion"] >= 38
    assert dash["title"].strip() and dash["description"].strip()
    assert dash.get("id") is None
    assert "certscope" in dash["tags"]
    item = (NAME, dash)
    for check in td.MODEL_CHECKS:
        check(item)
    readme = (td.ROOT / "grafana" / "README.md").read_text()
    assert NAME in readme and dash["title"] in readme


def _authorized_keys(tmp: Path) -> tuple[Path, Path, Path]:
    home = tmp / "home"
    lines = []
    for person in ("bob", "eve", "ann"):
        keygen("-t", "ed25519", "-N", "", "-C", f"{person}@laptop", "-f", str(tmp / person))
        lines.append((tmp / f"{person}.pub").read_text().strip())
        d = home / person / ".ssh"
        d.mkdir(parents=True)
        (d / "authorized_keys").write_text(lines[-1] + "\n")
    people = tmp / "people.yml"
    people.write_text(
        "- {person: Bob, status: departed, keys: [bob@laptop]}\n"
        "- {person: Ann, status: active, keys: [ann@laptop]}\n"
    )
    # Ann's key has been there for two years: the state file says so
    ann_hex = hashlib.sha256(base64.b64decode(lines[2].split()[1])).hexdigest()
    state = tmp / "state.json"
    ann_path = home / "ann" / ".ssh" / "authorized_keys"
    state.write_text(
        json.dumps(
            {"version": 1, "first_seen": {f"{ann_path}\t{ann_hex}": time.time() - 730 * 86400}}
        )
    )
    return home, people, state


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("ssh-dashboard")
    with ExitStack() as stack:
        keys = HostKeys.generate(
            tmp / "keys", ("ed25519", "rsa1024", "ecdsa"), certify=("ed25519",), validity="-1d:+10d"
        )
        sshd = stack.enter_context(OpenSSHServer(tmp, keys, WEAK))
        home, people, state = _authorized_keys(tmp)
        config = {
            "targets": [
                {
                    "address": sshd.address,
                    "protocol": "ssh",
                    "name": "bastion",
                    "interval": "2s",
                    "timeout": "1s",
                    "labels": {"owner": "platform", "environment": "prod"},
                }
            ],
            "sources": [
                {
                    "name": "bastion-keys",
                    "kind": "ssh_authorized_keys",
                    "interval": "1s",
                    "paths": [str(home / "*/.ssh/authorized_keys")],
                    "people": str(people),
                    "state_file": str(state),
                    "labels": {"environment": "prod"},
                }
            ],
        }
        cfg = tmp / "certscope.yml"
        cfg.write_text(yaml.safe_dump(config))
        exporter = stack.enter_context(Exporter(cfg, tmp / "exporter.log"))
        prom = stack.enter_context(Prometheus(tmp, [f"127.0.0.1:{exporter.port}"], RULES))
        prom.wait_for("certscope_ssh_host_key_info", lambda r: len(r) >= 3)
        # replace the ECDSA host key (same file, a new key); SIGHUP makes sshd load it
        old = prom.query('certscope_ssh_host_key_info{algorithm="ecdsa-sha2-nistp256"}')
        keys.keys["ecdsa"].unlink()
        Path(str(keys.keys["ecdsa"]) + ".pub").unlink()
        keygen("-t", "ecdsa", "-b", "256", "-N", "", "-f", str(keys.keys["ecdsa"]))
        sshd.reload()
        prom.wait_for(
            'count(max_over_time(certscope_ssh_host_key_info{algorithm="ecdsa-sha2-nistp256"}[1h]))',
            lambda r: bool(r) and float(r[0]["value"][1]) >= 2,
        )
        assert old
        prom.wait_for("count_over_time(up[1h])", lambda r: float(r[0]["value"][1]) >= 10)
        yield prom


def test_every_panel_query_returns_data(prom: Prometheus, dash: dict[str, Any]) -> None:
    for panel, target in td.queries(dash):
        result = td.instant(prom, target["expr"])
        assert result, f"{panel['title']}: no data for {td.substitute(target['expr'])}"
        if panel["type"] == "table":
            fields = td.table_fields(prom, panel)
            assert len(fields) > 2, panel["title"]


def test_variables_have_values(prom: Prometheus, dash: dict[str, Any]) -> None:
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = td.LABEL_VALUES_RE.match(td.variable_query(var))
        assert m is not None
        series = td.api_get(prom, "series", {"match[]": td.substitute(m.group(1))})
        assert {s[m.group(2)] for s in series if s.get(m.group(2))}, var["name"]


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("SSH servers reachable", 1),
        ("Servers offering broken algorithms", 1),
        ("Host keys changed in range", 1),
        ("Host certificates expiring in 30 days", 1),
        ("Authorized keys", 3),
        ("Keys of departed people", 1),
        ("Keys without a known owner", 1),
        ("Keys older than policy", 1),
    ],
)
def test_stats_match_the_scenario(
    prom: Prometheus, dash: dict[str, Any], title: str, expected: float
) -> None:
    (panel,) = [p for p in td.all_panels(dash) if p["title"] == title]
    (sample,) = td.instant(prom, panel["targets"][0]["expr"])
    assert float(sample["value"][1]) == expected


def test_host_key_alert_fires(prom: Prometheus) -> None:
    prom.wait_for(
        'ALERTS{alertname="CertscopeSSHHostKeyChanged",alertstate="firing"}',
        lambda r: len(r) == 1,
    )
    prom.wait_for(
        'ALERTS{alertname="CertscopeSSHKeyDepartedOwner",alertstate="firing"}',
        lambda r: len(r) == 1,
    )
