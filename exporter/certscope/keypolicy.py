"""Findings for cloud key management and encryption at rest. Pure functions, like policy.py.

Inputs are the facts a source reported (:class:`~certscope.results.StoredKey` attributes of
kinds ``kms_key`` and ``secret``, :class:`~certscope.results.StorageResource`) and ``now``;
outputs are :class:`~certscope.policy.Finding` records, waivable by policy exceptions like
every other rule. A fact the source could not read is absent, and an absent fact never
produces a pass *or* a finding here: the item error that made it absent is the signal.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from .config import Policy
from .policy import Assessment, Finding, apply_exceptions, today
from .results import AssessedLocation, Labels, SourceResult, StorageResource, StoredKey
from .rulebook import Rule

#: A secret's rotation is overdue once its due date is this far behind: Secrets Manager rotates
#: within a window of up to 24 hours after the scheduled time.
SECRET_ROTATION_GRACE = timedelta(days=1)
#: Key states in which a key is in service (rotation matters); others are on their way out.
_IN_SERVICE = frozenset({"Enabled", "Disabled"})


def _attr(key: StoredKey, name: str) -> str:
    return dict(key.attributes).get(name, "")


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def kms_findings(key: StoredKey) -> list[Finding]:
    out: list[Finding] = []
    state = _attr(key, "state")
    if _attr(key, "rotation_enabled") == "false" and state in _IN_SERVICE:
        out.append(
            Finding(
                Rule.KMS_ROTATION_DISABLED,
                "warning",
                f"automatic rotation of this symmetric customer-managed key is off ({state})",
            )
        )
    if _attr(key, "pending_deletion") == "true":
        when = _attr(key, "deletion_date") or "a date KMS did not give"
        out.append(
            Finding(Rule.KMS_KEY_PENDING_DELETION, "warning", f"scheduled for deletion on {when}")
        )
    return out


def secret_findings(key: StoredKey, now: datetime) -> list[Finding]:
    enabled = _attr(key, "rotation_enabled")
    if enabled == "false":
        return [Finding(Rule.SECRET_ROTATION_DISABLED, "warning", "rotation is not enabled")]
    due = _when(_attr(key, "rotation_due"))
    if enabled == "true" and due is not None and now > due + SECRET_ROTATION_GRACE:
        late = (now - due).total_seconds() / 86400
        detail = f"rotation was due {due:%Y-%m-%d}, {late:.0f} days ago"
        return [Finding(Rule.SECRET_ROTATION_OVERDUE, "warning", detail)]
    return []


def storage_findings(resource: StorageResource) -> list[Finding]:
    if resource.encrypted:
        return []
    if resource.resource_kind == "ebs_default":
        # A region default is a safeguard for volumes yet to come, not data left in clear.
        detail = "new EBS volumes in this region are not encrypted by default"
        return [Finding(Rule.STORAGE_UNENCRYPTED, "warning", detail)]
    detail = f"{resource.resource_kind} does not encrypt data at rest"
    return [Finding(Rule.STORAGE_UNENCRYPTED, "critical", detail)]


def key_findings(key: StoredKey, now: datetime) -> list[Finding]:
    if key.kind == "kms_key":
        return kms_findings(key)
    if key.kind == "secret":
        return secret_findings(key, now)
    return []


def assess_cloud(
    result: SourceResult, source_labels: Labels, policy: Policy, now: datetime
) -> list[AssessedLocation]:
    """Assessments (with findings only) of a source's KMS keys, secrets and storage."""
    items: list[AssessedLocation] = []
    day = today(now)

    def add(kind: str, location: str, labels: Labels, found: Iterable[Finding]) -> None:
        findings = apply_exceptions(list(found), (result.name, location), policy, day)
        if findings:
            merged = tuple({**dict(source_labels), **dict(labels)}.items())
            items.append(
                AssessedLocation(
                    kind or result.kind,
                    result.name,
                    location,
                    merged,
                    Assessment(findings=tuple(findings)),
                )
            )

    for key in result.keys:
        add(key.source_kind, key.location, key.labels, key_findings(key, now))
    for res in result.storage:
        add(res.source_kind, res.resource, (), storage_findings(res))
    return items
