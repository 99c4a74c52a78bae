"""Prometheus HTTP API client and the PromQL behind the evidence report.

Exceptions::

    PrometheusError
    ├── PrometheusUnreachable   no usable answer after the retries (refused, DNS, timeout, 5xx)
    └── QueryFailed             Prometheus answered with an error (bad query, too many samples)

Range queries are cut into chunks of at most :data:`MAX_POINTS` evaluations (Prometheus refuses
more than 11,000 points per series in one query) and every request is recorded as a
:class:`QueryRecord` for the manifest, so an auditor can re-run exactly what produced the report.
The client speaks plain HTTP through :mod:`urllib` (the command is synchronous and sequential:
a long report is bounded by Prometheus, not by the client).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Query:
    """One PromQL expression of the evidence plan and why it is asked."""

    name: str
    expr: str
    purpose: str


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
    job = f"job=~{quote(job_regex)}"
    w = promql_duration(window)
    s = promql_duration(step)
    a = promql_duration(alert_window)
    stale = f"{stale_after:g}"

    def per_series(metric: str, fn: str = "last_over_time") -> str:
        return f"max without (job, instance) ({fn}({metric}{{{job}}}[{w}]))"

    def endpoints(metric: str) -> str:
        return (
            "count(group by (source_kind, source, location) "
            f"(last_over_time({metric}{{{job}}}[{w}])))"
        )

    target = "source_kind, source, location"
    return [
        Query(
            "exporter_up",
            f"max by (job, instance) (max_over_time(up{{{job}}}[{w}]))",
            "exporter scrapes: 1 a scrape succeeded in the window, 0 only failed, absent none",
        ),
        Query(
            "exporter_scrapes",
            f"sum by (job, instance) (sum_over_time(up{{{job}}}[{s}]))",
            "successful scrapes per step (coverage.csv present samples)",
        ),
        Query(
            "probe_success",
            f"max by ({target}) (max_over_time(certscope_probe_success{{{job}}}[{w}]))",
            "TLS targets: 1 a probe succeeded in the window, 0 probes failed, absent not reported",
        ),
        Query(
            "probe_stale",
            f"min by ({target}) (time() - max_over_time("
            f"certscope_probe_timestamp_seconds{{{job}}}[{w}])) > {stale}",
            "TLS targets whose last probe is older than --probe-stale-after (probes not running)",
        ),
        Query(
            "source_up",
            f"max by (source_kind, source) (max_over_time(certscope_source_up{{{job}}}[{w}]))",
            "certificate stores: 1 readable, 0 failing, absent not reported",
        ),
        Query(
            "cert_info",
            per_series("certscope_cert_info"),
            "certificates and their facts (serial, fingerprint, SANs, issuer, key)",
        ),
        Query(
            "cert_not_after",
            per_series("certscope_cert_not_after_timestamp_seconds"),
            "notAfter per certificate slot (expiry timeline, renewals)",
        ),
        Query(
            "cert_not_before",
            per_series("certscope_cert_not_before_timestamp_seconds"),
            "notBefore per certificate slot (inventory)",
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
        Query(
            "violations",
            per_series("certscope_policy_violation", "max_over_time"),
            "active policy findings",
        ),
        Query(
            "waived",
            per_series("certscope_policy_waived", "max_over_time"),
            "findings waived by a live policy exception",
        ),
        Query(
            "exceptions",
            per_series("certscope_policy_exception_expiry_timestamp_seconds"),
            "configured policy exceptions and their end",
        ),
        Query(
            "alerts",
            f'max_over_time(ALERTS{{alertstate="firing", alertname=~{quote(ALERT_NAMES)}}}[{a}])',
            "firing certscope alerts",
        ),
    ]


class PrometheusClient:
    """A small client for the Prometheus HTTP API (``/api/v1``)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self.records: list[QueryRecord] = []
        self.warnings: list[str] = []

    # --- transport ---------------------------------------------------------------------------

    def _request(self, path: str, params: dict[str, str] | None = None) -> Any:
        """POST (queries) or GET (everything else) ``/api/v1/<path>``; the ``data`` member."""
        url = f"{self.url}/api/v1/{path}"
        body = urllib.parse.urlencode(params).encode() if params is not None else None
        headers = {"Accept": "application/json", "User-Agent": "certscope-evidence"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310
                    payload = json.load(resp)
            except urllib.error.HTTPError as exc:
                message = _error_message(exc)
                if exc.code >= 500 or exc.code == 429:
                    last = f"HTTP {exc.code}: {message}"
                    continue
                raise QueryFailed(f"{path}: HTTP {exc.code}: {message}") from None
            except (urllib.error.URLError, OSError) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                last = str(reason) or type(reason).__name__
                continue
            except ValueError as exc:  # not JSON: not a Prometheus API
                raise QueryFailed(
                    f"{path}: the answer is not Prometheus API JSON ({exc})"
                ) from None
            if not isinstance(payload, dict) or payload.get("status") != "success":
                error = payload.get("error") if isinstance(payload, dict) else None
                raise QueryFailed(f"{path}: {error or 'unexpected answer'}")
            for warning in payload.get("warnings") or []:
                self.warnings.append(str(warning))
            return payload.get("data")
        tries = self.retries + 1
        raise PrometheusUnreachable(
            f"cannot reach Prometheus at {self.url}: {last} ({tries} attempt{'s' * (tries > 1)})"
        )

    # --- API ---------------------------------------------------------------------------------

    def buildinfo(self) -> dict[str, str]:
        """Version facts of the server (the first request: it fails fast when unreachable)."""
        self.records.append(QueryRecord("buildinfo", "api", "/api/v1/status/buildinfo"))
        try:
            data = self._request("status/buildinfo")
        except QueryFailed:  # Prometheus-compatible servers need not offer it
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def config_yaml(self) -> str | None:
        """The running configuration (YAML), or None when the server does not offer it."""
        self.records.append(QueryRecord("config", "api", "/api/v1/status/config"))
        try:
            data = self._request("status/config")
        except QueryFailed:
            return None
        text = data.get("yaml") if isinstance(data, dict) else None
        return text if isinstance(text, str) else None

    def range(
        self,
        query: Query,
        grid: Grid,
        on_chunk: Callable[[], None] = lambda: None,
        max_points: int = MAX_POINTS,
    ) -> Matrix:
        """Evaluate ``query`` at every step of ``grid``, chunk by chunk, into runs."""
        out = Matrix()
        for first, last in grid.chunks(max_points):
            start, end = grid.time(first), grid.time(last)
            data = self._request(
                "query_range",
                {
                    "query": query.expr,
                    "start": _num(start),
                    "end": _num(end),
                    "step": _num(grid.step),
                },
            )
            result = data.get("result", []) if isinstance(data, dict) else []
            self.records.append(
                QueryRecord(
                    query.name, "range", query.expr, start, end, grid.step, series=len(result)
                )
            )
            for item in result:
                key = series_key({str(k): str(v) for k, v in item.get("metric", {}).items()})
                out.extend(key, _points(grid, item.get("values", [])))
            on_chunk()
        return out


def fetch(
    client: PrometheusClient,
    queries: list[Query],
    grid: Grid,
    progress: ProgressCallback | None = None,
    max_points: int = MAX_POINTS,
) -> dict[str, Matrix]:
    """Run every query of the plan over the grid; ``progress`` after each chunk."""
    chunks = len(grid.chunks(max_points))
    total = chunks * len(queries)
    done = 0
    out: dict[str, Matrix] = {}
    for query in queries:

        def tick(name: str = query.name) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total, name)

        out[query.name] = client.range(query, grid, tick, max_points)
    return out


def _points(grid: Grid, values: list[list[Any]]) -> Iterator[tuple[int, float]]:
    """Prometheus ``[time, "value"]`` pairs → (step, value) on the grid."""
    start, step, count = grid.start, grid.step, grid.count
    for t, v in values:
        k = round((float(t) - start) / step) - 1
        if 0 <= k < count:
            yield k, float(v)


def _num(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        return exc.reason if isinstance(exc.reason, str) else str(exc.reason)
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    return str(exc.reason)
