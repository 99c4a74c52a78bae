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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import pstats
import random
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from certscope import __version__ as certscope_version
from certscope.collector import Exposition

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
from metrics_app import churned, probe_one, synthetic_results  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
PROBE_TIMEOUT = "5s"
SCRAPE_TIMEOUT_HEADER = {"X-Prometheus-Scrape-Timeout-Seconds": "10"}
RATIO_TARGET = 1.5
RENDER_TARGET_S = 0.250

_CS_OK = re.compile(r"^certscope_probe_success\{.*\} 1$", re.M)
_CS_VERIFIED = re.compile(r"^certscope_cert_verified\{.*\} 1$", re.M)
_BB_OK = re.compile(r"^probe_success 1$", re.M)
_RUNS = re.compile(r'^certscope_probe_runs_total\{result="(\w+)"\} ([0-9.e+]+)$', re.M)
_RENDER_SUM = re.compile(r"^certscope_metrics_render_duration_seconds_sum ([0-9.e+-]+)$", re.M)


# --- processes ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        rest = fh.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, wait: float = 15) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(sig)
        try:
            self.popen.wait(wait)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


class Procs:
    """Every process this run started, so that each is stopped (by its own PID) on the way out."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Proc] = []

    def start(self, name: str, argv: Sequence[str], stdout: int | None = None) -> Proc:
        log = self.workdir / f"{name}-{len(self.started)}.log"
        with open(log, "wb") as fh:
            popen = subprocess.Popen(
                list(argv),
                stdout=stdout if stdout is not None else fh,
                stderr=fh,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
            )
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            with contextlib.suppress(Exception):
                proc.stop(wait=5)


async def read_json_line(proc: Proc, within: float) -> dict[str, Any]:
    assert proc.popen.stdout is not None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.popen.stdout.readline), within)
    except TimeoutError:
        raise RuntimeError(f"{proc.name} did not start in {within:.0f}s:\n{proc.tail()}") from None
    if not line:
        raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
    data: dict[str, Any] = json.loads(line)
    return data


async def wait_http(
    session: aiohttp.ClientSession, proc: Proc, url: str, within: float = 60
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                await resp.read()
                if resp.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{proc.name}: {url} not ready after {within:.0f}s:\n{proc.tail()}")


# --- exporters ----------------------------------------------------------------------------------


def certscope_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "certscope"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "certscope.cli"]


def certscope_argv(config: Path, port: int, profile: Path | None = None) -> list[str]:
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


@dataclass(frozen=True)
class Exporter:
    key: str  # certscope | blackbox | blackbox_verify
    label: str
    kind: str  # certscope | blackbox
    module: str = ""


# --- /probe workload ----------------------------------------------------------------------------


@dataclass
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
    queue = list(ports)
    queue.reverse()
    stats = PassStats(probes=0, ok=0, verified=0, wall=0.0, cpu=0.0, fleet_cpu=0.0)
    ok_re = _CS_OK if exporter.kind == "certscope" else _BB_OK
    module = f"&module={exporter.module}" if exporter.module else ""

    async def worker() -> None:
        while queue:
            port = queue.pop()
            url = f"{base_url}/probe?target=127.0.0.1:{port}{module}"
            t0 = time.perf_counter()
            async with session.get(url, headers=SCRAPE_TIMEOUT_HEADER) as resp:
                body = await resp.text()
            stats.latencies.append(time.perf_counter() - t0)
            stats.probes += 1
            if resp.status == 200 and ok_re.search(body):
                stats.ok += 1
                if exporter.kind == "certscope" and _CS_VERIFIED.search(body):
                    stats.verified += 1

    c0, f0, t0 = cpu_seconds(pid), cpu_seconds(fleet_pid), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    stats.wall = time.perf_counter() - t0
    stats.cpu = cpu_seconds(pid) - c0
    stats.fleet_cpu = cpu_seconds(fleet_pid) - f0
    if exporter.kind == "blackbox":
        stats.verified = stats.ok if exporter.module == "tcp_tls_verify" else 0
    return stats


def combine(passes: Sequence[PassStats]) -> PassStats:
    out = PassStats(
        probes=sum(p.probes for p in passes),
        ok=sum(p.ok for p in passes),
        verified=sum(p.verified for p in passes),
        wall=sum(p.wall for p in passes),
        cpu=sum(p.cpu for p in passes),
        fleet_cpu=sum(p.fleet_cpu for p in passes),
    )
    for p in passes:
        out.latencies.extend(p.latencies)
    return out


async def probe_session(
    procs: Procs,
    session: aiohttp.ClientSession,
    exporter: Exporter,
    args: argparse.Namespace,
    ctx: dict[str, Any],
    profile: Path | None = None,
) -> dict[str, Any]:
    """One fresh exporter process: warm up, then the measured passes."""
    port = free_port()
    if exporter.kind == "certscope":
        argv = certscope_argv(ctx["cs_probe_config"], port, profile)
    else:
        argv = [
            args.blackbox,
            f"--config.file={ctx['bb_config']}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
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
            [ctx["warm_port"]] * args.warmup,
            min(args.concurrency, args.warmup),
            proc.pid,
            ctx["fleet_pid"],
        )
        passes = []
        ports: list[int] = ctx["ports"]
        remaining = args.probes
        while remaining > 0:
            chunk = ports[: min(remaining, len(ports))]
            passes.append(
                await run_pass(
                    session, exporter, base, chunk, args.concurrency, proc.pid, ctx["fleet_pid"]
                )
            )
            remaining -= len(chunk)
        # Steady state at other client concurrencies: one more pass each, certificates known.
        sweep = {}
        for c in args.sweep:
            st = await run_pass(session, exporter, base, ports, c, proc.pid, ctx["fleet_pid"])
            sweep[str(c)] = st.as_dict()
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


async def scheduler_session(
    procs: Procs,
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    ctx: dict[str, Any],
    interval: float,
    profile: Path | None = None,
) -> dict[str, Any]:
    port = free_port()
    config = ctx["workdir"] / "certscope-sched.yml"
    enumeration_off = write_certscope_sched_config(
        config,
        ctx["ca_file"],
        ctx["ports"],
        interval,
        args.sched_concurrency,
        args.sched_enumerate,
    )
    proc = procs.start("certscope-sched", certscope_argv(config, port, profile))
    base = f"http://127.0.0.1:{port}"
    try:
        t_start = time.monotonic()
        await wait_http(session, proc, f"{base}/-/ready", within=120)
        first_round = time.monotonic() - t_start
        await asyncio.sleep(interval if args.settle is None else args.settle)
        body, _ = await scrape(session, f"{base}/metrics")
        r0, c0, f0, t0 = (
            runs(body),
            cpu_seconds(proc.pid),
            cpu_seconds(ctx["fleet_pid"]),
            time.perf_counter(),
        )
        await asyncio.sleep(args.window)
        c1, f1, t1 = cpu_seconds(proc.pid), cpu_seconds(ctx["fleet_pid"]), time.perf_counter()
        body, _ = await scrape(session, f"{base}/metrics")
        r1 = runs(body)
        scrapes = []
        size = 0
        for _ in range(args.scrapes):
            body, seconds = await scrape(session, f"{base}/metrics")
            scrapes.append(seconds)
            size = len(body.encode())
        render_sum = _RENDER_SUM.search(body)
        rss = rss_mib(proc.pid)
    finally:
        proc.stop(signal.SIGINT if profile else signal.SIGTERM, wait=30)
    done = {k: r1.get(k, 0) - r0.get(k, 0) for k in ("success", "failure")}
    probes = done["success"] + done["failure"]
    cpu = c1 - c0
    wall = t1 - t0
    return {
        "targets": len(ctx["ports"]),
        "interval_seconds": interval,
        "concurrency": args.sched_concurrency,
        "enumeration_switched_off": enumeration_off,
        "first_round_seconds": round(first_round, 2),
        "window_seconds": round(wall, 2),
        "probes": probes,
        "failures": done["failure"],
        "expected_probes": round(len(ctx["ports"]) * wall / interval),
        "probes_per_second": round(probes / wall, 1),
        "cpu_seconds": round(cpu, 3),
        "cpu_ms_per_probe": round(1000 * cpu / probes, 4) if probes else None,
        "cpu_share_of_one_core": round(cpu / wall, 3),
        "fleet_cpu_ms_per_probe": round(1000 * (f1 - f0) / probes, 4) if probes else None,
        "metrics_get_ms_median": round(1000 * statistics.median(scrapes), 2) if scrapes else None,
        "metrics_bytes": size,
        "metrics_render_seconds_sum": float(render_sum.group(1)) if render_sum else None,
        "rss_mib": round(rss, 1),
    }


# --- /metrics render ----------------------------------------------------------------------------


def _series(body: str) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith("#"))


def _ms(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": round(1000 * statistics.median(values), 2),
        "min": round(1000 * min(values), 2),
        "max": round(1000 * max(values), 2),
        "n": len(values),
    }


#: Shares of results replaced between two renders. 1%: probes much rarer than scrapes; 50%:
#: probe interval twice the scrape interval (e.g. 30s probes scraped every 15s).
CHURN = (0.01, 0.1, 0.5)


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g}pct"


async def render_inprocess(args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    base = await probe_one(f"127.0.0.1:{ctx['warm_port']}", ctx["ca_file"])
    results = synthetic_results(base, args.render_targets)
    rng = random.Random(3)
    cold: list[float] = []
    unchanged: list[float] = []
    encode: list[float] = []
    churn: dict[float, list[float]] = {f: [] for f in CHURN}
    body = ""
    for _ in range(args.render_rounds):
        gc.collect()
        exp = Exposition()
        t0 = time.perf_counter()
        body = exp.render(results)
        cold.append(time.perf_counter() - t0)
        for fraction in CHURN:
            for _ in range(3):
                for i in rng.sample(range(len(results)), max(1, round(len(results) * fraction))):
                    results[i] = churned(results[i], rng)
                t0 = time.perf_counter()
                body = exp.render(results)
                churn[fraction].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                body = exp.render(results)
                unchanged.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        body.encode("utf-8")
        encode.append(time.perf_counter() - t0)
    out: dict[str, Any] = {
        "targets": len(results),
        "failed_share": round(sum(not r.success for r in results) / len(results), 4),
        "series": _series(body),
        "bytes": len(body.encode()),
        "cold_ms": _ms(cold),
    }
    for fraction, values in churn.items():
        out[f"warm_after_{_pct(fraction)}_churn_ms"] = _ms(values)
    out["warm_unchanged_ms"] = _ms(unchanged)
    out["utf8_encode_ms"] = _ms(encode)
    return out


async def render_scale(args: argparse.Namespace, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    """Cold ``Exposition.render`` CPU at each ``--render-scale`` size: it should grow linearly
    with the series (the same CPU per series at every size)."""
    base = await probe_one(f"127.0.0.1:{ctx['warm_port']}", ctx["ca_file"])
    rows = []
    for n in args.render_scale:
        results = synthetic_results(base, n)
        gc.collect()
        t0 = time.process_time()
        body = Exposition().render_bytes(results)
        cpu = time.process_time() - t0
        series = sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))
        rows.append(
            {
                "targets": n,
                "series": series,
                "bytes": len(body),
                "cold_ms": round(1000 * cpu, 1),
                "us_per_series": round(1e6 * cpu / series, 3),
            }
        )
        del results, body
    return rows


async def render_http(
    procs: Procs, session: aiohttp.ClientSession, args: argparse.Namespace, ctx: dict[str, Any]
) -> dict[str, Any]:
    port = free_port()
    proc = procs.start(
        "metrics-app",
        [
            sys.executable,
            str(BENCH_DIR / "metrics_app.py"),
            "--targets",
            str(args.render_targets),
            "--endpoint",
            f"127.0.0.1:{ctx['warm_port']}",
            "--ca-file",
            ctx["ca_file"],
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        ready = await read_json_line(proc, 300)
        await wait_http(session, proc, f"http://127.0.0.1:{port}/-/healthy")
        store_s: dict[float, list[float]] = {0.01: [], 0.5: []}

        async def get() -> tuple[float, float, int]:
            c0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            async with session.get(url) as resp:
                data = await resp.read()
            return time.perf_counter() - t0, cpu_seconds(proc.pid) - c0, len(data)

        async def churn_then_get(fraction: float) -> tuple[float, float, int]:
            churn_url = f"http://127.0.0.1:{port}/bench/churn?fraction={fraction}"
            async with session.post(churn_url) as r:
                store_s[fraction].append(float((await r.json())["store_cpu_s"]))
            return await get()

        cold_s, cold_cpu, size = await get()
        churn, churn_cpu, unchanged, unchanged_cpu = [], [], [], []
        half, half_cpu = [], []
        for _ in range(args.render_rounds * 3):
            s, cpu, _ = await churn_then_get(0.01)
            churn.append(s)
            churn_cpu.append(cpu)
            s, cpu, _ = await get()
            unchanged.append(s)
            unchanged_cpu.append(cpu)
        for _ in range(args.render_rounds):
            s, cpu, _ = await churn_then_get(0.5)
            half.append(s)
            half_cpu.append(cpu)
        async with session.get(url, headers={"Accept-Encoding": "gzip"}) as resp:
            gzip_applied = resp.headers.get("Content-Encoding") == "gzip"
            await resp.read()
        rss = rss_mib(proc.pid)
    finally:
        proc.stop()
    return {
        "targets": args.render_targets,
        "bytes": size,
        "store_all_cpu_ms": round(1000 * float(ready["store_cpu_s"]), 1),
        "store_1pct_cpu_ms_median": round(1000 * statistics.median(store_s[0.01]), 1),
        "store_50pct_cpu_ms_median": round(1000 * statistics.median(store_s[0.5]), 1),
        "cold_get_ms": round(1000 * cold_s, 2),
        "cold_server_cpu_ms": round(1000 * cold_cpu, 1),
        "warm_after_1pct_churn_get_ms": _ms(churn),
        "warm_after_1pct_churn_server_cpu_ms_median": round(1000 * statistics.median(churn_cpu), 1),
        "warm_unchanged_get_ms": _ms(unchanged),
        "warm_unchanged_server_cpu_ms_median": round(1000 * statistics.median(unchanged_cpu), 1),
        "after_50pct_churn_get_ms": _ms(half),
        "after_50pct_churn_server_cpu_ms_median": round(1000 * statistics.median(half_cpu), 1),
        "gzip_when_asked": gzip_applied,
        "rss_mib": round(rss, 1),
    }


# --- profiling ----------------------------------------------------------------------------------


def profile_report(path: Path, out: Path, limit: int = 30) -> dict[str, list[dict[str, Any]]]:
    """Write the pstats text to ``out``; return the top rows by own and by cumulative time."""
    with open(out, "w") as fh:
        stats = pstats.Stats(str(path), stream=fh)
        stats.strip_dirs()
        for key in ("tottime", "cumulative"):
            stats.sort_stats(key).print_stats(limit)
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]

    def rows(index: int) -> list[dict[str, Any]]:
        out_rows = []
        ranked = sorted(raw.items(), key=lambda kv: kv[1][index], reverse=True)[:limit]
        for (file, line, func), (_cc, nc, tt, ct, _callers) in ranked:
            where = f"{Path(file).parent.name}/{Path(file).name}:{line}" if line else file
            out_rows.append(
                {
                    "function": f"{where}({func})",
                    "calls": nc,
                    "tottime_s": round(tt, 4),
                    "cumtime_s": round(ct, 4),
                    "tottime_share": round(tt / total, 4) if total else None,
                    "cumtime_share": round(ct / total, 4) if total else None,
                }
            )
        return out_rows

    return {"self": rows(2), "cumulative": rows(3)}


# --- machine ------------------------------------------------------------------------------------


def loadavg() -> list[str]:
    with open("/proc/loadavg") as fh:
        return fh.read().split()[:3]


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        from OpenSSL import SSL

        pyopenssl = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()
    except Exception:
        pyopenssl = ""
    commit = ""
    with contextlib.suppress(Exception):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    dirty: list[str] = []
    with contextlib.suppress(Exception):
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "exporter"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout
        dirty = [line[3:] for line in status.splitlines()]
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ssl_module_openssl": ssl.OPENSSL_VERSION,
        "pyopenssl_openssl": pyopenssl,
        "certscope": certscope_version,
        "git_commit": commit,
        "exporter_files_uncommitted": dirty,
        "loadavg_start": loadavg(),
    }


def blackbox_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout + out.stderr).splitlines()[0].strip() if out.stdout + out.stderr else ""


# --- summary ------------------------------------------------------------------------------------


def median_of(sessions: Sequence[dict[str, Any]], part: str, key: str) -> float | None:
    values = [s[part][key] for s in sessions if s.get(part) and s[part].get(key) is not None]
    return statistics.median(values) if values else None


def sweep_summary(by: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Warm CPU ms per probe by client concurrency (later passes at the main concurrency)."""
    out: dict[str, Any] = {}
    for key, sessions in by.items():
        table: dict[str, list[float]] = {}
        for s in sessions:
            if s.get("later_passes"):
                table.setdefault(str(s["concurrency"]), []).append(
                    s["later_passes"]["cpu_ms_per_probe"]
                )
            for c, st in s.get("sweep", {}).items():
                table.setdefault(c, []).append(st["cpu_ms_per_probe"])
        out[key] = {
            c: round(statistics.median(v), 4)
            for c, v in sorted(table.items(), key=lambda kv: int(kv[0]))
        }
    cs = out.get("certscope", {})
    for other in ("blackbox", "blackbox_verify"):
        bb = out.get(other, {})
        ratios = {c: round(cs[c] / bb[c], 3) for c in cs if bb.get(c)}
        if ratios:
            out[f"ratio_certscope_over_{other}"] = ratios
    return out


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    by: dict[str, list[dict[str, Any]]] = {}
    for s in report["probe_sessions"]:
        by.setdefault(s["exporter"], []).append(s)
    summary: dict[str, Any] = {"probe": {}}
    for key, sessions in by.items():
        summary["probe"][key] = {
            "cpu_ms_per_probe": median_of(sessions, "total", "cpu_ms_per_probe"),
            # Noise on a shared machine only ever adds CPU: the least disturbed round.
            "cpu_ms_per_probe_min": min(s["total"]["cpu_ms_per_probe"] for s in sessions),
            "cpu_ms_per_probe_first_pass": median_of(sessions, "first_pass", "cpu_ms_per_probe"),
            "cpu_ms_per_probe_later_passes": median_of(
                sessions, "later_passes", "cpu_ms_per_probe"
            ),
            "probes_per_second": median_of(sessions, "total", "probes_per_second"),
            "latency_ms_p50": median_of(sessions, "total", "latency_ms_p50"),
            "ok": sum(s["total"]["ok"] for s in sessions),
            "probes": sum(s["total"]["probes"] for s in sessions),
            "rounds": len(sessions),
        }
    summary["steady_state_by_concurrency"] = sweep_summary(by)
    cs = summary["probe"].get("certscope", {}).get("cpu_ms_per_probe")
    for other in ("blackbox", "blackbox_verify"):
        bb = summary["probe"].get(other, {}).get("cpu_ms_per_probe")
        if cs and bb:
            summary[f"ratio_certscope_over_{other}"] = round(cs / bb, 3)
            cs_min = summary["probe"]["certscope"]["cpu_ms_per_probe_min"]
            bb_min = summary["probe"][other]["cpu_ms_per_probe_min"]
            summary[f"ratio_certscope_over_{other}_of_minima"] = round(cs_min / bb_min, 3)
    ratios = [
        s_cs["total"]["cpu_ms_per_probe"] / s_bb["total"]["cpu_ms_per_probe"]
        for s_cs, s_bb in zip(by.get("certscope", []), by.get("blackbox", []), strict=False)
        if s_bb["total"]["cpu_ms_per_probe"]
    ]
    if ratios:
        summary["ratio_per_round"] = [round(r, 3) for r in ratios]
    checks: dict[str, Any] = {}
    r = summary.get("ratio_certscope_over_blackbox")
    if r is not None:
        checks["cpu_ratio_vs_blackbox"] = {"value": r, "target": RATIO_TARGET}
    render = report.get("render_inprocess")
    http = report.get("render_http")
    target_ms = RENDER_TARGET_S * 1000
    if render:
        checks["render_warm_1pct_churn_ms"] = {
            "value": render["warm_after_1pct_churn_ms"]["median"],
            "target": target_ms,
        }
        checks["render_warm_50pct_churn_ms"] = {
            "value": render["warm_after_50pct_churn_ms"]["median"],
            "target": target_ms,
        }
        checks["render_cold_ms"] = {"value": render["cold_ms"]["median"], "target": target_ms}
    if http:
        checks["http_get_metrics_warm_1pct_churn_ms"] = {
            "value": http["warm_after_1pct_churn_get_ms"]["median"],
            "target": target_ms,
        }
        checks["http_get_metrics_cold_ms"] = {"value": http["cold_get_ms"], "target": target_ms}
    for c in checks.values():
        c["met"] = c["value"] <= c["target"]
    summary["checks"] = checks
    return summary


