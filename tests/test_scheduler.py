"""Scheduler behaviour: intervals, the global concurrency limit, reload, scrapes never waiting.

The scheduler runs on a fake clock (``helpers.clock``): due times, jitter and the probes' own
durations are in fake seconds, so each test says exactly when something happens and no test
sleeps. The timing tests use the prober seam (a coroutine standing in for a probe that takes a
known time and returns a real refused-connection result); the first test runs real probes.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from certscope.collector import Exposition
from certscope.config import Config, Target, parse_config
from certscope.probe import probe
from certscope.results import ProbeResult
from certscope.scheduler import Scheduler
from certscope.snapshot import State
from helpers.clock import FakeClock, settle

Prober = Callable[[Target, float | None], Awaitable[ProbeResult]]


def _config(n: int, interval: str = "1s", concurrency: int = 4, extra: str = "") -> str:
    targets = "\n".join(
        f"  - {{address: 127.0.0.1:{1000 + i}, name: t{i}, timeout: 200ms}}" for i in range(n)
    )
    return (
        f"defaults: {{interval: {interval}, enumerate: false}}\n"
        f"scheduler: {{concurrency: {concurrency}, jitter: 0.2}}\n"
        f"targets:\n{targets}\n{extra}"
    )


def _every(config: Config, seconds: float) -> Config:
    """Sub-second intervals: below the configurable minimum, set after validation."""
    return replace(config, targets=tuple(replace(t, interval=seconds) for t in config.targets))


@pytest.fixture
async def refused() -> ProbeResult:
    """A real probe's result for a closed loopback port, the template the seam answers with."""
    target = parse_config(_config(1), "t").targets[0]
    result = await probe(target)
    assert result.outcome.error is not None
    assert result.outcome.error.reason == "connect_refused"
    return result


class SlowProber:
    """Records concurrency and call times; each probe takes ``delay`` seconds of the clock, then
    answers with ``template`` for the target (or, without one, really probes)."""

    def __init__(self, clock: FakeClock, delay: float, template: ProbeResult | None = None) -> None:
        self.clock = clock
        self.delay = delay
        self.template = template
        self.running = 0
        self.peak = 0
        self.calls: list[tuple[str, float]] = []

    async def __call__(self, target: Target, last_success: float | None) -> ProbeResult:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.calls.append((target.name, self.clock.now))
        try:
            await self.clock.sleep(self.delay)
            if self.template is None:
                return await probe(target, last_success)
            return replace(
                self.template,
                name=target.name,
                address=target.address,
                labels=target.labels,
                last_success=last_success,
            )
        finally:
            self.running -= 1

    def times(self, name: str) -> list[float]:
        return [t for n, t in self.calls if n == name]


@asynccontextmanager
async def running(sched: Scheduler) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(sched.run())
    try:
        await settle()
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _has_probes(state: State, n: int) -> Callable[[], bool]:
    return lambda: len(state.snapshot().probes) == n


async def settle_until(done: Callable[[], bool], turns: int = 100_000) -> None:
    """Event-loop turns (real I/O completes, no clock moves) until ``done()``."""
    for _ in range(turns):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"not done after {turns} event-loop turns")


async def test_concurrency_limit_and_first_round() -> None:
    clock = FakeClock()
    state = State(parse_config(_config(12, interval="1h", concurrency=3), "t"))
    prober = SlowProber(clock, 0.1)  # real probes of closed ports, after 0.1 s each
    sched = Scheduler(state, prober=prober, rng=random.Random(1), clock=clock)
    assert not state.snapshot().first_round_done
    async with running(sched):
        for batch in range(1, 5):
            # three at a time: the next three start when the previous three finished
            starts = [0.1 * b for b in range(batch) for _ in "abc"]
            assert [t for _, t in prober.calls] == pytest.approx(starts)
            assert prober.running == 3
            await clock.advance(0.1)
            finished = 3 * batch
            await settle_until(_has_probes(state, finished))
        assert prober.peak == 3
        assert not prober.running
        snap = state.snapshot()
        assert snap.first_round_done
    assert sorted(name for name, _ in prober.calls) == sorted(f"t{i}" for i in range(12))
    assert set(snap.probes) == {f"t{i}" for i in range(12)}
    assert all(
        r.outcome.error and r.outcome.error.reason == "connect_refused"
        for r in snap.probes.values()
    )


async def test_first_round_waits_for_the_last_probe(refused: ProbeResult) -> None:
    clock = FakeClock()
    state = State(parse_config(_config(4, interval="1h", concurrency=2), "t"))
    sched = Scheduler(state, prober=SlowProber(clock, 1.0, refused), clock=clock)
    async with running(sched):
        await clock.advance(1.999)
        assert len(state.snapshot().probes) == 2
        assert not state.snapshot().first_round_done
        await clock.advance(0.001)
        assert len(state.snapshot().probes) == 4
        assert state.snapshot().first_round_done


