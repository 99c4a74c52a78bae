"""CPU per probe, step by step, in one process: the handshake alone, the whole probe, and the
probe with its ``/probe`` rendering, against the loopback fleet of ``bench/fleet.py``.

    python bench/probe_steps.py [--endpoints 200] [--rounds 3] [--concurrency 16]

No HTTP and no second exporter: this isolates what certscope does per probe from aiohttp's
request handling, so a change to the probe path can be measured without the noise of the
end-to-end comparison (``bench/probe_bench.py``), which remains the figure against
blackbox_exporter. Each round probes every endpoint twice: a first pass over never-seen
chains (each endpoint has its own leaf) and a second over the same chains. CPU is this
process's (all threads: the resolver pool included); the fleet runs in its own process.
Prints one JSON document and writes it under ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from _harness import cpu_self, machine, write_report
from certscope.collector import render_direct
from certscope.config import Target
from certscope.probe import probe
from certscope.tls.handshake import handshake
from certscope.tls.options import TLSOptions

BENCH = Path(__file__).resolve().parent


def _targets(ports: Sequence[int], ca_file: str, tag: str) -> list[Target]:
    tls = TLSOptions(ca_file=ca_file, timeout=10.0)
    return [
        Target(name=f"{tag}-{p}", host="127.0.0.1", port=p, tls=tls, interval=60.0) for p in ports
    ]


async def _bounded(
    targets: Sequence[Target], concurrency: int, step: Callable[[Target], Awaitable[object]]
) -> float:
    """CPU seconds for ``step`` over every target, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(t: Target) -> None:
        async with gate:
            await step(t)

    c0 = cpu_self()
    await asyncio.gather(*(one(t) for t in targets))
    return cpu_self() - c0


async def _handshake(t: Target) -> None:
    outcome = await handshake(t.connect_host, t.port, t.server_name, t.tls)
    assert outcome.error is None, outcome.error
    assert outcome.chain


async def _probe(t: Target) -> None:
    result = await probe(t)
    assert result.success, result.outcome.error


async def _probe_render(t: Target) -> None:
    result = await probe(t)
    assert result.success, result.outcome.error
    render_direct([result])


STEPS: dict[str, Callable[[Target], Awaitable[None]]] = {
    "handshake": _handshake,
    "probe": _probe,
    "probe_render": _probe_render,
}


async def measure(ports: Sequence[int], ca_file: str, rounds: int, concurrency: int) -> Any:
    n = len(ports)
    out: dict[str, dict[str, list[float]]] = {s: {"first": [], "later": []} for s in STEPS}
    await _bounded(_targets(ports[:16], ca_file, "warm"), concurrency, _probe)
    for r in range(rounds):
        for name, step in STEPS.items():
            # Fresh names per round and step: a first pass never sees a cached chain. The
            # endpoints' leaves are the same across rounds, so "first" is a first sight only
            # in the first round; the later rounds' first pass measures certscope's caches.
            targets = _targets(ports, ca_file, f"{name}{r}")
            first = await _bounded(targets, concurrency, step)
            later = await _bounded(targets, concurrency, step)
            out[name]["first"].append(round(1000 * first / n, 3))
            out[name]["later"].append(round(1000 * later / n, 3))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--endpoints", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        fleet = subprocess.Popen(
            [
                sys.executable,
                str(BENCH / "fleet.py"),
                f"--endpoints={args.endpoints}",
                "--dir",
                tmp,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert fleet.stdout is not None
            info = json.loads(fleet.stdout.readline())
            t0 = time.perf_counter()
            steps = asyncio.run(
                measure(info["ports"], info["ca_file"], args.rounds, args.concurrency)
            )
            wall = time.perf_counter() - t0
        finally:
            fleet.terminate()
            fleet.wait(10)
    report = {
        "command": "bench/probe_steps.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine(),
        "endpoints": args.endpoints,
        "concurrency": args.concurrency,
        "wall_s": round(wall, 1),
        "cpu_ms_per_probe": steps,
        "note": "first round's first pass: never-seen chains; later: the same chains again",
    }
    path = write_report("probe-steps", report)
    print(json.dumps(report["cpu_ms_per_probe"], indent=1))
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
