"""``--web.config.file``: the Prometheus exporter-toolkit format, for the exporter's own endpoint.

The same file node_exporter, blackbox_exporter and Prometheus read::

    tls_server_config:
      cert_file: /etc/certscope/tls/tls.crt
      key_file: /etc/certscope/tls/tls.key
      client_ca_file: /etc/certscope/tls/ca.crt   # mTLS
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12
    http_server_config:
      headers:
        Strict-Transport-Security: max-age=31536000
    basic_auth_users:
      prometheus: $2b$12$...   # bcrypt hash (htpasswd -nBC 12 "" | tr -d ':')

The file is read once at start (a config reload does not touch the listener); the certificate
files it names are watched, see :class:`RotatingContext`.
Problems are located like the main configuration's. Keys certscope cannot honour with Python's
``ssl`` module (Go cipher-suite names, curve preferences, requesting a client certificate
without verifying it) are errors rather than silently ignored: a security setting that does
nothing is worse than none.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import logging
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bcrypt
import yaml
from aiohttp import web
from aiohttp.typedefs import Handler

from ..config import load_yaml
from ..errors import ConfigError, Problem

log = logging.getLogger(__name__)

_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_UNSUPPORTED_AUTH = ("RequestClientCert", "RequireAnyClientCert")
_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
    "client_allowed_sans",
)
_UNSUPPORTED_TLS_KEYS = ("cipher_suites", "curve_preferences", "prefer_server_cipher_suites")
#: The exporter-toolkit's allow-list of response headers, with the values it accepts (None: any).
_HEADERS: Mapping[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "Content-Security-Policy": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
}
_BCRYPT_PREFIXES = (b"$2a$", b"$2b$", b"$2y$")


@functools.cache
def _dummy_hash() -> bytes:
    """A hash checked for unknown users, so that the answer's timing does not tell them apart."""
    return bcrypt.hashpw(b"certscope-no-such-user", bcrypt.gensalt(rounds=10))


@dataclass(frozen=True)
class TLSServer:
    cert_file: str
    key_file: str
    client_auth: ssl.VerifyMode = ssl.CERT_NONE
    client_ca_file: str | None = None
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED
    client_allowed_sans: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebConfig:
    tls: TLSServer | None = None
    users: Mapping[str, bytes] | None = None  # user -> bcrypt hash; None: no authentication
    headers: tuple[tuple[str, str], ...] = ()


def load_web_config(path: str) -> WebConfig:
    """Read and validate a web config file; ConfigError lists every problem with its place."""
    try:
        with open(path, "rb") as fh:
            raw = load_yaml(fh.read(1024 * 1024))
        problems: list[Problem] = []
        web_config = _build(raw if raw is not None else {}, problems)
    except OSError as exc:
        raise ConfigError(
            [Problem("", f"cannot read {path}: {exc.strerror or exc}")], path
        ) from None
    except ConfigError as exc:
        raise ConfigError(exc.problems, path) from None
    except yaml.MarkedYAMLError as exc:
        where = f"line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise ConfigError([Problem(where, f"malformed YAML: {exc.problem}")], path) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem("", f"malformed YAML: {exc}")], path) from None
    if problems:
        raise ConfigError(problems, path)
    if web_config.tls is not None:
        try:
            server_ssl_context(web_config.tls)
        except (OSError, ssl.SSLError) as exc:
            where = "tls_server_config"
            raise ConfigError(
                [Problem(where, f"cannot load the certificate: {exc}")], path
            ) from None
    return web_config


def _mapping(
    value: object, loc: str, allowed: tuple[str, ...], out: list[Problem]
) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        out.append(Problem(loc, "must be a mapping"))
        return {}
    for key in value:
        if key not in allowed:
            out.append(Problem(f"{loc}.{key}" if loc else str(key), "unknown key"))
    return {k: v for k, v in value.items() if k in allowed}


def _build(raw: object, out: list[Problem]) -> WebConfig:
    top = _mapping(raw, "", ("tls_server_config", "http_server_config", "basic_auth_users"), out)
    tls = _tls(top.get("tls_server_config"), out) if "tls_server_config" in top else None
    http = _mapping(top.get("http_server_config"), "http_server_config", ("http2", "headers"), out)
    if "http2" in http and not isinstance(http["http2"], bool):
        out.append(Problem("http_server_config.http2", "must be true or false"))
    headers = _headers(http.get("headers"), out)
    users = _users(top.get("basic_auth_users"), out) if "basic_auth_users" in top else None
    return WebConfig(tls=tls, users=users, headers=headers)


