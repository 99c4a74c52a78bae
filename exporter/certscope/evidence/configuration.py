"""Control configuration in the evidence package: how the controls were set up.

An auditor needs the configuration behind the results, not only the results: the alerting and
recording rules Prometheus had loaded (``/api/v1/rules``), the Alertmanager routing and
receivers (``/api/v2/status`` of ``--alertmanager.url``), the certscope configuration and its
SHA-256, the runbook of every alert, and what certscope does **not** observe.

Secrets never reach the package: every value under a key that names a secret (passwords,
tokens, API keys, ``*_file`` paths stay but their content is never read) is replaced by
``<redacted>``, and URLs lose their user information, path and query (chat and paging webhooks
carry their token there). Alertmanager already masks its own secrets as ``<secret>``; the
redaction here does not rely on it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from .query import MalformedAnswer, PrometheusClient, QueryFailed, quote

REDACTED = "<redacted>"
#: keys whose value is a secret (a key ending in ``_file`` names a file: it is kept)
_SECRET_KEY = re.compile(
    r"(password|passphrase|secret|token|api_?key|auth_?key|credentials|authorization"
    r"|routing_key|service_key|private_?key|bot_token|webhook_url|api_url|^key$)",
    re.IGNORECASE,
)
_URL_KEY = re.compile(r"(^|_)url$", re.IGNORECASE)

#: Credential kinds certscope can observe, and the series that shows one is configured.
OBSERVABLE: tuple[tuple[str, str], ...] = (
    ("TLS endpoints (certificates, protocols, cipher suites)", "certscope_probe_success"),
    ("Certificate stores (files, Kubernetes, Vault/OpenBao)", "certscope_source_up"),
    ("Private keys at rest", "certscope_private_key_info"),
    ("SSH host keys and authorized keys", "certscope_ssh_"),
    ("Cloud KMS keys", "certscope_kms_"),
    ("Cloud storage encryption at rest", "certscope_storage_encryption_enabled"),
    ("Certificate revocation (OCSP, CRL)", "certscope_cert_revocation_status"),
)
#: What certscope never observes: other evidence must cover it.
NEVER_OBSERVED = (
    "Database encryption at rest (engine-level TDE, column encryption)",
    "Endpoint and laptop disk encryption (MDM)",
    "Key custody, HSM key ceremonies and key escrow",
    "Code-signing and package-signing keys",
    "Application-level encryption of individual fields and backups",
    "Passwords, user accounts and access reviews",
)


@dataclass(frozen=True)
class Configuration:
    """What the package says about how the controls were configured."""

    rules: Any = None  # the /api/v1/rules data, as Prometheus answered
    alertmanager: str | None = None  # redacted YAML
    alertmanager_error: str = ""
    certscope_config: str | None = None  # redacted YAML
    certscope_config_sha256: str = ""
    metric_names: frozenset[str] = frozenset()
    runbooks: tuple[tuple[str, str, str, str], ...] = ()  # alert, severity, control, URL
    covered: tuple[str, ...] = ()
    not_covered: tuple[str, ...] = field(default=())


def redact(node: Any, key: str = "") -> Any:
    """A copy of a parsed YAML/JSON document without secrets (see the module docstring)."""
    if isinstance(node, dict):
        return {k: redact(v, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [redact(v, key) for v in node]
    if key and not key.endswith("_file") and _SECRET_KEY.search(key) and node not in (None, ""):
        return REDACTED
    if isinstance(node, str) and _URL_KEY.search(key):
        return redact_url(node)
    return node


def redact_url(url: str) -> str:
    """Scheme and host only: ``https://hooks.slack.com/services/T0/B0/xyz`` → ``…/<redacted>``."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return REDACTED if url else url
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    path = "/" + REDACTED if parts.path.strip("/") or parts.query else ""
    return urlunsplit((parts.scheme, host, path, "", ""))


def redact_yaml(text: str) -> str:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return f"# not YAML, left out: {str(exc).splitlines()[0]}\n"
    return yaml.safe_dump(redact(doc), sort_keys=False, allow_unicode=True)


