"""CPU per request of certscope's HTTP layer, apart from the probe: what a ``/probe`` costs
besides its handshake, facts and verdict.

    python bench/probe_http.py [--endpoints 50] [--requests 3000] [--concurrency 16] [--rounds 3]

One ``certscope serve`` process (the probe benchmark's config) answers, in turn, with client
concurrency as ``bench/probe_bench.py`` uses:

* ``healthy``: ``GET /-/healthy``, aiohttp's floor (parsing, routing, the middleware, a response);
* ``forbidden``: ``GET /probe?target=`` an address outside ``allowed_targets``: the query
  parsed and the allow-list checked, a 403, no connection;
* ``probe``: ``GET /probe`` over the fleet's endpoints, every chain already seen (the
  probe benchmark's later passes).

CPU is the server process's utime+stime from ``/proc/PID/stat`` over each workload. Run the
code before a change with ``PYTHONPATH=<old checkout>/exporter`` to compare in the same
minutes. Prints one JSON document and writes it under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from _harness import machine, write_report
from probe_exporters import certscope_argv, write_certscope_probe_config
from probe_procs import Procs, cpu_seconds, free_port, read_json_line, wait_http

BENCH = Path(__file__).resolve().parent


async def _load(
    session: aiohttp.ClientSession, urls: Sequence[str], concurrency: int, expect: int
) -> None:
    """GET every url, ``concurrency`` at a time; each must answer ``expect``."""
    queue = list(reversed(urls))

    async def worker() -> None:
        while queue:
            url = queue.pop()
            async with session.get(url) as resp:
                await resp.read()
                assert resp.status == expect, (url, resp.status)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _workloads(
    session: aiohttp.ClientSession, base: str, pid: int, ports: Sequence[int], args: Any
) -> dict[str, list[float]]:
    n = args.requests
    probe_urls = [f"{base}/probe?target=127.0.0.1:{ports[i % len(ports)]}" for i in range(n)]
    loads = {
        "healthy": ([f"{base}/-/healthy"] * n, 200),
        "forbidden": ([f"{base}/probe?target=192.0.2.{i % 250 + 1}:443" for i in range(n)], 403),
        "probe": (probe_urls, 200),
    }
    await _load(session, probe_urls[: len(ports)], args.concurrency, 200)  # every chain seen
    out: dict[str, list[float]] = {name: [] for name in loads}
    for _ in range(args.rounds):
        for name, (urls, expect) in loads.items():
            c0 = cpu_seconds(pid)
            await _load(session, urls, args.concurrency, expect)
            out[name].append(round(1000 * (cpu_seconds(pid) - c0) / n, 4))
    return out


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    procs = Procs(workdir)
    try:
        fleet = procs.start(
            "fleet",
            [
                sys.executable,
                str(BENCH / "fleet.py"),
                f"--endpoints={args.endpoints}",
                "--dir",
                str(workdir / "pki"),
            ],
            stdout=subprocess.PIPE,
        )
        info = await read_json_line(fleet, 300)
        config = workdir / "certscope-probe.yml"
        write_certscope_probe_config(config, info["ca_file"])
        port = free_port()
        server = procs.start("certscope", certscope_argv(config, port))
        base = f"http://127.0.0.1:{port}"
        conn = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=conn) as session:
            await wait_http(session, server, f"{base}/-/healthy")
            return await _workloads(session, base, server.pid, info["ports"], args)
    finally:
        procs.stop_all()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--endpoints", type=int, default=50)
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cpu = asyncio.run(measure(args, Path(tmp)))
    report = {
        "command": "bench/probe_http.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "wall_s": round(time.perf_counter() - t0, 1),
        "cpu_ms_per_request": cpu,
        "best_ms_per_request": {name: min(v) for name, v in cpu.items()},
    }
    path = write_report("probe-http", report)
    print(json.dumps(report["best_ms_per_request"], indent=1))
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
