"""``certscope evidence``: the SOC 2 evidence report of a period, from Prometheus.

    certscope evidence --prometheus.url http://prometheus:9090 \\
        --from 2025-01-01 --to 2025-12-31 --out evidence-2025/

Exit codes: 0 the report was written (whatever the controls' results); 1 Prometheus could not
be queried or the files could not be written; 2 a usage error (bad date, step, URL, a non-empty
--out without --force); 3 the report was written but the period starts before the data
Prometheus holds (0 with --allow-partial).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import yaml

from .. import __version__
from ..config import parse_duration
from ..errors import UsageError
from . import analyse, configuration, endpoints, facts, gaps, http, query, refine, report, verdict
from .meta import Meta
from .model import Grid, Matrix, human_duration, iso

#: Steps tried, smallest first, when --step is not given.
STEP_LADDER = (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
#: Most evaluations per series the automatic step aims for (about ten range queries).
AUTO_STEP_POINTS = 110_000
#: Most evaluations per series at all (memory and Prometheus load); a coarser step is needed.
MAX_STEPS = 2_000_000
DEFAULT_JOB = "certscope.*"
DEFAULT_STALE_AFTER = "15m"
#: Prometheus's defaults when the configuration cannot be read.
DEFAULT_INTERVAL = 60.0
#: Exit status when the report was written but the period starts before the data.
EXIT_PARTIAL = 3


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``evidence`` to the ``certscope`` subcommands."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "evidence",
        help="write the SOC 2 evidence report of a period from Prometheus",
        description=(
            "Query Prometheus for a period and write report.html, CSV files, summary.json, "
            "charts and a manifest with SHA-256 hashes and every query used."
        ),
    )
    _arguments(p)
    return p


def _arguments(p: argparse.ArgumentParser) -> None:
    _source_arguments(p)
    _query_arguments(p)
    _output_arguments(p)


def _source_arguments(p: argparse.ArgumentParser) -> None:
    """Where the data comes from and which period."""
    p.add_argument(
        "--prometheus.url",
        dest="prometheus_url",
        required=True,
        metavar="URL",
        help="Prometheus base URL, e.g. http://prometheus:9090",
    )
    p.add_argument(
        "--from",
        dest="date_from",
        required=True,
        metavar="DATE",
        help="start of the period: ISO 8601 date (00:00 UTC) or datetime (UTC if no offset)",
    )
    p.add_argument(
        "--to",
        dest="date_to",
        required=True,
        metavar="DATE",
        help="end of the period: a date includes that whole day; times after now become now",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="directory to write (created)")
    p.add_argument(
        "--job",
        default=DEFAULT_JOB,
        metavar="REGEX",
        help=f"Prometheus job(s) of the certscope exporter (default: {DEFAULT_JOB})",
    )
    p.add_argument(
        "--step",
        metavar="DURATION",
        help="resolution, e.g. 1m or 5m (default: from the period, 5m for a year)",
    )
    p.add_argument(
        "--prometheus.config",
        dest="prometheus_config",
        metavar="FILE",
        help="YAML with basic_auth, authorization / bearer_token(_file) and tls_config, "
        "as in a Prometheus http_config",
    )
    p.add_argument(
        "--alertmanager.url",
        dest="alertmanager_url",
        metavar="URL",
        help="Alertmanager base URL: its routing and receivers (secrets redacted) go into the "
        "package",
    )
    p.add_argument(
        "--config",
        dest="certscope_config",
        metavar="FILE",
        help="the certscope configuration file: a redacted copy and its SHA-256 go into the "
        "package",
    )


def _query_arguments(p: argparse.ArgumentParser) -> None:
    """How Prometheus is queried."""
    p.add_argument(
        "--query.timeout",
        dest="query_timeout",
        default="2m",
        metavar="DURATION",
        help="deadline of one request, connection to last byte (default: 2m)",
    )
    p.add_argument(
        "--query.max-bytes",
        dest="query_max_bytes",
        type=int,
        default=query.DEFAULT_MAX_BYTES,
        metavar="BYTES",
        help=f"largest answer read (default: {query.DEFAULT_MAX_BYTES:,})",
    )
    p.add_argument(
        "--query.chunk-points",
        dest="chunk_points",
        type=int,
        default=None,
        metavar="N",
        help=f"evaluations per range request (at most {query.MAX_POINTS:,}; default: from "
        "the number of TLS targets at the end of the period)",
    )
    p.add_argument(
        "--query.concurrency",
        dest="concurrency",
        type=int,
        default=4,
        metavar="N",
        help="requests in flight at once (default: 4)",
    )
    p.add_argument(
        "--query.coarse-first",
        dest="coarse_first",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="for 4,096 steps or more: ask per bucket of steps whether each series changed "
        "and fetch every step only where it did (default); --no-query.coarse-first fetches "
        "every step of every series",
    )


def _output_arguments(p: argparse.ArgumentParser) -> None:
    """How the controls are judged and what is written."""
    p.add_argument(
        "--min-observed-ratio",
        dest="min_observed",
        type=float,
        default=verdict.MIN_OBSERVED,
        metavar="RATIO",
        help=f"share of the period a control needs observed to pass (default: "
        f"{verdict.MIN_OBSERVED})",
    )
    p.add_argument(
        "--insufficient-below",
        dest="insufficient_below",
        type=float,
        default=verdict.INSUFFICIENT_BELOW,
        metavar="RATIO",
        help="below this observed share a control has insufficient data; between the two "
        f"it passes with gaps (default: {verdict.INSUFFICIENT_BELOW})",
    )
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="exit 0 even when the period starts before the data Prometheus holds",
    )
    p.add_argument(
        "--no-pdf",
        action="store_true",
        help="do not write report.pdf (WeasyPrint) next to report.html",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace a non-empty --out directory (its files are deleted first)",
    )
    p.add_argument(
        "--probe-stale-after",
        dest="stale_after",
        default=DEFAULT_STALE_AFTER,
        metavar="DURATION",
        help=(
            "a target whose last probe is older than this is a gap (default: "
            f"{DEFAULT_STALE_AFTER}, three times the default probe interval)"
        ),
    )


# --- arguments ----------------------------------------------------------------------------------


def parse_date(text: str, *, end: bool) -> float:
    """ISO 8601 date or datetime → Unix time. A date as the end of a period means its end."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-?\d{2}-?\d{2}", text):  # a date, extended or basic format
            d = date.fromisoformat(text)
            start = datetime(d.year, d.month, d.day, tzinfo=UTC)
            return (start + timedelta(days=1) if end else start).timestamp()
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{text!r} is not an ISO 8601 date or datetime (2025-01-31, 2025-01-31T12:00:00Z)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def choose_step(period: float, step: str | None) -> float:
    if step is not None:
        try:
            value = parse_duration(step)
        except ValueError as exc:
            raise UsageError(f"--step: {exc}") from None
        if value < 1:
            raise UsageError("--step: must be at least 1s")
        if value > period:
            raise UsageError(f"--step {step} is longer than the period ({human_duration(period)})")
        if period / value > MAX_STEPS:
            raise UsageError(
                f"--step {step} makes {math.floor(period / value):,} evaluations per series; "
                f"use a coarser step (at most {MAX_STEPS:,})"
            )
        return value
    for candidate in STEP_LADDER:
        if period / candidate <= AUTO_STEP_POINTS:
            return float(min(candidate, max(1, math.floor(period / 2))))
    return float(STEP_LADDER[-1])


