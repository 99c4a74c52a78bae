"""Prometheus HTTP API client and the PromQL behind the evidence report.

Exceptions::

    PrometheusError
    ├── PrometheusUnreachable   no usable answer after the retries (refused, DNS, timeout, 5xx)
    └── QueryFailed             Prometheus answered with an error (bad query, too many samples),
        │                       or the answer is not Prometheus API JSON of the expected shape
        └── MalformedAnswer     not Prometheus API JSON of the expected shape
            └── AnswerTooLarge  the answer passed ``--query.max-bytes`` and was dropped

Range queries are cut into chunks of at most :data:`MAX_POINTS` evaluations (Prometheus refuses
more than 11,000 points per series in one query) and every request is recorded as a
:class:`QueryRecord` for the manifest, so an auditor can re-run exactly what produced the report.
The client is :mod:`aiohttp`: chunks of every query run in parallel, at most ``concurrency`` at
a time, so a long report is bounded by Prometheus rather than by round trips.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from . import credentials, gaps, verdict
from .http import HttpConfig
from .model import Grid, Matrix, promql_duration, series_key

#: Evaluations per range query. Prometheus's own limit is 11,000 points per series.
MAX_POINTS = 11_000

#: Alerts of the certscope rules pack (docs/rules.md): every one is named ``Certscope…``.
ALERT_NAMES = "Certscope.+"

#: Called after each range-query chunk: (chunks done, chunks in total, what is being fetched).
ProgressCallback = Callable[[int, int, str], None]


class PrometheusError(Exception):
    """Base class: the evidence cannot be fetched."""


class PrometheusUnreachable(PrometheusError):
    """Prometheus did not answer usefully (connection, DNS, timeout, 5xx) after the retries."""


class QueryFailed(PrometheusError):
    """Prometheus rejected a request (bad query, too many samples, unknown endpoint)."""


class MalformedAnswer(QueryFailed):
    """The answer is not Prometheus API JSON of the expected shape."""


class AnswerTooLarge(MalformedAnswer):
    """The answer passed ``--query.max-bytes``; it was dropped unread."""


#: Smallest piece a chunk is split into when its answer is too large.
MIN_SPLIT_POINTS = 50

#: Largest answer read, in bytes (a year of one chunk for a few hundred series fits).
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class FailedChunk:
    """A piece of a range query that failed after its retries: a gap in the data."""

    name: str
    start: float
    end: float
    error: str


@dataclass(frozen=True)
class Raw:
    """The raw series behind a query of the form ``AGG GROUPING (FN(SELECTOR[WINDOW]))``.

    ``AGG`` is ``max`` or ``min`` (or none: ``grouping`` empty) and ``FN`` one of
    ``last_over_time``, ``max_over_time``, ``min_over_time``: each value of such a query is one
    of the raw samples in its window. So when every raw sample of a group over the union of the
    windows of some steps holds one value, the query holds that value at each of those steps
    where it has one (:mod:`.refine` asks this with range selectors, which read each sample
    once, instead of evaluating the query at every step).
    """

    selector: str
    window: float
    grouping: str = ""  # "without (job, instance)", "by (…)" or "" (no aggregation)
    fn: str = "last_over_time"

    def bound(self, fn: str, span: float) -> str:
        """``fn`` (``min`` or ``max``) of the raw samples in the last ``span`` + window."""
        inner = f"{fn}_over_time({self.selector}[{promql_duration(span + self.window)}])"
        return f"{fn} {self.grouping} ({inner})" if self.grouping else inner


@dataclass(frozen=True)
class Query:
    """One PromQL expression of the evidence plan and why it is asked."""

    name: str
    expr: str
    purpose: str
    raw: Raw | None = None  # set when the expression has the form :class:`Raw` describes


@dataclass(frozen=True)
class QueryRecord:
    """One HTTP request as sent: what the manifest lists."""

    name: str
    kind: str  # "range", "instant" or "api"
    expr: str
    start: float | None = None
    end: float | None = None
    step: float | None = None
    series: int | None = None


def quote(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def plan(
    job_regex: str, window: float, alert_window: float, step: float, stale_after: float
) -> list[Query]:
    """The range queries of the report, in the order they are fetched.

    ``window`` is the look-back of each evaluation for exporter series (at least the step and
    two scrape intervals, so one missed scrape is not a gap); ``alert_window`` the same for
    ``ALERTS`` (two rule evaluation intervals). Certificate, policy and probe series are read
    from the selected exporter job(s) and de-duplicated across replicas (``max without (job,
    instance)``).
    """
    return [
        *_monitoring_queries(job_regex, window, stale_after),
        *_certificate_queries(job_regex, window),
        *_policy_queries(job_regex, window, alert_window),
        *(
            Query(f"verdict:{control}", expr, f"{control} verdict: 1 failing, 0 holding")
            for control, expr in verdict.expressions(job_regex).items()
        ),
        *(Query(*q) for q in credentials.queries(job_regex, window)),
    ]


def _per_series(
    name: str, purpose: str, job_regex: str, window: float, metric: str, fn: str = "last_over_time"
) -> Query:
    """``metric`` of the selected job(s) per series, de-duplicated across replicas."""
    return _selecting(name, purpose, f"{metric}{{job=~{quote(job_regex)}}}", window, fn)


def _selecting(
    name: str,
    purpose: str,
    selector: str,
    window: float,
    fn: str,
    grouping: str = "without (job, instance)",
) -> Query:
    """``max GROUPING (FN(SELECTOR[WINDOW]))`` (no aggregation when ``grouping`` is empty)."""
    inner = f"{fn}({selector}[{promql_duration(window)}])"
    expr = f"max {grouping} ({inner})" if grouping else inner
    return Query(name, expr, purpose, Raw(selector, window, grouping, fn))


def _monitoring_queries(job_regex: str, window: float, stale_after: float) -> list[Query]:
    """Whether the exporter, its probes and its stores were working."""
    job = f"job=~{quote(job_regex)}"
    w = promql_duration(window)
    stale = f"{stale_after:g}"
    target = "source_kind, source, location"
    return [
        _selecting(
            "exporter_up",
            "exporter scrapes: 1 a scrape succeeded in the window, 0 only failed, absent none",
            f"up{{{job}}}",
            window,
            "max_over_time",
            "by (job, instance)",
        ),
        _selecting(
            "probe_success",
            "TLS targets: 1 a probe succeeded in the window, 0 probes failed, absent not reported",
            f"certscope_probe_success{{{job}}}",
            window,
            "max_over_time",
            f"by ({target})",
        ),
        Query(
            "probe_stale",
            f"min by ({target}) (time() - max_over_time("
            f"certscope_probe_timestamp_seconds{{{job}}}[{w}])) > {stale}",
            "TLS targets whose last probe is older than --probe-stale-after (probes not running)",
        ),
        _selecting(
            "source_up",
            "certificate stores: 1 readable, 0 failing, absent not reported",
            f"certscope_source_up{{{job}}}",
            window,
            "max_over_time",
            "by (source_kind, source)",
        ),
    ]


def _certificate_queries(job_regex: str, window: float) -> list[Query]:
    """Certificates and the endpoints whose chains were checked."""
    job = f"job=~{quote(job_regex)}"
    w = promql_duration(window)

    def endpoints(metric: str) -> str:
        return (
            "count(group by (source_kind, source, location) "
            f"(last_over_time({metric}{{{job}}}[{w}])))"
        )

    return [
        _per_series(
            "cert_info",
            "certificates and their facts (serial, fingerprint, SANs, issuer, key)",
            job_regex,
            window,
            "certscope_cert_info",
        ),
        _per_series(
            "cert_not_after",
            "notAfter per certificate slot (expiry timeline, renewals)",
            job_regex,
            window,
            "certscope_cert_not_after_timestamp_seconds",
        ),
        _per_series(
            "cert_not_before",
            "notBefore per certificate slot (inventory)",
            job_regex,
            window,
            "certscope_cert_not_before_timestamp_seconds",
        ),
        Query(
            "verified_endpoints",
            endpoints("certscope_cert_verified"),
            "TLS endpoints whose chain and name were verified (CC6.6 data)",
        ),
        Query(
            "enumerated_endpoints",
            endpoints("certscope_tls_protocol_supported"),
            "TLS endpoints whose protocols and suites were enumerated (CC6.7 data)",
        ),
        Query(
            "served_stored_endpoints",
            endpoints("certscope_cert_served_matches_stored"),
            "endpoints compared with their stored certificate (CC7.1 data)",
        ),
    ]


def _policy_queries(job_regex: str, window: float, alert_window: float) -> list[Query]:
    """Findings, waivers and alerts."""
    return [
        _per_series(
            "violations",
            "active policy findings",
            job_regex,
            window,
            "certscope_policy_violation",
            "max_over_time",
        ),
        _per_series(
            "waived",
            "findings waived by a live policy exception",
            job_regex,
            window,
            "certscope_policy_waived",
            "max_over_time",
        ),
        _per_series(
            "exceptions",
            "configured policy exceptions and their end",
            job_regex,
            window,
            "certscope_policy_exception_expiry_timestamp_seconds",
        ),
        _selecting(
            "alerts",
            "firing certscope alerts of the selected job(s) (or of no job: aggregated rules)",
            "ALERTS{"
            f'alertstate="firing", alertname=~{quote(ALERT_NAMES)}, job=~{quote(job_regex + "|")}'
            "}",
            alert_window,
            "max_over_time",
            "",
        ),
    ]


def coverage_plan(job_regex: str, step: float, interval: float) -> list[Query]:
    """The scrape counts behind gap detection (:mod:`.gaps`)."""
    ok, seen = gaps.count_queries(f"job=~{quote(job_regex)}", step, interval)
    return [
        Query("scrape_successes", ok, "successful scrapes per instance and window"),
        Query("scrape_counts", seen, "recorded scrapes per instance and window"),
    ]


class PrometheusClient:
    """An asyncio client for the Prometheus HTTP API (``/api/v1``), hardened against its server.

    Each request has an overall deadline (``timeout``: connecting, headers and body together,
    so a server that drips a byte every few seconds is cut off), a cap on the answer's size
    (``max_bytes``: the body is read in pieces and dropped past the cap, so a huge answer costs
    at most the cap in memory), and at most ``concurrency`` requests run at once. Answers that
    are not Prometheus API JSON of the expected shape are :class:`QueryFailed` with a one-line
    reason, never a traceback.
    """

    def __init__(
        self,
        url: str,
        *,
        http: HttpConfig | None = None,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_bytes: int = DEFAULT_MAX_BYTES,
        concurrency: int = 4,
        service: str = "Prometheus",
    ) -> None:
        self.url = url.rstrip("/")
        self.service = service
        self.http = http or HttpConfig()
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_bytes = max_bytes
        self.records: list[QueryRecord] = []
        self.warnings: list[str] = []
        self.failed: list[FailedChunk] = []
        self.bytes_received = 0
        self._limit = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PrometheusClient:
        ssl_ctx = self.http.ssl_context() if self.url.startswith("https:") else None
        connector = aiohttp.TCPConnector(ssl=ssl_ctx if ssl_ctx is not None else True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={
                "Accept": "application/json",
                "User-Agent": "certscope-evidence",
                **self.http.headers,
            },
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    # --- transport ---------------------------------------------------------------------------

    async def _once(self, url: str, params: dict[str, str] | None) -> tuple[int, bytes]:
        assert self._session is not None, "use the client as an async context manager"
        kwargs: dict[str, Any] = {}
        if self.http.server_name:
            kwargs["server_hostname"] = self.http.server_name
        method = "POST" if params is not None else "GET"
        async with self._session.request(method, url, data=params, **kwargs) as resp:
            body = bytearray()
            async for piece in resp.content.iter_chunked(1 << 16):
                body += piece
                if len(body) > self.max_bytes:
                    raise AnswerTooLarge(
                        f"the answer is larger than {self.max_bytes:,} bytes "
                        "(--query.max-bytes); use a smaller --query.chunk-points"
                    )
            self.bytes_received += len(body)
            return resp.status, bytes(body)

    async def _request(self, path: str, params: dict[str, str] | None = None) -> Any:
        """POST (queries) or GET (everything else) ``/api/v1/<path>``; the ``data`` member."""
        body = await self._body(f"{self.url}/api/v1/{path}", path, params)
        return self._data(path, body)

    async def get_json(self, path: str, query: dict[str, str] | None = None) -> Any:
        """GET ``<url><path>?<query>`` and parse the JSON as it is (no API envelope)."""
        url = f"{self.url}{path}" + (f"?{urlencode(query, doseq=True)}" if query else "")
        body = await self._body(url, path, None)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise MalformedAnswer(f"{path}: the answer is not JSON ({str(exc)[:200]})") from None

    async def _body(self, url: str, path: str, params: dict[str, str] | None) -> bytes:
        """The body of a successful answer, after retries (see the class docstring)."""
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                async with self._limit:
                    status, body = await self._once(url, params)
            except TimeoutError:
                last = f"no complete answer within {self.timeout:g} s"
                continue
            except aiohttp.ClientError as exc:
                last = str(exc) or type(exc).__name__
                continue
            except OSError as exc:
                last = exc.strerror or str(exc) or type(exc).__name__
                continue
            if status >= 500 or status == 429:
                last = f"HTTP {status}: {_error_message(body)}"
                continue
            if status >= 400:
                raise QueryFailed(f"{path}: HTTP {status}: {_error_message(body)}")
            return body
        tries = self.retries + 1
        raise PrometheusUnreachable(
            f"cannot reach {self.service} at {self.url}: {last} "
            f"({tries} attempt{'s' * (tries > 1)})"
        )

    def _data(self, path: str, body: bytes) -> Any:
        try:
            payload = json.loads(body)
        except ValueError as exc:  # not JSON: not a Prometheus API
            raise MalformedAnswer(
                f"{path}: the answer is not Prometheus API JSON ({str(exc)[:200]})"
            ) from None
        if not isinstance(payload, dict) or payload.get("status") != "success":
            error = payload.get("error") if isinstance(payload, dict) else None
            raise QueryFailed(f"{path}: {str(error)[:500] if error else 'unexpected answer'}")
        warnings = payload.get("warnings") or []
        for warning in warnings if isinstance(warnings, list) else [warnings]:
            self.warnings.append(str(warning)[:500])
        return payload.get("data")

    # --- API ---------------------------------------------------------------------------------

    async def buildinfo(self) -> dict[str, str]:
        """Version facts of the server (the first request: it fails fast when unreachable)."""
        self.records.append(QueryRecord("buildinfo", "api", "/api/v1/status/buildinfo"))
        try:
            data = await self._request("status/buildinfo")
        except MalformedAnswer:
            raise
        except QueryFailed:  # Prometheus-compatible servers need not offer it
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    async def config_yaml(self) -> str | None:
        """The running configuration (YAML), or None when the server does not offer it."""
        self.records.append(QueryRecord("config", "api", "/api/v1/status/config"))
        try:
            data = await self._request("status/config")
        except MalformedAnswer:
            raise
        except QueryFailed:
            return None
        text = data.get("yaml") if isinstance(data, dict) else None
        return text if isinstance(text, str) else None

    async def flags(self) -> dict[str, str]:
        """Command-line flags (retention), empty when the server does not offer them."""
        self.records.append(QueryRecord("flags", "api", "/api/v1/status/flags"))
        try:
            data = await self._request("status/flags")
        except MalformedAnswer:
            raise
        except QueryFailed:
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    async def instant(self, name: str, expr: str, at: float) -> list[dict[str, Any]]:
        """An instant query at ``at``: the ``result`` list (vector or matrix items)."""
        data = await self._request("query", {"query": expr, "time": _num(at)})
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list):
            raise MalformedAnswer(f"query {name}: the answer has no result list")
        self.records.append(QueryRecord(name, "instant", expr, at, at, None, len(result)))
        return [item for item in result if isinstance(item, dict)]

    async def _chunk(self, query: Query, grid: Grid, first: int, last: int) -> list[Any]:
        start, end = grid.time(first), grid.time(last)
        params = {
            "query": query.expr,
            "start": _num(start),
            "end": _num(end),
            "step": _num(grid.step),
        }
        data = await self._request("query_range", params)
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list):
            raise MalformedAnswer(f"query_range {query.name}: the answer has no result list")
        self.records.append(
            QueryRecord(query.name, "range", query.expr, start, end, grid.step, len(result))
        )
        return result

    def _failed(self, query: Query, grid: Grid, first: int, last: int, why: str) -> list[Any]:
        start, end = grid.time(first) - grid.step, grid.time(last)
        self.failed.append(FailedChunk(query.name, start, end, why))
        return []

    async def range(
        self,
        query: Query,
        grid: Grid,
        on_chunk: Callable[[], None] = lambda: None,
        max_points: int = MAX_POINTS,
        *,
        spans: Sequence[tuple[int, int]] | None = None,
        unanswered: list[tuple[int, int]] | None = None,
    ) -> Matrix:
        """Evaluate ``query`` at every step of ``grid`` (or of ``spans``), chunk after chunk.

        ``spans`` are inclusive step ranges of the grid to fetch (default: all of it). A chunk
        whose answer passes ``max_bytes``, or that Prometheus refuses for holding too many
        samples, is split in halves (down to :data:`MIN_SPLIT_POINTS` steps): many series cost
        more requests, not more memory, nor a gap.

        Chunks of one query run in order and each is merged (and dropped) as soon as it
        arrives, so memory holds one answer per query in flight; queries run in parallel
        (:func:`fetch`). A chunk that still fails after the retries is recorded in
        :attr:`failed` (and becomes a gap in the data) rather than ending the run, or, when
        ``unanswered`` is given, appended there for the caller to fetch another way.
        """
        out = Matrix()
        pending = deque(
            piece
            for lo, hi in (spans if spans is not None else [(0, grid.count - 1)])
            for piece in _pieces(lo, hi, max_points)
        )
        starts = {first for first, _ in pending}
        while pending:
            first, last = pending.popleft()
            try:
                result = await self._chunk(query, grid, first, last)
            except PrometheusError as exc:
                if _too_large(exc) and last - first + 1 >= 2 * MIN_SPLIT_POINTS:
                    # many series: the same steps in two halves keep each answer under the cap
                    # (ours, or Prometheus's --query.max-samples)
                    middle = (first + last) // 2
                    pending.extendleft([(middle + 1, last), (first, middle)])
                    continue
                if unanswered is not None:
                    unanswered.append((first, last))
                    result = []
                else:
                    result = self._failed(query, grid, first, last, str(exc))
            if not pending or pending[0][0] in starts:
                on_chunk()
            self._merge(out, query, grid, result)
            del result
        return out

    @staticmethod
    def _merge(out: Matrix, query: Query, grid: Grid, result: list[Any]) -> None:
        for item in result:
            metric = item.get("metric") if isinstance(item, dict) else None
            values = item.get("values") if isinstance(item, dict) else None
            if not isinstance(metric, dict) or not isinstance(values, list):
                raise MalformedAnswer(f"query_range {query.name}: malformed series in the answer")
            key = series_key({str(k): str(v) for k, v in metric.items()})
            out.extend(key, _points(grid, values, query.name))


def _too_large(exc: PrometheusError) -> bool:
    """The answer, or Prometheus's evaluation of it, is too large for one request.

    Prometheus refuses a query that would hold more than ``--query.max-samples`` samples at
    once (50 million by default: 4,000 series over 11,000 steps with a few samples in each
    window): fewer steps per request hold fewer.
    """
    return isinstance(exc, AnswerTooLarge) or (
        type(exc) is QueryFailed and "too many samples" in str(exc)
    )


#: Evaluations times series one range request may ask for when the chunk size is automatic:
#: a year of 2,000 targets answered at 2,000 points per request and timed out at 11,000
#: (docs/benchmarks.md, "Evidence report: 12 months over synthetic blocks").
AUTO_POINT_SERIES = 4_000_000
#: The fewest evaluations per request the automatic size goes down to.
MIN_AUTO_POINTS = 500


def auto_chunk_points(targets: int) -> int:
    """Evaluations per range request for a fleet of ``targets``: as many as Prometheus allows
    for small fleets, fewer as the series per request grow (0: unknown, the maximum)."""
    if targets <= 0:
        return MAX_POINTS
    return max(MIN_AUTO_POINTS, min(MAX_POINTS, AUTO_POINT_SERIES // targets))


def _pieces(lo: int, hi: int, max_points: int) -> list[tuple[int, int]]:
    """Inclusive step ranges of at most ``max_points`` evaluations covering ``lo … hi``."""
    return [(a, min(a + max_points, hi + 1) - 1) for a in range(lo, hi + 1, max_points)]


async def raw_samples(
    client: PrometheusClient, selector: str, ranges: list[tuple[float, float]]
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Raw samples of ``selector`` in each ``(start, end]``, by (job, instance), sorted."""

    async def one(start: float, end: float) -> list[dict[str, Any]]:
        expr = f"{selector}[{promql_duration(end - start)}]"
        return await client.instant("scrapes_raw", expr, end)

    out: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for result in await asyncio.gather(*(one(a, b) for a, b in ranges)):
        for item in result:
            metric, values = item.get("metric"), item.get("values")
            if not isinstance(metric, dict) or not isinstance(values, list):
                raise MalformedAnswer("scrapes_raw: malformed series in the answer")
            key = (str(metric.get("job", "")), str(metric.get("instance", "")))
            samples = out.setdefault(key, [])
            for pair in values:
                try:
                    samples.append((float(pair[0]), float(pair[1])))
                except (TypeError, ValueError, IndexError):
                    raise MalformedAnswer(
                        f"scrapes_raw: malformed sample {str(pair)[:80]}"
                    ) from None
    for samples in out.values():
        samples.sort()
        samples[:] = [s for i, s in enumerate(samples) if i == 0 or s[0] != samples[i - 1][0]]
    return out


def _points(grid: Grid, values: list[Any], name: str) -> Iterator[tuple[int, float]]:
    """Prometheus ``[time, "value"]`` pairs → (step, value) on the grid."""
    start, step, count = grid.start, grid.step, grid.count
    for pair in values:
        try:
            t, v = pair
            k = round((float(t) - start) / step) - 1
            value = float(v)
        except (TypeError, ValueError):
            raise MalformedAnswer(
                f"query_range {name}: malformed sample {str(pair)[:80]}"
            ) from None
        if 0 <= k < count:
            yield k, value


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _error_message(body: bytes) -> str:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip() or "no message"
    if isinstance(payload, dict) and payload.get("error"):
        return str(payload["error"])[:500]
    return "no message"