def _f(v: Any, fmt: str = "{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def print_probe(s: dict[str, Any], a: dict[str, Any]) -> None:
    print()
    print(
        f"== /probe: {a['probes']} probes over {a['endpoints']} endpoints, client concurrency "
        f"{a['concurrency']}, median of {a['repeat']} round(s)"
    )
    print(
        f"{'exporter':<18}{'CPU ms/probe':>13}{'best':>7}{'1st pass':>10}{'later':>10}"
        f"{'probes/s':>10}{'p50 ms':>9}{'ok':>12}"
    )
    for key, row in s["probe"].items():
        print(
            f"{key:<18}{_f(row['cpu_ms_per_probe']):>13}{_f(row['cpu_ms_per_probe_min']):>7}"
            f"{_f(row['cpu_ms_per_probe_first_pass']):>10}"
            f"{_f(row['cpu_ms_per_probe_later_passes']):>10}"
            f"{_f(row['probes_per_second'], '{:.0f}'):>10}{_f(row['latency_ms_p50'], '{:.1f}'):>9}"
            f"{row['ok']:>7}/{row['probes']:<5}"
        )
    for other in ("blackbox", "blackbox_verify"):
        r = s.get(f"ratio_certscope_over_{other}")
        if r is not None:
            note = f" (target <= {RATIO_TARGET})" if other == "blackbox" else ""
            r_min = s.get(f"ratio_certscope_over_{other}_of_minima")
            print(
                f"CPU per probe, certscope / {other}: {r:.2f} median, "
                f"{_f(r_min, '{:.2f}')} best rounds{note}"
            )
    if s.get("ratio_per_round"):
        print(f"  per round: {', '.join(f'{r:.2f}' for r in s['ratio_per_round'])}")
    sweep = s.get("steady_state_by_concurrency", {})
    cols = sorted({c for k, v in sweep.items() if not k.startswith("ratio") for c in v}, key=int)
    if len(cols) > 1:
        print()
        print("== steady state (certificates already seen): CPU ms/probe by client concurrency")
        print(f"{'exporter':<24}" + "".join(f"{'c=' + c:>9}" for c in cols))
        for key, row in sweep.items():
            if key.startswith("ratio"):
                continue
            print(f"{key:<24}" + "".join(f"{_f(row.get(c)):>9}" for c in cols))
        for other in ("blackbox", "blackbox_verify"):
            row = sweep.get(f"ratio_certscope_over_{other}")
            if row:
                name = f"ratio vs {other}"
                print(f"{name:<24}" + "".join(f"{_f(row.get(c), '{:.2f}'):>9}" for c in cols))


def print_summary(report: dict[str, Any]) -> None:
    s = report["summary"]
    if s["probe"]:
        print_probe(s, report["args"])
    for sched in report.get("scheduler_runs", []):
        print()
        print(
            f"== scheduler: {sched['targets']} targets every {sched['interval_seconds']:g}s, "
            f"concurrency {sched['concurrency']}, window {sched['window_seconds']:.0f}s"
        )
        print(
            f"probes {sched['probes']:.0f} (expected ~{sched['expected_probes']}, failures "
            f"{sched['failures']:.0f}), {sched['probes_per_second']} probes/s, "
            f"CPU {_f(sched['cpu_ms_per_probe'])} ms/probe, "
            f"{100 * sched['cpu_share_of_one_core']:.1f}% of one core; "
            f"GET /metrics ({sched['metrics_bytes'] // 1024} KiB) {sched['metrics_get_ms_median']} ms"
        )
    render = report.get("render_inprocess")
    if render:
        print()
        print(
            f"== /metrics for {render['targets']} synthetic targets: {render['series']} series, "
            f"{render['bytes'] / 1e6:.1f} MB"
        )
        churns = "   ".join(
            f"{f * 100:g}% new {render[f'warm_after_{_pct(f)}_churn_ms']['median']:.0f}"
            for f in CHURN
        )
        print(
            f"Exposition.render ms: cold {render['cold_ms']['median']:.0f}   {churns}   "
            f"unchanged {render['warm_unchanged_ms']['median']:.0f}   "
            f"(+ utf-8 encode {render['utf8_encode_ms']['median']:.0f})"
        )
    http = report.get("render_http")
    if http:
        print(
            f"HTTP GET /metrics ms: cold {http['cold_get_ms']:.0f}   "
            f"1% new {http['warm_after_1pct_churn_get_ms']['median']:.0f}   "
            f"50% new {http['after_50pct_churn_get_ms']['median']:.0f}   "
            f"unchanged {http['warm_unchanged_get_ms']['median']:.0f}   "
            f"(server CPU: cold {http['cold_server_cpu_ms']:.0f}, "
            f"1% new {http['warm_after_1pct_churn_server_cpu_ms_median']:.0f}, "
            f"50% new {http['after_50pct_churn_server_cpu_ms_median']:.0f})"
        )
        print(
            f"rendering when results are stored, CPU ms: all {http['store_all_cpu_ms']:.0f}   "
            f"1% {http['store_1pct_cpu_ms_median']:.0f}   "
            f"50% {http['store_50pct_cpu_ms_median']:.0f}"
        )
    scale = report.get("render_scale")
    if scale:
        print(
            "cold Exposition.render by size: "
            + "   ".join(
                f"{row['targets']} targets {row['cold_ms']:.0f} ms "
                f"({row['us_per_series']:.2f} us/series)"
                for row in scale
            )
        )
    for err in report.get("errors", []):
        print()
        print(f"!! {err['phase']} failed: {err['error'].splitlines()[0] if err['error'] else ''}")
    if s.get("checks"):
        print()
        print("== targets")
        for name, c in s["checks"].items():
            print(
                f"{name:<40}{c['value']:>10.2f}  <= {c['target']:<8g}{'met' if c['met'] else 'MISSED'}"
            )
    for p in report.get("profiles", []):
        print()
        print(f"== cProfile, CPU time ({p['workload']}), top by own time; full text: {p['text']}")
        for row in p["self"][:12]:
            print(
                f"{100 * (row['tottime_share'] or 0):5.1f}%  {row['calls']:>8}  {row['function']}"
            )


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
        ctx: dict[str, Any] = {
            "workdir": workdir,
            "ports": ports[:-1],
            "warm_port": ports[-1],
            "ca_file": info["ca_file"],
            "fleet_pid": fleet.pid,
            "cs_probe_config": workdir / "certscope-probe.yml",
            "bb_config": workdir / "blackbox.yml",
        }
        log(f"fleet: {len(ports)} endpoints up in {time.perf_counter() - t:.1f}s (pid {fleet.pid})")
        write_certscope_probe_config(ctx["cs_probe_config"], ctx["ca_file"])
        write_blackbox_config(ctx["bb_config"], ctx["ca_file"])

        exporters = [Exporter("certscope", "certscope", "certscope")]
        if args.blackbox:
            exporters += [
                Exporter("blackbox", "blackbox (insecure_skip_verify)", "blackbox", "tcp_tls"),
                Exporter("blackbox_verify", "blackbox (ca_file)", "blackbox", "tcp_tls_verify"),
            ]
        else:
            log("blackbox_exporter not found: certscope only (use --blackbox PATH)")
        conn = aiohttp.TCPConnector(limit=max(args.concurrency, 8), force_close=False)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
            if "probe" not in args.skip:
                await guarded(
                    report, "probe", probe_phase(procs, session, exporters, args, ctx, report)
                )
            if "scheduler" not in args.skip:
                report["scheduler_runs"] = []
                for interval in args.intervals:
                    await guarded(
                        report,
                        f"scheduler every {interval:g}s",
                        scheduler_phase(procs, session, args, ctx, interval, report),
                    )
                if report["scheduler_runs"]:
                    report["scheduler"] = report["scheduler_runs"][0]
            if "render" not in args.skip:
                await guarded(report, "render", render_phase(procs, session, args, ctx, report))
            if args.profile:
                await guarded(report, "profile", run_profiles(procs, session, args, ctx, report))
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
    ctx: dict[str, Any],
    report: dict[str, Any],
) -> None:
    for rnd in range(args.repeat):
        order = list(exporters) if rnd % 2 == 0 else list(exporters)[::-1]
        for exp in order:
            t = time.perf_counter()
            res = await probe_session(procs, session, exp, args, ctx)
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
    ctx: dict[str, Any],
    interval: float,
    report: dict[str, Any],
) -> None:
    t = time.perf_counter()
    res = await scheduler_session(procs, session, args, ctx, interval)
    report["scheduler_runs"].append(res)
    log(
        f"scheduler every {interval:g}s: {res['cpu_ms_per_probe']} CPU ms/probe "
        f"({time.perf_counter() - t:.1f}s)"
    )


