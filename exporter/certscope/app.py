"""The HTTP face: aiohttp app factory, routes, and the background scheduler's lifetime.

State lives on the Application under typed keys (no module globals); the scheduler starts and
stops in a ``cleanup_ctx``. Handlers only read snapshots, except ``/probe`` (which runs one
probe for the caller, restricted by the allow-list) and ``/-/reload``.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import lru_cache

from aiohttp import web

from . import __version__, inventory
from .collector import Exposition, render_once
from .config import (
    STARTTLS_PROTOCOLS,
    Config,
    Target,
    TLSOptions,
    format_duration,
    join_address,
    split_address,
)
from .errors import ConfigError
from .probe import probe
from .results import ProbeResult
from .scheduler import Scheduler
from .selfmetrics import SelfMetrics
from .snapshot import State

log = logging.getLogger(__name__)

ConfigLoader = Callable[[], Config]

STATE = web.AppKey("state", State)
SCHEDULER = web.AppKey("scheduler", Scheduler)
EXPOSITION = web.AppKey("exposition", Exposition)
METRICS = web.AppKey("metrics", SelfMetrics)
LOADER: web.AppKey[ConfigLoader] = web.AppKey("loader")

_TEXT = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds kept back from Prometheus's scrape timeout so /probe answers before it gives up.
_SCRAPE_TIMEOUT_MARGIN = 0.5


def make_app(config: Config, loader: ConfigLoader, start_scheduler: bool = True) -> web.Application:
    app = web.Application()
    state = State(config)
    metrics = SelfMetrics()
    app[STATE] = state
    app[METRICS] = metrics
    app[EXPOSITION] = Exposition()
    app[LOADER] = loader
    app[SCHEDULER] = Scheduler(state, metrics)
    if start_scheduler:
        app.cleanup_ctx.append(_run_scheduler)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/probe", handle_probe)
    app.router.add_get("/-/healthy", handle_healthy)
    app.router.add_get("/-/ready", handle_ready)
    app.router.add_post("/-/reload", handle_reload)
    app.router.add_get("/inventory", handle_inventory)
    app.router.add_get("/", handle_index)
    return app


async def _run_scheduler(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[SCHEDULER].run(), name="scheduler")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def reload_config(app: web.Application) -> tuple[bool, str]:
    """Load the config again and apply it; a bad config keeps the old one running."""
    state, metrics = app[STATE], app[METRICS]
    try:
        config = app[LOADER]()
    except ConfigError as exc:
        state.reload_failed(tuple(str(p) for p in exc.problems))
        metrics.reload_ok.set(0)
        log.error("reload failed, keeping the previous configuration: %s", exc)
        return False, str(exc)
    state.set_config(config)
    app[SCHEDULER].apply(config)
    metrics.reload_ok.set(1)
    metrics.reload_time.set(time.time())
    log.info(
        "configuration reloaded: %d targets, %d sources", len(config.targets), len(config.sources)
    )
    return True, "configuration reloaded"


async def handle_metrics(request: web.Request) -> web.Response:
    app = request.app
    t0 = time.perf_counter()
    snap = app[STATE].snapshot()
    assessed = [a for items in snap.assessments.values() for a in items]
    body = app[EXPOSITION].render_bytes(
        [*snap.probes.values(), *snap.sources.values(), *assessed, snap.config.policy],
        key=snap,  # an unchanged snapshot is the same object: its body is reused
    )
    app[METRICS].scrape.observe(time.perf_counter() - t0)
    return web.Response(body=body + app[METRICS].render().encode(), headers={"Content-Type": _TEXT})


def target_allowed(address: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``/probe`` may reach ``address`` (``host:port``). Deny unless a pattern matches."""
    try:
        host, port = split_address(address)
    except ValueError:
        return False
    candidates = {join_address(host.lower(), port), f"{host.lower()}:{port}"}
    return any(_pattern(p).fullmatch(c) for p in patterns for c in candidates)


