"""Certificates in Kubernetes Secrets and ConfigMaps: list once, then watch.

What is read
    Secrets whose ``type`` is in ``secret_types`` (default ``kubernetes.io/tls``), plus
    ``Opaque`` Secrets when ``opaque_keys`` is set. ``kubernetes.io/tls`` Secrets: keys
    ``tls.crt`` and ``ca.crt``. Other selected types (``Opaque``, custom types): keys matching
    an ``opaque_keys`` glob (``tls.crt`` and ``ca.crt`` when ``opaque_keys`` is empty).
    ConfigMaps (``configmaps: true``): keys in ``data`` and ``binaryData`` matching
    ``configmap_keys``. ``tls.key`` and every ``*.key`` of a selected Secret are never read as
    certificates, whatever the globs: they become private-key records (type, size, public key
    hash; the key itself is dropped at once). A ``kubernetes.io/tls`` Secret without
    ``tls.crt`` or ``tls.key`` is a ``missing_key`` item error.
    Values are PEM bundles (every CERTIFICATE block, other blocks skipped) or one DER
    certificate. A named key (``tls.crt``, a glob without wildcards) that holds no certificate is
    an item error; a key matched only by a wildcard glob is skipped silently (a glob is a guess).

Locations
    ``<namespace>/<name>#<key>`` for a Secret, ``configmap:<namespace>/<name>#<key>`` for a
    ConfigMap; ``position`` is the index of the certificate in the key's PEM bundle.

How
    Auth and transport are kubernetes_asyncio's: the in-cluster service account when
    ``kubeconfig`` is unset and ``KUBERNETES_SERVICE_HOST`` is set, else the kubeconfig file
    (``kubeconfig``, default ``$KUBECONFIG`` or ``~/.kube/config``; ``context``). One stream per
    resource and scope: cluster-wide, or one per namespace in ``namespaces``. Each stream lists
    in pages of 500 (``limit`` + ``continue``), then watches from the list's resourceVersion
    with bookmarks, resuming from the last seen resourceVersion when a stream breaks and
    re-listing only on 410 Gone (HTTP status or ERROR event) and every ``interval``.
    Responses are read raw (``_preload_content=False``) and only what is needed is pulled out
    of the JSON: no model objects, and kubernetes_asyncio never holds or debug-logs a body
    full of private keys. Per object only the parsed result stays in memory (its
    resourceVersion, :class:`~certscope.results.StoredCert` records and item errors); a
    re-list skips objects whose resourceVersion is unchanged.

Filters
    ``label_selector`` (Secrets) and ``configmap_label_selector`` (ConfigMaps) go to the server;
    so do ``type=<t>`` when exactly one Secret type is read and ``metadata.namespace!=<ns>``
    for ``exclude_namespaces`` on cluster-wide streams. Everything is checked again here.

Labels (per certificate, :attr:`~certscope.results.StoredCert.labels`)
    cert-manager annotations give ``renewal="cert-manager"``,
    ``certmanager_issuer="<issuer-kind>/<issuer-name>"`` and
    ``certmanager_certificate="<namespace>/<certificate-name>"``; ``labels_from_annotations`` and
    ``labels_from_labels`` map metric labels to annotation / object-label values (they win over
    the cert-manager ones). Absent keys give no label.

Publishing
    ``watch`` publishes the full result as soon as every stream has listed once, then on change
    with a leading-edge debounce (at most one publish per 0.5 s), and after every re-list.
    A failure is published at least once even if it heals within the debounce window.

Errors (internal; none escapes ``refresh`` or ``watch``)::

    _ApiError(reason, message, retry_after)   a request failed; ``reason`` is the label value:
    │                                         unreachable, timeout, unauthorized, forbidden,
    │                                         throttled, http_error, config_error, internal_error
    └── _Gone                                 410: resourceVersion or continue token expired
                                              (re-list; reported as http_error only when
                                              a fresh list is refused with 410)
    _BrokenStream                             an open watch ended uncleanly: resume, no re-list

A failing stream makes the published result ``up=False`` with the reason, keeping the last
good certificates. A namespace the exporter may not read (403 on a namespaced stream) is the
exception: it is an item error at ``<namespace>/*`` (``configmap:<namespace>/*``) with reason
``forbidden`` and the source stays up with the other namespaces, unless every stream is
forbidden (a forbidden cluster-wide stream fails the source as any other failure does); the stream retries with jittered exponential backoff (at least
``Retry-After`` when the server sends one). List pages and watch requests share a client-side
token bucket (``qps``, ``burst``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email.utils
import fnmatch
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, TypeVar

import aiohttp

from .. import __version__
from ..certs import facts_from_der, iter_pem_blocks
from ..config import KubernetesSource
from ..errors import ItemFailure, SourceFailure
from ..results import ItemError, Labels, SourceResult, StoredCert, StoredKey
from ..sharding import owns
from . import keys as keyrec
from .base import Publish, failed, succeeded
from .formats import keys_in
from .keys import link

log = logging.getLogger(__name__)

TLS_TYPE = "kubernetes.io/tls"
OPAQUE_TYPE = "Opaque"
TLS_KEYS = ("tls.crt", "ca.crt")
#: Private keys by convention: never read as certificates, even when a glob matches them.
NEVER_READ = ("tls.key", "*.key")
PAGE_SIZE = 500
DEBOUNCE = 0.5
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

ObjKey = tuple[str, str]  # (namespace, name)
_H = TypeVar("_H", bound=Hashable)


class _ApiError(Exception):
    def __init__(
        self, reason: SourceFailure, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message[:300]
        self.retry_after = retry_after


class _Gone(_ApiError):
    def __init__(self, message: str) -> None:
        # Reported (as http_error) only when a re-list itself is refused with 410.
        super().__init__(SourceFailure.HTTP_ERROR, message)


class _BrokenStream(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Entry:
    """What is kept of one object: never the object or its data."""

    resource_version: str
    certs: tuple[StoredCert, ...]
    errors: tuple[ItemError, ...]
    keys: tuple[StoredKey, ...] = ()  # public facts of the private keys (never the keys)


@dataclass(frozen=True)
class _Stream:
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
class _ListState:
    """A paginated list in progress; kept across retries so a failed page resumes."""

    entries: dict[ObjKey, _Entry] = field(default_factory=dict)
    cont: str = ""
    resource_version: str = ""
    started: float = field(default_factory=time.perf_counter)


@dataclass
class _Cursor:
    resource_version: str
    events: int = 0


class TokenBucket:
    """Client-side rate limit: ``qps`` requests per second with bursts of ``burst``.

    A caller reserves a token and sleeps until it is due, so concurrent callers queue fairly
    (tokens may go negative: that is the queue).
    """

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.qps = qps
        self.burst = float(max(1, burst))
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()

    def reserve(self) -> float:
        """Take a token; return how long to wait before using it."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    async def acquire(self) -> None:
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)


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


