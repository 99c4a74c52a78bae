"""The probe benchmark's workloads against a running exporter: ``/probe`` passes over the fleet
(certscope or blackbox_exporter), and certscope's own scheduler over a steady window."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from probe_exporters import (
    Exporter,
    Setup,
    blackbox_argv,
    certscope_argv,
    write_certscope_sched_config,
)
from probe_procs import Procs, cpu_seconds, free_port, rss_mib, wait_http

# Sent as Prometheus sends it with every scrape: exporters may bound a probe's time by it.
SCRAPE_TIMEOUT_HEADER = {"X-Prometheus-Scrape-Timeout-Seconds": "10"}

_CS_OK = re.compile(r"^certscope_probe_success\{.*\} 1$", re.M)
_CS_VERIFIED = re.compile(r"^certscope_cert_verified\{.*\} 1$", re.M)
_BB_OK = re.compile(r"^probe_success 1$", re.M)
_RUNS = re.compile(r'^certscope_probe_runs_total\{result="(\w+)"\} ([0-9.e+]+)$', re.M)
_RENDER_SUM = re.compile(r"^certscope_metrics_render_duration_seconds_sum ([0-9.e+-]+)$", re.M)


# --- /probe workload ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PassStats:
    probes: int
    ok: int
    verified: int
    wall: float
    cpu: float
    fleet_cpu: float
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def cpu_per_probe(self) -> float:
        return self.cpu / self.probes if self.probes else float("nan")

    def as_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "probes": self.probes,
            "ok": self.ok,
            "verified": self.verified,
            "wall_seconds": round(self.wall, 4),
            "cpu_seconds": round(self.cpu, 3),
            "cpu_ms_per_probe": round(1000 * self.cpu_per_probe, 4),
            "probes_per_second": round(self.probes / self.wall, 1) if self.wall else None,
            "fleet_cpu_ms_per_probe": round(1000 * self.fleet_cpu / self.probes, 4)
            if self.probes
            else None,
            "latency_ms_p50": round(1000 * lat[len(lat) // 2], 2) if lat else None,
            "latency_ms_p99": round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2)
            if lat
            else None,
        }


async def run_pass(
    session: aiohttp.ClientSession,
    exporter: Exporter,
    base_url: str,
    ports: Sequence[int],
    concurrency: int,
    pid: int,
    fleet_pid: int,
) -> PassStats:
    """One ``/probe`` of each of ``ports``, ``concurrency`` at a time; CPU of the exporter
    process ``pid`` and of the fleet over the whole pass."""
    queue = list(ports)
    queue.reverse()
    latencies: list[float] = []
    ok = verified = 0
    ok_re = _CS_OK if exporter.kind == "certscope" else _BB_OK
    module = f"&module={exporter.module}" if exporter.module else ""

    async def worker() -> None:
        nonlocal ok, verified
        while queue:
            port = queue.pop()
            url = f"{base_url}/probe?target=127.0.0.1:{port}{module}"
            t0 = time.perf_counter()
            async with session.get(url, headers=SCRAPE_TIMEOUT_HEADER) as resp:
                body = await resp.text()
            latencies.append(time.perf_counter() - t0)
            if resp.status == 200 and ok_re.search(body):
                ok += 1
                if exporter.kind == "certscope" and _CS_VERIFIED.search(body):
                    verified += 1

    c0, f0, t0 = cpu_seconds(pid), cpu_seconds(fleet_pid), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - c0
    fleet_cpu = cpu_seconds(fleet_pid) - f0
    if exporter.kind == "blackbox":
        # blackbox has no verified series: its verifying module only succeeds on a valid chain.
        verified = ok if exporter.module == "tcp_tls_verify" else 0
    return PassStats(len(latencies), ok, verified, wall, cpu, fleet_cpu, latencies)


def combine(passes: Sequence[PassStats]) -> PassStats:
    return PassStats(
        probes=sum(p.probes for p in passes),
        ok=sum(p.ok for p in passes),
        verified=sum(p.verified for p in passes),
        wall=sum(p.wall for p in passes),
        cpu=sum(p.cpu for p in passes),
        fleet_cpu=sum(p.fleet_cpu for p in passes),
        latencies=[lat for p in passes for lat in p.latencies],
    )


async def _measured_passes(
    session: aiohttp.ClientSession,
    exporter: Exporter,
    base: str,
    pid: int,
    args: argparse.Namespace,
    setup: Setup,
) -> tuple[list[PassStats], dict[str, Any]]:
    """``--probes`` probes, every endpoint in turn (one pass each time round), then one pass
    at each ``--sweep`` concurrency with the certificates already known."""
    passes = []
    remaining = args.probes
    while remaining > 0:
        chunk = setup.ports[: min(remaining, len(setup.ports))]
        passes.append(
            await run_pass(session, exporter, base, chunk, args.concurrency, pid, setup.fleet_pid)
        )
        remaining -= len(chunk)
    sweep = {}
    for c in args.sweep:
        st = await run_pass(session, exporter, base, setup.ports, c, pid, setup.fleet_pid)
        sweep[str(c)] = st.as_dict()
    return passes, sweep


async def probe_session(
    procs: Procs,
    session: aiohttp.ClientSession,
    exporter: Exporter,
    args: argparse.Namespace,
    setup: Setup,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One fresh exporter process: warm up, then the measured passes."""
    port = free_port()
    if exporter.kind == "certscope":
        argv = certscope_argv(setup.cs_probe_config, port, profile)
    else:
        argv = blackbox_argv(args.blackbox, setup.bb_config, port)
    proc = procs.start(exporter.key, argv)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_http(session, proc, f"{base}/-/healthy")
        cpu_start = cpu_seconds(proc.pid)
        # Warm-up on an endpoint outside the measured set: imports, contexts, trust store.
        await run_pass(
            session,
            exporter,
            base,
            [setup.warm_port] * args.warmup,
            min(args.concurrency, args.warmup),
            proc.pid,
            setup.fleet_pid,
        )
        passes, sweep = await _measured_passes(session, exporter, base, proc.pid, args, setup)
        rss = rss_mib(proc.pid)
    finally:
        proc.stop(signal.SIGINT if profile else signal.SIGTERM, wait=30)
    total = combine(passes)
    later = combine(passes[1:]) if len(passes) > 1 else None
    return {
        "exporter": exporter.key,
        "concurrency": args.concurrency,
        "startup_cpu_seconds": round(cpu_start, 3),  # until /-/healthy, before warm-up
        "rss_mib_after": round(rss, 1),
        "total": total.as_dict(),
        "first_pass": passes[0].as_dict(),
        "later_passes": later.as_dict() if later else None,
        "sweep": sweep,
    }


