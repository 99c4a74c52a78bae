"""Scheduler behaviour: intervals, the global concurrency limit, reload, scrapes never waiting.

The timing properties are tested through the scheduler's prober seam (a coroutine standing in
for a probe that takes a known time); one test runs real probes end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from dataclasses import replace

from certscope.collector import Exposition
from certscope.config import Config, Target, parse_config
from certscope.probe import probe
from certscope.results import ProbeResult
from certscope.scheduler import Scheduler
from certscope.snapshot import State


def _config(n: int, interval: str = "1s", concurrency: int = 4, extra: str = "") -> str:
    targets = "\n".join(
        f"  - {{address: 127.0.0.1:{1000 + i}, name: t{i}, timeout: 200ms}}" for i in range(n)
    )
    return (
        f"defaults: {{interval: {interval}, enumerate: false}}\nscheduler: {{concurrency: {concurrency}, jitter: 0.2}}\n"
        f"targets:\n{targets}\n{extra}"
    )


def _every(config: Config, seconds: float) -> Config:
    """Sub-second intervals for fast tests: below the configurable minimum, set after validation."""
    return replace(config, targets=tuple(replace(t, interval=seconds) for t in config.targets))


class SlowProber:
    """Records concurrency; each probe takes ``delay`` seconds and then really probes."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.running = 0
        self.peak = 0
        self.calls: list[tuple[str, float]] = []

    async def __call__(self, target: Target, last_success: float | None) -> ProbeResult:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.calls.append((target.name, time.monotonic()))
        try:
            await asyncio.sleep(self.delay)
            return await probe(target, last_success)
        finally:
            self.running -= 1


async def _run_for(scheduler: Scheduler, seconds: float) -> None:
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_concurrency_limit_and_first_round() -> None:
    state = State(parse_config(_config(12, interval="1h", concurrency=3), "t"))
    prober = SlowProber(0.1)
    sched = Scheduler(state, prober=prober, rng=random.Random(1))
    assert not state.snapshot().first_round_done
    await _run_for(sched, 0.8)
    assert prober.peak == 3
    assert sorted(name for name, _ in prober.calls) == sorted(f"t{i}" for i in range(12))
    snap = state.snapshot()
    assert snap.first_round_done
    assert set(snap.probes) == {f"t{i}" for i in range(12)}
    assert all(
        r.outcome.error and r.outcome.error.reason == "connect_refused"
        for r in snap.probes.values()
    )


async def test_targets_are_reprobed_on_their_interval_with_jitter() -> None:
    state = State(_every(parse_config(_config(2, concurrency=8), "t"), 0.3))
    prober = SlowProber(0)
    sched = Scheduler(state, prober=prober, rng=random.Random(7))
    await _run_for(sched, 1.75)
    per_target = {n: [t for name, t in prober.calls if name == n] for n in ("t0", "t1")}
    for times in per_target.values():
        assert 5 <= len(times) <= 7, times  # first run at once, then every 0.3 s ± 0.03 s
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(0.25 <= g <= 0.40 for g in gaps), gaps
        assert len({round(g, 4) for g in gaps}) > 1  # jitter: not a fixed period


async def test_scrapes_do_not_wait_for_slow_probes() -> None:
    state = State(parse_config(_config(3, interval="1h", concurrency=3), "t"))
    prober = SlowProber(2.0)
    sched = Scheduler(state, prober=prober)
    task = asyncio.create_task(sched.run())
    try:
        await asyncio.sleep(0.1)
        assert prober.running == 3
        t0 = time.perf_counter()
        snap = state.snapshot()
        text = Exposition().render([*snap.probes.values(), *snap.sources.values()])
        assert time.perf_counter() - t0 < 0.1
        assert text == ""  # nothing finished yet, nothing invented
        assert not snap.first_round_done
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_reload_removes_changes_and_adds() -> None:
    state = State(parse_config(_config(3, interval="1h"), "t"))
    prober = SlowProber(0)
    sched = Scheduler(state, prober=prober)
    task = asyncio.create_task(sched.run())
    try:
        await asyncio.sleep(0.3)
        assert set(state.snapshot().probes) == {"t0", "t1", "t2"}
        first_t0 = state.snapshot().probes["t0"]
        new = parse_config(
            "defaults: {interval: 1h, enumerate: false}\ntargets:\n"
            "  - {address: 127.0.0.1:1000, name: t0, timeout: 200ms}\n"  # unchanged
            "  - {address: 127.0.0.1:1001, name: t1, timeout: 200ms, labels: {owner: x}}\n"
            "  - {address: 127.0.0.1:2000, name: t9, timeout: 200ms}\n",
            "t",
        )
        state.set_config(new)
        sched.apply(new)
        assert "t2" not in state.snapshot().probes  # removed: gone at once
        assert "t1" not in state.snapshot().probes  # changed: old series dropped at once
        await asyncio.sleep(0.3)
        snap = state.snapshot()
        assert set(snap.probes) == {"t0", "t1", "t9"}
        assert snap.probes["t0"] is first_t0  # unchanged: not re-probed
        assert dict(snap.probes["t1"].labels) == {"owner": "x"}
        assert [n for n, _ in prober.calls].count("t0") == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_crashing_prober_does_not_stop_the_others() -> None:
    state = State(_every(parse_config(_config(4), "t"), 0.3))

    async def flaky(target: Target, last: float | None) -> ProbeResult:
        if target.name == "t1":
            raise RuntimeError("boom")
        return await probe(target, last)

    sched = Scheduler(state, prober=flaky)
    await _run_for(sched, 0.7)
    assert set(state.snapshot().probes) == {"t0", "t2", "t3"}


async def test_last_success_is_carried_between_results() -> None:
    state = State(_every(parse_config(_config(1), "t"), 0.3))
    seen: list[float | None] = []

    async def recording(target: Target, last: float | None) -> ProbeResult:
        seen.append(last)
        result = await probe(target, last)  # connection refused: not a success
        return replace(result, last_success=1234.0) if len(seen) == 1 else result

    sched = Scheduler(state, prober=recording)
    await _run_for(sched, 0.5)
    assert seen[:2] == [None, 1234.0]
    assert state.snapshot().probes["t0"].last_success == 1234.0
