"""The ``kubernetes`` source: one list-then-watch task per stream, their stores merged and
published as one :class:`~certscope.results.SourceResult` (see the package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from aiolimiter import AsyncLimiter

from ... import __version__
from ...config import KubernetesSource
from ...errors import SourceFailure
from ...results import ItemError, SourceResult, StoredCert, StoredKey
from ..base import Publish, failed, succeeded
from ..keys import link
from .extract import Entry, Extractor, ObjKey
from .stream import (
    ApiError,
    Backoff,
    BrokenStream,
    Cursor,
    Gone,
    ListState,
    Requests,
    Stream,
    api_types,
    apply_event,
    streams,
)

log = logging.getLogger("certscope.sources.kubernetes")

PAGE_SIZE = 500
DEBOUNCE = 0.5


class KubernetesReader:
    """Reads one ``kind: kubernetes`` source; see the package docstring."""

    kind = "kubernetes"

    def __init__(
        self,
        source: KubernetesSource,
        *,
        debounce: float = DEBOUNCE,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.source = source
        self.name = source.name
        self._debounce = debounce
        self._backoff = (backoff_base, backoff_cap)
        self._extract = Extractor(source)
        self._streams = streams(source)
        self._by_key = {s.key: s for s in self._streams}
        # A leaky bucket holding ``burst`` requests that drains at ``qps``: bursts of
        # ``burst``, then ``qps`` requests per second, shared by every stream of the source.
        limiter = AsyncLimiter(source.burst, source.burst / source.qps)
        self._requests = Requests(self._extract, limiter, page_size)
        self._stores: dict[str, dict[ObjKey, Entry]] = {}
        self._synced: set[str] = set()
        self._failures: dict[str, ApiError] = {}
        # A failure that healed before it was published is still published once, so that a
        # blip shorter than the debounce is counted rather than lost.
        self._unpublished: ApiError | None = None
        self._last_success: float | None = None
        self._list_duration = 0.0
        self._dirty: asyncio.Event | None = None

    # -- client ----------------------------------------------------------------------------

    async def _load_config(self, configuration: Any) -> None:
        """Fill (or refill, after a 401) a kubernetes_asyncio Configuration."""
        from kubernetes_asyncio.config import load_incluster_config, load_kube_config

        try:
            if self.source.kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                await load_kube_config(
                    config_file=self.source.kubeconfig,
                    context=self.source.context,
                    client_configuration=configuration,
                    persist_config=False,  # never write tokens back into the user's file
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a user's file: the loader raises whatever it meets in it
            raise ApiError(SourceFailure.CONFIG_ERROR, f"{type(exc).__name__}: {exc}") from None

    async def _client(self) -> Any:
        from kubernetes_asyncio.client import Configuration

        configuration = Configuration()
        await self._load_config(configuration)
        api_client_cls, _ = api_types()
        client = api_client_cls(configuration=configuration)
        client.user_agent = f"certscope/{__version__}"
        return client

    # -- refresh ---------------------------------------------------------------------------

    async def refresh(self, previous: SourceResult | None) -> SourceResult:
        """One full list of every stream (``certscope inventory``, and a fallback)."""
        started = time.perf_counter()
        try:
            client = await self._client()
        except ApiError as exc:
            return self._failed(previous, exc, started)
        try:
            stores: dict[str, dict[ObjKey, Entry]] = {}
            denied: list[ItemError] = []
            for stream in self._streams:
                # Objects the watch already parsed (same resourceVersion) are reused as they
                # are; nothing else is kept between refreshes.
                old = self._stores.get(stream.key, {})
                try:
                    state = await self._requests.list(client, stream, ListState(), old)
                except ApiError as exc:
                    if not _confined(stream, exc) or len(denied) + 1 == len(self._streams):
                        raise
                    log.warning("kubernetes source %s: %s (%s)", self.name, exc.message, exc.reason)
                    denied.append(_stream_error(stream, exc))
                    continue
                stores[stream.key] = state.entries
        except asyncio.CancelledError:
            raise
        except ApiError as exc:
            return self._failed(previous, exc, started)
        except Exception as exc:  # never raise out of a reader
            log.exception("kubernetes source %s: refresh failed", self.name)
            return self._failed(
                previous, ApiError(SourceFailure.INTERNAL, f"{type(exc).__name__}"), started
            )
        finally:
            await client.close()
        certs, errors, keys = _flatten(stores)
        return succeeded(self, self.source.labels, started, certs, errors + tuple(denied), keys)

    def _failed(self, previous: SourceResult | None, exc: ApiError, started: float) -> SourceResult:
        log.warning("kubernetes source %s: %s (%s)", self.name, exc.message, exc.reason)
        return failed(self, self.source.labels, started, previous, exc.reason, exc.message)

    # -- watch -----------------------------------------------------------------------------

    async def watch(self, publish: Publish) -> None:
        """List then watch every stream until cancelled, publishing the full result on change.

        Never returns on its own and never raises (except ``CancelledError``): failures are
        published as ``up=False`` results and retried with backoff.
        """
        self._dirty = asyncio.Event()
        tasks = [asyncio.create_task(self._publisher(publish), name=f"k8s:{self.name}:publish")]
        client: Any = None
        try:
            client = await self._connect()
            tasks.extend(
                asyncio.create_task(self._run_stream(client, s), name=f"k8s:{self.name}:{s.key}")
                for s in self._streams
            )
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if client is not None:
                await client.close()

    async def _connect(self) -> Any:
        """A client, retrying (and publishing the failure) until the configuration loads."""
        backoff = Backoff(*self._backoff)
        while True:
            try:
                client = await self._client()
            except ApiError as exc:
                self._fail("client", exc)
                await asyncio.sleep(backoff.next())
                continue
            self._ok("client")
            return client

    async def _run_stream(self, client: Any, stream: Stream) -> None:
        backoff = Backoff(*self._backoff)
        state: ListState | None = ListState()
        cursor = Cursor("")
        relist_at = 0.0
        while True:
            try:
                if state is not None:
                    # The previous store is passed, not kept in a local: a local would hold a
                    # second full inventory alive for as long as this watch runs.
                    state = await self._requests.list(
                        client, stream, state, self._stores.get(stream.key, {})
                    )
                    self._stores[stream.key] = state.entries  # replaces: vanished objects go
                    self._list_duration = time.perf_counter() - state.started
                    cursor = Cursor(state.resource_version)
                    state = None
                    relist_at = time.monotonic() + self.source.interval
                    self._synced.add(stream.key)
                    self._ok(stream.key)
                    backoff.reset()
                    self._mark_dirty()  # also after an unchanged re-list: a fresh timestamp
                began, seen = time.monotonic(), cursor.events
                await self._requests.watch(
                    client,
                    stream,
                    cursor,
                    relist_at,
                    on_open=functools.partial(self._ok, stream.key),
                    on_event=functools.partial(self._apply, stream, cursor),
                )
                if cursor.events == seen and time.monotonic() - began < 0.5:
                    # Ended at once with nothing in it: a sick server or proxy. Do not spin.
                    await asyncio.sleep(backoff.next())
                else:
                    backoff.reset()
                if time.monotonic() >= relist_at:
                    state = ListState()
            except Gone as exc:
                if state is not None:  # the list itself was refused (not a continue token)
                    self._fail(stream.key, exc)
                    state = ListState()
                    await asyncio.sleep(backoff.next())
                else:
                    log.info("%s: %s; listing again", stream.describe(), exc.message)
                    state = ListState()
            except BrokenStream as exc:
                log.debug("%s: watch broken (%s); resuming", stream.describe(), exc)
                if cursor.events:
                    backoff.reset()
                cursor.events = 0
                await asyncio.sleep(backoff.next())
            except ApiError as exc:
                self._fail(stream.key, exc)
                if exc.reason is SourceFailure.UNAUTHORIZED:
                    # A rotated token or an expired exec-plugin credential: load it again.
                    with contextlib.suppress(ApiError):
                        await self._load_config(client.configuration)
                await asyncio.sleep(backoff.next(exc.retry_after))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not end the watch; say so and retry
                log.exception("%s: unexpected error", stream.describe())
                self._fail(stream.key, ApiError(SourceFailure.INTERNAL, type(exc).__name__))
                await asyncio.sleep(backoff.next())

    def _apply(self, stream: Stream, cursor: Cursor, line: bytes) -> None:
        store = self._stores.setdefault(stream.key, {})
        if apply_event(self._extract, stream, cursor, line, store):
            self._mark_dirty()

    # -- state and publishing --------------------------------------------------------------

    def _mark_dirty(self) -> None:
        if self._dirty is not None:
            self._dirty.set()

    def _fail(self, key: str, exc: ApiError) -> None:
        previous = self._failures.get(key)
        if previous is None or previous.reason != exc.reason:
            log.warning("kubernetes source %s: %s (%s)", self.name, exc.message, exc.reason)
        self._failures[key] = exc
        if not self._confined(key):
            self._unpublished = exc
        self._mark_dirty()

    def _ok(self, key: str) -> None:
        if self._failures.pop(key, None) is not None:
            log.info("kubernetes source %s: %s recovered", self.name, key)
            self._mark_dirty()

    def _confined(self, key: str) -> bool:
        """Is the failure of stream ``key`` only its namespace's (an item error)?"""
        exc = self._failures.get(key)
        stream = self._by_key.get(key)
        return exc is not None and stream is not None and _confined(stream, exc)

    def _source_failure(self) -> ApiError | None:
        """The failure that takes the source down: any but a forbidden namespace, and those
        too when every stream is one (nothing at all can be read)."""
        real = [exc for key, exc in self._failures.items() if not self._confined(key)]
        if real:
            return real[0]
        if self._failures and all(self._confined(s.key) for s in self._streams):
            return next(iter(self._failures.values()))
        return None

    def _ready(self) -> bool:
        """Publish once every stream has listed (or is a forbidden namespace), or as soon as
        the source fails."""
        return bool(self._source_failure() or self._unpublished) or all(
            s.key in self._synced or self._confined(s.key) for s in self._streams
        )

    def current(self) -> SourceResult:
        """The full current result (what ``watch`` publishes)."""
        now = time.time()
        certs, errors, keys = _flatten(self._stores)
        errors += self._stream_errors()
        failure = self._source_failure()
        if failure is None and self._unpublished is not None:
            failure = self._unpublished
            self._mark_dirty()  # already healed: the good result follows after the debounce
        self._unpublished = None
        if failure is None:
            self._last_success = now
        return SourceResult(
            name=self.name,
            kind=self.kind,
            labels=self.source.labels,
            timestamp=now,
            duration=self._list_duration,
            up=failure is None,
            certs=certs,
            errors=errors,
            last_success=self._last_success,
            error=failure.message if failure else "",
            error_reason=failure.reason if failure else None,
            keys=keys,
        )

    def _stream_errors(self) -> tuple[ItemError, ...]:
        """A failing namespace (forbidden, say) as an item error at ``<namespace>/*``
        (``configmap:<namespace>/*``), so the place shows beside the other items' errors."""
        out: list[ItemError] = []
        for stream in self._streams:
            exc = self._failures.get(stream.key)
            if exc is not None and stream.namespace is not None:
                out.append(_stream_error(stream, exc))
        return tuple(out)

    async def _publisher(self, publish: Publish) -> None:
        """Leading-edge debounce: a change publishes at once unless the last publish was less
        than ``debounce`` ago, in which case the changes so far go out together then."""
        dirty = self._dirty
        assert dirty is not None
        while True:
            await dirty.wait()
            dirty.clear()
            if not self._ready():
                continue
            try:
                publish(self.current())
            except Exception:  # the consumer's bug must not end the watch
                log.exception("kubernetes source %s: publish failed", self.name)
            await asyncio.sleep(self._debounce)


def _confined(stream: Stream, exc: ApiError) -> bool:
    """RBAC denies this one namespace: the other namespaces are still read."""
    return exc.reason is SourceFailure.FORBIDDEN and stream.namespace is not None


def _stream_error(stream: Stream, exc: ApiError) -> ItemError:
    prefix = "" if stream.resource == "secrets" else "configmap:"
    return ItemError(f"{prefix}{stream.namespace}/*", exc.reason, exc.message)


def _flatten(
    stores: Mapping[str, Mapping[ObjKey, Entry]],
) -> tuple[tuple[StoredCert, ...], tuple[ItemError, ...], tuple[StoredKey, ...]]:
    certs: list[StoredCert] = []
    errors: list[ItemError] = []
    keys: list[StoredKey] = []
    for store in stores.values():
        for entry in store.values():
            certs.extend(entry.certs)
            errors.extend(entry.errors)
            keys.extend(entry.keys)
    return tuple(certs), tuple(errors), link(keys, certs)
