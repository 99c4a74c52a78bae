"""AWS: KMS keys, ACM certificates, Secrets Manager secrets and encryption at rest (S3, RDS,
EBS), read through botocore with the standard credential chain. See :mod:`.reader`."""

from .reader import AwsReader

__all__ = ["AwsReader"]
