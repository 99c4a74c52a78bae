"""Certificates in HashiCorp Vault and OpenBao: KV version 2 secrets and PKI mounts.

Both servers speak the same HTTP API, spoken here with aiohttp: a dozen endpoints do not need
a client library, and one fewer library holding the token is one fewer place it can leak.

Locations (the ``location`` label; ``chain_position`` is the position within it):

* KV v2: ``<mount>/<path>#<key>``, e.g. ``secret/tls/web#certificate``; a value may hold a
  bundle, each certificate keeps its position (0, 1, …).
* PKI certificates: ``<mount>/certs/<serial>``, the serial as Vault lists it
  (``pki/certs/3a:0f:…``), position 0.
* PKI issuers: ``<mount>/issuer/<issuer id>``; position 0 is the issuer's certificate, then the
  rest of its ``ca_chain``.

What can go wrong, and what it becomes (``refresh`` never raises)::

    _VaultError(reason, message)        the refresh failed: up=0, last good data kept
        unreachable   connection refused, reset, DNS failure
        timeout       no answer within the source's timeout
        tls_error     Vault's certificate not trusted (ca_file), TLS handshake failure
        sealed        HTTP 503 "Vault is sealed"
        forbidden     HTTP 403 on a read or list: the token's policy lacks the path
        auth_failed   login refused, token rejected, credential file/variable unreadable
        http_error    any other HTTP status (5xx, unexpected 4xx, redirects)
        bad_response  not JSON, not the expected shape, or too large
        internal_error  a bug in this module (logged with its traceback)
    ItemError(location, reason, message)  one secret, key or serial; the rest still counts
        not_found, missing_key, corrupt_pem, unparseable, no_certificate, unknown_format,
        too_large, too_many_secrets, too_many_certs, unsafe_name, corrupt_key

Secrets: the token, the AppRole role_id/secret_id and the Kubernetes JWT are read from their
file or environment variable when needed (rotation works without a restart) and only travel in
request headers and login bodies. A login's client token is cached until 80 % of its lease has
passed, and a cached token answered with 403 triggers one fresh login. Certificates are read
from the configured keys of a KV secret only. A PEM private key in any value of the secret
(``private_key`` beside the certificate) becomes a private-key record at ``<mount>/<path>#<key>``
with public facts only (type, size, public key hash; ``corrupt_key`` when unreadable); the key
itself never reaches a result. No message quotes a value; Vault's own error text is passed
through a redaction of every credential in use.

Revocation (``revocation`` set): each leaf is checked against an issuer from the same KV secret
or, for PKI certificates, the mount's issuers (:mod:`.revocation_check`); the DER of each
certificate is kept only then.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import yarl

from ..config import SecretRef, VaultKV, VaultPKI, VaultSource
from ..errors import ItemFailure, SourceFailure
from ..results import ItemError, SourceResult, StoredCert, StoredKey
from .base import failed, succeeded
from .formats import keys_in, pem_certificates
from .keys import link
from .revocation_check import check_stored

log = logging.getLogger(__name__)

#: At most this many KV entries (secrets and folders) are listed and read per refresh.
MAX_SECRETS = 50_000
#: At most this many PKI certificates are read per refresh (over all mounts).
MAX_PKI_CERTS = 50_000
#: A KV value larger than this is reported (``too_large``), not parsed.
MAX_VALUE_BYTES = 1024 * 1024
#: A response larger than this fails the refresh (``bad_response``): listings of 50,000 keys
#: fit comfortably, a runaway body does not reach memory.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
#: Requests in flight at once against one Vault.
CONCURRENCY = 16
#: A login token is replaced once this fraction of its lease has passed.
RENEW_AFTER = 0.8
#: Credential files (token, role_id, secret_id, JWT) larger than this are refused.
MAX_CREDENTIAL_BYTES = 64 * 1024

_MESSAGE_CHARS = 300
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"

T = TypeVar("T")
R = TypeVar("R")


class _VaultError(Exception):
    """The whole refresh failed; ``reason`` is a stable label value."""

    def __init__(self, reason: SourceFailure, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class _NoRoute(Exception):
    """HTTP 404 with an error text: the mount (or endpoint) does not exist, unlike an empty
    listing, which Vault also answers with 404 but without errors."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class _Reply:
    status: int
    body: dict[str, Any]

    def error_text(self) -> str:
        errors = self.body.get("errors")
        if isinstance(errors, list):
            texts = [e.strip() for e in errors if isinstance(e, str) and e.strip()]
            if texts:
                return "; ".join(texts)
        return ""


