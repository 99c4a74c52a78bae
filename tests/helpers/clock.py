"""A fake clock for the scheduler: time moves only when a test says so.

    clock = FakeClock()
    sched = Scheduler(state, prober=..., clock=clock)
    task = asyncio.create_task(sched.run())
    await clock.advance(0.3)      # every sleeper due by then wakes, in order, and runs

``advance`` wakes the sleepers one due time after another and, after each, lets every task that
is ready run until the event loop has nothing left to do without more time passing, so a test
sees exactly what the scheduler did by that instant. No real time passes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

#: The wall time at monotonic 0: any fixed instant will do, the policy only compares.
EPOCH = datetime(2026, 11, 28, 12, tzinfo=UTC)

# How many event-loop turns settle() gives ready tasks. Every turn also polls the selector, so
# I/O that is already complete (a refused loopback connect) is delivered within a few turns.
_TURNS = 200


class FakeClock:
    def __init__(self, wall_at_zero: datetime = EPOCH) -> None:
        self.now = 0.0
        self._wall_at_zero = wall_at_zero
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return self._wall_at_zero + timedelta(seconds=self.now)

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._seq), future))
        await future  # a cancelled sleeper's future is cancelled too and skipped on waking

    @property
    def sleepers(self) -> int:
        """How many sleeps are pending (cancelled ones are not counted)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper due by then in order."""
        until = self.now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= until:
            due, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, due)
            if not future.done():
                future.set_result(None)
                await settle()
        self.now = until
        await settle()

    async def advance_until(self, done: Callable[[], bool], step: float, limit: float) -> float:
        """Advance in ``step``s until ``done()``; fails the test after ``limit`` seconds."""
        start = self.now
        while not done():
            if self.now - start >= limit:
                raise AssertionError(f"not done after {limit} s of fake time")
            await self.advance(step)
        return self.now - start


async def settle(turns: int = _TURNS) -> None:
    """Let every ready task run: ``turns`` passes of the event loop, no time on any clock."""
    for _ in range(turns):
        await asyncio.sleep(0)