def check_url(url: str, option: str = "--prometheus.url") -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{option} {url!r}: expected http(s)://host:port")
    return url


def intervals(config_yaml: str | None, job_regex: str) -> tuple[float, float, str]:
    """Scrape interval of the matching job(s) and the rule evaluation interval.

    From the running configuration (``/api/v1/status/config``); Prometheus's defaults (1m) when
    it cannot be read. The longest interval of the matching jobs is used: gaps are judged
    against the slowest scrape.
    """
    if not config_yaml:
        return DEFAULT_INTERVAL, DEFAULT_INTERVAL, "Prometheus default, configuration not readable"
    try:
        cfg = yaml.safe_load(config_yaml) or {}
        glob = cfg.get("global") or {}
        scrape = parse_duration(glob.get("scrape_interval", "1m"))
        evaluation = parse_duration(glob.get("evaluation_interval", "1m"))
        pattern = re.compile(job_regex)
        jobs = [
            parse_duration(sc.get("scrape_interval") or glob.get("scrape_interval", "1m"))
            for sc in cfg.get("scrape_configs") or []
            if isinstance(sc, dict) and pattern.fullmatch(str(sc.get("job_name", "")))
        ]
    except (yaml.YAMLError, ValueError, AttributeError, re.error):
        return DEFAULT_INTERVAL, DEFAULT_INTERVAL, "Prometheus default, configuration not parsed"
    if jobs:
        return max(jobs), evaluation, "from the Prometheus configuration"
    return scrape, evaluation, "global default: no scrape job matches --job"