@dataclass
class _Login:
    """A client token from AppRole or Kubernetes login, kept until ``renew_at`` (monotonic)."""

    token: str = field(repr=False)
    renew_at: float


def _q(path: str) -> str:
    """Percent-encode a Vault path, keeping its slashes."""
    return quote(path, safe="/")


def _q1(segment: str) -> str:
    """Percent-encode one path segment (a serial or an issuer id)."""
    return quote(segment, safe=":")


#: The body of Go's answer to plain HTTP on a TLS listener (Vault and OpenBao are Go).
_PLAIN_HTTP_TO_HTTPS = b"Client sent an HTTP request to an HTTPS server"


def _unsafe(name: str) -> bool:
    return any(part in (".", "..") for part in name.split("/"))


def _read_ref(ref: SecretRef, what: str) -> str:
    """A credential from its environment variable (first) or file, read now."""
    if ref.env:
        value = os.environ.get(ref.env, "").strip()
        if value:
            return value
        if not ref.file:
            raise _VaultError(
                SourceFailure.AUTH_FAILED, f"environment variable {ref.env} ({what}) is not set"
            )
    if ref.file:
        return _read_credential_file(ref.file, f"{what}_file")
    raise _VaultError(SourceFailure.AUTH_FAILED, f"no {what} configured")


def _read_credential_file(path: str, what: str) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CREDENTIAL_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _VaultError(
            SourceFailure.AUTH_FAILED, f"cannot read {what} {path}: {reason}"
        ) from None
    if len(raw) > MAX_CREDENTIAL_BYTES:
        raise _VaultError(
            SourceFailure.AUTH_FAILED, f"{what} {path} is larger than {MAX_CREDENTIAL_BYTES}"
        )
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise _VaultError(SourceFailure.AUTH_FAILED, f"{what} {path} is not UTF-8 text") from None
    if not value:
        raise _VaultError(SourceFailure.AUTH_FAILED, f"{what} {path} is empty")
    return value


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc = group.exceptions[0]
    return _first_leaf(exc) if isinstance(exc, BaseExceptionGroup) else exc


async def _map_bounded(
    fn: Callable[[T], Awaitable[R]], items: Sequence[T], limit: int = CONCURRENCY
) -> list[R]:
    """``[await fn(x) for x in items]`` with at most ``limit`` running at once.

    A few workers pull from one iterator instead of one task per item: 50,000 serials must not
    mean 50,000 tasks. The first failure cancels the rest and is raised as itself.
    """
    results: dict[int, R] = {}
    todo = iter(enumerate(items))

    async def worker() -> None:
        for i, item in todo:
            results[i] = await fn(item)

    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(min(limit, len(items))):
                tg.create_task(worker())
    except BaseExceptionGroup as group:
        raise _first_leaf(group) from None
    return [results[i] for i in range(len(items))]


def parse_pem_value(
    location: str, value: object, revoked: bool = False, keep_der: bool = False
) -> tuple[list[StoredCert], list[ItemError]]:
    """Every certificate in one PEM string, with its position. Other PEM blocks (keys) are
    skipped unread; messages describe the problem, never the content. ``keep_der``: carry each
    certificate's DER (for revocation checks)."""
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        return [], [
            ItemError(location, ItemFailure.UNKNOWN_FORMAT, f"value is {kind}, not PEM text")
        ]
    data = value.encode("utf-8", "replace")
    if len(data) > MAX_VALUE_BYTES:
        msg = f"value is {len(data)} bytes, larger than {MAX_VALUE_BYTES}"
        return [], [ItemError(location, ItemFailure.TOO_LARGE, msg)]
    if _PEM_CERT not in data:
        return [], [
            ItemError(location, ItemFailure.NO_CERTIFICATE, "no PEM certificate in the value")
        ]
    found, errors = pem_certificates(location, data, "PEM block")
    certs = [
        StoredCert(location, pos, facts, revoked=revoked, der=der if keep_der else b"")
        for pos, facts, der in found
    ]
    return certs, errors


