"""Memory at fleet scale: RSS per TLS target with posture enumeration on, and its growth.

    python bench/fleet_memory.py --targets 10000 --cycles 24
    python bench/fleet_memory.py --targets 50000 --cycles 3

A loopback fleet (``bench/fleet.py``, a separate process) serves ``--endpoints`` TLS endpoints;
each is probed and enumerated for real once. certscope's own scheduler then runs ``--targets``
targets with enumeration on, every target a distinct name (its SNI) on one of those endpoints,
at a short interval. Ten thousand real handshakes per cycle would measure the machine, not the
memory, so the scheduler's prober and enumerator replay those real results as new objects
for each target (its name, address, labels, timestamps and phase timings), as a real probe
would return them; everything after that is certscope's own code: the scheduler, policy
assessment, the state and the rendered exposition.

RSS (``/proc/self/statm``, after a garbage collection) is read before the targets are
configured (the baseline: imports, the app, the replayed results) and after each full cycle
(every target probed and enumerated once more). With ``--scrape``, each cycle ends with the
exposition gathered as ``GET /metrics`` gathers it (then dropped, as after a response), so
that RSS includes what scrapes leave behind. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from aiohttp import web

from certscope.app import EXPOSITION, SCHEDULER, STATE, make_app, metrics_parts
from certscope.config import Config, Target, TLSOptions
from certscope.posture import PostureScan
from certscope.probe import probe
from certscope.results import ProbeResult
from certscope.scheduler import enumerate_target

BENCH_DIR = Path(__file__).resolve().parent
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def start_fleet(endpoints: int, workdir: Path) -> tuple[subprocess.Popen[str], list[int], str]:
    fleet = subprocess.Popen(
        [
            sys.executable,
            str(BENCH_DIR / "fleet.py"),
            "--endpoints",
            str(endpoints),
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fleet.stdout is not None
    ready = json.loads(fleet.stdout.readline())
    return fleet, list(ready["ports"]), str(ready["ca_file"])


def scrape(app: web.Application) -> float:
    """Gather the exposition as ``GET /metrics`` does and drop it; milliseconds taken."""
    t0 = time.perf_counter()
    parts = metrics_parts(app)
    took = time.perf_counter() - t0
    del parts
    return round(took * 1000, 1)


def held_results(app: web.Application) -> list[Any]:
    """The results the exposition renders, as ``GET /metrics`` gathers them."""
    snap = app[STATE].snapshot()
    assessed = snap.assessed()
    return [*snap.probes.values(), *snap.sources.values(), *assessed]


def top_allocations(limit: int, targets: int) -> list[dict[str, Any]]:
    """Live memory by the line that allocated it, per target: where the bytes are."""
    stats = tracemalloc.take_snapshot().statistics("lineno")
    return [
        {
            "bytes_per_target": round(stat.size / targets),
            "objects_per_target": round(stat.count / targets, 2),
            "where": f"{stat.traceback[0].filename.rsplit('/', 1)[-1]}:{stat.traceback[0].lineno}",
        }
        for stat in stats[:limit]
    ]


class Replay:
    """Real results, one per endpoint, handed out as each target's own new result."""

    def __init__(self, probes: dict[int, ProbeResult], scans: dict[int, PostureScan]) -> None:
        self.probes = probes
        self.scans = scans
        self.probed: dict[str, int] = {}
        self.enumerated: dict[str, int] = {}

    async def probe(self, target: Target, last_success: float | None) -> ProbeResult:
        base = self.probes[target.port]
        now = time.time()
        self.probed[target.name] = self.probed.get(target.name, 0) + 1
        phases = tuple((p, s * (1 + (now % 1) / 10)) for p, s in base.phases)
        return dataclasses.replace(
            base,
            name=target.name,
            address=target.address,
            server_name=target.server_name,
            labels=target.labels,
            timestamp=now,
            last_success=now,
            outcome=dataclasses.replace(base.outcome, phases=phases),
            verdict=None if base.verdict is None else dataclasses.replace(base.verdict),
        )

    async def enumerate(self, target: Target) -> PostureScan:
        self.enumerated[target.name] = self.enumerated.get(target.name, 0) + 1
        return dataclasses.replace(self.scans[target.port], timestamp=time.time())

    def cycles(self, names: list[str]) -> int:
        """Full cycles done: every target probed and enumerated at least this many times."""
        return min(min(self.probed.get(n, 0), self.enumerated.get(n, 0)) for n in names)


