"""What one service in one region contributes to a refresh, and the shared value formats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ...results import ItemError, StorageResource, StoredCert, StoredKey

#: The ``source_kind`` of each service's items (the source itself is ``aws``).
SOURCE_KINDS = {
    "kms": "aws_kms",
    "acm": "aws_acm",
    "secretsmanager": "aws_secretsmanager",
    "s3": "aws_s3",
    "rds": "aws_rds",
    "ebs": "aws_ebs",
}

#: S3 bucket listing is account-wide: it is read once, under this pseudo-region.
GLOBAL = "global"


@dataclass(frozen=True)
class Part:
    """One service in one region: its items and the items that could not be read."""

    certs: tuple[StoredCert, ...] = ()
    keys: tuple[StoredKey, ...] = ()
    storage: tuple[StorageResource, ...] = ()
    errors: tuple[ItemError, ...] = ()


def part_location(service: str, region: str) -> str:
    """The location of an error that concerns a whole service in a region (``kms/us-east-1``)."""
    return f"{service}/{region}"


def iso(value: object) -> str:
    """A botocore timestamp (an aware datetime) as ``2026-01-02T03:04:05Z``; anything else ''."""
    if not isinstance(value, datetime):
        return ""
    when = value if value.tzinfo else value.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unix(value: object) -> float | None:
    if not isinstance(value, datetime):
        return None
    when = value if value.tzinfo else value.replace(tzinfo=UTC)
    return when.timestamp()


def attrs(**values: str) -> tuple[tuple[str, str], ...]:
    """Sorted name/value pairs, empty values left out (absent facts stay absent)."""
    return tuple(sorted((k, v) for k, v in values.items() if v != ""))
