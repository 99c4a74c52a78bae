"""Facts about one run of ``certscope evidence`` that are not in the data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .configuration import Configuration
from .query import Query, QueryRecord


@dataclass(frozen=True)
class Meta:
    """Facts about the run that are not in the data."""

    generated_at: float
    version: str
    prometheus_url: str
    prometheus_version: str
    requested_from: float
    requested_to: float
    queries: Sequence[Query]
    records: Sequence[QueryRecord]
    warnings: Sequence[str] = ()
    scrape_interval_source: str = ""
    notes: Sequence[str] = field(default=())
    #: Prometheus retention flags and its lowest timestamp, as far as it tells
    retention: Mapping[str, str] = field(default_factory=dict)
    #: why the period starts before the data, "" when it does not
    partial: str = ""
    #: (query, start, end, error) of request chunks that failed after their retries
    failed_chunks: Sequence[tuple[str, float, float, str]] = ()
    #: how the client authenticated (no secret)
    http: Sequence[str] = ()
    bytes_received: int = 0
    configuration: Configuration = field(default_factory=Configuration)
