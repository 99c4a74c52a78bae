"""The lines of a source's results: stored certificates, keys, item errors, cloud key management."""

from __future__ import annotations

from datetime import datetime

from ..results import Labels, SourceResult, StoredKey
from .lines import Fragments, _add, _cert_lines, _inner, _revocation_status_lines


def source_fragments(r: SourceResult) -> Fragments:
    out: Fragments = {}
    base: Labels = (("source_kind", r.kind), ("source", r.name), *r.labels)
    _add(out, "certscope_source_up", base, 1 if r.up else 0)
    _add(out, "certscope_source_items", base, len(r.certs))
    _add(out, "certscope_source_stale", base, int(r.stale))
    for reason, n in r.errors_total:
        _add(out, "certscope_source_errors_total", (*base, ("reason", reason)), n)
    _add(out, "certscope_source_refresh_duration_seconds", base, r.duration)
    if r.last_success is not None:
        _add(out, "certscope_source_last_success_timestamp_seconds", base, r.last_success)
    by_reason: dict[str, int] = {}
    for e in r.errors:
        by_reason[e.reason] = by_reason.get(e.reason, 0) + 1
    for reason, n in sorted(by_reason.items()):
        _add(out, "certscope_source_item_errors", (*base, ("reason", reason)), n)
    _item_error_lines(out, base, r)
    _private_key_lines(out, r)
    for c in r.certs:
        loc: Labels = (
            ("source_kind", c.source_kind or r.kind),
            ("source", r.name),
            ("location", c.location),
            *r.labels,
        )
        loc_text = _inner(loc)
        _cert_lines(out, loc_text, c.position, c.facts, c.revoked)
        if c.revocation is not None:
            slot = f'{loc_text},chain_position="{c.position}"'
            _revocation_status_lines(out, slot, c.revocation)
    if r.keys:
        _add(out, "certscope_source_keys", base, len(r.keys))
    for k in r.keys:
        _key_lines(out, r, k)
    cloud_fragments(out, r)
    return out


#: StoredKey attributes that are also labels of certscope_key_info: short, bounded facts
#: (never comments, commands or other free text a user wrote).
_KEY_INFO_ATTRIBUTES = ("fingerprint_sha256", "account", "owner_status", "cert_authority")


def _key_lines(out: Fragments, r: SourceResult, k: StoredKey) -> None:
    item = {**dict(r.labels), **dict(k.labels)}
    loc: Labels = (
        ("source_kind", k.source_kind or r.kind),
        ("source", r.name),
        ("location", k.location),
        *item.items(),
    )
    attrs = dict(k.attributes)
    info = (
        *loc,
        ("kind", k.kind),
        ("key_algorithm", k.algorithm),
        ("key_bits", "" if k.bits is None else str(k.bits)),
        ("public_key_sha256", k.public_key_sha256),
        *((a, attrs[a]) for a in _KEY_INFO_ATTRIBUTES if a in attrs),
    )
    _add(out, "certscope_key_info", info, 1)
    if k.created is not None:
        _add(out, "certscope_key_created_timestamp_seconds", (*loc, ("kind", k.kind)), k.created)
    if k.not_after is not None:
        _add(
            out, "certscope_key_not_after_timestamp_seconds", (*loc, ("kind", k.kind)), k.not_after
        )


#: Item errors exported with their location per source; the rest are only counted.
MAX_ITEM_ERROR_SERIES = 100


def _item_error_lines(out: Fragments, base: Labels, r: SourceResult) -> None:
    unique = sorted({(e.location, e.reason) for e in r.errors})
    for location, reason in unique[:MAX_ITEM_ERROR_SERIES]:
        labels = (*base[:2], ("location", location), *base[2:], ("reason", reason))
        _add(out, "certscope_source_item_error_info", labels, 1)


def _private_key_lines(out: Fragments, r: SourceResult) -> None:
    for k in r.keys:
        if k.kind != "private_key":
            continue
        attrs = dict(k.attributes)
        labels = (
            ("source_kind", r.kind),
            ("source", r.name),
            ("location", k.location),
            *r.labels,
            ("key_algorithm", k.algorithm),
            ("key_bits", str(k.bits) if k.bits else ""),
            ("encrypted", attrs.get("encrypted", "")),
            ("public_key_sha256", k.public_key_sha256),
            ("certificate_location", attrs.get("certificate_location", "")),
        )
        _add(out, "certscope_private_key_info", labels, 1)


