"""Where certscope's enumeration CPU goes: the benchmark's fleet, certscope alone, in process.

    .venv/bin/python bench/enum_profile.py [--endpoints N] [--rounds R] [--profile OUT.prof]

Starts ``bench/enum_bench.py``'s fleet (N endpoints, default 20, cycling through its four
configurations) in a process of its own, scans its warm-up endpoint once, then runs R rounds
(default 3) of the benchmark's parallel pass (every endpoint, ``--parallel`` scans at a time,
``--max-connections`` each). Prints, per round, CPU per endpoint and per connection, user and
system apart (``getrusage(RUSAGE_SELF)``), so that a change to the connection code can be
compared with the code before it in one sitting (``PYTHONPATH`` at the other version's
``exporter/``). With ``--profile`` the rounds run under cProfile timed by
``time.thread_time`` (CPU of the event-loop thread only; profiling inflates every figure:
compare shares) and the top functions are printed; the file can be opened with ``pstats``.

Prints one JSON document last: the arguments, the load average, and each round's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from enum_fleet import start_fleet
from enum_tools import HOST, Processes


def _cpu() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


async def _rounds(args: argparse.Namespace, ports: list[int], warmup: int) -> list[dict[str, Any]]:
    from certscope.tls.enumerate import enumerate_posture

    async def scan(port: int) -> int:
        result = await enumerate_posture(
            HOST, port, None, timeout=args.timeout, max_connections=args.max_connections
        )
        if not result.complete:
            raise RuntimeError(f"incomplete scan of port {port}: {result.error} {result.notes}")
        return result.connections

    await scan(warmup)
    limit = asyncio.Semaphore(args.parallel)

    async def limited(port: int) -> int:
        async with limit:
            return await scan(port)

    out = []
    profiler = cProfile.Profile(time.thread_time) if args.profile else None
    for _ in range(args.rounds):
        (u0, s0), t0 = _cpu(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        connections = sum(await asyncio.gather(*(limited(p) for p in ports)))
        if profiler is not None:
            profiler.disable()
        (u1, s1), wall = _cpu(), time.perf_counter() - t0
        n = len(ports)
        row = {
            "cpu_s_per_endpoint": (u1 - u0 + s1 - s0) / n,
            "user_s_per_endpoint": (u1 - u0) / n,
            "sys_s_per_endpoint": (s1 - s0) / n,
            "connections_per_endpoint": connections / n,
            "cpu_ms_per_connection": 1000 * (u1 - u0 + s1 - s0) / connections,
            "wall_s_per_endpoint": wall / n,
        }
        print(
            "round: CPU {cpu_s_per_endpoint:.4f} s/endpoint (user {user_s_per_endpoint:.4f}, "
            "sys {sys_s_per_endpoint:.4f}), {connections_per_endpoint:.1f} connections, "
            "{cpu_ms_per_connection:.3f} ms CPU/connection".format(**row),
            file=sys.stderr,
            flush=True,
        )
        out.append(row)
    if profiler is not None:
        profiler.dump_stats(args.profile)
        stats = pstats.Stats(args.profile, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--endpoints", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--parallel", type=int, default=10)
    p.add_argument("--max-connections", type=int, default=4)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--profile", help="write a cProfile (thread CPU time) here")
    p.add_argument("--top", type=int, default=30, help="functions printed from the profile")
    args = p.parse_args()
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix="enum-profile-"))
    try:
        fleet = start_fleet(procs, args.endpoints, workdir)
        load = os.getloadavg()
        rows = asyncio.run(_rounds(args, fleet.ports, fleet.warmup_port))
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    args_out = {k: v for k, v in vars(args).items()}
    print(json.dumps({"args": args_out, "load_start": load, "rounds": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