@lru_cache(maxsize=1024)
def _pattern(pattern: str) -> re.Pattern[str]:
    # Only * and ? are wildcards: brackets are literal so that "[::1]:8443" means IPv6.
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern.lower())
    return re.compile("".join(parts))


async def handle_probe(request: web.Request) -> web.Response:
    """The blackbox multi-target pattern: ``/probe?target=host:port[&sni=&starttls=&module=]``."""
    snap = request.app[STATE].snapshot()
    settings = snap.config.probe
    q = request.query
    address = q.get("target", "").strip()
    if not address:
        return web.Response(status=400, text="target parameter is missing (host:port)\n")
    try:
        host, port = split_address(address)
    except ValueError as exc:
        return web.Response(status=400, text=f"bad target {address!r}: {exc}\n")
    configured = {t.address: t for t in snap.config.targets}
    if join_address(host, port) not in configured and not target_allowed(
        address, settings.allowed_targets
    ):
        return web.Response(
            status=403,
            text=(
                f"target {address} is not allowed: add a matching pattern to "
                "probe.allowed_targets in the configuration\n"
            ),
        )
    module = q.get("module", "")
    if module and module not in settings.modules:
        return web.Response(status=400, text=f"unknown module {module!r}\n")
    opts = settings.modules[module] if module else settings.default
    starttls = q.get("starttls") or opts.starttls
    if starttls is not None and starttls not in STARTTLS_PROTOCOLS:
        return web.Response(
            status=400, text=f"starttls must be one of {', '.join(STARTTLS_PROTOCOLS)}\n"
        )
    timeout = opts.timeout
    header = request.headers.get("X-Prometheus-Scrape-Timeout-Seconds")
    if header:
        with contextlib.suppress(ValueError):
            timeout = max(0.5, min(timeout, float(header) - _SCRAPE_TIMEOUT_MARGIN))
    sni = q.get("sni") or opts.sni
    tls = TLSOptions(
        sni=sni,
        starttls=starttls,
        alpn=opts.alpn,
        ca_file=opts.ca_file,
        client_cert=opts.client_cert,
        client_key=opts.client_key,
        timeout=timeout,
    )
    target = Target(name=address, host=host, port=port, tls=tls, interval=max(timeout * 2, 1))
    result = await probe(target)
    return web.Response(body=render_once([result]).encode("utf-8"), headers={"Content-Type": _TEXT})


async def handle_inventory(request: web.Request) -> web.Response:
    """The certificate inventory as JSON (default) or CSV (``?format=csv``)."""
    snap = request.app[STATE].snapshot()
    items = inventory.rows(snap.probes.values(), snap.sources.values(), datetime.now(UTC))
    fmt = request.query.get("format", "json")
    if fmt == "csv":
        return web.Response(
            text=inventory.to_csv(items),
            content_type="text/csv",
            headers={"Content-Disposition": 'inline; filename="certscope-inventory.csv"'},
        )
    if fmt != "json":
        return web.Response(status=400, text="format must be json or csv\n")
    return web.json_response(list(items))


async def handle_healthy(request: web.Request) -> web.Response:
    return web.Response(text="certscope is healthy\n")


async def handle_ready(request: web.Request) -> web.Response:
    snap = request.app[STATE].snapshot()
    if snap.first_round_done:
        return web.Response(text="certscope is ready\n")
    return web.Response(status=503, text="certscope is starting: first round of probes not done\n")


async def handle_reload(request: web.Request) -> web.Response:
    ok, message = reload_config(request.app)
    return web.Response(status=200 if ok else 500, text=message + "\n")


def _days(not_after: datetime | None, now: datetime) -> str:
    """A table cell for days left, coloured at the rules pack's windows (7/14/30/60 days)."""
    if not_after is None:
        return "<td>—</td>"
    days = (not_after - now).total_seconds() / 86400
    cls = "expired" if days <= 0 else "d7" if days <= 7 else "d30" if days <= 30 else ""
    cls = cls or ("d60" if days <= 60 else "")
    return f'<td class="{cls}">{days:.1f}</td>' if cls else f"<td>{days:.1f}</td>"


