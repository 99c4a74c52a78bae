"""The Kubernetes API at the edge: list in pages, then watch, for one stream (a resource in
one scope), with the errors that decide what the reader does next.

Requests go through kubernetes_asyncio with ``_preload_content=False``: bodies are read raw and
only what is needed is pulled out of the JSON (by :mod:`.extract`), so no model object or debug
log ever holds a body full of private keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import aiohttp
from aiolimiter import AsyncLimiter

from ...config import KubernetesSource
from ...errors import SourceFailure
from .extract import Entry, Extractor, ObjKey

log = logging.getLogger(__name__)

#: A watch asks the server to end it after a random 5-10 minutes (as client-go does), so
#: thousands of exporters do not reconnect in step.
WATCH_SECONDS = (300, 600)
LIST_TIMEOUT = 60.0
CONNECT_TIMEOUT = 10.0
#: How long past ``timeoutSeconds`` a silent watch may stay open before it counts as dead.
WATCH_GRACE = 30.0
MAX_RETRY_AFTER = 300.0
#: Status and error bodies are short; never read more of one than this.
MAX_ERROR_BODY = 64 * 1024


class ApiError(Exception):
    def __init__(
        self, reason: SourceFailure, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message[:300]
        self.retry_after = retry_after


class Gone(ApiError):
    def __init__(self, message: str) -> None:
        # Reported (as http_error) only when a re-list itself is refused with 410.
        super().__init__(SourceFailure.HTTP_ERROR, message)


class BrokenStream(Exception):
    pass


@dataclass(frozen=True)
class Stream:
    resource: str  # "secrets" or "configmaps"
    namespace: str | None  # None: all namespaces
    label_selector: str
    field_selector: str

    @property
    def key(self) -> str:
        return f"{self.resource}@{self.namespace or '*'}"

    def describe(self) -> str:
        where = f"namespace {self.namespace}" if self.namespace else "all namespaces"
        return f"{self.resource} ({where})"


@dataclass
class ListState:
    """A paginated list in progress; kept across retries so a failed page resumes."""

    entries: dict[ObjKey, Entry] = field(default_factory=dict)
    cont: str = ""
    resource_version: str = ""
    started: float = field(default_factory=time.perf_counter)


@dataclass
class Cursor:
    resource_version: str
    events: int = 0


class Backoff:
    """Exponential backoff with full jitter; a server's ``Retry-After`` is a floor."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.base * 2**self.attempt)
        self.attempt += 1
        delay = self._rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after + self._rng.uniform(0, min(1.0, retry_after / 10)))
        return delay

    def reset(self) -> None:
        self.attempt = 0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (a number or an HTTP date), capped; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


_STATUS_REASONS = {
    401: SourceFailure.UNAUTHORIZED,
    403: SourceFailure.FORBIDDEN,
    429: SourceFailure.THROTTLED,
}


def status_error(status: int, body: bytes, retry_after: str | None) -> ApiError:
    """An error from an HTTP status and, when the body is a Kubernetes Status, its message."""
    message = ""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        doc = json.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            message = doc["message"]
    text = f"HTTP {status}" + (f": {message}" if message else "")
    after = parse_retry_after(retry_after)
    if status == 410:
        return Gone(text)
    reason = _STATUS_REASONS.get(status, SourceFailure.HTTP_ERROR)
    return ApiError(reason, text, after)


def transport_error(stream: Stream, exc: BaseException, what: str) -> ApiError:
    """A request to ``stream`` that timed out or could not reach the server."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return ApiError(SourceFailure.TIMEOUT, f"{stream.describe()}: {what} timed out")
    return ApiError(SourceFailure.UNREACHABLE, f"{stream.describe()}: {describe(exc)}")


def parse_page(
    extractor: Extractor, resource: str, body: bytes, old: Mapping[ObjKey, Entry]
) -> tuple[dict[ObjKey, Entry], str, str]:
    """One list page → (entries, list resourceVersion, continue token). Runs in a thread."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise ApiError(SourceFailure.HTTP_ERROR, "list response is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise ApiError(SourceFailure.HTTP_ERROR, "list response has no items")
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    out: dict[ObjKey, Entry] = {}
    for item in doc["items"]:
        found = extractor.extract(resource, item, old)
        if found is not None and found[1] is not None:
            out[found[0]] = found[1]
    return out, str(meta.get("resourceVersion") or ""), str(meta.get("continue") or "")


