"""The exporters the probe benchmark compares: certscope and blackbox_exporter, their command
lines and their configuration files."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _harness import ROOT

BENCH_DIR = ROOT / "bench"
PROBE_TIMEOUT = "5s"


@dataclass(frozen=True, slots=True)
class Exporter:
    key: str  # certscope | blackbox | blackbox_verify
    label: str
    kind: str  # certscope | blackbox
    module: str = ""


@dataclass(frozen=True, slots=True)
class Setup:
    """What every session of a run works against: the fleet, and the exporters' config files."""

    workdir: Path
    ports: list[int]  # the measured endpoints
    warm_port: int  # warm-up only, so that warm-up never sees a measured certificate
    ca_file: str
    fleet_pid: int
    cs_probe_config: Path
    bb_config: Path


CERTSCOPE = Exporter("certscope", "certscope", "certscope")
BLACKBOX = (
    Exporter("blackbox", "blackbox (insecure_skip_verify)", "blackbox", "tcp_tls"),
    Exporter("blackbox_verify", "blackbox (ca_file)", "blackbox", "tcp_tls_verify"),
)


def certscope_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "certscope"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "certscope.cli"]


def certscope_argv(config: Path, port: int, profile: Path | None = None) -> list[str]:
    """``certscope serve`` on 127.0.0.1:``port``; under cProfile (a CPU clock) with ``profile``."""
    serve = [
        "serve",
        "--config.file",
        str(config),
        "--web.listen-address",
        f"127.0.0.1:{port}",
        "--log.level",
        "warning",
    ]
    if profile is not None:
        return [sys.executable, str(BENCH_DIR / "cpu_profile.py"), str(profile), *serve]
    return [*certscope_cmd(), *serve]


def blackbox_argv(binary: str, config: Path, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]


def blackbox_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout + out.stderr).splitlines()[0].strip() if out.stdout + out.stderr else ""


def write_certscope_probe_config(path: Path, ca_file: str) -> None:
    # JSON is YAML; the file is read by certscope's own loader.
    config = {
        "defaults": {"timeout": PROBE_TIMEOUT, "ca_file": ca_file},
        "probe": {"allowed_targets": ["127.0.0.1:*"], "timeout": PROBE_TIMEOUT},
    }
    path.write_text(json.dumps(config, indent=1))


def write_certscope_sched_config(
    path: Path,
    ca_file: str,
    ports: Sequence[int],
    interval: float,
    concurrency: int,
    enumerate_: bool,
) -> bool:
    """Write the scheduler config; returns whether enumeration was switched off in it."""
    defaults: dict[str, Any] = {
        "interval": f"{round(interval * 1000)}ms",
        # certscope requires timeout < interval; 5s unless the interval is shorter.
        "timeout": f"{round(min(5.0, interval / 2) * 1000)}ms",
        "ca_file": ca_file,
    }
    config = {
        "defaults": defaults,
        "scheduler": {"concurrency": concurrency},
        "targets": [{"address": f"127.0.0.1:{p}"} for p in ports],
    }
    if enumerate_:
        path.write_text(json.dumps(config, indent=1))
        return False
    # Cipher/protocol enumeration (where this certscope has it) is a separate, much rarer job
    # that would be charged to probes here: off, so the figure is CPU per probe. Versions
    # without the key reject it as unknown; then there is nothing to switch off.
    defaults["enumerate"] = False
    path.write_text(json.dumps(config, indent=1))
    check = subprocess.run(
        [*certscope_cmd(), "check-config", str(path)], capture_output=True, text=True, cwd=ROOT
    )
    if check.returncode != 0 and "enumerate" in check.stdout + check.stderr:
        del defaults["enumerate"]
        path.write_text(json.dumps(config, indent=1))
        return False
    return True


def write_blackbox_config(path: Path, ca_file: str) -> None:
    config = {
        "modules": {
            # What most blackbox deployments use for self-signed or private-CA endpoints.
            "tcp_tls": {
                "prober": "tcp",
                "timeout": PROBE_TIMEOUT,
                "tcp": {"tls": True, "tls_config": {"insecure_skip_verify": True}},
            },
            # The fairer comparison: blackbox verifies the chain too, against the fleet's CA.
            "tcp_tls_verify": {
                "prober": "tcp",
                "timeout": PROBE_TIMEOUT,
                "tcp": {"tls": True, "tls_config": {"ca_file": ca_file}},
            },
        }
    }
    path.write_text(json.dumps(config, indent=1))