def _tls(value: object, out: list[Problem]) -> TLSServer | None:
    loc = "tls_server_config"
    if isinstance(value, dict):
        for key in _UNSUPPORTED_TLS_KEYS:
            if key in value:
                out.append(
                    Problem(f"{loc}.{key}", "is not supported: certscope uses OpenSSL's suites")
                )
    d = _mapping(
        {k: v for k, v in value.items() if k not in _UNSUPPORTED_TLS_KEYS}
        if isinstance(value, dict)
        else value,
        loc,
        _TLS_KEYS,
        out,
    )
    strings = {}
    for key in ("cert_file", "key_file", "client_auth_type", "client_ca_file"):
        v = d.get(key)
        if v is not None and (not isinstance(v, str) or not v):
            out.append(Problem(f"{loc}.{key}", "must be a non-empty string"))
            v = None
        strings[key] = v
    for key in ("cert_file", "key_file"):
        if strings[key] is None:
            out.append(Problem(f"{loc}.{key}", "is required"))
    ca = strings["client_ca_file"]
    # As in the exporter-toolkit: a client CA without an auth type means require and verify.
    auth_name = strings["client_auth_type"] or (
        "RequireAndVerifyClientCert" if ca else "NoClientCert"
    )
    auth = _CLIENT_AUTH.get(auth_name)
    if auth is None:
        why = (
            "is not supported: use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            if auth_name in _UNSUPPORTED_AUTH
            else f"must be one of {', '.join(_CLIENT_AUTH)}"
        )
        out.append(Problem(f"{loc}.client_auth_type", why))
        auth = ssl.CERT_REQUIRED
    if auth != ssl.CERT_NONE and ca is None:
        out.append(Problem(f"{loc}.client_ca_file", f"is required with {auth_name}"))
    versions = []
    for key, default in (("min_version", "TLS12"), ("max_version", None)):
        name = d.get(key, default)
        if name is not None and (not isinstance(name, str) or name not in _VERSIONS):
            out.append(Problem(f"{loc}.{key}", f"must be one of {', '.join(_VERSIONS)}"))
            name = default
        versions.append(_VERSIONS[name] if name else ssl.TLSVersion.MAXIMUM_SUPPORTED)
    sans = d.get("client_allowed_sans") or []
    if not isinstance(sans, list) or not all(isinstance(s, str) and s for s in sans):
        out.append(Problem(f"{loc}.client_allowed_sans", "must be a list of names"))
        sans = []
    if strings["cert_file"] is None or strings["key_file"] is None:
        return None
    return TLSServer(
        cert_file=strings["cert_file"],
        key_file=strings["key_file"],
        client_auth=auth,
        client_ca_file=ca,
        min_version=versions[0],
        max_version=versions[1],
        client_allowed_sans=tuple(sans),
    )


def _headers(value: object, out: list[Problem]) -> tuple[tuple[str, str], ...]:
    loc = "http_server_config.headers"
    d = _mapping(value, loc, tuple(_HEADERS), out)
    headers = []
    for name, v in d.items():
        allowed = _HEADERS[name]
        if not isinstance(v, str) or "\n" in v or "\r" in v:
            out.append(Problem(f"{loc}.{name}", "must be a one-line string"))
        elif allowed is not None and v.lower() not in allowed:
            out.append(Problem(f"{loc}.{name}", f"must be one of {', '.join(allowed)}"))
        else:
            headers.append((name, v))
    return tuple(headers)


def _users(value: object, out: list[Problem]) -> dict[str, bytes]:
    loc = "basic_auth_users"
    if not isinstance(value, dict) or not value:
        out.append(Problem(loc, "must map user names to bcrypt hashes"))
        return {}
    users = {}
    for user, hashed in value.items():
        if not isinstance(user, str) or not user or ":" in user:
            out.append(Problem(f"{loc}.{user}", "user names are non-empty and have no ':'"))
            continue
        encoded = hashed.encode() if isinstance(hashed, str) else b""
        if not encoded.startswith(_BCRYPT_PREFIXES) or len(encoded) != 60:
            # Never echo the value: it may be a password pasted by mistake.
            out.append(Problem(f"{loc}.{user}", "must be a bcrypt hash ($2y$…, 60 characters)"))
            continue
        users[user] = encoded
    return users


