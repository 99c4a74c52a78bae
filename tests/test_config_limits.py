"""Hostile configuration files: every one is a located problem, never a traceback or a hang."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certscope.config import (
    MAX_DURATION,
    MAX_PROBLEMS,
    MAX_YAML_DEPTH,
    MIN_ENUMERATE_INTERVAL,
    MIN_INTERVAL,
    format_duration,
    parse_config,
    parse_duration,
)
from certscope.errors import ConfigError

CERTSCOPE = [sys.executable, "-m", "certscope.cli"]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "test.yml")
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf", "1.0e+400", "9" * 400])
@pytest.mark.parametrize("key", ["interval", "timeout", "enumerate_interval"])
def test_non_finite_and_huge_durations_are_refused(key: str, value: str) -> None:
    found = problems(f"defaults: {{{key}: {value}}}\n")
    assert len(found) == 1 and found[0].startswith(f"defaults.{key}: ")


@pytest.mark.parametrize("value", [".nan", ".inf", "1.0e+400", "9" * 400])
def test_non_finite_numbers_are_refused(value: str) -> None:
    found = problems(f"scheduler: {{jitter: {value}, concurrency: {value}}}\n")
    assert sorted(found) == [
        "scheduler.concurrency: must be a number from 1 to 10000",
        "scheduler.jitter: must be a number from 0 to 1",
    ]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 10**400])
def test_parse_duration_refuses_non_finite_numbers(value: float) -> None:
    with pytest.raises(ValueError, match=r"finite|at most|positive"):
        parse_duration(value)


def test_target_timeout_nan_is_refused() -> None:
    found = problems("targets: [{address: 'a.test:443', timeout: .nan}]\n")
    assert found == ["targets[0].timeout: must be a finite number of seconds"]


@pytest.mark.parametrize(
    ("yaml_text", "where", "minimum"),
    [
        ("defaults: {interval: 500ms}", "defaults.interval", MIN_INTERVAL),
        ("targets: [{address: 'a.test:443', interval: 0.2}]", "targets[0].interval", MIN_INTERVAL),
        (
            "defaults: {enumerate_interval: 1ms}",
            "defaults.enumerate_interval",
            MIN_ENUMERATE_INTERVAL,
        ),
        (
            "targets: [{address: 'a.test:443', enumerate_interval: 59s}]",
            "targets[0].enumerate_interval",
            MIN_ENUMERATE_INTERVAL,
        ),
        ("defaults: {timeout: 10ms}", "defaults.timeout", 0.1),
    ],
)
def test_documented_minimums(yaml_text: str, where: str, minimum: float) -> None:
    assert problems(yaml_text + "\n") == [f"{where}: must be at least {format_duration(minimum)}"]


def test_minimums_themselves_are_accepted() -> None:
    cfg = parse_config(
        "defaults: {interval: 1s, timeout: 100ms, enumerate_interval: 1m}\n"
        "targets: [{address: 'a.test:443'}]\n",
        "t",
    )
    (t,) = cfg.targets
    assert (t.interval, t.tls.timeout, t.enumerate_interval) == (1, 0.1, 60)


@settings(deadline=50, max_examples=300)
@given(st.text(max_size=80))
def test_parse_duration_is_finite_positive_or_refused(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        message = str(exc)
        assert message
    else:
        assert math.isfinite(seconds) and 0 < seconds <= MAX_DURATION


@settings(deadline=50, max_examples=200)
@given(st.integers(0, 10**6), st.sampled_from(["ms", "s", "m", "h", "d", "w", "y"]))
def test_parse_duration_reads_every_unit(n: int, unit: str) -> None:
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    text = f"{n}{unit}"
    if n == 0:
        with pytest.raises(ValueError, match="positive"):
            parse_duration(text)
    elif n * scale[unit] > MAX_DURATION:
        with pytest.raises(ValueError, match="at most"):
            parse_duration(text)
    else:
        assert parse_duration(text) == pytest.approx(n * scale[unit])


def test_duplicate_keys_are_located_errors() -> None:
    text = (
        "probe:\n"
        "  allowed_targets: ['127.0.0.1:443']\n"
        "targets: []\n"
        "probe:\n"
        "  allowed_targets: ['*:*']\n"
        "defaults: {interval: 1m, interval: 2m}\n"
    )
    assert problems(text) == [
        "line 4, column 1: duplicate key 'probe' (first at line 1, column 1)",
        "line 6, column 26: duplicate key 'interval' (first at line 6, column 12)",
    ]


def test_merge_keys_may_be_overridden() -> None:
    text = (
        "x-common: &common {interval: 1m, timeout: 5s}\n"
        "targets:\n  - {<<: *common, address: 'a.test:443', interval: 2m}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "t")
    # x-common is an unknown key, but the override of a merged key is not a duplicate
    assert [p.message for p in info.value.problems] == ["unknown key"]


def test_deep_nesting_is_a_located_problem() -> None:
    text = "targets: " + "[" * 500 + "]" * 500 + "\n"
    started = time.perf_counter()
    found = problems(text)
    assert time.perf_counter() - started < 2
    assert found == [f"line 1, column {9 + MAX_YAML_DEPTH}: nested deeper than {MAX_YAML_DEPTH}"]
    # deeper still, libyaml (when present) stops first, also with a location
    (deeper,) = problems("targets: " + "[" * 5000 + "]" * 5000 + "\n")
    assert deeper.startswith("line 1, column ") and "nest" in deeper


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yml"
    big.write_bytes(b"# " + b"x" * (16 * 1024 * 1024) + b"\n")
    result = subprocess.run(
        [*CERTSCOPE, "check-config", str(big)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "larger than 16 MiB" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 5,000 digits: Python's int() refuses strings this long (ValueError, not a YAMLError)
        ("scheduler: {concurrency: " + "9" * 5000 + "}\n", "cannot load the configuration"),
        ("targets: " + "[" * 5000 + "]" * 5000 + "\n", "nest"),
        ("defaults: {interval: .nan}\n", "defaults.interval"),
    ],
)
def test_check_config_never_prints_a_traceback(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "c.yml"
    path.write_text(text)
    result = subprocess.run(
        [*CERTSCOPE, "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_probe_networks_and_concurrency_are_validated() -> None:
    found = problems(
        "probe:\n"
        "  allowed_networks: ['10.0.0.0/8', '10.0.0.1/8', 'nonsense']\n"
        "  max_concurrent: 0\n"
    )
    assert found[0].startswith("probe.allowed_networks[1]: is not a network")
    assert found[1].startswith("probe.allowed_networks[2]: is not a network")
    assert found[2] == "probe.max_concurrent: must be a number from 1 to 10000"
    cfg = parse_config("probe: {allowed_networks: ['10.0.0.0/8', '::1/128']}\n", "t")
    assert [str(n) for n in cfg.probe.allowed_networks] == ["10.0.0.0/8", "::1/128"]
    assert cfg.probe.max_concurrent == 32


def test_env_targets_with_hostile_names_are_refused_quickly() -> None:
    from certscope.config import default_config

    started = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        default_config({"CERTSCOPE_TARGETS": "a" * 40 + "-:443"})
    assert time.perf_counter() - started < 1
    assert "targets[0].address" in str(info.value)


def test_a_million_wrong_entries_cost_seconds_not_minutes() -> None:
    """Nodes are counted on the event stream; problems are listed up to a count."""
    started = time.perf_counter()
    (problem,) = problems("targets: [" + "1," * 600_000 + "1]\n")
    assert problem == "line 1, column 1000003: more than 500,000 YAML nodes"
    found = problems("targets: [" + "1," * 20_000 + "1]\n")
    assert len(found) == MAX_PROBLEMS + 1
    assert found[-1] == f"and {20_001 - MAX_PROBLEMS} more problems"
    assert time.perf_counter() - started < 20  # measured: about 2 s