def cycle_row(
    app: web.Application,
    args: argparse.Namespace,
    cycle: int,
    started: float,
    baseline: int,
    scrape_ms: float | None,
    first: bool,
) -> dict[str, Any]:
    """RSS after a full cycle, then (a breakdown) the traced allocations and what the
    exposition's entries stand for and take."""
    rss = rss_bytes()
    row: dict[str, Any] = {
        "cycle": cycle,
        "seconds": round(time.perf_counter() - started, 1),
        "rss_mib": round(rss / 2**20, 1),
        "bytes_per_target": round((rss - baseline) / args.targets),
        "scrape_ms": scrape_ms,
    }
    if args.trace and first:  # before the results are gathered below, which copies tables
        row["traced_bytes_per_target"] = round(tracemalloc.get_traced_memory()[0] / args.targets)
        row["top_allocations"] = top_allocations(args.trace, args.targets)
    current = held_results(app)
    exposition = app[EXPOSITION]
    row["rendered_bytes_per_target"] = round(exposition.held_bytes(current) / args.targets)
    row["exposition_memory_per_target"] = round(exposition.memory_bytes(current) / args.targets)
    return row


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="certscope-memory-") as tmp:
        fleet, ports, ca_file = start_fleet(args.endpoints, Path(tmp))
        try:
            tls = TLSOptions(ca_file=ca_file, timeout=5)
            probes: dict[int, ProbeResult] = {}
            scans: dict[int, PostureScan] = {}
            for port in ports:
                real = Target(name=f"endpoint-{port}", host="127.0.0.1", port=port, tls=tls)
                probes[port] = await probe(real)
                scans[port] = await enumerate_target(real)
                if not probes[port].success:
                    raise RuntimeError(f"probe of port {port} failed: {probes[port].outcome.error}")
        finally:
            fleet.terminate()
            fleet.wait(10)
    replay = Replay(probes, scans)
    empty = Config(origin="<bench>", concurrency=args.concurrency)
    app = make_app(empty, lambda: empty, start_scheduler=False)
    scheduler = app[SCHEDULER]
    scheduler.prober = replay.probe
    scheduler.enumerator = replay.enumerate
    baseline = rss_bytes()
    if args.trace:
        tracemalloc.start()  # slows the run and adds its own memory to RSS: a breakdown only
    targets = tuple(
        Target(
            name=f"svc-{i:06d}",
            host="127.0.0.1",
            port=ports[i % len(ports)],
            tls=dataclasses.replace(tls, sni=f"svc-{i:06d}.prod.example.com"),
            interval=args.interval,
            enumerate_interval=args.interval,
            labels=(("env", "prod"), ("team", f"team-{i % 40:02d}")),
        )
        for i in range(args.targets)
    )
    config = dataclasses.replace(empty, targets=targets)
    app[STATE].set_config(config)
    scheduler.apply(config)
    names = [t.name for t in targets]
    runner = asyncio.create_task(scheduler.run())
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        done = 0
        while done < args.cycles:
            await asyncio.sleep(0.5)
            now_done = replay.cycles(names)
            if now_done > done:
                done = now_done
                scrape_ms = scrape(app) if args.scrape else None
                rows.append(cycle_row(app, args, done, started, baseline, scrape_ms, not rows))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        runner.cancel()
    first, last = rows[0], rows[-1]
    summary = {
        "targets": args.targets,
        "endpoints": args.endpoints,
        "scrape": args.scrape,
        "interval_s": args.interval,
        "baseline_rss_mib": round(baseline / 2**20, 1),
        "cycles": rows,
        "bytes_per_target_after_first_cycle": first["bytes_per_target"],
        "bytes_per_target_after_last_cycle": last["bytes_per_target"],
        "growth_first_to_last_mib": round(last["rss_mib"] - first["rss_mib"], 1),
    }
    # Printed before the loop winds down: cancelling tens of thousands of queued jobs is slow.
    print(json.dumps(summary, indent=1), flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--targets", type=int, default=10_000)
    p.add_argument("--endpoints", type=int, default=8, help="real loopback endpoints shared")
    p.add_argument("--cycles", type=int, default=24)
    p.add_argument("--interval", type=float, default=2.0, help="probe and enumeration interval")
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument(
        "--scrape", action="store_true", help="gather /metrics after each cycle, before RSS"
    )
    p.add_argument(
        "--trace", type=int, default=0, help="list the N largest allocation sites (tracemalloc)"
    )
    args = p.parse_args(argv)
    asyncio.run(measure(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