def server_ssl_context(tls: TLSServer) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = tls.min_version
    ctx.maximum_version = tls.max_version
    ctx.load_cert_chain(tls.cert_file, tls.key_file)
    ctx.verify_mode = tls.client_auth
    if tls.client_ca_file:
        ctx.load_verify_locations(cafile=tls.client_ca_file)
    return ctx


class RotatingContext:
    """The listener's TLS context, which picks up a renewed certificate without a restart.

    cert-manager and other renewers replace the files in place; the exporter-toolkit reads
    them on every handshake. Here each handshake (``sni_callback`` runs for every ClientHello)
    checks the files' identity at most once a second, rebuilds the context when they changed,
    and hands the connection the current one. A broken new file keeps the previous
    certificate and logs why, once per change.
    """

    def __init__(self, tls: TLSServer, check_every: float = 1.0) -> None:
        self.tls = tls
        self.check_every = check_every
        self._stamp = self._stamps()
        self._checked = time.monotonic()
        self.current = server_ssl_context(tls)
        self.listening = server_ssl_context(tls)
        self.listening.sni_callback = self._select

    def _stamps(self) -> tuple[tuple[int, int, int] | None, ...]:
        out = []
        for path in (self.tls.cert_file, self.tls.key_file, self.tls.client_ca_file):
            try:
                st = os.stat(path) if path else None
            except OSError:
                st = None
            out.append((st.st_ino, st.st_size, st.st_mtime_ns) if st else None)
        return tuple(out)

    def _select(self, conn: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext) -> None:
        now = time.monotonic()
        if now - self._checked >= self.check_every:
            self._checked = now
            stamp = self._stamps()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self.current = server_ssl_context(self.tls)
                    log.info("serving the renewed certificate from %s", self.tls.cert_file)
                except (OSError, ssl.SSLError) as exc:
                    log.warning(
                        "keeping the previous certificate: cannot load the new one: %s", exc
                    )
        conn.context = self.current


def _peer_names(request: web.Request) -> set[str]:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    if not cert:
        return set()
    return {
        str(v)
        for kind, v in cert.get("subjectAltName", ())
        if kind in ("DNS", "IP Address", "email", "URI")
    }


class Guard:
    """Middleware (client certificate SANs, basic authentication) and response headers."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self._verified: dict[bytes, None] = {}  # digests of credentials already checked

    def _digest(self, user: str, password: bytes, hashed: bytes) -> bytes:
        return hashlib.sha256(user.encode() + b"\0" + hashed + b"\0" + password).digest()

    async def _authorised(self, header: str) -> bool:
        users = self.config.users
        assert users is not None
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or len(encoded) > 1024:
            return False
        try:
            user_b, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
            user = user_b.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        hashed = users.get(user)
        digest = self._digest(user, password, hashed or b"")
        if hashed is not None and digest in self._verified:
            return True
        # bcrypt takes tens of milliseconds by design: off the event loop.
        ok = await asyncio.to_thread(bcrypt.checkpw, password, hashed or _dummy_hash())
        if ok and hashed is not None:
            if len(self._verified) >= 1024:
                self._verified.clear()
            self._verified[digest] = None
            return True
        return False

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        return await self._check(request) or await handler(request)

    async def add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        """``on_response_prepare``: the configured headers on every response, streamed ones
        (``/metrics`` sends its headers before the handler returns) included."""
        for name, value in self.config.headers:
            response.headers[name] = value

    async def _check(self, request: web.Request) -> web.StreamResponse | None:
        tls = self.config.tls
        if tls is not None and tls.client_allowed_sans:
            names = _peer_names(request)
            if names.isdisjoint(tls.client_allowed_sans):
                return web.Response(status=403, text="client certificate not allowed\n")
        if self.config.users is not None and not await self._authorised(
            request.headers.get("Authorization", "")
        ):
            return web.Response(
                status=401,
                text="Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="certscope"'},
            )
        return None
