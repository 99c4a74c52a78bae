"""How ``certscope evidence`` authenticates to Prometheus: Prometheus's own ``http_config`` shape.

The file given with ``--prometheus.config`` uses the keys a Prometheus ``scrape_config`` or
``remote_read`` block uses, so an operator can copy what already works::

    basic_auth: {username: auditor, password_file: /run/secrets/prom-password}
    authorization: {type: Bearer, credentials_file: /run/secrets/token}   # or bearer_token_file
    tls_config: {ca_file: ca.pem, cert_file: client.pem, key_file: client.key,
                 server_name: prometheus.internal, insecure_skip_verify: false}

Every problem is reported at once with its location (``tls_config.ca_file: …``). Secrets are
read here and kept only in the headers sent; they never reach the manifest or an error.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError

_TOP = {"basic_auth", "authorization", "bearer_token", "bearer_token_file", "tls_config"}
_BASIC = {"username", "password", "password_file"}
_AUTHZ = {"type", "credentials", "credentials_file"}
_TLS = {"ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify", "min_version"}


@dataclass(frozen=True)
class HttpConfig:
    """Headers and TLS settings for every request to Prometheus."""

    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    #: what the manifest may say about the configuration (no secret)
    description: tuple[str, ...] = ()

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        if self.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


def _secret(
    block: Mapping[str, Any], value_key: str, file_key: str, where: str, errors: list[str]
) -> str:
    value, path = block.get(value_key), block.get(file_key)
    if value is not None and path is not None:
        errors.append(f"{where}: give {value_key} or {file_key}, not both")
        return ""
    if path is not None:
        try:
            return Path(str(path)).read_text().strip()
        except OSError as exc:
            errors.append(f"{where}.{file_key}: cannot read {path}: {exc.strerror or exc}")
            return ""
    return str(value) if value is not None else ""


def _unknown(block: Mapping[str, Any], allowed: set[str], where: str, errors: list[str]) -> None:
    for key in sorted(set(block) - allowed):
        errors.append(f"{where}{key}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _block(doc: Mapping[str, Any], key: str, errors: list[str]) -> Mapping[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(f"{key}: must be a mapping")
        return {}
    return value


def parse(doc: object, where: str = "") -> HttpConfig:
    """A parsed YAML document → :class:`HttpConfig`; :class:`UsageError` lists every problem."""
    errors: list[str] = []
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise UsageError(f"{where}: must be a mapping of http_config keys")
    _unknown(doc, _TOP, "", errors)
    headers: dict[str, str] = {}
    described: list[str] = []
    basic = _block(doc, "basic_auth", errors)
    if basic:
        _unknown(basic, _BASIC, "basic_auth.", errors)
        user = str(basic.get("username", ""))
        if not user:
            errors.append("basic_auth.username: required")
        password = _secret(basic, "password", "password_file", "basic_auth", errors)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
        described.append(f"basic_auth: username {user}, password <redacted>")
    authz = _block(doc, "authorization", errors)
    bearer = _secret(doc, "bearer_token", "bearer_token_file", "bearer_token", errors)
    if authz or bearer:
        if basic:
            errors.append("authorization: cannot be combined with basic_auth")
        if authz and bearer:
            errors.append("authorization: cannot be combined with bearer_token(_file)")
        _unknown(authz, _AUTHZ, "authorization.", errors)
        kind = str(authz.get("type", "Bearer")) if authz else "Bearer"
        credentials = bearer or _secret(
            authz, "credentials", "credentials_file", "authorization", errors
        )
        if not credentials:
            errors.append("authorization: credentials or credentials_file required")
        headers["Authorization"] = f"{kind} {credentials}"
        described.append(f"authorization: {kind} <redacted>")
    tls = _block(doc, "tls_config", errors)
    _unknown(tls, _TLS, "tls_config.", errors)
    for key in ("ca_file", "cert_file", "key_file"):
        if key in tls and not Path(str(tls[key])).is_file():
            errors.append(f"tls_config.{key}: {tls[key]} is not a readable file")
    if ("cert_file" in tls) != ("key_file" in tls):
        errors.append("tls_config: cert_file and key_file go together")
    skip = tls.get("insecure_skip_verify", False)
    if not isinstance(skip, bool):
        errors.append("tls_config.insecure_skip_verify: must be true or false")
        skip = False
    if tls:
        described.append(
            "tls_config: " + ", ".join(f"{k} {tls[k]}" for k in sorted(tls) if k in _TLS)
        )
    if errors:
        prefix = f"{where}: " if where else ""
        raise UsageError(prefix + "; ".join(errors))
    return HttpConfig(
        headers=headers,
        ca_file=_opt(tls.get("ca_file")),
        cert_file=_opt(tls.get("cert_file")),
        key_file=_opt(tls.get("key_file")),
        server_name=_opt(tls.get("server_name")),
        insecure_skip_verify=skip,
        description=tuple(described),
    )


def load(path: str | None) -> HttpConfig:
    """``--prometheus.config FILE`` → :class:`HttpConfig` (none given: no auth, system CAs)."""
    if path is None:
        return HttpConfig()
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"--prometheus.config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"--prometheus.config {path}: not YAML: {exc}") from None
    return parse(doc, f"--prometheus.config {path}")


def _opt(value: object) -> str | None:
    return None if value is None else str(value)
