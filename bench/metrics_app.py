"""Synthetic probe results for the ``/metrics`` benchmark, and a real app serving them.

Ten thousand real TLS servers are not needed to measure the exposition layer: what a scrape
costs depends on the results in the snapshot, not on where they came from. So one real
endpoint is probed once and its :class:`~certscope.results.ProbeResult` is copied with
``dataclasses.replace`` into many targets with their own names, addresses, labels and leaf
certificate facts (subject, SANs, serial, fingerprint), plus a few failed probes.

Run as a script, it serves those results from certscope's own aiohttp app (``make_app``,
scheduler off) and adds one benchmark-only route, ``POST /bench/churn?fraction=F``, which
replaces that fraction of the results with new ones, as completed probes do. Results are
rendered as they are stored (``State``'s ``prepare`` hook), so both the start-up line and the
churn route report the CPU that storing took (``store_cpu_s``): the rendering a scrape no
longer does.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import signal
import sys
import time

from aiohttp import web

from certscope.app import STATE, make_app
from certscope.config import Config, Target, TLSOptions
from certscope.errors import ProbeFailure
from certscope.net import split_address
from certscope.probe import probe
from certscope.results import ProbeResult
from certscope.tls.handshake import Failure, Outcome

#: Share of synthetic targets whose last probe failed (no certificate, one error series).
FAILED_SHARE = 0.02


async def probe_one(address: str, ca_file: str | None) -> ProbeResult:
    host, port = split_address(address)
    target = Target(name=address, host=host, port=port, tls=TLSOptions(ca_file=ca_file, timeout=5))
    result = await probe(target)
    if not result.success:
        raise RuntimeError(f"probe of {address} failed: {result.outcome.error}")
    return result


def _hex(rng: random.Random, chars: int) -> str:
    return f"{rng.getrandbits(chars * 4):0{chars}x}"


def synthetic(base: ProbeResult, i: int, rng: random.Random) -> ProbeResult:
    """The ``i``-th synthetic target, derived from one real result."""
    host = f"svc-{i:05d}.prod.example.com"
    address = f"{host}:443"
    labels = (("env", "prod"), ("team", f"team-{i % 40:02d}"))
    now = base.timestamp + rng.uniform(-30, 0)
    if rng.random() < FAILED_SHARE:
        return dataclasses.replace(
            base,
            name=address,
            address=address,
            server_name=host,
            labels=labels,
            timestamp=now,
            duration=5.0,
            outcome=Outcome(
                error=Failure(ProbeFailure.TIMEOUT, "no complete handshake within 5s"),
                peer_address="10.0.0.1",
                phases=(("resolve", 0.0001), ("connect", 0.0004)),
            ),
            facts=(),
            verdict=None,
        )
    leaf = dataclasses.replace(
        base.facts[0],
        der_sha256=_hex(rng, 64),
        serial=_hex(rng, 36).upper(),
        subject=f"CN={host},O=Example Corp",
        subject_cn=host,
        sans=(host, f"www.{host}", f"api.{host}"),
    )
    phases = tuple((phase, seconds * rng.uniform(0.5, 2)) for phase, seconds in base.phases)
    return dataclasses.replace(
        base,
        name=address,
        address=address,
        server_name=host,
        labels=labels,
        timestamp=now,
        duration=base.duration * rng.uniform(0.5, 2),
        outcome=dataclasses.replace(base.outcome, phases=phases),
        facts=(leaf, *base.facts[1:]),
        last_success=now,
    )


def synthetic_results(base: ProbeResult, n: int, seed: int = 1) -> list[ProbeResult]:
    rng = random.Random(seed)
    return [synthetic(base, i, rng) for i in range(n)]


def churned(result: ProbeResult, rng: random.Random) -> ProbeResult:
    """A newer result for the same target (what the next probe of it produces)."""
    return dataclasses.replace(
        result,
        timestamp=result.timestamp + 30,
        duration=result.duration * rng.uniform(0.8, 1.25),
        last_success=result.last_success + 30 if result.last_success is not None else None,
    )


async def serve(targets: int, endpoint: str, ca_file: str | None, port: int) -> None:
    base = await probe_one(endpoint, ca_file)
    results = synthetic_results(base, targets)
    config = Config(origin="<bench synthetic>")
    app = make_app(config, lambda: config, start_scheduler=False)
    state = app[STATE]
    stored = time.process_time()
    for r in results:
        state.put_probe(r)  # each result is rendered as it is stored
    store_cpu = time.process_time() - stored
    rng = random.Random(2)

    async def churn(request: web.Request) -> web.Response:
        fraction = float(request.query.get("fraction", "0.01"))
        current = list(state.snapshot().probes.values())
        picked = rng.sample(current, max(1, round(len(current) * fraction)))
        replacements = [churned(r, rng) for r in picked]
        stored = time.process_time()
        for r in replacements:
            state.put_probe(r)
        # The CPU of storing (and so rendering) the new results, which the next GET no
        # longer pays: the benchmark reports it beside the GET.
        return web.json_response(
            {"replaced": len(picked), "store_cpu_s": time.process_time() - stored}
        )

    app.router.add_post("/bench/churn", churn)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready = {"pid": os.getpid(), "targets": len(results), "store_cpu_s": store_cpu}
    print(json.dumps(ready), flush=True)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--targets", type=int, default=10_000)
    p.add_argument("--endpoint", required=True, help="host:port of one real TLS endpoint")
    p.add_argument("--ca-file")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    asyncio.run(serve(args.targets, args.endpoint, args.ca_file, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