async def test_targets_are_reprobed_on_their_interval_with_jitter(refused: ProbeResult) -> None:
    clock = FakeClock()
    state = State(_every(parse_config(_config(2, concurrency=8), "t"), 0.3))
    prober = SlowProber(clock, 0, refused)
    sched = Scheduler(state, prober=prober, rng=random.Random(7), clock=clock)
    async with running(sched):
        await clock.advance(1.75)
    for name in ("t0", "t1"):
        times = prober.times(name)
        assert times[0] == 0.0  # first run at once
        # then every 0.3 s ± 0.03 s (jitter 0.2 of the interval), none skipped up to 1.75 s
        assert 1.75 - 0.33 < times[-1] <= 1.75, times
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(0.27 <= g <= 0.33 for g in gaps), gaps
        assert len({round(g, 6) for g in gaps}) == len(gaps)  # jitter: no fixed period


async def test_scrapes_do_not_wait_for_slow_probes(refused: ProbeResult) -> None:
    clock = FakeClock()
    state = State(parse_config(_config(3, interval="1h", concurrency=3), "t"))
    prober = SlowProber(clock, 2.0, refused)
    sched = Scheduler(state, prober=prober, clock=clock)
    async with running(sched):
        await clock.advance(1.0)
        assert prober.running == 3
        snap = state.snapshot()  # synchronous: a scrape cannot wait for the probes
        text = Exposition().render([*snap.probes.values(), *snap.sources.values()])
        assert text == ""  # nothing finished yet, nothing invented
        assert not snap.first_round_done
        await clock.advance(1.0)
        assert set(state.snapshot().probes) == {"t0", "t1", "t2"}


async def test_reload_removes_changes_and_adds(refused: ProbeResult) -> None:
    clock = FakeClock()
    state = State(parse_config(_config(3, interval="1h"), "t"))
    prober = SlowProber(clock, 0.1, refused)
    sched = Scheduler(state, prober=prober, clock=clock)
    async with running(sched):
        await clock.advance(0.1)
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
        snap = state.snapshot()
        assert "t2" not in snap.probes  # removed: gone at once
        assert "t1" not in snap.probes  # changed: old series dropped at once
        assert set(snap.assessments) == {"t0"}
        await clock.advance(0.1)
        snap = state.snapshot()
        assert set(snap.probes) == {"t0", "t1", "t9"}
        assert snap.probes["t0"] is first_t0  # unchanged: not re-probed
        assert dict(snap.probes["t1"].labels) == {"owner": "x"}
        assert prober.times("t0") == [0.0]
        assert prober.times("t1") == [0.0, 0.1]
        assert set(snap.assessments) == {"t0", "t1", "t9"}


async def test_a_crashing_prober_does_not_stop_the_others(refused: ProbeResult) -> None:
    clock = FakeClock()
    state = State(_every(parse_config(_config(4), "t"), 0.3))
    tried: list[tuple[str, float]] = []
    answer = SlowProber(clock, 0, refused)

    async def flaky(target: Target, last: float | None) -> ProbeResult:
        tried.append((target.name, clock.now))
        if target.name == "t1":
            raise RuntimeError("boom")
        return await answer(target, last)

    sched = Scheduler(state, prober=flaky, clock=clock)
    async with running(sched):
        await clock.advance(0.7)
    assert set(state.snapshot().probes) == {"t0", "t2", "t3"}
    # the crashed job is rescheduled on its interval like every other
    assert [n for n, _ in tried].count("t1") == [n for n, _ in tried].count("t0") == 3


async def test_last_success_is_carried_between_results(refused: ProbeResult) -> None:
    clock = FakeClock()
    state = State(_every(parse_config(_config(1), "t"), 0.3))
    seen: list[float | None] = []

    async def recording(target: Target, last: float | None) -> ProbeResult:
        seen.append(last)
        result = replace(refused, name=target.name, last_success=last)  # refused: no success
        return replace(result, last_success=1234.0) if len(seen) == 1 else result

    sched = Scheduler(state, prober=recording, clock=clock)
    async with running(sched):
        await clock.advance(0.5)
    assert seen == [None, 1234.0]
    assert state.snapshot().probes["t0"].last_success == 1234.0


async def test_stopping_cancels_the_probes_in_flight(refused: ProbeResult) -> None:
    clock = FakeClock()
    state = State(parse_config(_config(2, interval="1h"), "t"))
    prober = SlowProber(clock, 5.0, refused)
    sched = Scheduler(state, prober=prober, clock=clock)
    async with running(sched):
        await clock.advance(1.0)
        assert prober.running == 2
    assert prober.running == 0
    assert clock.sleepers == 0
    assert not state.snapshot().probes


async def test_due_jobs_beyond_the_limit_wait_without_a_task() -> None:
    """Twelve jobs due at once under a limit of three: three tasks exist, not twelve (at fleet
    scale, thousands of tasks waiting on the semaphore were megabytes held for nothing)."""
    clock = FakeClock()
    state = State(parse_config(_config(12, interval="1h", concurrency=3), "t"))
    prober = SlowProber(clock, 0.1)
    sched = Scheduler(state, prober=prober, rng=random.Random(1), clock=clock)
    async with running(sched):
        assert prober.running == 3
        assert len(sched._tasks) == 3
        await clock.advance(0.1)
        await settle_until(_has_probes(state, 3))
        await settle_until(lambda: prober.running == 3)
        assert len(sched._tasks) <= 4  # three probing, one at most still finishing
