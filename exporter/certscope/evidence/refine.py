"""Coarse first, fine only where something happened: the range fetch of a long period.

A year at a 5-minute step is 105,120 evaluations per series; fetching every one of them for
every target makes the answer (and the JSON to parse) grow with targets times steps, although most
evidence series hold one value for weeks. So a query ``E`` of the plan whose values are raw
samples (:class:`.query.Raw`: ``AGG GROUPING (FN(X[W]))``, the per-target queries of
:func:`.query.plan`) is fetched
in levels (other queries too, at a higher price: see below):

1. **Buckets.** The steps are grouped in buckets of ``m`` steps (``m`` = 4096, 256, 16 for a
   year at 5 minutes: about two weeks, a day, an hour). For each bucket, three range queries at
   the bucket's step ask, per series of ``E``, whether it had a value at every step, and its
   least and largest value. Presence is counted per tile of ``d`` ≥ ``S`` seconds
   (:func:`tile`, ``S`` the report's step): a tile inside every step's window, so a bucket whose
   every tile holds a raw sample has a value at every step. The least and largest value come
   from range selectors over the raw samples of the union of the bucket's windows
   (:func:`aggregates`). Prometheus reads each sample once, and aggregates per tile rather than
   per step, where a count through a subquery evaluates ``E`` and its aggregation at every step.
2. **Constant buckets.** A series present at all ``m`` steps with least = largest had that
   value throughout: one run, without fetching its steps.
3. **Drill down.** Every other bucket where a series appears (partly present, or changing) is
   fetched at the next level, for every series, and so on down to the report's step, where it
   is fetched as is. Buckets where some other series changed are refetched for all series, so
   a bucket's runs come from one level only.

A coarse request spans at most ``max_points`` of the evaluations Prometheus makes for it (tiles
or steps), so its memory per request stays that of a plain chunk, while the answer holds three
values per series and bucket.

The other queries (counts of endpoints, verdicts, scrape counts) are bucketed through three
subqueries (the count, least and largest value of ``E`` at every step of a bucket), which cost
Prometheus three evaluations of ``E`` per level where a plain fetch evaluates it once. They
aggregate all targets into a few series, so their answers are small at every step: the command
fetches them plainly (:func:`fetch`'s ``raw_only``), and levels only the per-target queries.

The result is the same :class:`.model.Matrix` as a plain range query's, run for run (the tests
compare both against a real Prometheus); the data received follows the changes, not the steps. A coarse
request that fails after its retries is not a gap: its buckets are fetched at the next level,
and only a failure at the report's step is recorded as one (:attr:`.query.PrometheusClient.failed`).
Every request is recorded for the manifest like any other.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import Callable, Iterable, Sequence

from .model import Grid, Matrix, Run, SeriesKey, promql_duration, value_at
from .query import (
    MAX_POINTS,
    ProgressCallback,
    PrometheusClient,
    PrometheusUnreachable,
    Query,
    Raw,
)

#: Ratio between the bucket sizes of two levels.
FACTOR = 16

Span = tuple[int, int]  # inclusive steps of the report's grid


def levels(grid: Grid) -> list[int]:
    """Bucket sizes in steps, coarsest first; empty when the grid is fetched as is.

    Only for long grids (two levels or more) whose period starts on a multiple of the step: a
    subquery evaluates at multiples of its step, which then are the report's evaluation times.
    """
    if grid.count < FACTOR**3 or grid.step < 1 or (grid.start % grid.step) > 1e-6:
        return []  # short: one or two plain requests are cheaper than levels
    sizes: list[int] = []
    m = FACTOR
    while m * FACTOR <= grid.count:
        sizes.insert(0, m)
        m *= FACTOR
    return sizes


def tile(query: Query, step: float) -> float:
    """The length of the pieces whose samples :func:`aggregates` counts: a multiple of the step.

    For a query with raw bounds (:class:`.query.Raw`) every window ``[t - W, t]`` of a step
    ``t`` holds a whole tile ``[u - d, u]`` (``u`` a multiple of ``d``) when ``d`` ≤
    ``(W + S) / 2``: ``t`` is a multiple of ``S``, so the last tile end at or before ``t`` is at
    most ``d - S`` earlier, and that tile starts no earlier than ``t - W``. A year at a 1-hour
    scrape interval has 2-hour windows and 1-hour tiles: twelve times fewer than 5-minute steps.
    """
    if query.raw is None or query.raw.window < step:  # a window shorter than a step: no tile fits
        return step
    return ((query.raw.window + step) / 2 // step) * step


def aggregates(query: Query, m: int, step: float) -> tuple[Query, Query, Query]:
    """Presence, least and largest value of ``query`` over buckets of ``m`` steps.

    The presence value is ``m`` exactly when the bucket is known to have a value at each of
    its steps. For a query with raw bounds (:class:`.query.Raw`) it is ``m`` less the number of
    tiles (:func:`tile`) without a raw sample of the series, counted over every tile some step
    of the bucket looks at: a range selector per tile, where Prometheus evaluates the query and
    its aggregation at every step for a count. A bucket with every tile present has a value at
    every step; one with a tile missing may still have one (a window holds two tiles), which
    only sends it to the next level. The reference count, ``vector(1)`` over the same tiles, is
    evaluated by the same Prometheus, so the edges of the range (closed or open on the left,
    Prometheus 2 or 3) count the same on both sides. Other queries are counted through a
    subquery: how many of the bucket's steps have a value.

    The least and largest value are read from the raw samples when the query says which they
    are (:class:`.query.Raw`): a range selector over the union of the bucket's windows reads
    each sample once, where a subquery evaluates the query at every step. Its bounds may be
    wider than the query's values (a sample that no step selects), which only sends a bucket
    to the next level.
    """
    # just under m steps: the window holds exactly the bucket's m evaluation times, whether
    # the range is closed on the left (Prometheus 2) or open (Prometheus 3)
    sub = f"[{promql_duration(m * step - step / 2)}:{promql_duration(step)}]"

    def bound(fn: str) -> str:
        if query.raw is not None:  # the bucket's steps t_1 … t_m look back to t_1 - window
            return query.raw.bound(fn, (m - 1) * step)
        return f"{fn}_over_time(({query.expr}){sub})"

    count = f"count_over_time(({query.expr}){sub})"
    if query.raw is not None and query.raw.window >= step:
        count = _present(query.raw, m, step, tile(query, step))
    return (
        Query(f"{query.name}@count:{m}", count, query.purpose),
        Query(f"{query.name}@min:{m}", bound("min"), query.purpose),
        Query(f"{query.name}@max:{m}", bound("max"), query.purpose),
    )


def _present(raw: Raw, m: int, step: float, d: float) -> str:
    """``m`` less the tiles of length ``d`` without a raw sample (:func:`aggregates`)."""
    # tiles ending in (t_1 - W + d/2, t_m]: every tile a step of the bucket needs (ends at or
    # after t_1 - W + d), and at most one more, whose absence only means a closer look
    tiles = f"[{promql_duration((m - 1) * step + raw.window - d / 2)}:{promql_duration(d)}]"
    inner = f"{raw.fn}({raw.selector}[{promql_duration(d)}])"
    # the same labels as the query's: an aggregation of the same grouping, or the function
    each = f"group {raw.grouping} ({inner})" if raw.grouping else inner
    return f"count_over_time(({each}){tiles}) - scalar(count_over_time(vector(1){tiles})) + {m}"


class _Level:
    """What one level found: constant runs per series, and the spans to look at closer."""

    def __init__(self) -> None:
        self.constant: dict[SeriesKey, list[Run]] = {}
        self.unsure: list[Span] = []

    def classify(self, m: int, lo: int, counts: Matrix, least: Matrix, most: Matrix) -> None:
        """Sort the buckets of one span (its bucket ``j`` is steps ``lo + j·m`` …)."""
        for key, count_runs in counts.series.items():
            low, high = least.series.get(key, []), most.series.get(key, [])
            for a, b, value in _segments(count_runs, low, high, m):
                span = (lo + a * m, lo + (b + 1) * m - 1)
                if value is None:
                    self.unsure.append(span)
                else:
                    self.constant.setdefault(key, []).append(Run(*span, value))


def _segments(
    counts: list[Run], low: list[Run], high: list[Run], m: int
) -> Iterable[tuple[int, int, float | None]]:
    """Buckets ``a … b`` where the three series do not change: (a, b, value or None if unsure)."""
    cuts = sorted({c for runs in (counts, low, high) for r in runs for c in (r.first, r.last + 1)})
    for a, b in itertools.pairwise(cuts):
        count = value_at(counts, a)
        if count is None:
            continue  # the series is absent from these buckets
        least, most = value_at(low, a), value_at(high, a)
        constant = count == m and least is not None and least == most
        yield a, b - 1, least if constant else None


def union(spans: Iterable[Span]) -> list[Span]:
    """Sorted, merged spans (touching spans join)."""
    out: list[Span] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def subtract(run: Run, spans: Sequence[Span]) -> Iterable[Run]:
    """The parts of ``run`` outside the sorted, disjoint ``spans``."""
    first = run.first
    i = max(0, bisect.bisect_right(spans, (first, first)) - 1)
    for a, b in spans[i:]:
        if a > run.last:
            break
        if b < first:
            continue
        if a > first:
            yield Run(first, a - 1, run.value)
        first = b + 1
    if first <= run.last:
        yield Run(first, run.last, run.value)


async def _level(
    client: PrometheusClient, query: Query, grid: Grid, m: int, todo: list[Span], max_points: int
) -> tuple[dict[SeriesKey, list[Run]], list[Span]]:
    """One level over ``todo``: constant runs outside what the next level fetches, and that."""
    found = _Level()
    rest: list[Span] = []
    for lo, hi in todo:
        buckets = (hi - lo + 1) // m
        if lo + buckets * m <= hi:  # a last, partial bucket: the next level
            rest.append((lo + buckets * m, hi))
        if not buckets:
            continue
        coarse = Grid(grid.start + lo * grid.step, m * grid.step, buckets)
        unanswered: list[Span] = []
        # Prometheus evaluates a subquery at every step (or tile) of the request's range: at
        # most max_points of them per request keeps its memory at a plain chunk's
        per_request = max(1, int(max_points * tile(query, grid.step) / grid.step) // m)
        counts, least, most = await asyncio.gather(
            *(
                client.range(q, coarse, max_points=per_request, unanswered=unanswered)
                for q in aggregates(query, m, grid.step)
            )
        )
        found.classify(m, lo, counts, least, most)
        rest += [(lo + a * m, lo + (b + 1) * m - 1) for a, b in unanswered]
    nxt = union([*rest, *found.unsure])
    constant = {
        key: [piece for run in runs for piece in subtract(run, nxt)]
        for key, runs in found.constant.items()
    }
    return constant, nxt


async def fetch_query(
    client: PrometheusClient,
    query: Query,
    grid: Grid,
    max_points: int = MAX_POINTS,
    on_level: Callable[[], None] = lambda: None,
) -> Matrix:
    """``query`` over ``grid`` level by level (module docstring); ``on_level`` after each."""
    todo: list[Span] = [(0, grid.count - 1)] if grid.count else []
    found: dict[SeriesKey, list[Run]] = {}
    for m in levels(grid):
        if not todo:
            break
        constant, todo = await _level(client, query, grid, m, todo, max_points)
        for key, runs in constant.items():
            found.setdefault(key, []).extend(runs)
        on_level()
    fine = await client.range(query, grid, max_points=max_points, spans=todo) if todo else Matrix()
    on_level()
    out = Matrix()
    for key in sorted(found.keys() | fine.series.keys()):
        runs = sorted([*found.get(key, []), *fine.series.get(key, [])], key=lambda r: r.first)
        out.extend_runs(key, runs)  # a series with no run left is not added
    return out


def spread(tick: Callable[[], None], requests: int, units: int) -> Callable[[], None]:
    """A callback for each of ``requests`` requests that calls ``tick`` ``units`` times in all."""
    done = 0

    def on_request() -> None:
        nonlocal done
        done += 1
        for _ in range(done * units // requests - (done - 1) * units // requests):
            tick()

    return on_request


async def fetch(
    client: PrometheusClient,
    queries: list[Query],
    grid: Grid,
    progress: ProgressCallback | None = None,
    max_points: int = MAX_POINTS,
    *,
    coarse_first: bool = False,
    raw_only: bool = False,
) -> dict[str, Matrix]:
    """Run every query of the plan over the grid, in parallel; ``progress`` after each
    request of a plain fetch, or each level of a levelled one (``coarse_first``, when the
    grid allows it: :func:`levels`).

    With ``raw_only`` (the command's default), only the queries with raw bounds
    (:class:`.query.Raw`) are fetched in levels: most others (counts of endpoints, verdicts,
    scrape counts) aggregate every target into a handful of series, so their every step is a
    small answer, and Prometheus evaluates them once per step instead of three times per level
    (the credential queries are per key, but not described by their raw bounds yet).
    They count as many progress units as a levelled query, spread over their requests.
    """
    sizes = levels(grid) if coarse_first else []
    steps = len(sizes) + 1 if sizes else len(grid.chunks(max_points))
    total = steps * len(queries)
    done = 0

    def ticker(name: str) -> Callable[[], None]:
        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total, name)

        return tick

    failed_before, records_before = len(client.failed), len(client.records)
    if sizes:
        chunks = len(grid.chunks(max_points))
        matrices = await asyncio.gather(
            *(
                fetch_query(client, q, grid, max_points, ticker(q.name))
                if q.raw is not None or not raw_only
                else client.range(q, grid, spread(ticker(q.name), chunks, steps), max_points)
                for q in queries
            )
        )
    else:
        matrices = await asyncio.gather(
            *(client.range(q, grid, ticker(q.name), max_points) for q in queries)
        )
    failed = client.failed[failed_before:]
    if failed and len(client.records) == records_before:  # nothing answered: an error
        raise PrometheusUnreachable(f"every range request failed; the first: {failed[0].error}")
    return {q.name: m for q, m in zip(queries, matrices, strict=True)}
