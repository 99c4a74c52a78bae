"""Probe cost benchmark: certscope (/probe and scheduler) against blackbox_exporter, and the
cost of rendering /metrics for 10,000 targets.

    .venv/bin/python bench/probe_bench.py [--endpoints N] [--probes M] [--quick]

What it does, all on loopback:

1. starts ``bench/fleet.py`` (N TLS endpoints plus one warm-up endpoint, in its own process);
2. ``/probe`` workload: for each exporter (certscope; blackbox_exporter with
   ``insecure_skip_verify``; blackbox_exporter verifying against the fleet's CA) a fresh
   process gets a few warm-up probes, then M probes (every endpoint in turn, M/N passes) with
   bounded client concurrency. CPU is the exporter process's utime+stime from
   ``/proc/PID/stat``; first pass (certificates never seen) and later passes are reported
   apart. Exporters alternate order across ``--repeat`` rounds; medians are reported;
3. scheduler workload: certscope with all N endpoints as targets, once per ``--interval``
   (default 10s and 2s); CPU per probe over a steady ``--window``, probes counted with
   ``certscope_probe_runs_total``;
4. ``/metrics`` for ``--render-targets`` (10,000) synthetic results: ``Exposition.render``
   timed in-process (cold, then after 1%, 10% and 50% of the results were replaced, then
   unchanged), and real HTTP GETs against certscope's app serving the same results
   (``bench/metrics_app.py``).

``--profile`` adds a /probe and a scheduler session run under cProfile with a CPU-time
clock (``bench/cpu_profile.py``) and reports the top functions. Prints a summary table and
writes JSON (and profiles) to ``bench/results/``. All processes it starts are its own and
are stopped on exit; everything listens on 127.0.0.1.

This module is the runner (options, phases, the report); the work is in ``probe_procs.py``
(processes, their CPU and memory), ``probe_exporters.py`` (command lines and configs),
``probe_passes.py`` (the /probe and scheduler workloads), ``probe_render.py`` (/metrics) and
``probe_summary.py`` (medians, ratios, targets, the printed summary, cProfile hotspots).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

import _harness
from certscope import __version__ as certscope_version
from probe_exporters import (
    BENCH_DIR,
    BLACKBOX,
    CERTSCOPE,
    Exporter,
    Setup,
    blackbox_version,
    write_blackbox_config,
    write_certscope_probe_config,
)
from probe_passes import probe_session, scheduler_session
from probe_procs import Procs, read_json_line
from probe_render import render_http, render_inprocess, render_scale
from probe_summary import print_summary, profile_report, summarise

ROOT = _harness.ROOT


# --- machine ------------------------------------------------------------------------------------


def loadavg() -> list[str]:
    with open("/proc/loadavg") as fh:
        return fh.read().split()[:3]


def _git(*argv: str) -> str:
    """stdout of a git command in the repository, "" when git fails."""
    with contextlib.suppress(Exception):
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout
    return ""


def machine() -> dict[str, Any]:
    """What the figures depend on: the machine, the TLS libraries, and which certscope code."""
    base = _harness.machine()
    try:
        from OpenSSL import SSL

        pyopenssl = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()
    except Exception:
        pyopenssl = ""
    status = _git("status", "--porcelain", "--", "exporter")
    return {
        "nproc": base["cpus"],
        "cpu_model": base["cpu_model"],
        "kernel": base["kernel"],
        "python": base["python"],
        "ssl_module_openssl": ssl.OPENSSL_VERSION,
        "pyopenssl_openssl": pyopenssl,
        "certscope": certscope_version,
        "git_commit": _git("rev-parse", "--short", "HEAD").strip(),
        "exporter_files_uncommitted": [line[3:] for line in status.splitlines()],
        "loadavg_start": loadavg(),
    }


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="certscope probe and /metrics benchmark (loopback only)."
    )
    p.add_argument("--endpoints", type=int, help="TLS endpoints in the fleet (default 500)")
    p.add_argument(
        "--probes", type=int, help="/probe requests per exporter (default 2 x endpoints)"
    )
    p.add_argument("--quick", action="store_true", help="small sizes, about one minute")
    p.add_argument("--concurrency", type=int, default=16, help="client concurrency for /probe")
    p.add_argument(
        "--sweep",
        default=None,
        help="extra client concurrencies, one steady-state pass each (default 1,4,64; '' for none)",
    )
    p.add_argument("--repeat", type=int, help="alternating rounds per exporter (default 5)")
    p.add_argument("--warmup", type=int, default=20, help="unmeasured probes per exporter process")
    p.add_argument(
        "--interval",
        help="scheduler interval(s) in seconds, comma-separated, one run each (default 10,2)",
    )
    p.add_argument("--window", type=float, help="scheduler measuring window, seconds (default 60)")
    p.add_argument("--settle", type=float, help="wait after the first round (default: interval)")
    p.add_argument("--sched-concurrency", type=int, default=64)
    p.add_argument(
        "--sched-enumerate",
        action="store_true",
        help="leave cipher enumeration at certscope's default (its CPU is then charged to probes)",
    )
    p.add_argument("--scrapes", type=int, default=5, help="GET /metrics after the window")
    p.add_argument("--render-targets", type=int, default=10_000)
    p.add_argument("--render-rounds", type=int, help="cold renders (default 3)")
    p.add_argument(
        "--render-scale",
        help="target counts for the cold-render growth check (default 1000,10000,50000; '' none)",
    )
    p.add_argument("--key-type", choices=["rsa", "ecdsa"], default="rsa")
    p.add_argument("--blackbox", default=shutil.which("prometheus-blackbox-exporter") or "")
    p.add_argument("--skip", action="append", default=[], choices=["probe", "scheduler", "render"])
    p.add_argument(
        "--profile",
        action="store_true",
        help="also run certscope under cProfile (/probe and scheduler) and report hotspots",
    )
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = p.parse_args(argv)
    quick = args.quick
    args.endpoints = args.endpoints or (200 if quick else 500)
    args.probes = args.probes or 2 * args.endpoints
    args.repeat = args.repeat or (2 if quick else 5)
    args.intervals = [float(v) for v in (args.interval or ("5" if quick else "10,2")).split(",")]
    args.window = args.window or (15.0 if quick else 60.0)
    args.render_rounds = args.render_rounds or (1 if quick else 3)
    scale = (
        ("1000,10000" if quick else "1000,10000,50000")
        if args.render_scale is None
        else args.render_scale
    )
    args.render_scale = [int(n) for n in scale.split(",") if n.strip()]
    sweep = ("1,64" if quick else "1,4,64") if args.sweep is None else args.sweep
    args.sweep = [int(c) for c in sweep.split(",") if c.strip()]
    if args.probes < 1 or args.endpoints < 1:
        p.error("--endpoints and --probes must be positive")
    return args


async def start_fleet(procs: Procs, args: argparse.Namespace, workdir: Path) -> Setup:
    """The fleet (N measured endpoints and one for warm-up) and the exporters' config files."""
    t = time.perf_counter()
    fleet = procs.start(
        "fleet",
        [
            sys.executable,
            str(BENCH_DIR / "fleet.py"),
            "--endpoints",
            str(args.endpoints + 1),
            "--dir",
            str(workdir / "pki"),
            "--key-type",
            args.key_type,
        ],
        stdout=subprocess.PIPE,
    )
    info = await read_json_line(fleet, 300)
    ports: list[int] = info["ports"]
    setup = Setup(
        workdir=workdir,
        ports=ports[:-1],
        warm_port=ports[-1],
        ca_file=info["ca_file"],
        fleet_pid=fleet.pid,
        cs_probe_config=workdir / "certscope-probe.yml",
        bb_config=workdir / "blackbox.yml",
    )
    log(f"fleet: {len(ports)} endpoints up in {time.perf_counter() - t:.1f}s (pid {fleet.pid})")
    write_certscope_probe_config(setup.cs_probe_config, setup.ca_file)
    write_blackbox_config(setup.bb_config, setup.ca_file)
    return setup