def _issuer_scope(cert: StoredCert) -> str:
    """Where a certificate's issuer may be found: the same KV secret (``certificate`` beside
    ``issuing_ca``, say), or the PKI mount (its issuers, when ``issuers`` is on)."""
    if "#" in cert.location:  # <mount>/<path>#<key>
        return cert.location.split("#", 1)[0]
    for part in ("/certs/", "/issuer/"):
        if part in cert.location:
            return cert.location.rsplit(part, 1)[0]
    return cert.location


class _Client:
    """One refresh's HTTP conversation with Vault: headers, limits, error mapping, redaction."""

    def __init__(self, session: aiohttp.ClientSession, source: VaultSource) -> None:
        self.session = session
        self.source = source
        self.token = ""
        self._secrets: set[str] = set()

    def remember(self, secret: str) -> str:
        """Note a credential so that no message can quote it; returns it unchanged."""
        if len(secret) >= 4:
            self._secrets.add(secret)
        return secret

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text[:_MESSAGE_CHARS]

    def fail(self, reason: SourceFailure, message: str) -> _VaultError:
        return _VaultError(reason, self.redact(message))

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, str] | None = None,
        auth: bool = True,
        listing: bool = False,
    ) -> _Reply:
        """One request. Raises _VaultError for transport failures, sealed, 3xx, 5xx and bodies
        that are not a JSON object; returns every other status for the caller to judge.

        ``path`` is already percent-encoded. ``listing`` makes it a LIST (sent as
        ``GET ?list=true``, which proxies pass through unchanged).
        """
        headers = {"X-Vault-Request": "true"}
        if self.source.namespace:
            headers["X-Vault-Namespace"] = self.source.namespace
        if auth:
            headers["X-Vault-Token"] = self.token
        what = f"{'LIST' if listing else method} /v1/{path}"
        query = "?list=true" if listing else ""
        url = yarl.URL(f"{self.source.address}/v1/{path}{query}", encoded=True)
        try:
            async with self.session.request(
                method, url, json=body, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                raw = await self._read_body(resp, what)
        except TimeoutError:
            msg = f"no answer within {self.source.timeout:g}s to {what}"
            raise self.fail(SourceFailure.TIMEOUT, msg) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            err = exc.certificate_error
            detail = getattr(err, "verify_message", "") or type(err).__name__
            msg = f"certificate of {exc.host}:{exc.port} not trusted: {detail}"
            raise self.fail(SourceFailure.TLS_ERROR, msg) from None
        except aiohttp.ClientSSLError as exc:
            msg = f"TLS with {exc.host}:{exc.port} failed: {exc.os_error}"
            raise self.fail(SourceFailure.TLS_ERROR, msg) from None
        except aiohttp.ClientConnectorError as exc:
            detail = exc.os_error.strerror or type(exc.os_error).__name__
            msg = f"cannot connect to {exc.host}:{exc.port}: {detail}"
            raise self.fail(SourceFailure.UNREACHABLE, msg) from None
        except aiohttp.ClientPayloadError:
            raise self.fail(
                SourceFailure.BAD_RESPONSE, f"truncated or malformed response to {what}"
            ) from None
        except aiohttp.ClientError as exc:
            if type(exc) is aiohttp.ClientResponseError:
                # aiohttp's parser refused the answer (its subclasses are proxies, redirects
                # and content types): something other than HTTP listens at the address.
                msg = f"{what}: the answer is not HTTP"
                raise self.fail(SourceFailure.BAD_RESPONSE, msg) from None
            raise self.fail(SourceFailure.UNREACHABLE, f"{what}: {type(exc).__name__}") from None
        return self._judge(status, raw, what)

    async def _read_body(self, resp: aiohttp.ClientResponse, what: str) -> bytes:
        length = resp.content_length
        if length is not None and length > MAX_RESPONSE_BYTES:
            raise self.fail(
                SourceFailure.BAD_RESPONSE, f"{what}: response of {length} bytes is too large"
            )
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                msg = f"{what}: response larger than {MAX_RESPONSE_BYTES} bytes"
                raise self.fail(SourceFailure.BAD_RESPONSE, msg)
            chunks.append(chunk)
        return b"".join(chunks)

    def _judge(self, status: int, raw: bytes, what: str) -> _Reply:
        body: dict[str, Any] | None = None
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
            body = parsed if isinstance(parsed, dict) else None
        else:
            body = {}
        reply = _Reply(status, body or {})
        text = reply.error_text()
        if status == 503 and "sealed" in text.lower():
            raise self.fail(SourceFailure.SEALED, f"Vault is sealed ({what})")
        if status >= 500 or 300 <= status < 400:
            raise self.fail(
                SourceFailure.HTTP_ERROR, f"HTTP {status} from {what}: {text or 'no details'}"
            )
        if body is None:
            if status == 400 and raw.startswith(_PLAIN_HTTP_TO_HTTPS):
                # Go's net/http answers so when an https listener gets plain HTTP: the one
                # misconfiguration worth naming (the rest of a non-JSON body is not shown).
                msg = f"HTTP 400 from {what}: the server speaks HTTPS; use https:// in address"
                raise self.fail(SourceFailure.BAD_RESPONSE, msg)
            raise self.fail(
                SourceFailure.BAD_RESPONSE, f"HTTP {status} from {what}: not a JSON object"
            )
        return reply

    def refused(self, reply: _Reply, what: str) -> _VaultError:
        """The error for an unexpected 4xx on a read or list."""
        text = reply.error_text() or "no details"
        if reply.status == 403:
            return self.fail(SourceFailure.FORBIDDEN, f"permission denied: {what}")
        if reply.status == 401:
            return self.fail(SourceFailure.AUTH_FAILED, f"HTTP 401 from {what}: {text}")
        return self.fail(SourceFailure.HTTP_ERROR, f"HTTP {reply.status} from {what}: {text}")

    def data_of(self, reply: _Reply, what: str) -> dict[str, Any]:
        data = reply.body.get("data")
        if not isinstance(data, dict):
            raise self.fail(SourceFailure.BAD_RESPONSE, f"{what}: no data object in the response")
        return data

    async def read(self, path: str) -> dict[str, Any] | None:
        """GET ``path``'s data object; None when it does not exist."""
        reply = await self.call("GET", path)
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise self.refused(reply, f"GET /v1/{path}")
        return self.data_of(reply, f"GET /v1/{path}")

    async def list(self, path: str) -> list[str]:
        """LIST ``path`` (as ``GET ?list=true``). An empty listing is ``[]``; a route that does
        not exist raises _NoRoute."""
        reply = await self.call("GET", path, listing=True)
        what = f"LIST /v1/{path}"
        if reply.status == 404:
            text = reply.error_text()
            if text:
                raise _NoRoute(self.redact(text))
            return []
        if reply.status != 200:
            raise self.refused(reply, what)
        keys = self.data_of(reply, what).get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise self.fail(SourceFailure.BAD_RESPONSE, f"{what}: keys is not a list of strings")
        return keys

    async def token_rejected(self) -> bool:
        """Does Vault reject the token itself (rather than the policy)? Every token may look
        itself up (the ``default`` policy), so a 403 here means the token is not valid."""
        reply = await self.call("GET", "auth/token/lookup-self")
        return reply.status == 403


class VaultReader:
    """Reads one Vault/OpenBao source. One instance per source: it caches the login token."""

    kind = "vault"

    def __init__(self, source: VaultSource) -> None:
        self.source = source
        self.name = source.name
        self._login: _Login | None = None
        self._keys: list[StoredKey] = []  # private keys found by the refresh under way

    def __repr__(self) -> str:
        return f"VaultReader({self.name!r}, {self.source.address!r})"

    @property
    def _keep_der(self) -> bool:
        return self.source.revocation.enabled

    async def refresh(self, previous: SourceResult | None) -> SourceResult:
        started = time.perf_counter()
        self._keys = []
        try:
            certs, errors = await self._refresh()
        except asyncio.CancelledError:
            raise
        except _VaultError as exc:
            return self._failed(previous, started, exc.reason, exc.message)
        except Exception as exc:  # a failing source keeps its last good data
            log.exception("vault source %s: unexpected error", self.name)
            return self._failed(previous, started, SourceFailure.INTERNAL, type(exc).__name__)
        ordered = tuple(sorted(certs, key=lambda c: (c.location, c.position)))
        ordered = await check_stored(
            ordered, self.source.revocation, self.source.timeout, _issuer_scope
        )
        keys = link(sorted(self._keys, key=lambda k: k.location), ordered)
        return succeeded(self, self.source.labels, started, ordered, tuple(errors), keys)

    def _failed(
        self, previous: SourceResult | None, started: float, reason: SourceFailure, message: str
    ) -> SourceResult:
        labels = self.source.labels
        return failed(self, labels, started, previous, reason, message[:_MESSAGE_CHARS])

    def _ssl_context(self) -> ssl.SSLContext | bool:
        if not self.source.address.startswith("https://"):
            return False
        if not self.source.ca_file:
            return True  # the system trust store
        try:
            return ssl.create_default_context(cafile=self.source.ca_file)
        except (OSError, ssl.SSLError) as exc:
            detail = getattr(exc, "strerror", None) or type(exc).__name__
            msg = f"cannot load ca_file {self.source.ca_file}: {detail}"
            raise _VaultError(SourceFailure.TLS_ERROR, msg) from None

    async def _refresh(self) -> tuple[list[StoredCert], list[ItemError]]:
        tls = await asyncio.to_thread(self._ssl_context)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY, ssl=tls)
        timeout = aiohttp.ClientTimeout(total=self.source.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            client = _Client(session, self.source)
            cached = await self._authenticate(client)
            try:
                return await self._collect(client)
            except _VaultError as exc:
                if exc.reason is not SourceFailure.FORBIDDEN:
                    raise
                if self.source.auth.method == "token":
                    if await client.token_rejected():
                        msg = "the token was rejected (invalid, expired or revoked)"
                        raise _VaultError(SourceFailure.AUTH_FAILED, msg) from None
                    raise
                if not cached:
                    raise
                # The cached login token may have been revoked or outlived: log in once more.
                self._login = None
                await self._authenticate(client)
                return await self._collect(client)

    async def _authenticate(self, client: _Client) -> bool:
        """Set the client's token. True when it is a cached login token."""
        auth = self.source.auth
        if auth.method == "token":
            client.token = client.remember(await asyncio.to_thread(_read_ref, auth.token, "token"))
            return False
        if self._login is not None and time.monotonic() < self._login.renew_at:
            client.token = client.remember(self._login.token)
            return True
        self._login = await self._log_in(client)
        client.token = client.remember(self._login.token)
        return False

    async def _log_in(self, client: _Client) -> _Login:
        auth = self.source.auth
        mount = (auth.mount or auth.method).strip("/")
        body: dict[str, str] = {}
        if auth.method == "approle":
            role_id = await asyncio.to_thread(_read_ref, auth.role_id, "role_id")
            body["role_id"] = client.remember(role_id)
            if auth.secret_id.env or auth.secret_id.file:
                secret_id = await asyncio.to_thread(_read_ref, auth.secret_id, "secret_id")
                body["secret_id"] = client.remember(secret_id)
        else:  # kubernetes
            jwt = await asyncio.to_thread(_read_credential_file, auth.jwt_file, "jwt_file")
            body = {"role": auth.role or "", "jwt": client.remember(jwt)}
        started = time.monotonic()
        path = f"auth/{_q(mount)}/login"
        reply = await client.call("POST", path, body=body, auth=False)
        body.clear()
        if reply.status != 200:
            text = reply.error_text() or "no details"
            msg = f"{auth.method} login at /v1/{path} refused (HTTP {reply.status}): {text}"
            raise client.fail(SourceFailure.AUTH_FAILED, msg)
        data = reply.body.get("auth")
        token = data.get("client_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise client.fail(
                SourceFailure.BAD_RESPONSE, f"POST /v1/{path}: no client token in the answer"
            )
        lease = data.get("lease_duration") if isinstance(data, dict) else None
        lease = float(lease) if isinstance(lease, int | float) and lease > 0 else math.inf
        log.debug("vault source %s: logged in with %s, lease %ss", self.name, auth.method, lease)
        return _Login(token=token, renew_at=started + lease * RENEW_AFTER)

    async def _collect(self, client: _Client) -> tuple[list[StoredCert], list[ItemError]]:
        certs: list[StoredCert] = []
        errors: list[ItemError] = []
        budget = [MAX_SECRETS]
        for kv in self.source.kv:
            got, bad = await self._kv(client, kv, budget)
            certs += got
            errors += bad
        budget = [MAX_PKI_CERTS]
        for pki in self.source.pki:
            got, bad = await self._pki(client, pki, budget)
            certs += got
            errors += bad
        return certs, errors

    # --- KV version 2 ---------------------------------------------------------------------

    async def _kv(
        self, client: _Client, kv: VaultKV, budget: list[int]
    ) -> tuple[list[StoredCert], list[ItemError]]:
        errors: list[ItemError] = []
        paths = await self._kv_paths(client, kv, budget, errors)
        certs: list[StoredCert] = []
        for got, bad in await _map_bounded(lambda p: self._kv_secret(client, kv, p), paths):
            certs += got
            errors += bad
        return certs, errors

    async def _kv_paths(
        self, client: _Client, kv: VaultKV, budget: list[int], errors: list[ItemError]
    ) -> list[str]:
        """Secret paths under ``kv.path``, folders walked breadth-first, within ``budget``.

        A path without a trailing slash that is not a folder names one secret.
        """
        start = kv.path
        where = f"{kv.mount}/{start}"
        try:
            keys = await client.list(f"{_q(kv.mount)}/metadata/{_q(start)}")
        except _NoRoute as exc:
            return self._missing(errors, where, exc.message)
        if not keys:
            if start and not start.endswith("/"):
                return [start]
            return self._missing(errors, where, "no secrets under this path")
        if start and not start.endswith("/"):
            start += "/"

        async def sub(folder: str) -> list[str]:
            try:
                return await client.list(f"{_q(kv.mount)}/metadata/{_q(folder)}")
            except _NoRoute:
                return []  # deleted between the two listings

        found: list[str] = []
        level: list[tuple[str, list[str]]] = [(start, keys)]
        while level:
            folders: list[str] = []
            for prefix, names in level:
                for name in sorted(names):
                    if not name or _unsafe(name):
                        msg = "a key name with an empty, . or .. segment was skipped"
                        errors.append(
                            ItemError(f"{kv.mount}/{prefix}{name}", ItemFailure.UNSAFE_NAME, msg)
                        )
                        continue
                    if budget[0] <= 0:
                        msg = f"more than {MAX_SECRETS} secrets and folders; the rest were skipped"
                        errors.append(ItemError(where, ItemFailure.TOO_MANY_SECRETS, msg))
                        return found
                    budget[0] -= 1
                    (folders if name.endswith("/") else found).append(prefix + name)
            listed = await _map_bounded(sub, folders)
            level = [(folder, names) for folder, names in zip(folders, listed, strict=True)]
        return found

    @staticmethod
    def _missing(errors: list[ItemError], where: str, message: str) -> list[str]:
        errors.append(ItemError(where, ItemFailure.NOT_FOUND, message))
        return []

    async def _kv_secret(
        self, client: _Client, kv: VaultKV, path: str
    ) -> tuple[list[StoredCert], list[ItemError]]:
        where = f"{kv.mount}/{path}"
        api = f"{_q(kv.mount)}/data/{_q(path)}"
        reply = await client.call("GET", api)
        if reply.status == 404:
            if self._deleted(reply.body):
                return [], []  # the latest version is deleted or destroyed: nothing current
            return [], [ItemError(where, ItemFailure.NOT_FOUND, "secret not found")]
        if reply.status != 200:
            raise client.refused(reply, f"GET /v1/{api}")
        inner = client.data_of(reply, f"GET /v1/{api}").get("data")
        if inner is None:
            return [], []
        if not isinstance(inner, dict):
            return [], [
                ItemError(where, ItemFailure.UNKNOWN_FORMAT, "secret data is not a key/value map")
            ]
        # Certificates from the configured keys only; private keys wherever they are (their
        # public facts, see _private_keys). Nothing else is looked at.
        errors = self._private_keys(where, inner)
        values = [(key, inner[key]) for key in kv.keys if key in inner]
        if not values:
            msg = f"none of the keys {', '.join(kv.keys)} in the secret"
            return [], [*errors, ItemError(where, ItemFailure.MISSING_KEY, msg)]
        certs: list[StoredCert] = []
        for key, value in values:
            got, bad = parse_pem_value(f"{where}#{key}", value, keep_der=self._keep_der)
            certs += got
            errors += bad
        return certs, errors

    def _private_keys(self, where: str, inner: dict[str, Any]) -> list[ItemError]:
        """A record for every PEM private key among the secret's values (``private_key``, a
        bundle holding one): type, size and public key hash; the key is dropped at once."""
        errors: list[ItemError] = []
        for key, value in sorted(inner.items()):
            if not isinstance(value, str) or "PRIVATE KEY-----" not in value:
                continue
            records, corrupt = keys_in(f"{where}#{key}", value.encode("utf-8", "replace"))
            self._keys.extend(records)
            if corrupt:
                message = "a private key in the value is unreadable"
                errors.append(ItemError(f"{where}#{key}", ItemFailure.CORRUPT_KEY, message))
        return errors

    @staticmethod
    def _deleted(body: dict[str, Any]) -> bool:
        data = body.get("data")
        meta = data.get("metadata") if isinstance(data, dict) else None
        return isinstance(meta, dict) and bool(meta.get("deletion_time") or meta.get("destroyed"))

    # --- PKI ------------------------------------------------------------------------------

    async def _pki(
        self, client: _Client, pki: VaultPKI, budget: list[int]
    ) -> tuple[list[StoredCert], list[ItemError]]:
        certs: list[StoredCert] = []
        errors: list[ItemError] = []
        mount = _q(pki.mount)
        try:
            serials = sorted(await client.list(f"{mount}/certs"))
        except _NoRoute as exc:
            return [], [ItemError(pki.mount, ItemFailure.NOT_FOUND, exc.message)]
        if len(serials) > budget[0]:
            msg = f"more than {MAX_PKI_CERTS} certificates; the rest were skipped"
            errors.append(ItemError(f"{pki.mount}/certs", ItemFailure.TOO_MANY_CERTS, msg))
            serials = serials[: budget[0]]
        budget[0] -= len(serials)

        async def one(serial: str) -> tuple[list[StoredCert], list[ItemError]]:
            return await self._pki_cert(client, pki, serial)

        for got, bad in await _map_bounded(one, serials):
            certs += got
            errors += bad
        if pki.issuers:
            got, bad = await self._pki_issuers(client, pki)
            certs += got
            errors += bad
        return certs, errors

    async def _pki_cert(
        self, client: _Client, pki: VaultPKI, serial: str
    ) -> tuple[list[StoredCert], list[ItemError]]:
        where = f"{pki.mount}/certs/{serial}"
        data = await client.read(f"{_q(pki.mount)}/cert/{_q1(serial)}")
        if data is None:
            return [], [ItemError(where, ItemFailure.NOT_FOUND, "certificate not found")]
        revoked = self._revoked(data)
        if revoked and not pki.include_revoked:
            return [], []
        return parse_pem_value(
            where, data.get("certificate"), revoked=revoked, keep_der=self._keep_der
        )

    @staticmethod
    def _revoked(data: dict[str, Any]) -> bool:
        when = data.get("revocation_time")
        if isinstance(when, int | float) and not isinstance(when, bool):
            return when > 0
        if isinstance(when, str) and when.strip().isdigit():
            return int(when) > 0
        return bool(data.get("revocation_time_rfc3339"))

    async def _pki_issuers(
        self, client: _Client, pki: VaultPKI
    ) -> tuple[list[StoredCert], list[ItemError]]:
        try:
            ids = sorted(await client.list(f"{_q(pki.mount)}/issuers"))
        except _NoRoute as exc:
            return [], [ItemError(f"{pki.mount}/issuers", ItemFailure.NOT_FOUND, exc.message)]

        async def one(issuer: str) -> tuple[list[StoredCert], list[ItemError]]:
            where = f"{pki.mount}/issuer/{issuer}"
            data = await client.read(f"{_q(pki.mount)}/issuer/{_q1(issuer)}")
            if data is None:
                return [], [ItemError(where, ItemFailure.NOT_FOUND, "issuer not found")]
            revoked = data.get("revoked") is True
            if revoked and not pki.include_revoked:
                return [], []
            cert = data.get("certificate")
            chain = data.get("ca_chain")
            pems = [cert] if isinstance(cert, str) else []
            if isinstance(chain, list):
                rest = [p for p in chain if isinstance(p, str)]
                # ca_chain starts with the issuer itself; do not count it twice.
                if rest and pems and rest[0].strip() == pems[0].strip():
                    rest = rest[1:]
                pems += rest
            got, bad = parse_pem_value(
                where, "\n".join(pems) if pems else None, keep_der=self._keep_der
            )
            # Revocation is the issuer's own state, not its parents'.
            return [replace(c, revoked=revoked and c.position == 0) for c in got], bad

        certs: list[StoredCert] = []
        errors: list[ItemError] = []
        for got, bad in await _map_bounded(one, ids):
            certs += got
            errors += bad
        return certs, errors
