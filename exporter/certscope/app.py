"""The HTTP face: aiohttp app factory, routes, and the background scheduler's lifetime.

State lives on the Application under typed keys (no module globals); the scheduler starts and
stops in a ``cleanup_ctx``. Handlers only read snapshots, except ``/probe`` (which runs one
probe for the caller, restricted by the allow-list) and ``/-/reload``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.typedefs import Middleware

from . import inventory
from .collector import Exposition, render_direct
from .config import (
    STARTTLS_PROTOCOLS,
    Config,
    Target,
    TLSOptions,
)
from .errors import ConfigError, ProbeFailure
from .net import hostname_problem, join_address, split_address
from .pinning import NotAllowed, checked_address
from .probe import probe
from .results import ProbeResult
from .scheduler import Scheduler
from .selfmetrics import SelfMetrics
from .snapshot import State
from .tls.handshake import Failure, Outcome
from .web import status
from .web.allowlist import target_allowed
from .web.guard import csrf_problem

log = logging.getLogger(__name__)

ConfigLoader = Callable[[], Config]


@dataclass
class _ProbeGate:
    """How many /probe requests run now (one event loop: a plain counter is enough), and the
    targets recent requests asked for.

    A ``/probe`` target is a pure function of the query string, the scrape-timeout header and
    the configuration; Prometheus asks for the same few again and again, so each is built
    once per configuration (parsing, the allow-list and two frozen dataclasses cost about as
    much as the rest of the request's handling). Refusals are not kept: each is built anew.
    """

    busy: int = 0
    config: Config | None = None
    targets: dict[tuple[str, str], Target] = field(default_factory=dict)

    def target(self, request: web.Request, config: Config) -> Target | web.Response:
        if config is not self.config:
            self.config = config
            self.targets.clear()
        key = (request.rel_url.raw_query_string, request.headers.get(_SCRAPE_TIMEOUT, ""))
        if (held := self.targets.get(key)) is not None:
            return held
        target = _probe_target(request, config)
        if isinstance(target, Target):
            if len(self.targets) >= _HELD_TARGETS:
                self.targets.clear()
            self.targets[key] = target
        return target


STATE = web.AppKey("state", State)
SCHEDULER = web.AppKey("scheduler", Scheduler)
EXPOSITION = web.AppKey("exposition", Exposition)
METRICS = web.AppKey("metrics", SelfMetrics)
LOADER: web.AppKey[ConfigLoader] = web.AppKey("loader")
PROBE_GATE = web.AppKey("probe_gate", _ProbeGate)
LIFECYCLE = web.AppKey("lifecycle", bool)

_TEXT = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds kept back from Prometheus's scrape timeout so /probe answers before it gives up.
_SCRAPE_TIMEOUT_MARGIN = 0.5
_SCRAPE_TIMEOUT = "X-Prometheus-Scrape-Timeout-Seconds"
#: /probe targets kept per configuration (the table is emptied when it holds this many).
_HELD_TARGETS = 1024


def make_app(
    config: Config,
    loader: ConfigLoader,
    start_scheduler: bool = True,
    lifecycle: bool = False,
    middlewares: tuple[Middleware, ...] = (),
) -> web.Application:
    """The exporter's application. ``lifecycle`` enables ``POST /-/reload`` (as Prometheus's
    ``--web.enable-lifecycle``); ``middlewares`` run first (authentication, headers)."""
    app = web.Application(middlewares=middlewares)
    app[LIFECYCLE] = lifecycle
    app[PROBE_GATE] = _ProbeGate()
    exposition = Exposition()
    state = State(config, prepare=exposition.prepare)
    metrics = SelfMetrics()
    app[STATE] = state
    app[METRICS] = metrics
    app[EXPOSITION] = exposition
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
    """Load the config again and apply it; a bad config keeps the old one running.

    Every failure, whatever raised it, sets the reload gauge to 0, is logged once and is kept
    for the status page; the message lists every problem.
    """
    state, metrics = app[STATE], app[METRICS]
    try:
        config = app[LOADER]()
        app[SCHEDULER].apply(config)  # first: it compares the old policy with the new one
        state.set_config(config)
    except ConfigError as exc:
        problems = tuple(str(p) for p in exc.problems)
        message = str(exc)
    except Exception as exc:  # documented boundary: a reload must never stop the exporter
        problems = (f"cannot load the configuration ({type(exc).__name__})",)
        message = "invalid configuration:\n  - " + problems[0]
        log.debug("reload failed", exc_info=True)
    else:
        metrics.reload_ok.set(1)
        metrics.reload_time.set(time.time())
        log.info(
            "configuration reloaded: %d targets, %d sources",
            len(config.targets),
            len(config.sources),
        )
        return True, "configuration reloaded"
    state.reload_failed(problems)
    metrics.reload_ok.set(0)
    log.error("reload failed, keeping the previous configuration: %s", message)
    return False, message


def metrics_parts(app: web.Application) -> list[bytes | bytearray]:
    """The exposition of the current snapshot, a family per part (certscope's own metrics
    are not in it)."""
    snap = app[STATE].snapshot()
    assessed = snap.assessed()
    return app[EXPOSITION].render_parts(
        [
            *snap.probes.values(),
            *snap.ssh.values(),
            *snap.sources.values(),
            *assessed,
            snap.config.policy,
        ]
    )


async def handle_metrics(request: web.Request) -> web.StreamResponse:
    app = request.app
    t0 = time.perf_counter()
    parts = metrics_parts(app)
    app[METRICS].scrape.observe(time.perf_counter() - t0)
    own = app[METRICS].render().encode()
    # Streamed part by part (a family each): a 50 MB body is never joined into one buffer.
    response = web.StreamResponse(headers={"Content-Type": _TEXT})
    response.content_length = sum(map(len, parts)) + len(own)
    await response.prepare(request)
    if request.method != "HEAD":  # a streamed response does not drop the body by itself
        for part in parts:
            await response.write(part)
        await response.write(own)
    await response.write_eof()
    return response


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n")


def _probe_target(request: web.Request, config: Config) -> Target | web.Response:
    """The target a /probe request asks for, or the 4xx answer. Bounded time for any input."""
    settings = config.probe
    q = request.query
    address = q.get("target", "").strip()
    if not address:
        return _text(400, "target parameter is missing (host:port)")
    try:
        host, port = split_address(address)
    except ValueError as exc:
        return _text(400, f"bad target: {exc}")
    configured = config.target_addresses
    # Configured targets are exempt: the operator already chose to probe them.
    if join_address(host, port) not in configured and not target_allowed(
        address, settings.allowed_targets
    ):
        return _text(
            403,
            f"target {join_address(host, port)} is not allowed: add a matching pattern to "
            "probe.allowed_targets in the configuration",
        )
    module = q.get("module", "")
    if module and module not in settings.modules:
        return _text(400, "unknown module: see probe.modules in the configuration")
    opts = settings.modules[module] if module else settings.default
    starttls = q.get("starttls") or opts.starttls
    if starttls is not None and starttls not in STARTTLS_PROTOCOLS:
        return _text(400, f"starttls must be one of {', '.join(STARTTLS_PROTOCOLS)}")
    sni = q.get("sni") or opts.sni
    if sni is not None and (why := hostname_problem(sni)) is not None:
        return _text(400, f"sni is not a valid host name: it {why}")
    timeout = opts.timeout
    header = request.headers.get(_SCRAPE_TIMEOUT, "")
    with contextlib.suppress(ValueError):
        scrape_timeout = float(header[:32])
        if math.isfinite(scrape_timeout):
            timeout = max(0.5, min(timeout, scrape_timeout - _SCRAPE_TIMEOUT_MARGIN))
    tls = TLSOptions(
        sni=sni,
        starttls=starttls,
        alpn=opts.alpn,
        ca_file=opts.ca_file,
        client_cert=opts.client_cert,
        client_key=opts.client_key,
        timeout=timeout,
        max_handshake_bytes=opts.max_handshake_bytes,
        revocation=opts.revocation,
    )
    name = join_address(host, port)
    return Target(name=name, host=host, port=port, tls=tls, interval=max(timeout * 2, 1))


async def _pin_address(target: Target, config: Config) -> Target | ProbeResult | web.Response:
    """With ``allowed_networks``: resolve once, check, and connect to that address only."""
    networks = config.probe.allowed_networks
    if not networks or target.address in config.target_addresses:
        return target
    started = time.perf_counter()
    try:
        async with asyncio.timeout(target.tls.timeout):
            ip = await checked_address(target.host, target.port, networks)
    except NotAllowed:
        return _text(
            403,
            f"target {target.address} resolves to no address inside probe.allowed_networks",
        )
    except (OSError, TimeoutError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "no answer in time"
        failure = Failure(ProbeFailure.DNS, f"cannot resolve {target.host}: {why}")
        return ProbeResult(
            name=target.name,
            address=target.address,
            server_name=target.server_name,
            labels=target.labels,
            timestamp=time.time(),
            duration=time.perf_counter() - started,
            outcome=Outcome(error=failure),
            facts=(),
            verdict=None,
            last_success=None,
        )
    # The certificate's responder and CRL URLs come from the server: the same networks hold.
    revocation = replace(target.tls.revocation, allowed_networks=networks)
    return replace(target, connect_to=ip, tls=replace(target.tls, revocation=revocation))


async def handle_probe(request: web.Request) -> web.Response:
    """The blackbox multi-target pattern: ``/probe?target=host:port[&sni=&starttls=&module=]``."""
    # The configuration, not a snapshot: with the scheduler storing results, a snapshot would
    # be rebuilt (every result copied) for nearly every /probe.
    config = request.app[STATE].config
    gate = request.app[PROBE_GATE]
    if gate.busy >= config.probe.max_concurrent:
        return web.Response(
            status=429,
            text=f"more than {config.probe.max_concurrent} probes at once "
            "(probe.max_concurrent); try again\n",
            headers={"Retry-After": "1"},
        )
    target = gate.target(request, config)
    if isinstance(target, web.Response):
        return target
    gate.busy += 1
    try:
        pinned = await _pin_address(target, config)
        if isinstance(pinned, web.Response):
            return pinned
        result = pinned if isinstance(pinned, ProbeResult) else await probe(pinned)
    finally:
        gate.busy -= 1
    return web.Response(body=render_direct([result]), headers={"Content-Type": _TEXT})


async def handle_inventory(request: web.Request) -> web.Response:
    """The certificate inventory as JSON (default) or CSV (``?format=csv``)."""
    snap = request.app[STATE].snapshot()
    items = inventory.rows(
        snap.probes.values(), snap.sources.values(), datetime.now(UTC), snap.ssh.values()
    )
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
    """``POST /-/reload``: 200, or 500 with every problem of the refused file."""
    if not request.app[LIFECYCLE]:
        return _text(403, "Lifecycle API is not enabled (start with --web.enable-lifecycle).")
    if (why := csrf_problem(request)) is not None:
        return _text(403, why)
    ok, message = reload_config(request.app)
    return _text(200 if ok else 500, message)


async def handle_index(request: web.Request) -> web.Response:
    page = status.page(request.app[STATE].snapshot(), datetime.now(UTC))
    return web.Response(text=page, content_type="text/html")
