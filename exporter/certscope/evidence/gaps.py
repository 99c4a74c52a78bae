"""Monitoring gaps at any scale: raw scrapes counted per window, then drilled down.

A gap must not depend on the step of the report: a 2-minute outage has to appear in a 12-month
report evaluated every 5 minutes. So gaps are not read from ``max_over_time(up[step])`` but:

1. **Count.** For every step ``k`` the successful scrapes of each exporter instance are counted
   in the window ``(t - S - 2I, t]`` (``S`` the step, ``I`` the scrape interval):
   ``sum_over_time(up[S+2I])``, and all recorded scrapes with ``count_over_time``. The windows
   overlap by ``2I``, so any two consecutive scrape slots lie in one window together.
2. **Drill down.** A window with fewer successful scrapes than it can hold (``⌊(S+2I)/I⌋``) but
   more than none, and its two neighbours, are fetched as raw samples (``up[…]`` at an instant),
   which give the exact time of every scrape. A window with no success at all is silent as a
   whole; one with every scrape is monitored as a whole.
3. **Gaps.** Walking the windows in order, two successful scrapes ``a < b`` more than
   ``2.5 I`` apart (two or more scrapes missed in a row) are a gap ``[a + I, b]``: from when the
   first missed scrape was due to when monitoring resumed. A single missed scrape is not a gap
   (Prometheus's own jitter can look like one). Hence the **smallest detectable gap** is two
   scrape intervals, whatever the step, and every gap of that size or more is found: two missed
   slots always fall in one window, which then cannot be full.

The job as a whole is unmonitored when no instance is (the intersection of instance gaps), and
coverage has one definition everywhere: ``1 - unmonitored seconds / judged seconds``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .model import Grid, Matrix, Run, promql_duration, value_at

NO_DATA = "no_data"  # no scrape of the exporter job recorded at all
EXPORTER_DOWN = "exporter_down"  # scrapes recorded, none succeeded (up == 0)
QUERY_FAILED = "query_failed"  # Prometheus did not answer for that part of the period

#: Order of gap kinds in a joined kind (target kinds are defined in :mod:`.analyse`).
KIND_ORDER = (
    EXPORTER_DOWN,
    NO_DATA,
    QUERY_FAILED,
    "not_monitored",
    "probe_stalled",
    "probe_failing",
    "source_failing",
)

#: Most seconds one raw drill-down request spans (a day at 15 s is 5,760 samples per instance).
MAX_RAW_SECONDS = 6 * 3600

Instance = tuple[str, str]  # (job, instance)


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    kinds: frozenset[str]

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def kind(self) -> str:
        """The kinds joined by ``+`` in a stable order."""
        known = [k for k in KIND_ORDER if k in self.kinds]
        return "+".join(known + sorted(self.kinds - set(KIND_ORDER))) or NO_DATA


def window(step: float, interval: float) -> float:
    """The counting window ``S + 2I``."""
    return step + 2 * interval


def expected(step: float, interval: float) -> int:
    """Successful scrapes a window holds when none is missed."""
    return math.floor(window(step, interval) / interval + 1e-9)


def smallest_detectable(interval: float) -> float:
    return 2 * interval


def count_queries(job_selector: str, step: float, interval: float) -> tuple[str, str]:
    """PromQL of the successes and of all scrapes per instance and window."""
    w = promql_duration(window(step, interval))
    up = f"up{{{job_selector}}}"
    return (
        f"sum by (job, instance) (sum_over_time({up}[{w}]))",
        f"sum by (job, instance) (count_over_time({up}[{w}]))",
    )


def instance_of(labels: Mapping[str, str]) -> Instance:
    return labels.get("job", ""), labels.get("instance", "")


def drill_windows(grid: Grid, interval: float, successes: Matrix) -> list[int]:
    """Steps whose window must be fetched raw: partly filled windows and their neighbours."""
    full = expected(grid.step, interval)
    marks = bytearray(grid.count)
    for _, runs in successes.items():
        for r in runs:
            if 0 < r.value < full:
                lo, hi = max(0, r.first - 1), min(grid.count - 1, r.last + 1)
                marks[lo : hi + 1] = b"\x01" * (hi - lo + 1)
    # a full window next to an absent one (the instance started or stopped) is a boundary too
    for _, runs in successes.items():
        for r in runs:
            for k in (r.first - 1, r.first, r.last, r.last + 1):
                if 0 <= k < grid.count:
                    marks[k] = 1
    return [k for k in range(grid.count) if marks[k]]


def raw_ranges(grid: Grid, interval: float, steps: Sequence[int]) -> list[tuple[float, float]]:
    """Drilled windows merged into ``(start, end]`` ranges of at most :data:`MAX_RAW_SECONDS`."""
    w = window(grid.step, interval)
    out: list[tuple[float, float]] = []
    for k in steps:
        t = grid.time(k)
        start = t - w
        if out and start <= out[-1][1] and t - out[-1][0] <= MAX_RAW_SECONDS:
            out[-1] = (out[-1][0], t)
        else:
            out.append((start, t))
    return out


@dataclass
class _Walk:
    interval: float
    start: float  # of the period
    last_ok: float
    done_until: float
    kinds: set[str]
    gaps: list[Interval]

    def success(self, t: float) -> None:
        if t - self.last_ok > 2.5 * self.interval:
            self.close(t)
        self.last_ok = max(self.last_ok, t)
        self.kinds = set()

    def close(self, t: float) -> None:
        start = max(self.start, self.last_ok + self.interval)
        if t > start:
            self.gaps.append(Interval(start, t, frozenset(self.kinds or {NO_DATA})))


def instance_gaps(
    grid: Grid,
    interval: float,
    successes: list[Run],
    counts: list[Run],
    raw: Sequence[tuple[float, float]],
    drilled: set[int],
) -> list[Interval]:
    """Gaps of one instance over the period (see the module docstring)."""
    full = expected(grid.step, interval)
    w = window(grid.step, interval)
    times = [t for t, _ in raw]
    walk = _Walk(interval, grid.start, grid.start - interval, -math.inf, set(), [])
    for k in range(grid.count):
        t = grid.time(k)
        if k in drilled:
            lo = bisect.bisect_right(times, max(walk.done_until, t - w))
            hi = bisect.bisect_right(times, t)
            previous = max(walk.done_until, t - w)
            for ts, value in raw[lo:hi]:
                if ts - previous > 2.5 * interval:
                    walk.kinds.add(NO_DATA)
                if value >= 1:
                    walk.success(ts)
                else:
                    walk.kinds.add(EXPORTER_DOWN)
                previous = ts
            if t - previous > 2.5 * interval:
                walk.kinds.add(NO_DATA)
        else:
            ok = value_at(successes, k) or 0.0
            if ok >= full:
                # no two missed scrapes in this window: monitored throughout (a full window is
                # never next to a silent one, so the last success before it is close)
                walk.last_ok = t
                walk.kinds = set()
            else:
                seen = value_at(counts, k) or 0.0
                walk.kinds.add(EXPORTER_DOWN if seen > 0 else NO_DATA)
        walk.done_until = t
    if grid.end - walk.last_ok > 1.5 * interval:
        walk.close(grid.end)
    return walk.gaps


def intersect(per_instance: Sequence[Sequence[Interval]], grid: Grid) -> list[Interval]:
    """Time during which no instance was monitored (kinds of every instance involved)."""
    if not per_instance:
        return [Interval(grid.start, grid.end, frozenset({NO_DATA}))]
    current = list(per_instance[0])
    for other in per_instance[1:]:
        out = []
        for a in current:
            for b in other:
                lo, hi = max(a.start, b.start), min(a.end, b.end)
                if hi > lo:
                    out.append(Interval(lo, hi, a.kinds | b.kinds))
        current = out
    return current


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Overlapping or touching intervals merged (kinds joined)."""
    out: list[Interval] = []
    for iv in sorted(intervals, key=lambda i: (i.start, i.end)):
        if out and iv.start <= out[-1].end:
            last = out[-1]
            out[-1] = Interval(last.start, max(last.end, iv.end), last.kinds | iv.kinds)
        else:
            out.append(iv)
    return out


def clip(intervals: Iterable[Interval], start: float, end: float) -> list[Interval]:
    out = []
    for iv in intervals:
        lo, hi = max(start, iv.start), min(end, iv.end)
        if hi > lo:
            out.append(Interval(lo, hi, iv.kinds))
    return out


def coverage_ratio(gaps: Iterable[Interval], seconds: float) -> float:
    """The one definition of coverage: the share of the judged time outside every gap."""
    if seconds <= 0:
        return 0.0
    unmonitored = sum(g.seconds for g in union(gaps))
    return max(0.0, 1.0 - unmonitored / seconds)