def _status_error(status: int, body: bytes, retry_after: str | None) -> _ApiError:
    """An error from an HTTP status and, when the body is a Kubernetes Status, its message."""
    message = ""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        doc = json.loads(body)
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            message = doc["message"]
    text = f"HTTP {status}" + (f": {message}" if message else "")
    after = parse_retry_after(retry_after)
    if status == 410:
        return _Gone(text)
    reason = _STATUS_REASONS.get(status, SourceFailure.HTTP_ERROR)
    return _ApiError(reason, text, after)


def _has_magic(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


@dataclass(frozen=True)
class _KeySpec:
    named: frozenset[str]
    globs: tuple[str, ...]

    @classmethod
    def of(cls, patterns: Iterable[str]) -> _KeySpec:
        pats = tuple(patterns)
        return cls(frozenset(p for p in pats if not _has_magic(p)), tuple(filter(_has_magic, pats)))

    def select(self, key: str) -> bool | None:
        """True: a named key; False: matched by a wildcard glob; None: not read."""
        if any(fnmatch.fnmatchcase(key, p) for p in NEVER_READ):
            return None
        if key in self.named:
            return True
        if any(fnmatch.fnmatchcase(key, g) for g in self.globs):
            return False
        return None


class _Extractor:
    """Object JSON → :class:`_Entry`. Pure apart from the label interning table."""

    def __init__(self, source: KubernetesSource) -> None:
        self.source = source
        self.types = frozenset(source.secret_types)
        self.tls_spec = _KeySpec.of(TLS_KEYS)
        self.other_spec = _KeySpec.of(source.opaque_keys or TLS_KEYS)
        self.configmap_spec = _KeySpec.of(source.configmap_keys)
        self.excluded = frozenset(source.exclude_namespaces)
        self.included = frozenset(source.namespaces)
        # Thousands of Secrets share a few label pairs (same issuer, same team) and often
        # whole label sets. Both tables are bounded and simply start over when full, so they
        # never pin more than a few thousand stale tuples.
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}
        self._sets: dict[Labels, Labels] = {}

    def wanted_namespace(self, namespace: str) -> bool:
        if namespace in self.excluded:
            return False
        return not self.included or namespace in self.included

    def secret_spec(self, secret_type: str) -> _KeySpec | None:
        if secret_type == TLS_TYPE:
            return self.tls_spec if TLS_TYPE in self.types else None
        if secret_type in self.types or (secret_type == OPAQUE_TYPE and self.source.opaque_keys):
            return self.other_spec
        return None

    def labels(self, namespace: str, meta: Mapping[str, Any]) -> Labels:
        annotations = meta.get("annotations")
        obj_labels = meta.get("labels")
        ann = annotations if isinstance(annotations, dict) else {}
        lab = obj_labels if isinstance(obj_labels, dict) else {}
        out: dict[str, str] = {}
        issuer = ann.get("cert-manager.io/issuer-name")
        certificate = ann.get("cert-manager.io/certificate-name")
        if isinstance(issuer, str) or isinstance(certificate, str):
            out["renewal"] = "cert-manager"
        if isinstance(issuer, str) and issuer:
            kind = ann.get("cert-manager.io/issuer-kind")
            out["certmanager_issuer"] = (
                f"{kind if isinstance(kind, str) and kind else 'Issuer'}/{issuer}"
            )
        if isinstance(certificate, str) and certificate:
            out["certmanager_certificate"] = f"{namespace}/{certificate}"
        # Configured mappings come last: an explicit choice wins over the built-in ones.
        for label, key in self.source.labels_from_annotations:
            value = ann.get(key)
            if isinstance(value, str):
                out[label] = value
        for label, key in self.source.labels_from_labels:
            value = lab.get(key)
            if isinstance(value, str):
                out[label] = value
        result = tuple(_intern(self._pairs, pair) for pair in sorted(out.items()))
        return _intern(self._sets, result)

    def extract(
        self, resource: str, obj: object, old: Mapping[ObjKey, _Entry] | None = None
    ) -> tuple[ObjKey, _Entry | None] | None:
        """``(key, entry)`` for one object; entry None when nothing in it is of interest."""
        if not isinstance(obj, dict):
            return None
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return None
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        if not isinstance(namespace, str) or not isinstance(name, str) or not name:
            return None
        key = (namespace, name)
        if not self.wanted_namespace(namespace):
            return key, None
        if not owns(f"{namespace}/{name}", self.source.shard):
            return key, None  # another replica's share of the cluster (--shard)
        rv = str(meta.get("resourceVersion") or "")
        if old is not None and rv:
            previous = old.get(key)
            if previous is not None and previous.resource_version == rv:
                return key, previous  # unchanged since it was parsed: skip the decoding
        if resource == "secrets":
            entry = self._secret(namespace, name, rv, meta, obj)
        else:
            entry = self._configmap(namespace, name, rv, meta, obj)
        return key, entry

    def _secret(
        self, namespace: str, name: str, rv: str, meta: Mapping[str, Any], obj: Mapping[str, Any]
    ) -> _Entry | None:
        secret_type = obj.get("type") or OPAQUE_TYPE
        spec = self.secret_spec(secret_type if isinstance(secret_type, str) else "")
        if spec is None:
            return None
        base = f"{namespace}/{name}"
        data = obj.get("data") or {}
        if not isinstance(data, dict):
            return _Entry(
                rv, (), (ItemError(base, ItemFailure.CORRUPT_DATA, "data is not a mapping"),)
            )
        labels = self.labels(namespace, meta)
        certs: list[StoredCert] = []
        errors: list[ItemError] = []
        for k in sorted(data):
            named = spec.select(k)
            if named is None:
                continue
            location = f"{base}#{k}"
            raw = _decoded(location, data[k], errors)
            if raw is None:
                continue
            _parse_value(location, raw, named, labels, certs, errors)
        keys = _secret_keys(base, data, labels, errors, certs)
        if secret_type == TLS_TYPE:
            for required in ("tls.crt", "tls.key"):
                if required not in data:
                    message = f"the {TLS_TYPE} Secret has no {required}"
                    errors.append(ItemError(f"{base}#{required}", ItemFailure.MISSING_KEY, message))
        if certs or errors or keys:
            return _Entry(rv, tuple(certs), tuple(errors), keys)
        return None

    def _configmap(
        self, namespace: str, name: str, rv: str, meta: Mapping[str, Any], obj: Mapping[str, Any]
    ) -> _Entry | None:
        base = f"configmap:{namespace}/{name}"
        labels: Labels | None = None
        certs: list[StoredCert] = []
        errors: list[ItemError] = []
        for field_name in ("data", "binaryData"):
            data = obj.get(field_name) or {}
            if not isinstance(data, dict):
                errors.append(
                    ItemError(base, ItemFailure.CORRUPT_DATA, f"{field_name} is not a mapping")
                )
                continue
            for k in sorted(data):
                named = self.configmap_spec.select(k)
                if named is None:
                    continue
                location = f"{base}#{k}"
                value = data[k]
                if field_name == "binaryData":
                    raw = _b64(value)
                elif isinstance(value, str):
                    raw = value.encode("utf-8", "surrogateescape")
                else:
                    raw = None
                if raw is None:
                    errors.append(
                        ItemError(location, ItemFailure.CORRUPT_DATA, "value is not valid data")
                    )
                    continue
                if labels is None:
                    labels = self.labels(namespace, meta)
                _parse_value(location, raw, named, labels, certs, errors)
        return _Entry(rv, tuple(certs), tuple(errors)) if certs or errors else None

    def parse_page(
        self, resource: str, body: bytes, old: Mapping[ObjKey, _Entry]
    ) -> tuple[dict[ObjKey, _Entry], str, str]:
        """One list page → (entries, list resourceVersion, continue token). Runs in a thread."""
        try:
            doc = json.loads(body)
        except ValueError:
            raise _ApiError(SourceFailure.HTTP_ERROR, "list response is not JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
            raise _ApiError(SourceFailure.HTTP_ERROR, "list response has no items")
        meta = doc.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        out: dict[ObjKey, _Entry] = {}
        for item in doc["items"]:
            found = self.extract(resource, item, old)
            if found is not None and found[1] is not None:
                out[found[0]] = found[1]
        return out, str(meta.get("resourceVersion") or ""), str(meta.get("continue") or "")


INTERN_LIMIT = 4096


def _intern(table: dict[_H, _H], value: _H) -> _H:
    """The table's equal value, or ``value`` itself (added; the table is emptied when full)."""
    got = table.get(value)
    if got is None:
        if len(table) >= INTERN_LIMIT:
            table.clear()
        table[value] = got = value
    return got


def _b64(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _decoded(location: str, value: object, errors: list[ItemError]) -> bytes | None:
    """A Secret value's bytes, or None and a ``corrupt_data`` error."""
    raw = _b64(value)
    if raw is None:
        errors.append(ItemError(location, ItemFailure.CORRUPT_DATA, "value is not valid base64"))
    return raw


def _secret_keys(
    base: str,
    data: Mapping[str, Any],
    labels: Labels,
    errors: list[ItemError],
    certs: list[StoredCert],
) -> tuple[StoredKey, ...]:
    """Records of the private keys of a selected Secret (``tls.key``, ``*.key``): decoded only
    to learn the public key, never kept. A key is linked to its own Secret's certificate here,
    once, so that publishing does not rebuild 10,000 records each time."""
    records: list[StoredKey] = []
    for k in sorted(data):
        if not any(fnmatch.fnmatchcase(k, p) for p in NEVER_READ):
            continue
        location = f"{base}#{k}"
        raw = _decoded(location, data[k], errors)
        if raw is None:
            continue
        if not raw.strip():
            continue  # an empty placeholder (cert-manager before issuance): no key to report
        found, corrupt = keys_in(location, raw)
        del raw
        if corrupt:
            errors.append(
                ItemError(location, ItemFailure.CORRUPT_KEY, "not a readable private key")
            )
        if found:
            own = {c.facts.public_key_sha256: c.location for c in reversed(certs)}
            records.extend(_with_secret_facts(r, labels, own) for r in found)
    return tuple(records)


def _with_secret_facts(record: StoredKey, labels: Labels, own: Mapping[str, str]) -> StoredKey:
    """The key with the Secret's labels and its certificate in the same Secret, if any."""
    holder = own.get(record.public_key_sha256, "") if record.public_key_sha256 else ""
    encrypted = keyrec.attribute(record, "encrypted") == "true"
    return StoredKey(
        kind=record.kind,
        location=record.location,
        algorithm=record.algorithm,
        bits=record.bits,
        public_key_sha256=record.public_key_sha256,
        attributes=keyrec.attributes(encrypted, "pem", holder),
        labels=labels,
    )


def _parse_value(
    location: str,
    raw: bytes,
    named: bool,
    labels: Labels,
    certs: list[StoredCert],
    errors: list[ItemError],
) -> None:
    """Certificates in one key's bytes; problems become item errors (never with content)."""
    if b"-----BEGIN" in raw:
        found = False
        for pos, der, problem in iter_pem_blocks(raw):
            found = True
            if der is None:
                errors.append(
                    ItemError(location, ItemFailure.CORRUPT_PEM, f"certificate {pos}: {problem}")
                )
                continue
            facts = facts_from_der(der)
            if facts.parse_errors and not facts.subject and not facts.not_after:
                errors.append(
                    ItemError(
                        location,
                        ItemFailure.UNPARSEABLE,
                        f"certificate {pos}: {facts.parse_errors[0]}",
                    )
                )
                continue
            certs.append(StoredCert(location, pos, facts, labels))
        if not found and named:
            errors.append(
                ItemError(location, ItemFailure.NO_CERTIFICATE, "no PEM certificate in value")
            )
        return
    if raw[:1] == b"\x30":
        facts = facts_from_der(raw)
        if facts.subject or facts.not_after:
            certs.append(StoredCert(location, 0, facts, labels))
        elif named:
            errors.append(
                ItemError(
                    location, ItemFailure.UNPARSEABLE, (facts.parse_errors or ("not DER",))[0]
                )
            )
        return
    if named:
        if raw.strip():
            errors.append(
                ItemError(location, ItemFailure.UNKNOWN_FORMAT, "not a PEM or DER certificate")
            )
        else:
            errors.append(ItemError(location, ItemFailure.NO_CERTIFICATE, "value is empty"))


def _api_types() -> tuple[Any, Any]:
    # Imported on first use: kubernetes_asyncio costs ~40 MB of model classes, and a
    # configuration without a kubernetes source should not pay for it.
    from kubernetes_asyncio.client import ApiClient, CoreV1Api

    return ApiClient, CoreV1Api


class KubernetesReader:
    """Reads one ``kind: kubernetes`` source; see the module docstring."""

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
        self._page_size = page_size
        self._extract = _Extractor(source)
        self._streams = _streams(source)
        self._by_key = {s.key: s for s in self._streams}
        self._limiter = TokenBucket(source.qps, source.burst)
        self._stores: dict[str, dict[ObjKey, _Entry]] = {}
        self._synced: set[str] = set()
        self._failures: dict[str, _ApiError] = {}
        # A failure that healed before it was published is still published once, so that a
        # blip shorter than the debounce is counted rather than lost.
        self._unpublished: _ApiError | None = None
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
        except Exception as exc:
            raise _ApiError(SourceFailure.CONFIG_ERROR, f"{type(exc).__name__}: {exc}") from None

    async def _client(self) -> Any:
        from kubernetes_asyncio.client import Configuration

        configuration = Configuration()
        await self._load_config(configuration)
        api_client_cls, _ = _api_types()
        client = api_client_cls(configuration=configuration)
        client.user_agent = f"certscope/{__version__}"
        return client

    def _method(self, client: Any, stream: _Stream) -> Callable[..., Awaitable[Any]]:
        _, core_cls = _api_types()
        core = core_cls(client)
        ns = stream.namespace
        if stream.resource == "secrets":
            if ns is None:
                return core.list_secret_for_all_namespaces  # type: ignore[no-any-return]
            return lambda **kw: core.list_namespaced_secret(ns, **kw)
        if ns is None:
            return core.list_config_map_for_all_namespaces  # type: ignore[no-any-return]
        return lambda **kw: core.list_namespaced_config_map(ns, **kw)

    async def _call(
        self, client: Any, stream: _Stream, deadline: aiohttp.ClientTimeout, **params: Any
    ) -> aiohttp.ClientResponse:
        """One rate-limited request; a response that is not 200 becomes an :class:`_ApiError`."""
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
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise _ApiError(
                SourceFailure.TIMEOUT, f"{stream.describe()}: request timed out"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _ApiError(
                SourceFailure.UNREACHABLE, f"{stream.describe()}: {_describe(exc)}"
            ) from None
        finally:
            client.last_response = None  # do not keep the last response alive
        if resp.status != 200:
            try:
                body = await resp.content.read(MAX_ERROR_BODY)
            except (aiohttp.ClientError, OSError, TimeoutError):
                body = b""
            finally:
                resp.release()
            err = _status_error(resp.status, body, resp.headers.get("Retry-After"))
            err.message = f"{stream.describe()}: {err.message}"
            raise err
        return resp

    # -- list ------------------------------------------------------------------------------

    async def _list(
        self, client: Any, stream: _Stream, state: _ListState, old: Mapping[ObjKey, _Entry]
    ) -> None:
        """Fetch the remaining pages of ``state`` (resumable after an error)."""
        timeout = aiohttp.ClientTimeout(total=LIST_TIMEOUT, sock_connect=CONNECT_TIMEOUT)
        while True:
            params: dict[str, Any] = {"limit": self._page_size}
            if state.cont:
                params["_continue"] = state.cont
            resp = await self._call(client, stream, timeout, **params)
            try:
                body = await resp.read()
            except (TimeoutError, aiohttp.ServerTimeoutError):
                raise _ApiError(
                    SourceFailure.TIMEOUT, f"{stream.describe()}: list timed out"
                ) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise _ApiError(
                    SourceFailure.UNREACHABLE, f"{stream.describe()}: {_describe(exc)}"
                ) from None
            finally:
                resp.release()
            # JSON decoding and certificate parsing of 500 objects take a while: a worker
            # thread keeps the event loop (and scrapes) responsive meanwhile.
            entries, rv, cont = await asyncio.to_thread(
                self._extract.parse_page, stream.resource, body, old
            )
            del body
            state.entries.update(entries)
            if not state.resource_version or not state.cont:
                state.resource_version = rv
            state.cont = cont
            if not cont:
                return

    async def _list_fresh(
        self, client: Any, stream: _Stream, state: _ListState, old: Mapping[ObjKey, _Entry]
    ) -> _ListState:
        """:meth:`_list`, restarting once from scratch when a continue token has expired."""
        try:
            await self._list(client, stream, state, old)
        except _Gone:
            if not state.cont:
                raise
            log.info("%s: continue token expired, listing again", stream.describe())
            state = _ListState()
            await self._list(client, stream, state, old)
        return state

    # -- refresh ---------------------------------------------------------------------------

    async def refresh(self, previous: SourceResult | None) -> SourceResult:
        """One full list of every stream (``certscope inventory``, and a fallback)."""
        started = time.perf_counter()
        try:
            client = await self._client()
        except _ApiError as exc:
            return self._failed(previous, exc, started)
        try:
            stores: dict[str, dict[ObjKey, _Entry]] = {}
            denied: list[ItemError] = []
            for stream in self._streams:
                # Objects the watch already parsed (same resourceVersion) are reused as they
                # are; nothing else is kept between refreshes.
                old = self._stores.get(stream.key, {})
                try:
                    state = await self._list_fresh(client, stream, _ListState(), old)
                except _ApiError as exc:
                    if not _confined(stream, exc) or len(denied) + 1 == len(self._streams):
                        raise
                    log.warning("kubernetes source %s: %s (%s)", self.name, exc.message, exc.reason)
                    denied.append(_stream_error(stream, exc))
                    continue
                stores[stream.key] = state.entries
        except asyncio.CancelledError:
            raise
        except _ApiError as exc:
            return self._failed(previous, exc, started)
        except Exception as exc:  # never raise out of a reader
            log.exception("kubernetes source %s: refresh failed", self.name)
            return self._failed(
                previous, _ApiError(SourceFailure.INTERNAL, f"{type(exc).__name__}"), started
            )
        finally:
            await client.close()
        certs, errors, keys = _flatten(stores)
        return succeeded(self, self.source.labels, started, certs, errors + tuple(denied), keys)

    def _failed(
        self, previous: SourceResult | None, exc: _ApiError, started: float
    ) -> SourceResult:
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
            except _ApiError as exc:
                self._fail("client", exc)
                await asyncio.sleep(backoff.next())
                continue
            self._ok("client")
            return client

    async def _run_stream(self, client: Any, stream: _Stream) -> None:
        backoff = Backoff(*self._backoff)
        state: _ListState | None = _ListState()
        cursor = _Cursor("")
        relist_at = 0.0
        while True:
            try:
                if state is not None:
                    # The previous store is passed, not kept in a local: a local would hold a
                    # second full inventory alive for as long as this watch runs.
                    state = await self._list_fresh(
                        client, stream, state, self._stores.get(stream.key, {})
                    )
                    self._stores[stream.key] = state.entries  # replaces: vanished objects go
                    self._list_duration = time.perf_counter() - state.started
                    cursor = _Cursor(state.resource_version)
                    state = None
                    relist_at = time.monotonic() + self.source.interval
                    self._synced.add(stream.key)
                    self._ok(stream.key)
                    backoff.reset()
                    self._mark_dirty()  # also after an unchanged re-list: a fresh timestamp
                began, seen = time.monotonic(), cursor.events
                await self._watch_once(client, stream, cursor, relist_at)
                if cursor.events == seen and time.monotonic() - began < 0.5:
                    # Ended at once with nothing in it: a sick server or proxy. Do not spin.
                    await asyncio.sleep(backoff.next())
                else:
                    backoff.reset()
                if time.monotonic() >= relist_at:
                    state = _ListState()
            except _Gone as exc:
                if state is not None:  # the list itself was refused (not a continue token)
                    self._fail(stream.key, exc)
                    state = _ListState()
                    await asyncio.sleep(backoff.next())
                else:
                    log.info("%s: %s; listing again", stream.describe(), exc.message)
                    state = _ListState()
            except _BrokenStream as exc:
                log.debug("%s: watch broken (%s); resuming", stream.describe(), exc)
                if cursor.events:
                    backoff.reset()
                cursor.events = 0
                await asyncio.sleep(backoff.next())
            except _ApiError as exc:
                self._fail(stream.key, exc)
                if exc.reason is SourceFailure.UNAUTHORIZED:
                    # A rotated token or an expired exec-plugin credential: load it again.
                    with contextlib.suppress(_ApiError):
                        await self._load_config(client.configuration)
                await asyncio.sleep(backoff.next(exc.retry_after))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not end the watch; say so and retry
                log.exception("%s: unexpected error", stream.describe())
                self._fail(stream.key, _ApiError(SourceFailure.INTERNAL, type(exc).__name__))
                await asyncio.sleep(backoff.next())

    async def _watch_once(
        self, client: Any, stream: _Stream, cursor: _Cursor, relist_at: float
    ) -> None:
        """One watch request, applying events until the server ends it (cleanly)."""
        seconds = random.randint(*WATCH_SECONDS)  # spreading reconnects, not security
        seconds = max(1, min(seconds, int(relist_at - time.monotonic()) + 1))
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT, sock_read=seconds + WATCH_GRACE
        )
        resp = await self._call(
            client,
            stream,
            timeout,
            watch=True,
            resource_version=cursor.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=seconds,
        )
        self._ok(stream.key)
        finished = False
        try:
            while True:
                try:
                    line = await resp.content.readline()
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                    raise _BrokenStream(_describe(exc)) from None
                if not line:
                    finished = True
                    return
                if line.strip():
                    self._apply(stream, cursor, line)
        finally:
            if finished:
                resp.release()
            else:
                resp.close()

    def _apply(self, stream: _Stream, cursor: _Cursor, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            raise _BrokenStream("watch event is not JSON") from None
        obj = event.get("object") if isinstance(event, dict) else None
        if not isinstance(obj, dict):
            raise _BrokenStream("watch event without an object")
        kind = event.get("type")
        if kind == "ERROR":
            code = obj.get("code")
            message = obj.get("message") if isinstance(obj.get("message"), str) else ""
            if code == 410:
                raise _Gone(f"watch: {message or 'resource version too old'}")
            body = json.dumps({"message": message}).encode()
            err = _status_error(code if isinstance(code, int) else 500, body, None)
            err.message = f"{stream.describe()}: watch error: {err.message}"
            raise err
        meta = obj.get("metadata")
        rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
        if kind == "BOOKMARK":
            if isinstance(rv, str) and rv:
                cursor.resource_version = rv
            return
        store = self._stores.setdefault(stream.key, {})
        if kind in ("ADDED", "MODIFIED"):
            found = self._extract.extract(stream.resource, obj)
            if found is not None:
                key, entry = found
                if entry is not None:
                    store[key] = entry
                    self._mark_dirty()
                elif store.pop(key, None) is not None:
                    self._mark_dirty()
        elif kind == "DELETED":
            ns = meta.get("namespace") if isinstance(meta, dict) else None
            name = meta.get("name") if isinstance(meta, dict) else None
            if store.pop((ns or "", name or ""), None) is not None:
                self._mark_dirty()
        else:
            log.debug("%s: ignoring watch event type %r", stream.describe(), kind)
        if isinstance(rv, str) and rv:
            cursor.resource_version = rv
        cursor.events += 1

    # -- state and publishing --------------------------------------------------------------

    def _mark_dirty(self) -> None:
        if self._dirty is not None:
            self._dirty.set()

    def _fail(self, key: str, exc: _ApiError) -> None:
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

    def _source_failure(self) -> _ApiError | None:
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


def _confined(stream: _Stream, exc: _ApiError) -> bool:
    """RBAC denies this one namespace: the other namespaces are still read."""
    return exc.reason is SourceFailure.FORBIDDEN and stream.namespace is not None


def _stream_error(stream: _Stream, exc: _ApiError) -> ItemError:
    prefix = "" if stream.resource == "secrets" else "configmap:"
    return ItemError(f"{prefix}{stream.namespace}/*", exc.reason, exc.message)


def _flatten(
    stores: Mapping[str, Mapping[ObjKey, _Entry]],
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


def _streams(source: KubernetesSource) -> tuple[_Stream, ...]:
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
    out = [_Stream("secrets", ns, source.label_selector, ",".join(secret_fields)) for ns in scopes]
    if source.configmaps:
        out.extend(
            _Stream("configmaps", ns, source.configmap_label_selector, ",".join(fields))
            for ns in scopes
        )
    return tuple(out)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


__all__ = ["Backoff", "KubernetesReader", "TokenBucket", "parse_retry_after"]