async def render_phase(
    procs: Procs,
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    ctx: dict[str, Any],
    report: dict[str, Any],
) -> None:
    t = time.perf_counter()
    report["render_inprocess"] = await render_inprocess(args, ctx)
    log(f"render in-process done ({time.perf_counter() - t:.1f}s)")
    t = time.perf_counter()
    report["render_http"] = await render_http(procs, session, args, ctx)
    log(f"render over HTTP done ({time.perf_counter() - t:.1f}s)")
    if args.render_scale:
        t = time.perf_counter()
        report["render_scale"] = await render_scale(args, ctx)
        log(f"render by size done ({time.perf_counter() - t:.1f}s)")


async def run_profiles(
    procs: Procs,
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    ctx: dict[str, Any],
    report: dict[str, Any],
) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    prof = args.out / f"profile-probe-{stamp}.prof"
    await probe_session(
        procs, session, Exporter("certscope", "certscope", "certscope"), args, ctx, profile=prof
    )
    text = args.out / f"profile-probe-{stamp}.txt"
    report["profiles"].append(
        {"workload": "/probe", "text": str(text), **profile_report(prof, text)}
    )
    prof = args.out / f"profile-scheduler-{stamp}.prof"
    await scheduler_session(procs, session, args, ctx, args.intervals[0], profile=prof)
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
