"""Encryption at rest: S3 buckets, RDS instances and clusters, EBS volumes, snapshots and the
per-region EBS default, each as a :class:`~certscope.results.StorageResource`.

Calls (read-only):

* S3 (account-wide, read once): ``ListBuckets`` (paginated), per bucket
  ``GetBucketEncryption``; the KMS key a bucket names is looked up once with ``DescribeKey``
  to tell a customer-managed key from the AWS-managed ``aws/s3`` key. A bucket without a
  default-encryption configuration is reported unencrypted (AWS has applied SSE-S3 to every
  bucket since January 2023, so this only happens on older endpoints and emulators).
* RDS, per region: ``DescribeDBInstances`` and ``DescribeDBClusters`` (paginated):
  ``StorageEncrypted`` and ``KmsKeyId``.
* EBS, per region: ``GetEbsEncryptionByDefault``, ``GetEbsDefaultKmsKeyId``, then
  ``DescribeVolumes`` and ``DescribeSnapshots`` (own snapshots, paginated).

Each listing fails on its own: a denied ``DescribeSnapshots`` is an item error at
``ebs/<region>`` and the volumes are still reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from ...results import ItemError, StorageResource
from .client import Api, AwsError, map_bounded
from .model import GLOBAL, SOURCE_KINDS, Part, attrs, part_location

_S3_NO_CONFIG = "ServerSideEncryptionConfigurationNotFoundError"


def _resource(
    kind: str,
    service: str,
    resource: str,
    encrypted: bool,
    kms_key_id: object,
    **facts: str,
) -> StorageResource:
    return StorageResource(
        resource_kind=kind,
        resource=resource,
        encrypted=encrypted,
        kms_key_id=kms_key_id if isinstance(kms_key_id, str) else "",
        attributes=attrs(**facts),
        source_kind=SOURCE_KINDS[service],
    )


# --- S3 --------------------------------------------------------------------------------------


class _KeyManagers:
    """DescribeKey once per KMS key named by buckets: CUSTOMER or AWS, '' when unknown."""

    def __init__(self, api: Api, region: str) -> None:
        self.api = api
        self.region = region
        self._seen: dict[str, asyncio.Future[str]] = {}

    async def of(self, key_id: str, bucket_region: str) -> str:
        if not key_id:
            return "AWS"  # aws:kms without a key: the AWS-managed aws/s3 key
        if key_id.startswith("alias/aws/"):
            return "AWS"
        found = self._seen.get(key_id)
        if found is None:
            found = self._seen[key_id] = asyncio.ensure_future(self._lookup(key_id, bucket_region))
        return await found

    async def _lookup(self, key_id: str, bucket_region: str) -> str:
        region = key_id.split(":")[3] if key_id.startswith("arn:") else bucket_region
        try:
            answer = await self.api.call("kms", region, "describe_key", KeyId=key_id)
        except AwsError:
            return ""  # unknown: reported as such, never guessed
        meta = answer.get("KeyMetadata") or {}
        return str(meta.get("KeyManager", ""))


async def read_s3(api: Api, home_region: str) -> Part:
    # A page size (MaxBuckets, at most 1,000) makes S3 paginate instead of answering every
    # bucket of the account in one response.
    buckets = await api.pages(
        "s3", home_region, "list_buckets", "Buckets", PaginationConfig={"PageSize": 1000}
    )
    managers = _KeyManagers(api, home_region)
    partition = api.identity.partition

    async def one(bucket: Mapping[str, Any]) -> StorageResource | ItemError:
        name = str(bucket.get("Name", ""))
        region = str(bucket.get("BucketRegion") or home_region)
        arn = f"arn:{partition}:s3:::{name}"
        try:
            answer = await api.call("s3", region, "get_bucket_encryption", Bucket=name)
        except AwsError as exc:
            if exc.code == _S3_NO_CONFIG:
                return _resource("s3_bucket", "s3", arn, False, "", region=region)
            return ItemError(arn, exc.reason, exc.message)
        rules = (answer.get("ServerSideEncryptionConfiguration") or {}).get("Rules") or []
        default = (rules[0].get("ApplyServerSideEncryptionByDefault") or {}) if rules else {}
        algorithm = str(default.get("SSEAlgorithm", ""))
        key_id = str(default.get("KMSMasterKeyID", ""))
        manager = await managers.of(key_id, region) if algorithm.startswith("aws:kms") else ""
        return _resource(
            "s3_bucket",
            "s3",
            arn,
            bool(algorithm),
            key_id,
            algorithm=algorithm,
            bucket_key="true" if rules and rules[0].get("BucketKeyEnabled") else "false",
            key_manager=manager.lower(),
            region=region,
        )

    found = await map_bounded(one, buckets, api.clients.source.concurrency)
    return Part(
        storage=tuple(r for r in found if isinstance(r, StorageResource)),
        errors=tuple(r for r in found if isinstance(r, ItemError)),
    )


# --- RDS -------------------------------------------------------------------------------------


def _rds(
    kind: str, arn_key: str, id_key: str, region: str
) -> Callable[[Mapping[str, Any]], StorageResource]:
    """The converter of one RDS listing (instances and clusters share their fields)."""

    def convert(db: Mapping[str, Any]) -> StorageResource:
        return _resource(
            kind,
            "rds",
            str(db.get(arn_key) or db.get(id_key, "")),
            db.get("StorageEncrypted") is True,
            db.get("KmsKeyId"),
            engine=str(db.get("Engine", "")),
            cluster=str(db.get("DBClusterIdentifier") or "") if kind == "rds_instance" else "",
            region=region,
        )

    return convert


async def read_rds(api: Api, region: str) -> Part:
    return await _listings(
        "rds",
        region,
        [
            (
                lambda: api.pages("rds", region, "describe_db_instances", "DBInstances"),
                _rds("rds_instance", "DBInstanceArn", "DBInstanceIdentifier", region),
            ),
            (
                lambda: api.pages("rds", region, "describe_db_clusters", "DBClusters"),
                _rds("rds_cluster", "DBClusterArn", "DBClusterIdentifier", region),
            ),
        ],
    )


# --- EBS -------------------------------------------------------------------------------------


async def read_ebs(api: Api, region: str) -> Part:
    ident = api.identity
    prefix = f"arn:{ident.partition}:ec2:{region}"

    key_errors: list[ItemError] = []

    async def default() -> list[Mapping[str, Any]]:
        on = await api.call("ec2", region, "get_ebs_encryption_by_default")
        try:
            key = (await api.call("ec2", region, "get_ebs_default_kms_key_id")).get("KmsKeyId")
        except AwsError as exc:  # the setting is known; only its key is not
            key_errors.append(ItemError(part_location("ebs", region), exc.reason, exc.message))
            key = None
        return [{"on": on.get("EbsEncryptionByDefault") is True, "key": key}]

    def default_resource(d: Mapping[str, Any]) -> StorageResource:
        return _resource("ebs_default", "ebs", region, bool(d["on"]), d["key"], region=region)

    def volume(v: Mapping[str, Any]) -> StorageResource:
        arn = f"{prefix}:{ident.account}:volume/{v.get('VolumeId', '')}"
        return _resource(
            "ebs_volume", "ebs", arn, v.get("Encrypted") is True, v.get("KmsKeyId"), region=region
        )

    def snapshot(s: Mapping[str, Any]) -> StorageResource:
        arn = f"{prefix}::snapshot/{s.get('SnapshotId', '')}"  # snapshot ARNs have no account
        return _resource(
            "ebs_snapshot", "ebs", arn, s.get("Encrypted") is True, s.get("KmsKeyId"), region=region
        )

    part = await _listings(
        "ebs",
        region,
        [
            (default, default_resource),
            (lambda: api.pages("ec2", region, "describe_volumes", "Volumes"), volume),
            (
                lambda: api.pages(
                    "ec2", region, "describe_snapshots", "Snapshots", OwnerIds=["self"]
                ),
                snapshot,
            ),
        ],
    )
    return replace(part, errors=part.errors + tuple(key_errors))


Listing = Callable[[], Awaitable[list[Any]]]


async def _listings(
    service: str,
    region: str,
    reads: list[tuple[Listing, Callable[[Mapping[str, Any]], StorageResource]]],
) -> Part:
    """Run independent listings; one that fails is an item error, the others still count.
    When every listing fails the whole part fails (its first error is raised)."""
    outcomes = await asyncio.gather(*(fetch() for fetch, _ in reads), return_exceptions=True)
    storage: list[StorageResource] = []
    errors: list[ItemError] = []
    failures: list[AwsError] = []
    for (_, convert), got in zip(reads, outcomes, strict=True):
        if isinstance(got, AwsError):
            failures.append(got)
            errors.append(ItemError(part_location(service, region), got.reason, got.message))
        elif isinstance(got, BaseException):
            raise got
        else:
            storage += [convert(item) for item in got]
    if failures and len(failures) == len(reads):
        raise failures[0]
    return Part(storage=tuple(storage), errors=tuple(errors))


__all__ = ["GLOBAL", "read_ebs", "read_rds", "read_s3"]