def api_types() -> tuple[Any, Any]:
    # Imported on first use: kubernetes_asyncio costs ~40 MB of model classes, and a
    # configuration without a kubernetes source should not pay for it.
    from kubernetes_asyncio.client import ApiClient, CoreV1Api

    return ApiClient, CoreV1Api


class Requests:
    """The list and watch requests of one source's streams, through one client-side rate
    limit shared by them all (``qps`` requests per second, bursts of ``burst``)."""

    def __init__(self, extractor: Extractor, limiter: AsyncLimiter, page_size: int) -> None:
        self._extract = extractor
        self._limiter = limiter
        self._page_size = page_size

    def _method(self, client: Any, stream: Stream) -> Callable[..., Awaitable[Any]]:
        _, core_cls = api_types()
        core = core_cls(client)
        ns = stream.namespace
        if stream.resource == "secrets":
            if ns is None:
                return core.list_secret_for_all_namespaces  # type: ignore[no-any-return]
            return lambda **kw: core.list_namespaced_secret(ns, **kw)
        if ns is None:
            return core.list_config_map_for_all_namespaces  # type: ignore[no-any-return]
        return lambda **kw: core.list_namespaced_config_map(ns, **kw)

    async def call(
        self, client: Any, stream: Stream, deadline: aiohttp.ClientTimeout, **params: Any
    ) -> aiohttp.ClientResponse:
        """One rate-limited request; a response that is not 200 becomes an :class:`ApiError`."""
        if stream.label_selector:
            params["label_selector"] = stream.label_selector
        if stream.field_selector:
            params["field_selector"] = stream.field_selector
        await self._limiter.acquire()
        method = self._method(client, stream)
        try:
            resp: aiohttp.ClientResponse = await method(
                **params, _preload_content=False, _request_timeout=deadline
            )
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            raise transport_error(stream, exc, "request") from None
        finally:
            client.last_response = None  # do not keep the last response alive
        if resp.status != 200:
            try:
                body = await resp.content.read(MAX_ERROR_BODY)
            except (aiohttp.ClientError, OSError, TimeoutError):
                body = b""
            finally:
                resp.release()
            err = status_error(resp.status, body, resp.headers.get("Retry-After"))
            err.message = f"{stream.describe()}: {err.message}"
            raise err
        return resp

    # -- list ------------------------------------------------------------------------------

    async def _list_pages(
        self, client: Any, stream: Stream, state: ListState, old: Mapping[ObjKey, Entry]
    ) -> None:
        """Fetch the remaining pages of ``state`` (resumable after an error)."""
        timeout = aiohttp.ClientTimeout(total=LIST_TIMEOUT, sock_connect=CONNECT_TIMEOUT)
        while True:
            params: dict[str, Any] = {"limit": self._page_size}
            if state.cont:
                params["_continue"] = state.cont
            resp = await self.call(client, stream, timeout, **params)
            try:
                body = await resp.read()
            except (aiohttp.ClientError, OSError) as exc:
                raise transport_error(stream, exc, "list") from None
            finally:
                resp.release()
            # JSON decoding and certificate parsing of 500 objects take a while: a worker
            # thread keeps the event loop (and scrapes) responsive meanwhile.
            entries, rv, cont = await asyncio.to_thread(
                parse_page, self._extract, stream.resource, body, old
            )
            del body
            state.entries.update(entries)
            if not state.resource_version or not state.cont:
                state.resource_version = rv
            state.cont = cont
            if not cont:
                return

    async def list(
        self, client: Any, stream: Stream, state: ListState, old: Mapping[ObjKey, Entry]
    ) -> ListState:
        """:meth:`_list_pages`, restarting once from scratch when a continue token has expired."""
        try:
            await self._list_pages(client, stream, state, old)
        except Gone:
            if not state.cont:
                raise
            log.info("%s: continue token expired, listing again", stream.describe())
            state = ListState()
            await self._list_pages(client, stream, state, old)
        return state

    async def watch(
        self,
        client: Any,
        stream: Stream,
        cursor: Cursor,
        relist_at: float,
        on_open: Callable[[], None],
        on_event: Callable[[bytes], None],
    ) -> None:
        """One watch request from ``cursor``, handing each event line to ``on_event`` until
        the server ends it cleanly; a stream that breaks raises :class:`BrokenStream`."""
        seconds = random.randint(*WATCH_SECONDS)  # spreading reconnects, not security
        seconds = max(1, min(seconds, int(relist_at - time.monotonic()) + 1))
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT, sock_read=seconds + WATCH_GRACE
        )
        resp = await self.call(
            client,
            stream,
            timeout,
            watch=True,
            resource_version=cursor.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=seconds,
        )
        on_open()
        finished = False
        try:
            while True:
                try:
                    line = await resp.content.readline()
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                    raise BrokenStream(describe(exc)) from None
                if not line:
                    finished = True
                    return
                if line.strip():
                    on_event(line)
        finally:
            if finished:
                resp.release()
            else:
                resp.close()