async def run_phases(
    procs: Procs, args: argparse.Namespace, setup: Setup, report: dict[str, Any]
) -> None:
    """Every phase not in ``--skip``, in order; one failing phase does not stop the others."""
    exporters = [CERTSCOPE]
    if args.blackbox:
        exporters += BLACKBOX
    else:
        log("blackbox_exporter not found: certscope only (use --blackbox PATH)")
    conn = aiohttp.TCPConnector(limit=max(args.concurrency, 8), force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        if "probe" not in args.skip:
            await guarded(
                report, "probe", probe_phase(procs, session, exporters, args, setup, report)
            )
        if "scheduler" not in args.skip:
            report["scheduler_runs"] = []
            for interval in args.intervals:
                await guarded(
                    report,
                    f"scheduler every {interval:g}s",
                    scheduler_phase(procs, session, args, setup, interval, report),
                )
            if report["scheduler_runs"]:
                report["scheduler"] = report["scheduler_runs"][0]
        if "render" not in args.skip:
            await guarded(report, "render", render_phase(procs, session, args, setup, report))
        if args.profile:
            await guarded(report, "profile", run_profiles(procs, session, args, setup, report))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="certscope-bench-"))
    procs = Procs(workdir)
    report: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine(),
        "probe_sessions": [],
        "profiles": [],
    }
    if args.blackbox:
        report["machine"]["blackbox_exporter"] = blackbox_version(args.blackbox)
    try:
        setup = await start_fleet(procs, args, workdir)
        await run_phases(procs, args, setup, report)
        report["machine"]["loadavg_end"] = loadavg()
        report["summary"] = summarise(report)
        return report
    finally:
        procs.stop_all()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def guarded(report: dict[str, Any], phase: str, work: Awaitable[None]) -> None:
    """Run one phase; a failure is recorded and logged, and the other phases still run."""
    try:
        await work
    except Exception as exc:
        log(f"{phase} FAILED: {type(exc).__name__}: {exc}")
        report.setdefault("errors", []).append({"phase": phase, "error": f"{exc}"[:4000]})