# --- cloud key management and encryption at rest ------------------------------------------------


def _timestamp(text: str) -> float | None:
    """An ISO 8601 attribute (``2026-01-02T03:04:05Z``) as Unix seconds."""
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


def _dated(out: Fragments, family: str, labels: Labels, text: str) -> None:
    when = _timestamp(text)
    if when is not None:
        _add(out, family, labels, when)


def _kms_lines(out: Fragments, base: Labels, k: StoredKey) -> None:
    a = dict(k.attributes)
    info = (
        *base,
        ("key_id", a.get("key_id", "")),
        ("alias", a.get("alias", "")),
        ("key_spec", a.get("key_spec", "")),
        ("key_usage", a.get("key_usage", "")),
        ("origin", a.get("origin", "")),
        ("state", a.get("state", "")),
    )
    _add(out, "certscope_kms_key_info", info, 1)
    rotation = a.get("rotation_enabled")
    if rotation in ("true", "false"):
        _add(out, "certscope_kms_key_rotation_enabled", base, int(rotation == "true"))
    days = a.get("rotation_period_days", "")
    if days.isdigit():
        _add(out, "certscope_kms_key_rotation_period_seconds", base, int(days) * 86400)
    _dated(
        out, "certscope_kms_key_last_rotation_timestamp_seconds", base, a.get("last_rotation", "")
    )
    _dated(out, "certscope_kms_key_deletion_timestamp_seconds", base, a.get("deletion_date", ""))
    if k.created is not None:
        _add(out, "certscope_kms_key_creation_timestamp_seconds", base, k.created)


def _secret_lines(out: Fragments, base: Labels, k: StoredKey) -> None:
    a = dict(k.attributes)
    _add(out, "certscope_secret_rotation_enabled", base, int(a.get("rotation_enabled") == "true"))
    try:
        days = float(a.get("rotation_interval_days", ""))
    except ValueError:
        days = 0.0
    if days > 0:
        _add(out, "certscope_secret_rotation_interval_seconds", base, days * 86400)
    _dated(out, "certscope_secret_last_rotated_timestamp_seconds", base, a.get("last_rotated", ""))
    _dated(out, "certscope_secret_next_rotation_timestamp_seconds", base, a.get("rotation_due", ""))
    accessed = a.get("last_accessed", "")
    _dated(out, "certscope_secret_last_accessed_timestamp_seconds", base, accessed)
    if k.created is not None:
        _add(out, "certscope_secret_created_timestamp_seconds", base, k.created)


def cloud_fragments(out: Fragments, r: SourceResult) -> None:
    """KMS keys, secrets, ACM certificate facts and storage encryption of one source result."""

    def base(kind: str, location: str) -> Labels:
        return (
            ("source_kind", kind or r.kind),
            ("source", r.name),
            ("location", location),
            *r.labels,
        )

    for k in r.keys:
        if k.kind == "kms_key":
            _kms_lines(out, base(k.source_kind, k.location), k)
        elif k.kind == "secret":
            _secret_lines(out, base(k.source_kind, k.location), k)
    for c in r.certs:
        if c.source_kind == "aws_acm" and c.position == 0:
            a = dict(c.attributes)
            loc = base(c.source_kind, c.location)
            info = (
                *loc,
                ("certificate_type", a.get("certificate_type", "")),
                ("certificate_status", a.get("certificate_status", "")),
                ("renewal_eligibility", a.get("renewal_eligibility", "")),
            )
            _add(out, "certscope_acm_certificate_info", info, 1)
            if a.get("in_use_by", "").isdigit():
                _add(out, "certscope_acm_certificate_in_use_by", loc, int(a["in_use_by"]))
    for s in r.storage:
        labels: Labels = (
            ("source_kind", s.source_kind or r.kind),
            ("source", r.name),
            ("resource_kind", s.resource_kind),
            ("resource", s.resource),
            ("kms_key_id", s.kms_key_id),
            *r.labels,
        )
        _add(out, "certscope_storage_encryption_enabled", labels, int(s.encrypted))
        if s.resource_kind == "s3_bucket" and s.encrypted:
            a = dict(s.attributes)
            info = (
                *labels[:4],
                ("sse_algorithm", a.get("algorithm", "")),
                ("bucket_key", a.get("bucket_key", "")),
                ("key_manager", a.get("key_manager", "")),
                *r.labels,
            )
            _add(out, "certscope_s3_bucket_encryption_info", info, 1)
