"""The AWS scenario the cloud tests read (KMS, ACM, Secrets Manager, S3, RDS and EBS; listed in
``tests/test_aws_source.py``'s docstring), created through boto3 against a real moto_server.
"""

from __future__ import annotations

import json
from typing import Any

from .motoserver import MotoServer
from .pki import TestPKI


def key_id(arn: str) -> str:
    return arn.rsplit("/", 1)[1]


def seed(moto: MotoServer, pki: TestPKI) -> dict[str, Any]:
    """Create the scenario; returns the ARNs and ids by name (and the imported key's PEM)."""
    ids: dict[str, Any] = {}
    _seed_kms(moto, ids)
    _seed_certificates_and_secrets(moto, pki, ids)
    _seed_storage(moto, ids)
    return ids


def _seed_kms(moto: MotoServer, ids: dict[str, Any]) -> None:
    kms = moto.client("kms")
    ids["rotating"] = kms.create_key(Description="rotating")["KeyMetadata"]["Arn"]
    kms.enable_key_rotation(KeyId=key_id(ids["rotating"]))
    kms.rotate_key_on_demand(KeyId=key_id(ids["rotating"]))
    ids["static"] = kms.create_key(KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/app-data", TargetKeyId=key_id(ids["static"]))
    ids["doomed"] = kms.create_key()["KeyMetadata"]["Arn"]
    kms.schedule_key_deletion(KeyId=key_id(ids["doomed"]), PendingWindowInDays=7)
    ids["signing"] = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"][
        "Arn"
    ]
    eu = moto.client("kms", "eu-west-1")
    ids["eu"] = eu.create_key()["KeyMetadata"]["Arn"]
    eu.enable_key_rotation(KeyId=key_id(ids["eu"]))


def _seed_certificates_and_secrets(moto: MotoServer, pki: TestPKI, ids: dict[str, Any]) -> None:
    leaf = pki.leaf("imported.test", key="rsa", days_left=45)
    acm = moto.client("acm")
    ids["imported"] = acm.import_certificate(
        Certificate=leaf.pem, PrivateKey=leaf.key_pem, CertificateChain=pki.intermediate.pem
    )["CertificateArn"]
    ids["requested"] = acm.request_certificate(DomainName="issued.example.com")["CertificateArn"]

    sm = moto.client("secretsmanager")
    ids["db-password"] = sm.create_secret(Name="db-password", SecretString="hunter2-not-real")[
        "ARN"
    ]
    ids["api-token"] = sm.create_secret(Name="api-token", SecretString="token-value")["ARN"]
    sm.rotate_secret(
        SecretId="api-token", RotationRules={"AutomaticallyAfterDays": 30}, RotateImmediately=False
    )
    bundle = {"certificate": leaf.pem.decode(), "private_key": leaf.key_pem.decode()}
    ids["tls-bundle"] = sm.create_secret(Name="tls-bundle", SecretString=json.dumps(bundle))["ARN"]
    ids["key_pem"] = leaf.key_pem.decode()


def _seed_storage(moto: MotoServer, ids: dict[str, Any]) -> None:
    """S3 buckets, RDS instances and a cluster, EBS volumes: encrypted with ``static`` or not."""
    s3 = moto.client("s3")
    for name in ("plain", "sse-s3", "sse-kms"):
        s3.create_bucket(Bucket=name)
    s3.put_bucket_encryption(
        Bucket="sse-s3",
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_bucket_encryption(
        Bucket="sse-kms",
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": ids["static"],
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )

    rds = moto.client("rds")
    for name, encrypted in (("db-encrypted", True), ("db-clear", False)):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBInstanceClass="db.t3.micro",
            Engine="postgres",
            MasterUsername="admin",
            MasterUserPassword="not-a-real-password",
            AllocatedStorage=20,
            StorageEncrypted=encrypted,
            **({"KmsKeyId": ids["static"]} if encrypted else {}),
        )
    rds.create_db_cluster(
        DBClusterIdentifier="aurora",
        Engine="aurora-postgresql",
        MasterUsername="admin",
        MasterUserPassword="not-a-real-password",
        StorageEncrypted=True,
        KmsKeyId=ids["static"],
    )

    ec2 = moto.client("ec2")
    ids["vol-enc"] = ec2.create_volume(
        Size=1, AvailabilityZone="us-east-1a", Encrypted=True, KmsKeyId=ids["static"]
    )["VolumeId"]
    ids["vol-clear"] = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    ids["snap-clear"] = ec2.create_snapshot(VolumeId=ids["vol-clear"])["SnapshotId"]
    moto.client("ec2", "eu-west-1").enable_ebs_encryption_by_default()