async def probe_phase(
    procs: Procs,
    session: aiohttp.ClientSession,
    exporters: Sequence[Exporter],
    args: argparse.Namespace,
    setup: Setup,
    report: dict[str, Any],
) -> None:
    for rnd in range(args.repeat):
        order = list(exporters) if rnd % 2 == 0 else list(exporters)[::-1]
        for exp in order:
            t = time.perf_counter()
            res = await probe_session(procs, session, exp, args, setup)
            res["round"] = rnd
            report["probe_sessions"].append(res)
            log(
                f"/probe round {rnd} {exp.key}: "
                f"{res['total']['cpu_ms_per_probe']:.3f} CPU ms/probe, "
                f"{res['total']['probes_per_second']} probes/s, "
                f"ok {res['total']['ok']}/{res['total']['probes']} "
                f"({time.perf_counter() - t:.1f}s)"
            )


async def scheduler_phase(
    procs: Procs,
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    setup: Setup,
    interval: float,
    report: dict[str, Any],
) -> None:
    t = time.perf_counter()
    res = await scheduler_session(procs, session, args, setup, interval)
    report["scheduler_runs"].append(res)
    log(
        f"scheduler every {interval:g}s: {res['cpu_ms_per_probe']} CPU ms/probe "
        f"({time.perf_counter() - t:.1f}s)"
    )


async def render_phase(
    procs: Procs,
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    setup: Setup,
    report: dict[str, Any],
) -> None:
    t = time.perf_counter()
    report["render_inprocess"] = await render_inprocess(args, setup)
    log(f"render in-process done ({time.perf_counter() - t:.1f}s)")
    t = time.perf_counter()
    report["render_http"] = await render_http(procs, session, args, setup)
    log(f"render over HTTP done ({time.perf_counter() - t:.1f}s)")
    if args.render_scale:
        t = time.perf_counter()
        report["render_scale"] = await render_scale(args, setup)
        log(f"render by size done ({time.perf_counter() - t:.1f}s)")


async def run_profiles(
    procs: Procs,
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    setup: Setup,
    report: dict[str, Any],
) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    prof = args.out / f"profile-probe-{stamp}.prof"
    await probe_session(procs, session, CERTSCOPE, args, setup, profile=prof)
    text = args.out / f"profile-probe-{stamp}.txt"
    report["profiles"].append(
        {"workload": "/probe", "text": str(text), **profile_report(prof, text)}
    )
    prof = args.out / f"profile-scheduler-{stamp}.prof"
    await scheduler_session(procs, session, args, setup, args.intervals[0], profile=prof)
    text = args.out / f"profile-scheduler-{stamp}.txt"
    report["profiles"].append(
        {"workload": "scheduler", "text": str(text), **profile_report(prof, text)}
    )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = asyncio.run(run(args))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"probe-bench-{'quick-' if args.quick else ''}{stamp}.json"
    (args.out / name).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print_summary(report)
    print(f"\nJSON: {args.out / name}")
    return 1 if report.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
