"""An in-test Kubernetes API server: the real list/watch protocol for Secrets and ConfigMaps.

Import it as ``from helpers.k8s_api import FakeKubeAPI`` (pytest puts ``tests/`` on ``sys.path``; ``helpers`` is a package there). It
runs on the caller's event loop, over TLS with a trustme CA, and writes a kubeconfig (server
URL, ``certificate-authority-data``, bearer token) so kubernetes_asyncio's real kubeconfig
loading and authentication are exercised::

    async with FakeKubeAPI(tmp_path) as api:
        api.put_secret("web", "site-tls", {"tls.crt": chain_pem, "tls.key": key_pem})
        source = KubernetesSource(name="cluster", kubeconfig=str(api.kubeconfig))
        ...
        api.delete("secrets", "web", "site-tls")
        api.count("list", "secrets")            # list requests seen so far

Protocol (as the real API server speaks it, the subset certscope uses):

- ``GET /api/v1/{secrets,configmaps}`` and ``/api/v1/namespaces/{ns}/{secrets,configmaps}``
  with a bearer token (401 ``Status`` without it, or with the wrong one).
- Lists: ``{"kind": "SecretList", "apiVersion": "v1", "metadata": {"resourceVersion",
  "continue", "remainingItemCount"}, "items": [...]}``; items carry ``metadata`` (name,
  namespace, uid, resourceVersion, creationTimestamp, labels, annotations), ``type`` and
  base64 ``data`` (Secrets) or ``data``/``binaryData`` (ConfigMaps), without kind/apiVersion.
  ``limit`` + ``continue`` paginate a consistent snapshot taken at the first page; an
  expired or compacted continue token is ``410 Expired``.
- ``labelSelector``: equality (``=``, ``==``, ``!=``) and set-based (``in``, ``notin``,
  ``key``, ``!key``); ``fieldSelector``: ``metadata.name``, ``metadata.namespace`` and
  (Secrets) ``type`` with ``=``/``==``/``!=``; anything else is ``400 BadRequest``.
- ``watch=true``: newline-delimited JSON events ``{"type", "object"}`` (ADDED, MODIFIED,
  DELETED, BOOKMARK, ERROR), objects with kind/apiVersion. From ``resourceVersion=N`` it
  replays every change after N; unset or ``"0"`` it starts with ADDED for every object. A
  resourceVersion older than the retained history gets an ERROR event with a 410 ``Status``
  (``gone_as_http=True``: an HTTP 410 instead). Objects entering or leaving a label selector
  arrive as ADDED / DELETED. ``allowWatchBookmarks=true`` gets BOOKMARK events (object with
  only ``metadata.resourceVersion``) every ``bookmark_interval`` seconds of quiet and on
  :meth:`FakeKubeAPI.bookmark`. ``timeoutSeconds`` ends the stream cleanly.

Controls (plain methods, call them from the test): :meth:`~FakeKubeAPI.put_secret`,
:meth:`~FakeKubeAPI.put_configmap` (create or modify), :meth:`~FakeKubeAPI.delete` — each
bumps the global resourceVersion; :meth:`~FakeKubeAPI.break_watches` (abort every open watch
mid-stream), :meth:`~FakeKubeAPI.error_event` (an ERROR event with any code), :meth:`~FakeKubeAPI.compact` (forget history: older resourceVersions are gone),
:meth:`~FakeKubeAPI.fail` (answer matching requests with 429 + Retry-After, 500, 403, 410...),
``token`` (change it to make the client's token wrong). Every request is recorded in
``calls``.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import json
import re
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import trustme
import yaml
from aiohttp import web

__all__ = ["Call", "FakeKubeAPI", "parse_field_selector", "parse_label_selector"]

KINDS = {"secrets": "Secret", "configmaps": "ConfigMap"}
Obj = dict[str, Any]
Matcher = Callable[[Obj], bool]

_BREAK = object()
_END = object()


@dataclass
class Call:
    """One request as the server saw it."""

    verb: str  # "list" or "watch"
    resource: str
    namespace: str | None
    query: dict[str, str]
    status: int = 200
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Rule:
    status: int
    remaining: int | None  # None: until cleared
    verb: str | None
    resource: str | None
    retry_after: str | None
    with_continue: bool


@dataclass
class _Event:
    rv: int
    type: str
    resource: str
    obj: Obj
    old: Obj | None


@dataclass(eq=False)
class _Watcher:
    resource: str
    namespace: str | None
    match: Matcher
    bookmarks: bool
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


# --- selectors ------------------------------------------------------------------------------

_KEY = r"[A-Za-z0-9]([A-Za-z0-9_.\-/]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([A-Za-z0-9_.\-]*[A-Za-z0-9])?)?"


def _split_top(text: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


LabelPredicate = Callable[[Mapping[str, str]], bool]


def _label_in(key: str, values: set[str], want: bool) -> LabelPredicate:
    return lambda labels: (labels.get(key) in values) is want


def _label_is(key: str, value: str, want: bool) -> LabelPredicate:
    return lambda labels: (labels.get(key) == value) is want


def _label_set(key: str, want: bool) -> LabelPredicate:
    return lambda labels: (key in labels) is want


def parse_label_selector(selector: str) -> LabelPredicate:
    """A Kubernetes label selector → predicate on a label map. ValueError when malformed."""
    reqs: list[LabelPredicate] = []
    for part in _split_top(selector):
        if m := re.fullmatch(rf"({_KEY})\s+(in|notin)\s+\((.*)\)", part):
            key, op = m.group(1), m.group(3)
            values = {v.strip() for v in m.group(4).split(",") if v.strip()}
            if not values or not all(re.fullmatch(_VALUE, v) for v in values):
                raise ValueError(f"unable to parse requirement: {part!r}")
            reqs.append(_label_in(key, values, op == "in"))
        elif m := re.fullmatch(rf"({_KEY})\s*(==|=|!=)\s*({_VALUE})", part):
            key, op, value = m.group(1), m.group(3), m.group(4)
            reqs.append(_label_is(key, value, op != "!="))
        elif m := re.fullmatch(rf"!\s*({_KEY})", part):
            reqs.append(_label_set(m.group(1), False))
        elif m := re.fullmatch(_KEY, part):
            reqs.append(_label_set(part, True))
        else:
            raise ValueError(f"unable to parse requirement: {part!r}")
    return lambda labels: all(r(labels) for r in reqs)


def _field(obj: Obj, name: str) -> str:
    if name == "type":
        return str(obj.get("type", ""))
    return str(obj["metadata"].get(name.split(".", 1)[1], ""))


def _field_is(name: str, value: str, want: bool) -> Matcher:
    return lambda obj: (_field(obj, name) == value) is want


def parse_field_selector(selector: str, resource: str) -> Matcher:
    """The field selectors the API server supports for Secrets and ConfigMaps."""
    fields = {"metadata.name", "metadata.namespace"} | (
        {"type"} if resource == "secrets" else set()
    )
    reqs: list[Matcher] = []
    for part in _split_top(selector):
        m = re.fullmatch(r"([A-Za-z.]+)\s*(==|=|!=)\s*(.*)", part)
        if not m:
            raise ValueError(f"invalid field selector: {part!r}")
        name, op, value = m.group(1), m.group(2), m.group(3)
        if name not in fields:
            raise ValueError(f'field label not supported: "{name}"')

        reqs.append(_field_is(name, value, op != "!="))
    return lambda obj: all(r(obj) for r in reqs)


def _status(code: int, reason: str, message: str, **extra: Any) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": extra.pop("metadata", {}),
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
        **extra,
    }


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    410: "Expired",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


def _b64(value: bytes | str) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


# --- the server -----------------------------------------------------------------------------


class FakeKubeAPI:
    """See the module docstring."""

    def __init__(
        self,
        directory: Path,
        *,
        token: str = "certscope-test-token",
        bookmark_interval: float | None = None,
        gone_as_http: bool = False,
        history: int = 1_000_000,
        ca: trustme.CA | None = None,
    ) -> None:
        self.directory = directory
        self.token = token
        self.client_token = token
        self.bookmark_interval = bookmark_interval
        self.gone_as_http = gone_as_http
        self.history_limit = history
        self.ca = ca or trustme.CA()
        self.calls: list[Call] = []
        self.rv = 1000
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._events: list[_Event] = []
        self._event_rvs: list[int] = []
        self._compacted = 0
        self._snapshots: dict[tuple[int, str], list[Obj]] = {}
        self._continue_floor = 0
        self._watchers: set[_Watcher] = set()
        self._rules: list[_Rule] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.kubeconfig = directory / "kubeconfig"

    # -- lifecycle --

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/api/v1/{resource}", self._handle)
        app.router.add_get("/api/v1/namespaces/{namespace}/{resource}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock, ssl_context=ctx)
        await site.start()
        self.write_kubeconfig(self.kubeconfig)

    async def close(self) -> None:
        for w in list(self._watchers):
            w.queue.put_nowait(_END)
        await asyncio.sleep(0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def write_kubeconfig(self, path: Path, *, server: str | None = None) -> Path:
        """A kubeconfig with contexts ``fake`` (current; the right token) and ``intruder``."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "fake",
                    "cluster": {
                        "server": server or self.url,
                        "certificate-authority-data": _b64(self.ca.cert_pem.bytes()),
                    },
                }
            ],
            "users": [
                {"name": "certscope", "user": {"token": self.client_token}},
                {"name": "intruder", "user": {"token": "not-the-token"}},
            ],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "certscope"}},
                {"name": "intruder", "context": {"cluster": "fake", "user": "intruder"}},
            ],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # -- controls --

    def put_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, bytes | str] | None = None,
        *,
        type: str = "kubernetes.io/tls",  # the API's field name
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        raw_data: Mapping[str, str] | None = None,
    ) -> int:
        """Create or replace a Secret; ``raw_data`` values go out as they are (not base64)."""
        encoded = {k: _b64(v) for k, v in (data or {}).items()}
        encoded.update(raw_data or {})
        return self._put(
            "secrets", namespace, name, {"type": type, "data": encoded}, labels, annotations
        )

    def put_configmap(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str] | None = None,
        *,
        binary_data: Mapping[str, bytes] | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> int:
        body: Obj = {"data": dict(data or {})}
        if binary_data:
            body["binaryData"] = {k: _b64(v) for k, v in binary_data.items()}
        return self._put("configmaps", namespace, name, body, labels, annotations)

    def delete(self, resource: str, namespace: str, name: str) -> int:
        old = self._objects.pop((resource, namespace, name))
        self.rv += 1
        gone = {**old, "metadata": {**old["metadata"], "resourceVersion": str(self.rv)}}
        self._record(_Event(self.rv, "DELETED", resource, gone, old))
        return self.rv

    def bookmark(self) -> None:
        """Send a BOOKMARK at the current resourceVersion to every watch that allows them."""
        for w in self._watchers:
            if w.bookmarks:
                w.queue.put_nowait(("BOOKMARK", self.rv))

    def error_event(self, code: int, message: str = "injected by the test") -> None:
        """Send an ERROR event carrying a ``Status`` with ``code`` on every open watch, then end
        the stream (as the API server does)."""
        for w in self._watchers:
            w.queue.put_nowait(("ERROR", code, message))

    def break_watches(self) -> int:
        """Abort every open watch mid-stream (no clean end of the chunked response)."""
        for w in self._watchers:
            w.queue.put_nowait(_BREAK)
        return len(self._watchers)

    def compact(self) -> None:
        """Forget the history: watches from any resourceVersion before now get 410."""
        self._compacted = self.rv
        self._events.clear()
        self._event_rvs.clear()

    def expire_continue_tokens(self) -> None:
        self._continue_floor = self.rv + 1
        self._snapshots.clear()

    def fail(
        self,
        status: int,
        *,
        times: int | None = 1,
        verb: str | None = None,
        resource: str | None = None,
        retry_after: float | str | None = None,
        with_continue: bool = False,
    ) -> None:
        """Answer the next ``times`` matching requests (None: all, until cleared) with a
        ``Status`` of ``status``. ``with_continue``: only list requests with a continue token."""
        self._rules.append(
            _Rule(
                status,
                times,
                verb,
                resource,
                None if retry_after is None else str(retry_after),
                with_continue,
            )
        )

    def clear_failures(self) -> None:
        self._rules.clear()

    def count(self, verb: str, resource: str | None = None, status: int | None = 200) -> int:
        return sum(
            1
            for c in self.calls
            if c.verb == verb
            and (resource is None or c.resource == resource)
            and (status is None or c.status == status)
        )

    @property
    def open_watches(self) -> int:
        return len(self._watchers)

    async def wait_watches(self, n: int = 1, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self._watchers) < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self._watchers)} watches open, wanted {n}")
            await asyncio.sleep(0.01)

    # -- state --

    def _put(
        self,
        resource: str,
        namespace: str,
        name: str,
        body: Obj,
        labels: Mapping[str, str] | None,
        annotations: Mapping[str, str] | None,
    ) -> int:
        old = self._objects.get((resource, namespace, name))
        self.rv += 1
        meta: Obj = {
            "name": name,
            "namespace": namespace,
            "uid": old["metadata"]["uid"] if old else str(uuid.uuid4()),
            "resourceVersion": str(self.rv),
            "creationTimestamp": old["metadata"]["creationTimestamp"]
            if old
            else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if labels:
            meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = dict(annotations)
        obj = {"metadata": meta, **body}
        self._objects[(resource, namespace, name)] = obj
        self._record(_Event(self.rv, "MODIFIED" if old else "ADDED", resource, obj, old))
        return self.rv

    def _record(self, event: _Event) -> None:
        self._events.append(event)
        self._event_rvs.append(event.rv)
        if len(self._events) > self.history_limit:
            dropped = self._events.pop(0)
            self._event_rvs.pop(0)
            self._compacted = dropped.rv
        for w in self._watchers:
            if w.resource == event.resource:
                w.queue.put_nowait(event)

    # -- HTTP --

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        resource = request.match_info.get("resource", "")
        q = dict(request.query)
        verb = "watch" if q.get("watch", "").lower() in ("true", "1") else "list"
        call = Call(verb, resource, request.match_info.get("namespace"), q)
        self.calls.append(call)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            call.status = 401
            return _json(401, _status(401, "Unauthorized", "Unauthorized"))
        for rule in self._rules:
            if (
                (rule.verb is None or rule.verb == verb)
                and (rule.resource is None or rule.resource == resource)
                and (not rule.with_continue or "continue" in q)
            ):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                call.status = rule.status
                headers = {"Retry-After": rule.retry_after} if rule.retry_after else {}
                return _json(rule.status, _failure_status(rule.status, verb, resource), headers)
        response: web.StreamResponse = await handler(request)
        call.status = response.status
        return response

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        resource = request.match_info["resource"]
        namespace = request.match_info.get("namespace")
        q = request.query
        if resource not in KINDS:
            return _json(
                404, _status(404, "NotFound", "the server could not find the requested resource")
            )
        try:
            label_match = parse_label_selector(q.get("labelSelector", ""))
            field_match = parse_field_selector(q.get("fieldSelector", ""), resource)
        except ValueError as exc:
            return _json(400, _status(400, "BadRequest", str(exc)))

        def match(obj: Obj) -> bool:
            meta = obj["metadata"]
            if namespace is not None and meta["namespace"] != namespace:
                return False
            return label_match(meta.get("labels") or {}) and field_match(obj)

        if q.get("watch", "").lower() in ("true", "1"):
            return await self._watch(request, resource, namespace, match)
        return self._list(resource, match, q)

    def _list(self, resource: str, match: Matcher, q: Mapping[str, str]) -> web.Response:
        limit = int(q.get("limit", "0") or 0)
        token = q.get("continue")
        if token:
            try:
                snap_rv, start = json.loads(base64.urlsafe_b64decode(token))
            except ValueError:
                return _json(400, _status(400, "BadRequest", "continue key is not valid"))
            snapshot = self._snapshots.get((snap_rv, resource))
            if snapshot is None or snap_rv < self._continue_floor or snap_rv < self._compacted:
                return _json(
                    410,
                    _status(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter.",
                    ),
                )
        else:
            snap_rv, start = self.rv, ""
            snapshot = [
                obj for (res, _ns, _n), obj in sorted(self._objects.items()) if res == resource
            ]
            if limit:
                self._snapshots[(snap_rv, resource)] = snapshot
                while len(self._snapshots) > 16:
                    self._snapshots.pop(next(iter(self._snapshots)))
        keys = [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in snapshot]
        begin = bisect.bisect_right(keys, start) if start else 0
        items: list[Obj] = []
        i = begin
        while i < len(snapshot) and (not limit or len(items) < limit):
            if match(snapshot[i]):
                items.append(snapshot[i])
            i += 1
        remaining = sum(1 for o in snapshot[i:] if match(o))
        meta: Obj = {"resourceVersion": str(snap_rv)}
        if remaining:
            meta["continue"] = base64.urlsafe_b64encode(
                json.dumps([snap_rv, keys[i - 1]]).encode()
            ).decode()
            meta["remainingItemCount"] = remaining
        body = {
            "kind": KINDS[resource] + "List",
            "apiVersion": "v1",
            "metadata": meta,
            "items": items,
        }
        return _json(200, body)

    async def _watch(
        self, request: web.Request, resource: str, namespace: str | None, match: Matcher
    ) -> web.StreamResponse:
        q = request.query
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else None
        bookmarks = q.get("allowWatchBookmarks", "").lower() in ("true", "1")
        replay = self._replay(resource, q.get("resourceVersion", ""), match)
        if isinstance(replay, web.Response):
            return replay
        initial, gone = replay
        # Registered before the first await: no event can fall between replay and live.
        watcher = _Watcher(resource, namespace, match, bookmarks)
        if gone is None:
            self._watchers.add(watcher)
        resp = web.StreamResponse(
            status=200,
            headers={"Content-Type": "application/json", "Cache-Control": "no-cache, private"},
        )
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            if gone is not None:
                await resp.write(_line("ERROR", _status(410, "Expired", gone), None))
                await resp.write_eof()
                return resp
            for typ, obj in initial:
                await resp.write(_line(typ, obj, KINDS[resource]))
            if await self._stream(request, resp, watcher, KINDS[resource], timeout):
                await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.discard(watcher)
        return resp

    def _replay(
        self, resource: str, rv_param: str, match: Matcher
    ) -> tuple[list[tuple[str, Obj]], str | None] | web.Response:
        """What a watch starts with: every object (no resource version) or the events since the
        version, and the "too old" message when history before it was compacted (a 410 inside
        the stream, or as the HTTP status with ``gone_as_http``); a 400 for a bad version."""
        if rv_param in ("", "0"):
            objs = sorted(self._objects.items())
            return [("ADDED", o) for (res, _, _), o in objs if res == resource and match(o)], None
        try:
            since = int(rv_param)
        except ValueError:
            return _json(400, _status(400, "BadRequest", f"invalid resource version {rv_param!r}"))
        if since < self._compacted:
            message = f"too old resource version: {since} ({self._compacted + 1})"
            if self.gone_as_http:
                return _json(410, _status(410, "Expired", message))
            return [], message
        start = bisect.bisect_right(self._event_rvs, since)
        events = (_transform(ev, match) for ev in self._events[start:] if ev.resource == resource)
        return [out for out in events if out is not None], None

    async def _stream(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        watcher: _Watcher,
        kind: str,
        timeout: float | None,
    ) -> bool:
        """Live events until the timeout, the end or an error; bookmarks when quiet. False when
        the connection was cut on purpose (``break_watches``): nothing more may be written."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = None if deadline is None else deadline - time.monotonic()
            if self.bookmark_interval is not None and watcher.bookmarks:
                wait = self.bookmark_interval if wait is None else min(wait, self.bookmark_interval)
            if wait is not None and wait <= 0:
                return True
            try:
                item = await asyncio.wait_for(watcher.queue.get(), wait)
            except TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    return True
                if watcher.queue.empty():  # quiet: everything up to now was delivered
                    await resp.write(_bookmark(kind, self.rv))
                continue
            if item is _END:
                return True
            if item is _BREAK:
                assert request.transport is not None
                request.transport.abort()
                return False
            if isinstance(item, tuple) and item[0] == "ERROR":
                reason = _REASONS.get(item[1], "InternalError")
                await resp.write(_line("ERROR", _status(item[1], reason, item[2]), None))
                return True
            if isinstance(item, tuple):
                await resp.write(_bookmark(kind, item[1]))
                continue
            out = _transform(item, watcher.match)
            if out is not None:
                await resp.write(_line(out[0], out[1], kind))


def _transform(ev: _Event, match: Matcher) -> tuple[str, Obj] | None:
    """What one watcher sees of an event: selector entries and exits become ADDED/DELETED."""
    now = match(ev.obj)
    before = ev.old is not None and match(ev.old)
    if ev.type == "DELETED":
        return ("DELETED", ev.obj) if before else None
    if ev.type == "ADDED":
        return ("ADDED", ev.obj) if now else None
    if now and before:
        return "MODIFIED", ev.obj
    if now:
        return "ADDED", ev.obj
    if before:
        return "DELETED", ev.obj
    return None


def _line(typ: str, obj: Obj, kind: str | None) -> bytes:
    body = obj if kind is None else {"kind": kind, "apiVersion": "v1", **obj}
    return json.dumps({"type": typ, "object": body}).encode() + b"\n"


def _bookmark(kind: str, rv: int) -> bytes:
    obj = {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)}}
    return json.dumps({"type": "BOOKMARK", "object": obj}).encode() + b"\n"


def _failure_status(status: int, verb: str, resource: str) -> Obj:
    reason = _REASONS.get(status, "InternalError")
    if status == 403:
        message = (
            f'{resource} is forbidden: User "system:serviceaccount:monitoring:certscope" '
            f'cannot {verb} resource "{resource}" in API group "" at the cluster scope'
        )
    elif status == 429:
        message = "Too many requests, please try again later."
    elif status == 410:
        message = "The provided continue parameter is too old to display a consistent list result."
    else:
        message = f"{reason}: injected by the test"
    return _status(status, reason, message)


def _json(status: int, body: Obj, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=dict(headers or {}),
    )