# --- scheduler workload -------------------------------------------------------------------------


async def scrape(session: aiohttp.ClientSession, url: str) -> tuple[str, float]:
    t0 = time.perf_counter()
    async with session.get(url) as resp:
        body = await resp.text()
    if resp.status != 200:
        raise RuntimeError(f"GET {url}: HTTP {resp.status}: {body[:500]}")
    return body, time.perf_counter() - t0


def runs(body: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in _RUNS.finditer(body)}


@dataclass(frozen=True, slots=True)
class _Window:
    """What the scheduler did over the measuring window, and /metrics after it."""

    runs: dict[str, float]  # probes finished in the window, by result
    cpu: float
    fleet_cpu: float
    wall: float
    scrapes: list[float]
    metrics_bytes: int
    render_sum: float | None
    rss: float


async def _measure_window(
    session: aiohttp.ClientSession, base: str, pid: int, fleet_pid: int, args: argparse.Namespace
) -> _Window:
    body, _ = await scrape(session, f"{base}/metrics")
    r0, c0, f0, t0 = runs(body), cpu_seconds(pid), cpu_seconds(fleet_pid), time.perf_counter()
    await asyncio.sleep(args.window)
    c1, f1, t1 = cpu_seconds(pid), cpu_seconds(fleet_pid), time.perf_counter()
    body, _ = await scrape(session, f"{base}/metrics")
    r1 = runs(body)
    scrapes = []
    size = 0
    for _ in range(args.scrapes):
        body, seconds = await scrape(session, f"{base}/metrics")
        scrapes.append(seconds)
        size = len(body.encode())
    render_sum = _RENDER_SUM.search(body)
    return _Window(
        runs={k: r1.get(k, 0) - r0.get(k, 0) for k in ("success", "failure")},
        cpu=c1 - c0,
        fleet_cpu=f1 - f0,
        wall=t1 - t0,
        scrapes=scrapes,
        metrics_bytes=size,
        render_sum=float(render_sum.group(1)) if render_sum else None,
        rss=rss_mib(pid),
    )


async def scheduler_session(
    procs: Procs,
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    setup: Setup,
    interval: float,
    profile: Path | None = None,
) -> dict[str, Any]:
    """certscope probing every endpoint once per ``interval``: CPU per probe over ``--window``
    after the first round and one more interval (or ``--settle``)."""
    port = free_port()
    config = setup.workdir / "certscope-sched.yml"
    enumeration_off = write_certscope_sched_config(
        config, setup.ca_file, setup.ports, interval, args.sched_concurrency, args.sched_enumerate
    )
    proc = procs.start("certscope-sched", certscope_argv(config, port, profile))
    base = f"http://127.0.0.1:{port}"
    try:
        t_start = time.monotonic()
        await wait_http(session, proc, f"{base}/-/ready", within=120)
        first_round = time.monotonic() - t_start
        await asyncio.sleep(interval if args.settle is None else args.settle)
        w = await _measure_window(session, base, proc.pid, setup.fleet_pid, args)
    finally:
        proc.stop(signal.SIGINT if profile else signal.SIGTERM, wait=30)
    probes = w.runs["success"] + w.runs["failure"]
    return {
        "targets": len(setup.ports),
        "interval_seconds": interval,
        "concurrency": args.sched_concurrency,
        "enumeration_switched_off": enumeration_off,
        "first_round_seconds": round(first_round, 2),
        "window_seconds": round(w.wall, 2),
        "probes": probes,
        "failures": w.runs["failure"],
        "expected_probes": round(len(setup.ports) * w.wall / interval),
        "probes_per_second": round(probes / w.wall, 1),
        "cpu_seconds": round(w.cpu, 3),
        "cpu_ms_per_probe": round(1000 * w.cpu / probes, 4) if probes else None,
        "cpu_share_of_one_core": round(w.cpu / w.wall, 3),
        "fleet_cpu_ms_per_probe": round(1000 * w.fleet_cpu / probes, 4) if probes else None,
        "metrics_get_ms_median": round(1000 * statistics.median(w.scrapes), 2)
        if w.scrapes
        else None,
        "metrics_bytes": w.metrics_bytes,
        "metrics_render_seconds_sum": w.render_sum,
        "rss_mib": round(w.rss, 1),
    }