def apply_event(
    extractor: Extractor,
    stream: Stream,
    cursor: Cursor,
    line: bytes,
    store: dict[ObjKey, Entry],
) -> bool:
    """One watch event line applied to ``store`` and ``cursor``; True when the store changed.
    An ERROR event raises the :class:`ApiError` it stands for (:class:`Gone` for 410)."""
    changed = False
    try:
        event = json.loads(line)
    except ValueError:
        raise BrokenStream("watch event is not JSON") from None
    obj = event.get("object") if isinstance(event, dict) else None
    if not isinstance(obj, dict):
        raise BrokenStream("watch event without an object")
    kind = event.get("type")
    if kind == "ERROR":
        code = obj.get("code")
        message = obj.get("message") if isinstance(obj.get("message"), str) else ""
        if code == 410:
            raise Gone(f"watch: {message or 'resource version too old'}")
        body = json.dumps({"message": message}).encode()
        err = status_error(code if isinstance(code, int) else 500, body, None)
        err.message = f"{stream.describe()}: watch error: {err.message}"
        raise err
    meta = obj.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    if kind == "BOOKMARK":
        if isinstance(rv, str) and rv:
            cursor.resource_version = rv
        return False
    if kind in ("ADDED", "MODIFIED"):
        found = extractor.extract(stream.resource, obj)
        if found is not None:
            key, entry = found
            if entry is not None:
                store[key] = entry
                changed = True
            elif store.pop(key, None) is not None:
                changed = True
    elif kind == "DELETED":
        ns = meta.get("namespace") if isinstance(meta, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        if store.pop((ns or "", name or ""), None) is not None:
            changed = True
    else:
        log.debug("%s: ignoring watch event type %r", stream.describe(), kind)
    if isinstance(rv, str) and rv:
        cursor.resource_version = rv
    cursor.events += 1
    return changed


def streams(source: KubernetesSource) -> tuple[Stream, ...]:
    """One stream per resource and scope; selectors pushed to the server where possible."""
    fields: list[str] = []
    if source.namespaces:
        scopes: list[str | None] = [
            n for n in source.namespaces if n not in source.exclude_namespaces
        ]
    else:
        scopes = [None]
        fields.extend(f"metadata.namespace!={n}" for n in source.exclude_namespaces)
    secret_fields = list(fields)
    if len(source.secret_types) == 1 and not source.opaque_keys:
        # Helm release and token Secrets can dwarf TLS ones: filter by type on the server.
        secret_fields.insert(0, f"type={source.secret_types[0]}")
    out = [Stream("secrets", ns, source.label_selector, ",".join(secret_fields)) for ns in scopes]
    if source.configmaps:
        out.extend(
            Stream("configmaps", ns, source.configmap_label_selector, ",".join(fields))
            for ns in scopes
        )
    return tuple(out)


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__
