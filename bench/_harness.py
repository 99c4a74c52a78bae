"""What every benchmark measures the same way: this process's memory and CPU, its children's CPU,
the machine it ran on, medians, and the JSON report under ``bench/results/``.

Light on purpose (standard library only): the benchmarks' child processes import it before
they measure their own start-up memory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def tests_on_path() -> None:
    """Make ``tests/helpers`` importable (``from helpers.pki import TestPKI``), as pytest does."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)


def proc_status() -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (peak resident) of this process in MiB."""
    out: dict[str, float] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(rest.split()[0]) / 1024
    return out


def cpu_self() -> float:
    """User + system CPU seconds of this process, all threads."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def cpu_children() -> float:
    """User + system CPU seconds of this process's finished and waited-for children."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def median_of(rounds: int, measure: Callable[[], float]) -> float:
    """The median of ``rounds`` calls of ``measure``."""
    return statistics.median(measure() for _ in range(rounds))


def machine() -> dict[str, Any]:
    """What a figure depends on: CPUs, CPU model, kernel, Python."""
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), ""
            )
    except OSError:
        pass  # not Linux: the model stays unknown
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def write_report(prefix: str, report: dict[str, Any]) -> Path:
    """``report`` as ``bench/results/<prefix>-<UTC time>.json``; returns the path."""
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{prefix}-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