def runbooks(rules: Any) -> tuple[tuple[str, str, str, str], ...]:
    """(alert, severity, SOC 2 control, runbook URL) of every certscope alert rule loaded."""
    out = set()
    groups = rules.get("groups", []) if isinstance(rules, dict) else []
    for group in groups if isinstance(groups, list) else []:
        for rule in group.get("rules", []) if isinstance(group, dict) else []:
            if not isinstance(rule, dict) or rule.get("type") != "alerting":
                continue
            name = str(rule.get("name", ""))
            if not name.startswith("Certscope"):
                continue
            labels = rule.get("labels") or {}
            notes = rule.get("annotations") or {}
            out.add(
                (
                    name,
                    str(labels.get("severity", "")),
                    str(labels.get("soc2_control", "")),
                    str(notes.get("runbook_url", "")),
                )
            )
    return tuple(sorted(out))


def coverage_of(names: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(covered, not covered) from the metric names the exporter reported in the period."""
    present = set(names)
    covered: list[str] = []
    missing: list[str] = []
    for what, prefix in OBSERVABLE:
        seen = any(n == prefix or (prefix.endswith("_") and n.startswith(prefix)) for n in present)
        (covered if seen else missing).append(what)
    not_covered = [
        f"{what}: not configured (no {prefix}* series in the period)"
        for what, prefix in OBSERVABLE
        if what in missing
    ]
    return tuple(covered), tuple(not_covered) + NEVER_OBSERVED


async def fetch(
    client: PrometheusClient,
    alertmanager: PrometheusClient | None,
    config_path: str | None,
    job: str,
    start: float,
    end: float,
) -> Configuration:
    """Everything of :class:`Configuration`; an Alertmanager that fails is noted, not fatal."""
    rules: Any = None
    try:
        rules = await client._request("rules")
    except MalformedAnswer:
        raise
    except QueryFailed:
        rules = None  # a Prometheus-compatible store without rules: said in the report
    names: Any = await client.get_json(
        "/api/v1/label/__name__/values",
        {"match[]": f"{{job=~{quote(job)}}}", "start": f"{start:.3f}", "end": f"{end:.3f}"},
    )
    listed = names.get("data") if isinstance(names, dict) else None
    metric_names = frozenset(str(n) for n in listed) if isinstance(listed, list) else frozenset()
    am_text, am_error = None, ""
    if alertmanager is not None:
        try:
            status = await alertmanager.get_json("/api/v2/status")
            original = (
                status.get("config", {}).get("original") if isinstance(status, dict) else None
            )
            if not isinstance(original, str):
                raise MalformedAnswer("/api/v2/status: no config.original")
            am_text = redact_yaml(original)
        except QueryFailed as exc:
            am_error = str(exc)
    cfg_text, cfg_hash = None, ""
    if config_path is not None:
        raw = _read(config_path)
        cfg_hash = hashlib.sha256(raw).hexdigest()
        cfg_text = redact_yaml(raw.decode("utf-8", "replace"))
    covered, not_covered = coverage_of(metric_names)
    return Configuration(
        rules=rules,
        alertmanager=am_text,
        alertmanager_error=am_error,
        certscope_config=cfg_text,
        certscope_config_sha256=cfg_hash,
        metric_names=metric_names,
        runbooks=runbooks(rules),
        covered=covered,
        not_covered=not_covered,
    )


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def files(conf: Configuration) -> dict[str, bytes]:
    """The configuration files of the package."""
    out = {}
    if conf.rules is not None:
        out["rules.json"] = (json.dumps(conf.rules, indent=2, sort_keys=True) + "\n").encode()
    if conf.alertmanager is not None:
        out["alertmanager.yml"] = conf.alertmanager.encode()
    if conf.certscope_config is not None:
        out["certscope-config.yml"] = conf.certscope_config.encode()
    return out


def summary(conf: Configuration) -> dict[str, Any]:
    return {
        "rules_loaded": conf.rules is not None,
        "alertmanager": "included"
        if conf.alertmanager is not None
        else (conf.alertmanager_error or "not requested (--alertmanager.url)"),
        "certscope_config_sha256": conf.certscope_config_sha256,
        "runbooks": [
            {"alert": a, "severity": s, "soc2_control": c, "runbook_url": u}
            for a, s, c, u in conf.runbooks
        ],
        "covered": list(conf.covered),
        "not_covered": list(conf.not_covered),
    }
