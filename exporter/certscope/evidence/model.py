"""The shapes the evidence code passes around: the evaluation grid and compact series.

A range query evaluates an expression at the times of a :class:`Grid`: ``from + step``,
``from + 2·step`` … up to the end of the period. Each evaluation at time ``t`` looks at a window
``(t - window, t]`` of raw samples (``max_over_time(…[window])``), so "present at step k" means
"the exporter reported this series at least once in that window".

Twelve months at a 5-minute step are 105,120 evaluations per series. Most evidence series are
constant for long stretches (a certificate's notAfter, an ``_info`` metric, ``up``), so each
series is kept as :class:`Run` s of equal values over consecutive steps rather than as points:
a certificate seen all year is one run, whatever the step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: A series' labels in a hashable, canonical form (sorted name/value pairs).
SeriesKey = tuple[tuple[str, str], ...]


def series_key(labels: Mapping[str, str]) -> SeriesKey:
    return tuple(sorted(labels.items()))


@dataclass(frozen=True)
class Grid:
    """Evaluation times ``start + (k + 1) · step`` for ``k`` in ``0 … count - 1``.

    Step ``k`` stands for the bucket ``(time(k) - step, time(k)]``; the buckets tile the period
    ``(start, start + count · step]``.
    """

    start: float
    step: float
    count: int

    @property
    def end(self) -> float:
        return self.start + self.count * self.step

    def time(self, k: int) -> float:
        return self.start + (k + 1) * self.step

    def index(self, t: float) -> int | None:
        """The step evaluated at ``t``, or None when ``t`` is not on the grid."""
        k = round((t - self.start) / self.step) - 1
        if 0 <= k < self.count and abs(self.time(k) - t) < self.step / 1000:
            return k
        return None

    def chunks(self, max_points: int) -> list[tuple[int, int]]:
        """Inclusive step ranges of at most ``max_points`` evaluations each."""
        return [
            (first, min(first + max_points, self.count) - 1)
            for first in range(0, self.count, max_points)
        ]


@dataclass(frozen=True)
class Run:
    """Steps ``first`` … ``last`` (inclusive) where a series had ``value``."""

    first: int
    last: int
    value: float

    @property
    def length(self) -> int:
        return self.last - self.first + 1


@dataclass
class Matrix:
    """One expression's result over a grid: series labels → runs, in step order."""

    series: dict[SeriesKey, list[Run]] = field(default_factory=dict)

    def add(self, key: SeriesKey, k: int, value: float) -> None:
        """Record ``value`` at step ``k`` (steps arrive in increasing order per series)."""
        self.extend(key, [(k, value)])

    def extend(self, key: SeriesKey, points: Iterable[tuple[int, float]]) -> None:
        """Record (step, value) points of one series, in increasing step order.

        The hot loop of a long report (a year at 5 minutes is 105,120 points per series), so
        a run object is only made when a run ends.
        """
        runs = self.series.setdefault(key, [])
        first = last = -2
        current: float | None = None
        if runs:
            tail = runs.pop()
            first, last, current = tail.first, tail.last, tail.value
        for k, value in points:
            if k == last + 1 and (value == current or (value != value and current != current)):
                last = k  # the same value continues (NaN equals NaN here)
                continue
            if k <= last:  # a step already recorded: the first answer stands
                continue
            if current is not None:
                runs.append(Run(first, last, current))
            first = last = k
            current = value
        if current is not None:
            runs.append(Run(first, last, current))

    def extend_runs(self, key: SeriesKey, runs: Iterable[Run]) -> None:
        """Record runs of one series, in increasing step order and not overlapping; a run that
        continues the last one with the same value joins it, as :meth:`extend` would."""
        out = self.series.setdefault(key, [])
        for r in runs:
            tail = out[-1] if out else None
            if (
                tail is not None
                and r.first == tail.last + 1
                and (r.value == tail.value or (r.value != r.value and tail.value != tail.value))
            ):
                out[-1] = Run(tail.first, r.last, r.value)
            else:
                out.append(r)
        if not out:
            del self.series[key]

    def items(self) -> Iterable[tuple[dict[str, str], list[Run]]]:
        for key, runs in self.series.items():
            yield dict(key), runs

    @classmethod
    def of(cls, data: Mapping[SeriesKey, list[Run]]) -> Matrix:
        return cls(dict(data))


def value_at(runs: list[Run], k: int) -> float | None:
    """The value of a series at step ``k``, None when absent (runs are sorted)."""
    lo, hi = 0, len(runs)
    while lo < hi:
        mid = (lo + hi) // 2
        if runs[mid].last < k:
            lo = mid + 1
        else:
            hi = mid
    if lo < len(runs) and runs[lo].first <= k:
        return runs[lo].value
    return None


def iso(ts: float) -> str:
    """Unix time → ``2025-01-31T12:00:00Z`` (fractions shown only when present)."""
    dt = datetime.fromtimestamp(ts, UTC)
    if dt.microsecond:
        return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def promql_duration(seconds: float) -> str:
    """Seconds → a PromQL duration literal (``300s``, ``1500ms``)."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def human_duration(seconds: float) -> str:
    """``93784`` → ``1d 2h 3m`` (three units at most); for people, the CSVs keep seconds."""
    seconds = round(seconds)
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:3])


def iso_or_empty(ts: float | None) -> str:
    return iso(ts) if ts is not None else ""


def bool_text(value: bool | None) -> str:
    """``true``/``false`` as the CSV files write them, empty when unknown."""
    return "" if value is None else ("true" if value else "false")


def labels_text(labels: Mapping[str, str], skip: Iterable[str] = ()) -> str:
    """``a=1;b=2`` (sorted), leaving out ``skip``."""
    skipped = set(skip)
    return ";".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in skipped)