# --- progress ---------------------------------------------------------------------------------


class Progress:
    """Progress on stderr: a bar when it is a terminal, a line every 10 % or 10 s otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, clock: Any = time.monotonic) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.clock = clock
        self.last_line = clock()
        self.last_tenth = -1

    def __call__(self, done: int, total: int, what: str) -> None:
        ratio = done / total if total else 1.0
        if self.tty:
            width = 30
            filled = round(width * ratio)
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r[{bar}] {ratio:4.0%} {done}/{total} {what:<24}")
            if done >= total:
                self.stream.write("\n")
            self.stream.flush()
            return
        tenth = math.floor(ratio * 10)
        now = self.clock()
        if tenth > self.last_tenth or now - self.last_line >= 10 or done >= total:
            self.last_tenth = tenth
            self.last_line = now
            print(
                f"certscope evidence: {ratio:.0%} ({done}/{total} requests, {what})",
                file=self.stream,
                flush=True,
            )

    def say(self, message: str) -> None:
        print(f"certscope evidence: {message}", file=self.stream, flush=True)


# --- the command --------------------------------------------------------------------------------


def run(args: argparse.Namespace, stderr: TextIO | None = None) -> int:
    """Run ``certscope evidence``; returns the exit code (errors are printed, not raised)."""
    err = stderr if stderr is not None else sys.stderr
    try:
        return asyncio.run(_run(args, err))
    except UsageError as exc:
        print(f"certscope evidence: {exc}", file=err)
        return 2
    except query.PrometheusError as exc:
        print(f"certscope evidence: {exc}", file=err)
        return 1
    except OSError as exc:
        print(f"certscope evidence: cannot write the report: {exc}", file=err)
        return 1


@dataclass(frozen=True)
class Settings:
    """The checked command line."""

    url: str
    start: float
    requested_to: float
    end: float
    step: float
    stale_after: float
    out: Path
    http: http.HttpConfig
    notes: tuple[str, ...]


def _settings(args: argparse.Namespace) -> Settings:
    url = check_url(args.prometheus_url)
    start = parse_date(args.date_from, end=False)
    requested_to = parse_date(args.date_to, end=True)
    now = time.time()
    notes = []
    if start >= now:
        raise UsageError(f"--from {args.date_from} is in the future")
    if requested_to <= start:
        raise UsageError(f"--to {args.date_to} is not after --from {args.date_from}")
    end = float(requested_to)
    if end > now:
        end = float(math.floor(now))
        notes.append(
            f"The requested period ends in the future ({iso(requested_to)}); the report "
            f"covers it up to the time it was generated ({iso(end)})."
        )
    step = choose_step(end - start, args.step)
    try:
        stale_after = parse_duration(args.stale_after)
    except ValueError as exc:
        raise UsageError(f"--probe-stale-after: {exc}") from None
    try:
        re.compile(args.job)
    except re.error as exc:
        raise UsageError(f"--job {args.job!r}: {exc}") from None
    if args.chunk_points is not None and not 1 <= args.chunk_points <= query.MAX_POINTS:
        raise UsageError(f"--query.chunk-points: between 1 and {query.MAX_POINTS:,}")
    if args.concurrency < 1 or args.query_max_bytes < 1024:
        raise UsageError("--query.concurrency must be at least 1, --query.max-bytes 1024")
    if not 0 < args.insufficient_below <= args.min_observed <= 1:
        raise UsageError("need 0 < --insufficient-below <= --min-observed-ratio <= 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out}: not a directory")
    if args.alertmanager_url is not None:
        check_url(args.alertmanager_url, "--alertmanager.url")
    if args.certscope_config is not None and not Path(args.certscope_config).is_file():
        raise UsageError(f"--config {args.certscope_config}: not a readable file")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise UsageError(f"--out {args.out}: not empty (use --force to replace its content)")
    return Settings(
        url,
        start,
        requested_to,
        end,
        step,
        stale_after,
        out,
        http.load(args.prometheus_config),
        tuple(notes),
    )


async def _scrapes(
    client: query.PrometheusClient, args: argparse.Namespace, grid: Grid, interval: float
) -> tuple[facts.ScrapeData, list[query.Query]]:
    """Counts per window, then raw samples where a window is short (:mod:`.gaps`)."""
    plan = query.coverage_plan(args.job, grid.step, interval)
    data = await refine.fetch(
        client,
        plan,
        grid,
        max_points=args.chunk_points,
        coarse_first=args.coarse_first,
        raw_only=True,
    )
    drilled = gaps.drill_windows(grid, interval, data["scrape_successes"])
    ranges = gaps.raw_ranges(grid, interval, drilled)
    raw = await query.raw_samples(client, f"up{{job=~{query.quote(args.job)}}}", ranges)
    failed = tuple((f.name, f.start, f.end) for f in client.failed)
    return (
        facts.ScrapeData(
            data["scrape_successes"], data["scrape_counts"], raw, frozenset(drilled), failed
        ),
        plan,
    )


async def _configuration(
    client: query.PrometheusClient, args: argparse.Namespace, cfg: Settings
) -> configuration.Configuration:
    if args.alertmanager_url is None:
        return await configuration.fetch(
            client, None, args.certscope_config, args.job, cfg.start, cfg.end
        )
    async with query.PrometheusClient(
        # no credentials of Prometheus are sent to another server
        args.alertmanager_url,
        timeout=client.timeout,
        service="Alertmanager",
    ) as am:
        return await configuration.fetch(
            client, am, args.certscope_config, args.job, cfg.start, cfg.end
        )


async def _auto_chunk_points(client: query.PrometheusClient, job: str, at: float) -> int:
    """The chunk size for the fleet Prometheus holds at the end of the period: the per-target
    queries return a series or more per target, and a year of 2,000 targets in chunks of
    11,000 evaluations is more than Prometheus answers in time."""
    try:
        answer = await client.instant(
            "tls_targets", f"count(certscope_probe_success{{job=~{query.quote(job)}}})", at
        )
    except query.QueryFailed:
        answer = []
    targets = 0
    # no answer or a malformed one: the fleet's size is unknown, and the maximum stands
    with contextlib.suppress(KeyError, IndexError, TypeError, ValueError):
        targets = int(float(answer[0]["value"][1]))
    return query.auto_chunk_points(targets)


async def _retention(client: query.PrometheusClient, at: float) -> dict[str, str]:
    flags = await client.flags()
    out = {
        k: flags[k]
        for k in ("storage.tsdb.retention.time", "storage.tsdb.retention.size")
        if flags.get(k)
    }
    if out.get("storage.tsdb.retention.time") == "0s":  # Prometheus's own default applies
        out["storage.tsdb.retention.time"] = "0s (default: 15d unless a size limit is set)"
    try:
        lowest = await client.instant(
            "tsdb_lowest", "min(prometheus_tsdb_lowest_timestamp_seconds)", at
        )
    except query.QueryFailed:
        lowest = []
    # a malformed answer: the figure is left out, not guessed
    with contextlib.suppress(KeyError, IndexError, TypeError, ValueError):
        if lowest:
            out["tsdb_lowest_timestamp"] = iso(float(lowest[0]["value"][1]))
    return out


@dataclass(frozen=True)
class Fetched:
    """Everything read from Prometheus (and Alertmanager) for one report."""

    params: facts.Params
    build: dict[str, str]
    interval_source: str
    queries: list[query.Query]  # the gap detection's, then the plan's
    data: dict[str, Matrix]
    scrapes: facts.ScrapeData
    endpoint_answers: dict[str, list[list[dict[str, Any]]]]
    retention: dict[str, str]
    configuration: configuration.Configuration


async def _fetch(
    client: query.PrometheusClient,
    args: argparse.Namespace,
    cfg: Settings,
    grid: Grid,
    progress: Progress,
) -> Fetched:
    build = await client.buildinfo()
    if args.chunk_points is None:
        args.chunk_points = await _auto_chunk_points(client, args.job, grid.end)
    scrape, evaluation, source = intervals(await client.config_yaml(), args.job)
    params = facts.Params(
        grid=grid,
        window=max(cfg.step, 2 * scrape),
        alert_window=max(cfg.step, 2 * evaluation),
        scrape_interval=scrape,
        stale_after=cfg.stale_after,
        job_regex=args.job,
        min_observed=args.min_observed,
        insufficient_below=args.insufficient_below,
    )
    queries = query.plan(args.job, params.window, params.alert_window, cfg.step, cfg.stale_after)
    levels = refine.levels(grid) if args.coarse_first else []
    progress.say(
        f"{iso(grid.start)} to {iso(grid.end)}, step {human_duration(cfg.step)}: "
        f"{len(queries) + 2} queries, "
        + (
            f"coarse first in buckets of {', '.join(str(m) for m in levels)} steps"
            if levels
            else f"{len(grid.chunks(args.chunk_points))} chunk(s) each"
        )
        + f", from {cfg.url}"
    )
    scrapes, coverage_queries = await _scrapes(client, args, grid, scrape)
    data = await refine.fetch(
        client,
        queries,
        grid,
        progress,
        args.chunk_points,
        coarse_first=args.coarse_first,
        raw_only=True,
    )
    endpoint_answers = await endpoints.fetch(client, args.job, grid.start, grid.end, params.window)
    retention = await _retention(client, cfg.end)
    conf = await _configuration(client, args, cfg)
    return Fetched(
        params,
        build,
        source,
        [*coverage_queries, *queries],
        data,
        dataclasses.replace(scrapes, failed=tuple((f.name, f.start, f.end) for f in client.failed)),
        endpoint_answers,
        retention,
        conf,
    )


def _client(args: argparse.Namespace, cfg: Settings) -> query.PrometheusClient:
    try:
        timeout = parse_duration(args.query_timeout)
    except ValueError as exc:
        raise UsageError(f"--query.timeout: {exc}") from None
    return query.PrometheusClient(
        cfg.url,
        http=cfg.http,
        timeout=timeout,
        max_bytes=args.query_max_bytes,
        concurrency=args.concurrency,
    )


async def _run(args: argparse.Namespace, err: TextIO) -> int:
    cfg = _settings(args)
    grid = Grid(cfg.start, cfg.step, math.floor((cfg.end - cfg.start) / cfg.step + 1e-9))
    progress = Progress(err)
    async with _client(args, cfg) as client:
        got = await _fetch(client, args, cfg, grid, progress)
    evidence = dataclasses.replace(
        analyse.analyse(got.params, got.data, got.scrapes),
        endpoints=tuple(endpoints.build(got.endpoint_answers)),
    )
    partial = _starts_before_data(evidence)
    meta = Meta(
        generated_at=time.time(),
        version=__version__,
        prometheus_url=cfg.url,
        prometheus_version=got.build.get("version", ""),
        requested_from=cfg.start,
        requested_to=cfg.requested_to,
        queries=got.queries,
        records=client.records,
        warnings=client.warnings,
        scrape_interval_source=got.interval_source,
        notes=list(cfg.notes),
        retention=got.retention,
        partial=partial,
        failed_chunks=[(f.name, f.start, f.end, f.error) for f in client.failed],
        http=cfg.http.description,
        bytes_received=client.bytes_received,
        configuration=got.configuration,
    )
    _write(args, cfg, evidence, meta, progress)
    if partial:
        progress.say(f"the period starts before the data: {partial}")
        return 0 if args.allow_partial else EXIT_PARTIAL
    return 0


def _write(
    args: argparse.Namespace,
    cfg: Settings,
    evidence: facts.Evidence,
    meta: Meta,
    progress: Progress,
) -> None:
    """Render the package, write it in one move and print the verdicts and manifest hash."""
    from . import (
        charts,  # matplotlib: loaded only when a report is drawn
        pdf,
    )

    files = report.render(
        evidence, meta, charts.render(evidence), None if args.no_pdf else pdf.render
    )
    write_atomic(cfg.out, files, force=args.force)
    for c in evidence.controls:
        print(f"{c.control}\t{c.result}\t{c.title}")
    digest = report.sha256(files["manifest.json"])
    print(f"manifest.json\tsha256:{digest}")
    progress.say(f"wrote {len(files)} files to {cfg.out}")


def _starts_before_data(ev: facts.Evidence) -> str:
    """Why the evidence is partial at its start, or "" when the data reaches the start."""
    job = ev.exporter[0]
    start = ev.params.grid.start
    if not job.observed:
        return "Prometheus holds no scrape of the exporter job in the period"
    first = job.gaps[0] if job.gaps else None
    if first is not None and first.start <= start and "no_data" in first.kind:
        return f"the first scrape of the exporter job in the period is at {iso(first.end)}"
    return ""


def write_atomic(out: Path, files: dict[str, bytes], *, force: bool) -> None:
    """Write every file into a temporary folder next to ``out``, then move it into place.

    A reader never sees a half-written package: either the old content or the new one. A
    non-empty ``out`` is only replaced with ``force`` (checked before any query as well).
    """
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        report.write(tmp, files)
        if out.is_dir():
            if any(out.iterdir()) and not force:
                raise UsageError(f"--out {out}: not empty (use --force to replace its content)")
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="certscope evidence",
        description="Write the SOC 2 evidence report of a period from Prometheus.",
    )
    _arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
