"""Checks for the Prometheus alert pack in rules/.

Runs the upstream tools (promtool, amtool) on the pack and checks the mixin
conventions by reading the YAML:

- every alert is named ``Certscope<CamelCase>``, has a ``severity`` of
  critical/warning/info, a ``soc2_control`` label, a static ``summary``, a
  ``description`` and a ``runbook_url`` whose anchor is a heading of
  docs/runbooks.md;
- every alert has a promtool unit test where it fires and one where it does not;
- every exporter metric the pack uses is documented in docs/metrics.md.

promtool and amtool must be on PATH (``make test`` installs them). A missing
tool fails the test instead of skipping it: a skipped rules check would let a
broken pack through CI unnoticed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RULES_DIR = REPO / "rules"
TESTS_DIR = RULES_DIR / "tests"
ALERTMANAGER_CONFIG = RULES_DIR / "alertmanager.example.yml"
RUNBOOKS = REPO / "docs" / "runbooks.md"
METRICS_DOC = REPO / "docs" / "metrics.md"

RUNBOOK_BASE = "https://github.com/certscope/certscope/blob/main/docs/runbooks.md#"
SEVERITIES = {"critical", "warning", "info"}
ALERT_NAME = re.compile(r"^Certscope[A-Z][A-Za-z0-9]*$")
SOC2_CONTROL = re.compile(r"^CC[1-9]\.[0-9]+$")
# An exporter metric: certscope_ not preceded by a name character, so that
# recorded series (certscope:...) and label values are not mistaken for one.
METRIC = re.compile(r"(?<![A-Za-z0-9_:])certscope_[a-z0-9_]+")

# The expiry windows required by the issue, and their severities.
EXPIRY_WINDOWS = {"60d": "info", "30d": "warning", "14d": "warning", "7d": "critical"}


def rule_files() -> list[Path]:
    """rules/*.yml except the Alertmanager example, which is not a rule file."""
    return sorted(p for p in RULES_DIR.glob("*.yml") if not p.name.startswith("alertmanager"))


def unit_test_files() -> list[Path]:
    return sorted(TESTS_DIR.glob("*.yml"))


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def rules() -> Iterator[dict[str, Any]]:
    for path in rule_files():
        for group in load_yaml(path)["groups"]:
            yield from group["rules"]


def alerts() -> list[dict[str, Any]]:
    return [r for r in rules() if "alert" in r]


def recordings() -> list[dict[str, Any]]:
    return [r for r in rules() if "record" in r]


def alert_id(rule: dict[str, Any]) -> str:
    window = rule.get("labels", {}).get("window")
    return f"{rule['alert']}[{window}]" if window else str(rule["alert"])


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not found on PATH. It is required to check the alert pack; "
            f"`make test` installs it (Debian: apt-get install "
            f"{'prometheus' if name == 'promtool' else 'prometheus-alertmanager'}).",
            pytrace=False,
        )
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (
        f"`{' '.join(map(str, result.args))}` exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )


@pytest.fixture(scope="module")
def promtool() -> str:
    return find_tool("promtool")


@pytest.fixture(scope="module")
def amtool() -> str:
    return find_tool("amtool")


# --------------------------------------------------------------------------
# Upstream tools


def test_pack_files_exist() -> None:
    assert rule_files(), "no rule files in rules/"
    assert unit_test_files(), "no promtool unit tests in rules/tests/"
    assert ALERTMANAGER_CONFIG.is_file()


def test_promtool_check_rules(promtool: str) -> None:
    assert_ok(run(promtool, "check", "rules", *map(str, rule_files())))


def test_promtool_unit_tests(promtool: str) -> None:
    assert_ok(run(promtool, "test", "rules", *map(str, unit_test_files())))


def test_amtool_check_config(amtool: str) -> None:
    assert_ok(run(amtool, "check-config", str(ALERTMANAGER_CONFIG)))


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (
            {"alertname": "CertscopeCertificateExpiring", "window": "60d", "severity": "info"},
            "certscope-digest",
        ),
        (
            {"alertname": "CertscopeCertificateExpiring", "window": "30d", "severity": "warning"},
            "certscope-tickets",
        ),
        (
            {"alertname": "CertscopeCertificateExpiring", "window": "14d", "severity": "warning"},
            "certscope-tickets",
        ),
        (
            {"alertname": "CertscopeCertificateExpiring", "window": "7d", "severity": "critical"},
            "certscope-paging",
        ),
        ({"alertname": "CertscopeCertificateExpired", "severity": "critical"}, "certscope-paging"),
        (
            {"alertname": "CertscopeCertificateRenewalStalled", "severity": "warning"},
            "certscope-tickets",
        ),
        ({"alertname": "CertscopeExporterAbsent", "severity": "critical"}, "certscope-paging"),
        ({"alertname": "CertscopeProbeFailing", "severity": "warning"}, "certscope-tickets"),
        ({"alertname": "CertscopeWeakCipherSuiteAccepted", "severity": "info"}, "certscope-digest"),
    ],
    ids=lambda v: "-".join(v.values()) if isinstance(v, dict) else v,
)
def test_alertmanager_routing(amtool: str, labels: dict[str, str], receiver: str) -> None:
    assert_ok(
        run(
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--verify.receivers={receiver}",
            *(f"{k}={v}" for k, v in labels.items()),
        )
    )


# --------------------------------------------------------------------------
# Conventions


@pytest.mark.parametrize("rule", alerts(), ids=alert_id)
def test_alert_conventions(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    labels = rule.get("labels", {})
    annotations = rule.get("annotations", {})
    assert ALERT_NAME.match(name), f"{name}: not CamelCase with the Certscope prefix"
    assert labels.get("severity") in SEVERITIES, f"{name}: severity must be one of {SEVERITIES}"
    assert SOC2_CONTROL.match(str(labels.get("soc2_control", ""))), (
        f"{name}: soc2_control label missing or not a criterion such as CC6.1"
    )
    summary = str(annotations.get("summary", "")).strip()
    assert summary, f"{name}: summary annotation missing"
    assert "{{" not in summary, f"{name}: summary must be a static sentence"
    assert str(annotations.get("description", "")).strip(), f"{name}: description missing"
    assert str(annotations.get("runbook_url", "")).startswith(RUNBOOK_BASE), (
        f"{name}: runbook_url must start with {RUNBOOK_BASE}"
    )


def test_expiry_windows() -> None:
    windows = {
        r["labels"].get("window"): r["labels"]["severity"]
        for r in alerts()
        if r["alert"] == "CertscopeCertificateExpiring"
    }
    assert windows == EXPIRY_WINDOWS


def github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub generates for the headings of a Markdown document."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_fence or not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_runbook_anchors_exist() -> None:
    assert RUNBOOKS.is_file(), f"{RUNBOOKS.relative_to(REPO)} is missing"
    anchors = github_anchors(RUNBOOKS.read_text(encoding="utf-8"))
    missing = sorted(
        {
            f"{r['alert']}: #{r['annotations']['runbook_url'].removeprefix(RUNBOOK_BASE)}"
            for r in alerts()
            if r["annotations"]["runbook_url"].removeprefix(RUNBOOK_BASE) not in anchors
        }
    )
    assert not missing, "runbook_url anchors without a heading in docs/runbooks.md:\n" + "\n".join(
        missing
    )


def alert_rule_tests() -> Iterator[dict[str, Any]]:
    for path in unit_test_files():
        for group in load_yaml(path)["tests"]:
            yield from group.get("alert_rule_test", [])


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in alert_rule_tests():
        (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {r["alert"] for r in alerts()}
    assert not names - fired, f"alerts never tested firing: {sorted(names - fired)}"
    assert not names - quiet, f"alerts never tested not firing: {sorted(names - quiet)}"
    windows_fired = {
        alert["exp_labels"].get("window")
        for case in alert_rule_tests()
        if case["alertname"] == "CertscopeCertificateExpiring"
        for alert in case.get("exp_alerts") or []
    }
    assert windows_fired >= set(EXPIRY_WINDOWS), "every expiry window must be tested firing"


def test_every_recording_rule_is_used_or_tested() -> None:
    """A recorded series feeds an alert or another rule, or has a unit test."""
    texts = [str(r["expr"]) for r in rules()]
    for path in unit_test_files():
        for group in load_yaml(path)["tests"]:
            texts += [str(case["expr"]) for case in group.get("promql_expr_test", [])]
    corpus = "\n".join(texts)
    unused = sorted(
        name
        for name in {str(r["record"]) for r in recordings()}
        if not re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", corpus)
    )
    assert not unused, f"recording rules neither used nor unit-tested: {unused}"


def metrics_used() -> set[str]:
    """Exporter metrics named in expressions and annotation queries."""
    texts: list[str] = []
    for rule in rules():
        texts.append(str(rule["expr"]))
        texts += [str(v) for v in rule.get("annotations", {}).values()]
    return set(METRIC.findall("\n".join(texts)))


def test_metrics_are_documented() -> None:
    """Every certscope_* metric the pack uses appears in docs/metrics.md."""
    used = metrics_used()
    assert used, "no certscope_* metric found in the rules"
    assert METRICS_DOC.is_file(), (
        f"{METRICS_DOC.relative_to(REPO)} is missing; the pack uses: {sorted(used)}"
    )
    documented = set(METRIC.findall(METRICS_DOC.read_text(encoding="utf-8")))
    missing = sorted(used - documented)
    assert not missing, "metrics used by rules/ but not documented in docs/metrics.md:\n" + (
        "\n".join(missing)
    )
