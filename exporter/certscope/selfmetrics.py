"""The exporter's own metrics (prometheus_client, private registry)."""

from __future__ import annotations

import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from . import __version__

# _created samples double the series count and no rule or dashboard uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class SelfMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        build = Gauge(
            "certscope_build_info",
            "certscope version and Python runtime; value 1.",
            ["version", "python_version"],
            registry=r,
        )
        build.labels(__version__, platform.python_version()).set(1)
        self.targets = Gauge("certscope_targets", "Configured TLS targets.", registry=r)
        self.sources = Gauge("certscope_sources", "Configured certificate sources.", registry=r)
        self.in_flight = Gauge(
            "certscope_probes_in_flight", "Probes and source refreshes running now.", registry=r
        )
        self.runs = Counter(
            "certscope_probe_runs",
            "Probes run by the scheduler, by result (success or failure).",
            ["result"],
            registry=r,
        )
        self.refresh = Histogram(
            "certscope_refresh_duration_seconds",
            "Duration of scheduled probes and source refreshes.",
            ["kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.reload_ok = Gauge(
            "certscope_config_last_reload_successful",
            "1 when the last configuration (re)load succeeded.",
            registry=r,
        )
        self.reload_time = Gauge(
            "certscope_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully, as a Unix timestamp.",
            registry=r,
        )
        self.scrape = Histogram(
            "certscope_metrics_render_duration_seconds",
            "Time spent rendering /metrics.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=r,
        )
        self.reload_ok.set(1)

    def render(self) -> str:
        return generate_latest(self.registry).decode("utf-8")