def _names(cn: str, sans: tuple[str, ...]) -> str:
    extra = [s for s in sans[:3] if s != cn]
    return ", ".join([cn, *extra] if cn else extra) + (" …" if len(sans) > 3 else "")


async def handle_index(request: web.Request) -> web.Response:
    snap = request.app[STATE].snapshot()
    now = datetime.now(UTC)
    esc = html.escape
    rows = []

    def soonest(r: ProbeResult) -> tuple[float, str]:
        leaf = r.facts[0] if r.facts and r.facts[0].not_after else None
        return (leaf.not_after.timestamp() if leaf and leaf.not_after else float("inf"), r.name)

    for r in sorted(snap.probes.values(), key=soonest):
        leaf = r.facts[0] if r.facts else None
        err = r.outcome.error
        problems = [err.reason + (f" ({err.alert})" if err.alert else "")] if err else []
        if r.verdict:
            problems += list(r.verdict.errors)
        rows.append(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}<td>{}</td></tr>".format(
                esc(r.name),
                esc(r.address),
                esc(_names(leaf.subject_cn, leaf.sans) if leaf else ""),
                esc(leaf.issuer_cn if leaf else ""),
                esc(leaf.not_after.isoformat() if leaf and leaf.not_after else ""),
                _days(leaf.not_after if leaf else None, now),
                esc(", ".join(problems) or "ok"),
            )
        )
    stored = []
    for s in sorted(snap.sources.values(), key=lambda s: s.name):
        soon = sorted(s.certs, key=lambda c: c.facts.not_after or now)[:20]
        for c in soon:
            stored.append(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}</tr>".format(
                    esc(s.name),
                    esc(f"{c.location}#{c.position}"),
                    esc(_names(c.facts.subject_cn or c.facts.subject, c.facts.sans)),
                    esc(c.facts.not_after.isoformat() if c.facts.not_after else ""),
                    _days(c.facts.not_after, now),
                )
            )
    reload_note = (
        ""
        if snap.reload_ok
        else "<p class=bad>Last reload failed: " + esc("; ".join(snap.reload_errors)) + "</p>"
    )
    intervals = ", ".join(sorted({format_duration(t.interval) for t in snap.config.targets}))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>certscope</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;text-align:left}}
tr:nth-child(even){{background:#f4f4f4}}.bad{{color:#b00}}
td.expired{{background:#b00;color:#fff}}td.d7{{background:#f4b6b6}}td.d30{{background:#fde6b0}}
td.d60{{background:#fff6d6}}</style></head><body>
<h1>certscope {esc(__version__)}</h1>
<p>Configuration: {esc(snap.config.origin)} — {len(snap.config.targets)} targets,
{len(snap.config.sources)} sources. <a href="/metrics">Metrics</a> ·
<a href="/inventory?format=csv">Inventory (CSV)</a> ·
<a href="/-/ready">Readiness</a></p>{reload_note}
<h2>TLS targets</h2><table><tr><th>Target</th><th>Address</th><th>Names (CN, SANs)</th>
<th>Issuer CN</th><th>Not after</th><th>Days left</th><th>Problems</th></tr>
{"".join(rows) or "<tr><td colspan=7>No targets configured.</td></tr>"}</table>
<h2>Stored certificates (soonest to expire, up to 20 per source)</h2><table><tr><th>Source</th>
<th>Location</th><th>Subject</th><th>Not after</th><th>Days left</th></tr>
{"".join(stored) or "<tr><td colspan=5>No sources configured.</td></tr>"}</table>
<p>Probe intervals: {esc(intervals or "-")}</p>
</body></html>"""
    return web.Response(text=page, content_type="text/html")
