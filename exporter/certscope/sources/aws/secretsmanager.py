"""AWS Secrets Manager: every secret of a region as a ``secret`` StoredKey (never its value).

``ListSecrets`` (paginated) answers everything about rotation in one listing: whether it is
enabled, its rules, the last and next rotation, the last access. The rotation due date is
Secrets Manager's ``NextRotationDate`` when it gives one, else the last rotation (or the
creation) plus the interval.

With ``secret_certificates: true`` the values are read too (``GetSecretValue``, an extra
permission): a value holding a PEM certificate, or a JSON object whose string fields hold one,
is inventoried as certificates at the secret's ARN (``<arn>#<field>`` for JSON fields). Only
``CERTIFICATE`` blocks are decoded; every other byte of the value, a private key or a password,
is dropped as soon as the value has been looked at, and no message quotes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ...results import ItemError, StoredCert, StoredKey
from ..vault import parse_pem_value
from .client import Api, AwsError, map_bounded
from .model import SOURCE_KINDS, Part, attrs, iso, unix

KIND = SOURCE_KINDS["secretsmanager"]
_RATE_RE = re.compile(r"^rate\(\s*(\d+)\s+(day|days|hour|hours)\s*\)$")
_PEM_CERT = "-----BEGIN CERTIFICATE-----"


def interval_days(rules: Mapping[str, Any]) -> float | None:
    """The rotation interval in days from the rotation rules; None for a cron schedule."""
    after = rules.get("AutomaticallyAfterDays")
    if isinstance(after, int) and not isinstance(after, bool) and after > 0:
        return float(after)
    m = _RATE_RE.match(str(rules.get("ScheduleExpression", "")).strip())
    if m:
        n = int(m.group(1))
        return float(n) if m.group(2).startswith("day") else n / 24
    return None


def rotation_due(entry: Mapping[str, Any], days: float | None) -> datetime | None:
    """When the next rotation should happen (see the module docstring)."""
    given = entry.get("NextRotationDate")
    if isinstance(given, datetime):
        return given
    since = entry.get("LastRotatedDate") or entry.get("CreatedDate")
    if days is None or not isinstance(since, datetime):
        return None
    return since + timedelta(days=days)


def secret_key(entry: Mapping[str, Any], region: str) -> StoredKey:
    arn = str(entry.get("ARN", ""))
    enabled = entry.get("RotationEnabled") is True
    rules = entry.get("RotationRules") or {}
    days = interval_days(rules) if enabled and isinstance(rules, Mapping) else None
    due = rotation_due(entry, days) if enabled else None
    return StoredKey(
        kind="secret",
        location=arn,
        attributes=attrs(
            name=str(entry.get("Name", "")),
            rotation_enabled="true" if enabled else "false",
            rotation_interval_days=f"{days:g}" if days is not None else "",
            schedule=str(rules.get("ScheduleExpression", "")) if enabled else "",
            last_rotated=iso(entry.get("LastRotatedDate")),
            last_changed=iso(entry.get("LastChangedDate")),
            last_accessed=iso(entry.get("LastAccessedDate")),
            rotation_due=iso(due),
            kms_key_id=str(entry.get("KmsKeyId", "")),
            owning_service=str(entry.get("OwningService", "")),
            region=region,
        ),
        created=unix(entry.get("CreatedDate")),
        source_kind=KIND,
    )


async def read(api: Api, region: str) -> Part:
    entries = await api.pages("secretsmanager", region, "list_secrets", "SecretList")
    keys = tuple(secret_key(e, region) for e in entries if isinstance(e.get("ARN"), str))
    if not api.clients.source.secret_certificates:
        return Part(keys=keys)

    async def one(arn: str) -> tuple[list[StoredCert], list[ItemError]]:
        return await _certificates(api, region, arn)

    certs: list[StoredCert] = []
    errors: list[ItemError] = []
    arns = [k.location for k in keys]
    for got, bad in await map_bounded(one, arns, api.clients.source.concurrency):
        certs += got
        errors += bad
    return Part(certs=tuple(certs), keys=keys, errors=tuple(errors))


async def _certificates(
    api: Api, region: str, arn: str
) -> tuple[list[StoredCert], list[ItemError]]:
    try:
        answer = await api.call("secretsmanager", region, "get_secret_value", SecretId=arn)
    except AwsError as exc:
        return [], [ItemError(arn, exc.reason, exc.message)]
    value = answer.get("SecretString")
    del answer  # the value must not outlive this function
    if not isinstance(value, str) or _PEM_CERT not in value:
        return [], []
    fields: list[tuple[str, str]] = []
    if value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            fields = [
                (f"{arn}#{k}", v)
                for k, v in sorted(parsed.items())
                if isinstance(v, str) and _PEM_CERT in v
            ]
    if not fields:
        fields = [(arn, value)]
    certs: list[StoredCert] = []
    errors: list[ItemError] = []
    for location, text in fields:
        got, bad = parse_pem_value(location, text)
        certs += [replace(c, source_kind=KIND) for c in got]
        errors += bad
    return certs, errors
