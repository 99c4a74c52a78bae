"""The probe benchmark's ``/metrics`` measurements for ``--render-targets`` synthetic results:
``Exposition.render`` timed in this process (cold, after churn, unchanged; and cold by size),
and real HTTP GETs against certscope's app serving the same results (``bench/metrics_app.py``).
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from certscope.collector import Exposition
from metrics_app import churned, probe_one, synthetic_results
from probe_exporters import BENCH_DIR, Setup
from probe_procs import Procs, cpu_seconds, free_port, read_json_line, rss_mib, wait_http

#: Shares of results replaced between two renders. 1%: probes much rarer than scrapes; 50%:
#: probe interval twice the scrape interval (e.g. 30s probes scraped every 15s).
CHURN = (0.01, 0.1, 0.5)


def pct(fraction: float) -> str:
    """The name of a churn share in report keys: 0.01 -> ``1pct``."""
    return f"{fraction * 100:g}pct"


def ms(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of ``values`` (seconds) in milliseconds."""
    return {
        "median": round(1000 * statistics.median(values), 2),
        "min": round(1000 * min(values), 2),
        "max": round(1000 * max(values), 2),
        "n": len(values),
    }


def _series(body: str) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith("#"))


async def render_inprocess(args: argparse.Namespace, setup: Setup) -> dict[str, Any]:
    base = await probe_one(f"127.0.0.1:{setup.warm_port}", setup.ca_file)
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
        "cold_ms": ms(cold),
    }
    for fraction, values in churn.items():
        out[f"warm_after_{pct(fraction)}_churn_ms"] = ms(values)
    out["warm_unchanged_ms"] = ms(unchanged)
    out["utf8_encode_ms"] = ms(encode)
    return out


async def render_scale(args: argparse.Namespace, setup: Setup) -> list[dict[str, Any]]:
    """Cold ``Exposition.render`` CPU at each ``--render-scale`` size: it should grow linearly
    with the series (the same CPU per series at every size)."""
    base = await probe_one(f"127.0.0.1:{setup.warm_port}", setup.ca_file)
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


def _metrics_app_argv(args: argparse.Namespace, setup: Setup, port: int) -> list[str]:
    return [
        sys.executable,
        str(BENCH_DIR / "metrics_app.py"),
        "--targets",
        str(args.render_targets),
        "--endpoint",
        f"127.0.0.1:{setup.warm_port}",
        "--ca-file",
        setup.ca_file,
        "--port",
        str(port),
    ]


async def render_http(
    procs: Procs, session: aiohttp.ClientSession, args: argparse.Namespace, setup: Setup
) -> dict[str, Any]:
    port = free_port()
    proc = procs.start("metrics-app", _metrics_app_argv(args, setup, port), stdout=subprocess.PIPE)
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
        "warm_after_1pct_churn_get_ms": ms(churn),
        "warm_after_1pct_churn_server_cpu_ms_median": round(1000 * statistics.median(churn_cpu), 1),
        "warm_unchanged_get_ms": ms(unchanged),
        "warm_unchanged_server_cpu_ms_median": round(1000 * statistics.median(unchanged_cpu), 1),
        "after_50pct_churn_get_ms": ms(half),
        "after_50pct_churn_server_cpu_ms_median": round(1000 * statistics.median(half_cpu), 1),
        "gzip_when_asked": gzip_applied,
        "rss_mib": round(rss, 1),
    }
