"""Walk benchmark: a tree of 10,000 PEM files in 1,000 directories,
and the same tree (hard links to the same files) with 1,000 directory symlinks added (every other
directory holds ``up -> ..``, the others ``peer -> ../d<next>``). Each of ``plain``,
``symlinks`` (default ``follow_symlinks: false``) and ``symlinks-followed`` (``follow_symlinks:
true``: each directory entered once) runs ``--repeats`` times, interleaved, in a fresh
child process that measures the walk alone (``walk.expand``), one full ``FilesReader.refresh``
(walk, read, parse) in CPU seconds of all threads (wall time is recorded too, but on a shared
machine it mostly measures the neighbours) and peak RSS (``VmHWM``). Medians are compared with
``plain`` (target: within 20 %); the JSON goes to ``bench/results/walk-bench-<UTC time>.json``.

    .venv/bin/python bench/walk_bench.py [--repeats N]
    .venv/bin/python bench/store_bench.py --walk [--walk-repeats N]   # the same
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import ROOT, cpu_self, machine, proc_status, write_report
from bench_pki import Issuer

SCRIPT = str(Path(__file__).resolve())
WALK_DIRS = 1000
WALK_FILES_PER_DIR = 10


def walk_child(cfg: dict[str, Any]) -> None:
    """One measurement in a fresh process: the walk alone, then a full refresh."""

    from certscope.config import FilesSource
    from certscope.sources import walk
    from certscope.sources.files import FilesReader

    source = FilesSource(
        name="bench", paths=(cfg["pattern"],), follow_symlinks=cfg["follow"], timeout=600.0
    )
    limits = walk.Limits(source.max_files, time.monotonic() + 600, source.follow_symlinks)
    # CPU seconds (all threads) are compared: on a shared machine wall time mostly measures
    # the neighbours. Wall time is recorded too.
    t0, c0 = time.perf_counter(), cpu_self()
    walked = walk.expand(source.paths, (), limits)
    walk_s, walk_cpu = time.perf_counter() - t0, cpu_self() - c0
    t0, c0 = time.perf_counter(), cpu_self()
    result = asyncio.run(FilesReader(source).refresh(None))
    refresh_s, refresh_cpu = time.perf_counter() - t0, cpu_self() - c0
    out = {
        "walk_s": walk_s,
        "refresh_s": refresh_s,
        "walk_cpu_s": walk_cpu,
        "refresh_cpu_s": refresh_cpu,
        "files": len(walked.files),
        "certs": len(result.certs),
        "errors": len(result.errors),
        "peak_rss_mib": proc_status()["VmHWM"],
    }
    print(json.dumps(out))


def build_walk_trees(root: Path) -> tuple[Path, Path]:
    """``plain``: 1,000 directories of 10 PEM files; ``linked``: the same files (hard links)
    plus one directory symlink per directory."""
    issuer = Issuer()
    plain, linked = root / "plain", root / "linked"
    for d in range(WALK_DIRS):
        (plain / f"d{d}").mkdir(parents=True)
        (linked / f"d{d}").mkdir(parents=True)
        for f in range(WALK_FILES_PER_DIR):
            name = f"d{d}/c{f}.pem"
            (plain / name).write_bytes(issuer.leaf(f"h{d}-{f}.bench.test", 90))
            os.link(plain / name, linked / name)
        if d % 2:
            (linked / f"d{d}" / "up").symlink_to("..")
        else:
            (linked / f"d{d}" / "peer").symlink_to(f"../d{(d + 1) % WALK_DIRS}")
    return plain, linked


def run_walk(repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="certscope-walk-bench-") as tmp:
        t0 = time.perf_counter()
        plain, linked = build_walk_trees(Path(tmp))
        build_s = time.perf_counter() - t0
        cases = {
            "plain": {"pattern": f"{plain}/**/*.pem", "follow": False},
            "symlinks": {"pattern": f"{linked}/**/*.pem", "follow": False},
            "symlinks-followed": {"pattern": f"{linked}/**/*.pem", "follow": True},
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
        for _ in range(repeats):
            for name, cfg in cases.items():
                done = subprocess.run(
                    [sys.executable, SCRIPT, "--child", json.dumps(cfg)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[name].append(json.loads(done.stdout))
    medians = {
        name: {
            key: statistics.median(r[key] for r in rs)
            for key in (
                "walk_s",
                "refresh_s",
                "walk_cpu_s",
                "refresh_cpu_s",
                "peak_rss_mib",
                "files",
                "certs",
                "errors",
            )
        }
        for name, rs in runs.items()
    }
    base = medians["plain"]
    ratios = {
        name: {key: m[key] / base[key] for key in ("walk_cpu_s", "refresh_cpu_s", "peak_rss_mib")}
        for name, m in medians.items()
    }
    return {
        "machine": machine(),
        "tree": {"dirs": WALK_DIRS, "files": WALK_DIRS * WALK_FILES_PER_DIR, "symlinks": WALK_DIRS},
        "build_s": build_s,
        "repeats": repeats,
        "runs": runs,
        "medians": medians,
        "ratios": ratios,
    }


def main_walk(repeats: int) -> None:
    report = run_walk(repeats)
    print(
        f"certscope walk benchmark: {report['tree']['files']} files in {report['tree']['dirs']}"
        f" directories, +{report['tree']['symlinks']} directory symlinks; median of {repeats},"
        f" {report['machine']['cpus']} CPUs, Python {report['machine']['python']}"
    )
    print(
        f"{'case':<18} {'files':>6} {'walk CPU s':>11} {'refresh CPU s':>14} {'peak RSS MiB':>13}"
        f" {'(wall: walk / refresh s)':>25}  ratios to plain"
    )
    for name, m in report["medians"].items():
        r = report["ratios"][name]
        print(
            f"{name:<18} {m['files']:>6.0f} {m['walk_cpu_s']:>11.3f} {m['refresh_cpu_s']:>14.2f}"
            f" {m['peak_rss_mib']:>13.1f} {m['walk_s']:>14.3f} / {m['refresh_s']:>6.2f}"
            f"  walk {r['walk_cpu_s']:.2f} refresh {r['refresh_cpu_s']:.2f}"
            f" rss {r['peak_rss_mib']:.2f}"
        )
    path = write_report("walk-bench", report)
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.child:
        walk_child(json.loads(args.child))
        return
    main_walk(args.repeats)


if __name__ == "__main__":
    main()
