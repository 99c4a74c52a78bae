"""AWS KMS: every customer-managed key of a region as a ``kms_key`` StoredKey.

Calls (all read-only): ``ListKeys`` and ``ListAliases`` (paginated, once per region), then per
key ``DescribeKey``; for keys that support automatic rotation (symmetric, key material made by
KMS) also ``GetKeyRotationStatus`` and ``ListKeyRotations`` (paginated). AWS-managed keys
(``alias/aws/...``) are skipped: their rotation is AWS's business, not a control of the user.

A key whose details cannot be read is an item error at its ARN; a key whose rotation status
cannot be read is still reported, without ``rotation_enabled``, and with an item error: the
rotation is then unknown, never assumed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ...errors import SourceFailure
from ...results import ItemError, StoredKey
from .client import Api, AwsError, map_bounded
from .model import SOURCE_KINDS, Part, attrs, iso, unix

KIND = SOURCE_KINDS["kms"]
#: Key states in which KMS answers rotation questions.
_LIVE_STATES = frozenset({"Enabled", "Disabled"})
_PENDING_DELETION = frozenset({"PendingDeletion", "PendingReplicaDeletion"})
_BITS_RE = re.compile(r"(\d{3,5})")


def rotation_supported(meta: Mapping[str, Any]) -> bool:
    """Automatic rotation exists for symmetric keys whose material KMS generated."""
    spec = str(meta.get("KeySpec", "SYMMETRIC_DEFAULT"))
    return spec == "SYMMETRIC_DEFAULT" and str(meta.get("Origin", "AWS_KMS")) == "AWS_KMS"


def key_bits(spec: str) -> int | None:
    """Key size from the key spec: RSA_2048 → 2048, ECC_NIST_P384 → 384, HMAC_256 → 256."""
    if spec == "SYMMETRIC_DEFAULT":
        return 256
    if spec in ("ECC_SECG_P256K1", "SM2"):
        return 256
    m = _BITS_RE.search(spec)
    return int(m.group(1)) if m and not spec.startswith("ML_DSA") else None


async def read(api: Api, region: str) -> Part:
    keys = await api.pages("kms", region, "list_keys", "Keys")
    aliases: dict[str, list[str]] = {}
    for alias in await api.pages("kms", region, "list_aliases", "Aliases"):
        target, name = alias.get("TargetKeyId"), alias.get("AliasName")
        if isinstance(target, str) and isinstance(name, str):
            aliases.setdefault(target, []).append(name)

    async def one(entry: Mapping[str, Any]) -> tuple[StoredKey | None, list[ItemError]]:
        return await _key(api, region, entry, aliases)

    found: list[StoredKey] = []
    errors: list[ItemError] = []
    for key, bad in await map_bounded(one, keys, api.clients.source.concurrency):
        if key is not None:
            found.append(key)
        errors += bad
    return Part(keys=tuple(found), errors=tuple(errors))


async def _key(
    api: Api, region: str, entry: Mapping[str, Any], aliases: Mapping[str, list[str]]
) -> tuple[StoredKey | None, list[ItemError]]:
    key_id = str(entry.get("KeyId", ""))
    arn = str(entry.get("KeyArn") or key_id)
    try:
        meta = (await api.call("kms", region, "describe_key", KeyId=key_id)).get("KeyMetadata")
    except AwsError as exc:
        return None, [ItemError(arn, exc.reason, exc.message)]
    if not isinstance(meta, Mapping):
        return None, [ItemError(arn, SourceFailure.BAD_RESPONSE, "kms:DescribeKey: no KeyMetadata")]
    names = sorted(aliases.get(key_id, ()))
    if meta.get("KeyManager") != "CUSTOMER" or any(n.startswith("alias/aws/") for n in names):
        return None, []  # AWS-managed (alias/aws/... is reserved for AWS's own keys)
    state = str(meta.get("KeyState", ""))
    errors: list[ItemError] = []
    rotation: dict[str, str] = {}
    if not rotation_supported(meta):
        rotation["rotation_enabled"] = "unsupported"
    elif state in _LIVE_STATES:
        rotation, errors = await _rotation(api, region, key_id, arn)
    deletion = meta.get("DeletionDate")
    valid_to = meta.get("ValidTo")  # imported key material that expires
    ends = [t for t in (unix(deletion), unix(valid_to)) if t is not None]
    spec = str(meta.get("KeySpec") or meta.get("CustomerMasterKeySpec") or "")
    key = StoredKey(
        kind="kms_key",
        location=str(meta.get("Arn") or arn),
        algorithm=spec,
        bits=key_bits(spec),
        attributes=attrs(
            key_id=key_id,
            alias=",".join(names),
            state=state,
            key_spec=spec,
            key_usage=str(meta.get("KeyUsage", "")),
            origin=str(meta.get("Origin", "")),
            multi_region="true" if meta.get("MultiRegion") else "false",
            region=region,
            deletion_date=iso(deletion),
            material_expires=iso(valid_to),
            pending_deletion="true" if state in _PENDING_DELETION else "false",
            **rotation,
        ),
        created=unix(meta.get("CreationDate")),
        not_after=min(ends) if ends else None,
        source_kind=KIND,
    )
    return key, errors


async def _rotation(
    api: Api, region: str, key_id: str, arn: str
) -> tuple[dict[str, str], list[ItemError]]:
    """Rotation status, period and the most recent rotation; what fails stays unknown."""
    out: dict[str, str] = {}
    errors: list[ItemError] = []
    try:
        status = await api.call("kms", region, "get_key_rotation_status", KeyId=key_id)
    except AwsError as exc:
        return out, [ItemError(arn, exc.reason, exc.message)]
    enabled = status.get("KeyRotationEnabled")
    if isinstance(enabled, bool):
        out["rotation_enabled"] = "true" if enabled else "false"
    period = status.get("RotationPeriodInDays")
    if isinstance(period, int) and not isinstance(period, bool):
        out["rotation_period_days"] = str(period)
    elif enabled is True:
        out["rotation_period_days"] = "365"  # the period before KMS made it configurable
    if status.get("NextRotationDate"):
        out["next_rotation"] = iso(status.get("NextRotationDate"))
    try:
        rotations = await api.pages("kms", region, "list_key_rotations", "Rotations", KeyId=key_id)
    except AwsError as exc:
        errors.append(ItemError(arn, exc.reason, exc.message))
    else:
        dates = [r.get("RotationDate") for r in rotations if unix(r.get("RotationDate"))]
        if dates:
            out["last_rotation"] = iso(max(dates, key=lambda d: unix(d) or 0.0))
        out["rotations"] = str(len(rotations))
    return out, errors
