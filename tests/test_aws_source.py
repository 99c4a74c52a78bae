"""The ``aws`` source against a real AWS API emulator (``moto_server``, separate process).

One emulator per module, seeded through boto3 with the scenario below; the reader under test
talks to it through botocore exactly as it would talk to AWS (``endpoint_url``). Nothing in
the SDK is stubbed. A second emulator with IAM enforcement (moto's ``reset-auth``) shows
access denied for one service, rejected credentials and an assumed role.

Scenario (account 123456789012):

* KMS us-east-1: ``rotating`` (rotation on, rotated once on demand), ``static`` (rotation
  off, alias ``alias/app-data``), ``doomed`` (scheduled for deletion in 7 days), ``signing``
  (RSA_2048, cannot rotate); eu-west-1: ``eu`` (rotation on).
* ACM us-east-1: one imported certificate (our test CA) and one requested (issued by ACM).
* Secrets Manager us-east-1: ``db-password`` (no rotation), ``api-token`` (rotation every 30
  days), ``tls-bundle`` (a JSON value holding a PEM certificate and a private key).
* S3: ``plain`` (no default encryption), ``sse-s3`` (AES256), ``sse-kms`` (the static key,
  bucket key on).
* RDS us-east-1: ``db-encrypted`` and ``db-clear`` instances, ``aurora`` cluster (encrypted).
* EBS us-east-1: one encrypted and one clear volume, a snapshot of the clear one; default
  encryption on in eu-west-1 only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certscope.collector import render_once
from certscope.config import AwsSource, Policy, parse_config
from certscope.errors import ConfigError
from certscope.inventory import rows
from certscope.keypolicy import assess_cloud
from certscope.results import SourceResult
from certscope.sources import reader_for
from certscope.sources.aws import AwsReader
from helpers.aws_scenario import key_id, seed
from helpers.exporter import Exporter
from helpers.motoserver import MotoServer, aws_env
from helpers.pki import TestPKI

ACCOUNT = "123456789012"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def _aws_environment() -> Iterator[None]:
    """The reader's credential chain sees fake static keys and nothing of the host's."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            mp.delenv(name)
        for name, value in aws_env().items():
            if name.startswith("AWS_"):
                mp.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer.start(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ids(moto: MotoServer, pki: TestPKI) -> dict[str, Any]:
    return seed(moto, pki)


def one_source(text: str) -> AwsSource:
    source = parse_config(text, "test").sources[0]
    assert isinstance(source, AwsSource)
    return source


def aws_source(moto: MotoServer, extra: str = "") -> AwsSource:
    """The scenario's source; ``extra`` adds keys (a ``services:`` line replaces the default)."""
    services = (
        "" if "services:" in extra else "    services: [kms, acm, secretsmanager, s3, rds, ebs]\n"
    )
    text = (
        "sources:\n"
        "  - name: aws-prod\n"
        "    kind: aws\n"
        "    regions: [us-east-1, eu-west-1]\n"
        f"{services}"
        f"    endpoint_url: {moto.url}\n"
        "    labels: {environment: production}\n" + extra
    )
    return one_source(text)


@pytest.fixture(scope="module")
def result(moto: MotoServer, ids: dict[str, Any]) -> SourceResult:
    reader = AwsReader(aws_source(moto, "    secret_certificates: true\n"))
    return asyncio.run(reader.refresh(None))


def keys_of(result: SourceResult, kind: str) -> dict[str, dict[str, str]]:
    return {k.location: dict(k.attributes) for k in result.keys if k.kind == kind}


# --- configuration -----------------------------------------------------------------------------


def test_config_accepts_the_documented_example() -> None:
    text = """
sources:
  - name: aws-prod
    kind: aws
    regions: [us-east-1, eu-west-1]
    services: [kms, acm, secretsmanager, s3, rds, ebs]   # default: all
    endpoint_url: http://127.0.0.1:5000                # optional, for tests and private endpoints
    assume_role_arn: arn:aws:iam::123456789012:role/certscope   # optional
    labels: {environment: production}
"""
    (source,) = parse_config(text, "t").sources
    assert isinstance(source, AwsSource)
    assert source.regions == ("us-east-1", "eu-west-1")
    assert source.assume_role_arn == "arn:aws:iam::123456789012:role/certscope"
    assert source.labels == (("environment", "production"),)
    assert source.service_interval("kms") == 3600 and source.service_interval("s3") == 3600
    assert source.service_interval("acm") == 300  # the source's interval
    assert isinstance(reader_for(source), AwsReader)


def test_config_defaults_and_service_intervals() -> None:
    text = (
        "sources:\n  - {name: a, kind: aws, regions: [us-east-1], interval: 10m,"
        " intervals: {kms: 2h, ebs: 30m, acm: 1m}}\n"
    )
    (source,) = parse_config(text, "t").sources
    assert isinstance(source, AwsSource)
    assert source.services == ("kms", "acm", "secretsmanager", "s3", "rds", "ebs")
    assert source.service_interval("kms") == 7200
    assert source.service_interval("ebs") == 1800
    assert source.service_interval("s3") == 3600
    assert source.service_interval("acm") == 600  # never more often than the source refreshes


def test_config_errors_have_locations() -> None:
    text = """
sources:
  - name: a
    kind: aws
    regions: [us-east-1, Mars-1, us-east-1]
    services: [kms, dynamodb]
    endpoint_url: ftp://x
    assume_role_arn: arn:aws:iam::1234:user/me
    intervals: {kms: soon, lambda: 1h}
    concurrency: 0
    labels: {state: on}
  - {name: b, kind: aws, external_id: x}
  - {name: c, kind: aws, regions: [], assume_role_arn: "arn:aws:iam::123456789012:role/r",
     external_id: e, secret_certificates: yes-please}
"""
    with pytest.raises(ConfigError) as err:
        parse_config(text, "t")
    where = {p.location for p in err.value.problems}
    assert where == {
        "sources[0].regions[1]",
        "sources[0].regions",
        "sources[0].services",
        "sources[0].endpoint_url",
        "sources[0].assume_role_arn",
        "sources[1].external_id",
        "sources[0].intervals.kms",
        "sources[0].intervals.lambda",
        "sources[0].concurrency",
        "sources[0].labels.state",
        "sources[1].regions",
        "sources[2].regions",
        "sources[2].secret_certificates",
    }


# --- the reader against the emulator ------------------------------------------------------------


def test_source_is_up_and_reports_only_expected_errors(result: SourceResult) -> None:
    assert result.up and result.error == ""
    # moto does not implement GetEbsDefaultKmsKeyId: the default's key is unknown, said so.
    assert {(e.location, e.reason) for e in result.errors} == {
        ("ebs/us-east-1", "bad_response"),
        ("ebs/eu-west-1", "bad_response"),
    }
    assert all("GetEbsDefaultKmsKeyId" in e.message for e in result.errors)


def test_kms_keys(result: SourceResult, ids: dict[str, Any]) -> None:
    keys = keys_of(result, "kms_key")
    assert set(keys) == {ids["rotating"], ids["static"], ids["doomed"], ids["signing"], ids["eu"]}
    rotating = keys[ids["rotating"]]
    assert rotating["rotation_enabled"] == "true"
    assert rotating["rotation_period_days"] == "365"
    assert rotating["rotations"] == "1" and rotating["last_rotation"].endswith("Z")
    assert keys[ids["static"]]["rotation_enabled"] == "false"
    assert keys[ids["static"]]["alias"] == "alias/app-data"
    assert keys[ids["doomed"]]["state"] == "PendingDeletion"
    assert keys[ids["doomed"]]["pending_deletion"] == "true"
    assert "rotation_enabled" not in keys[ids["doomed"]]  # unknown, not assumed
    assert keys[ids["signing"]]["rotation_enabled"] == "unsupported"
    assert keys[ids["eu"]]["region"] == "eu-west-1"
    doomed = next(k for k in result.keys if k.location == ids["doomed"])
    assert doomed.not_after is not None
    assert 6.9 * 86400 < doomed.not_after - datetime.now(UTC).timestamp() < 7.1 * 86400
    signing = next(k for k in result.keys if k.location == ids["signing"])
    assert (signing.algorithm, signing.bits, signing.source_kind) == ("RSA_2048", 2048, "aws_kms")


def test_acm_certificates_are_ordinary_stored_certificates(
    result: SourceResult, ids: dict[str, Any]
) -> None:
    by_location: dict[str, list[Any]] = {}
    for c in result.certs:
        by_location.setdefault(c.location, []).append(c)
    imported = sorted(by_location[ids["imported"]], key=lambda c: c.position)
    # the leaf, then the chain it was imported with (moto appends a root of its own)
    assert [c.position for c in imported] == list(range(len(imported)))
    assert imported[1].facts.subject_cn == imported[0].facts.issuer_cn
    assert imported[0].facts.subject_cn == "imported.test"
    assert imported[0].source_kind == "aws_acm"
    assert dict(imported[0].labels) == {"renewal": "manual"}
    facts = dict(imported[0].attributes)
    assert facts["certificate_type"] == "IMPORTED" and facts["certificate_status"] == "ISSUED"
    assert facts["in_use_by"] == "0"
    requested = by_location[ids["requested"]]
    assert requested[0].facts.subject_cn == "issued.example.com"
    assert dict(requested[0].attributes)["certificate_type"] == "AMAZON_ISSUED"


def test_secrets(result: SourceResult, ids: dict[str, Any]) -> None:
    secrets = keys_of(result, "secret")
    assert set(secrets) == {ids["db-password"], ids["api-token"], ids["tls-bundle"]}
    assert secrets[ids["db-password"]]["rotation_enabled"] == "false"
    token = secrets[ids["api-token"]]
    assert token["rotation_enabled"] == "true" and token["rotation_interval_days"] == "30"
    due = datetime.fromisoformat(token["rotation_due"])
    assert timedelta(days=29) < due - datetime.now(UTC) <= timedelta(days=30)


def test_secret_values_give_certificates_and_nothing_else(
    result: SourceResult, ids: dict[str, Any]
) -> None:
    (cert,) = [c for c in result.certs if c.location == f"{ids['tls-bundle']}#certificate"]
    assert cert.facts.subject_cn == "imported.test" and cert.source_kind == "aws_secretsmanager"
    text = repr(result)
    body = ids["key_pem"].splitlines()[1]
    assert body not in text and "hunter2-not-real" not in text and "token-value" not in text


def test_storage_encryption(result: SourceResult, ids: dict[str, Any]) -> None:
    got = {(s.resource_kind, s.resource): s for s in result.storage}
    region = f"arn:aws:ec2:us-east-1:{ACCOUNT}"
    expected = {
        ("s3_bucket", "arn:aws:s3:::plain"): False,
        ("s3_bucket", "arn:aws:s3:::sse-s3"): True,
        ("s3_bucket", "arn:aws:s3:::sse-kms"): True,
        ("rds_instance", f"arn:aws:rds:us-east-1:{ACCOUNT}:db:db-encrypted"): True,
        ("rds_instance", f"arn:aws:rds:us-east-1:{ACCOUNT}:db:db-clear"): False,
        ("rds_cluster", f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:aurora"): True,
        ("ebs_volume", f"{region}:volume/{ids['vol-enc']}"): True,
        ("ebs_volume", f"{region}:volume/{ids['vol-clear']}"): False,
        ("ebs_snapshot", f"arn:aws:ec2:us-east-1::snapshot/{ids['snap-clear']}"): False,
        ("ebs_default", "us-east-1"): False,
        ("ebs_default", "eu-west-1"): True,
    }
    assert {k: v.encrypted for k, v in got.items()} == expected
    kms_bucket = dict(got[("s3_bucket", "arn:aws:s3:::sse-kms")].attributes)
    assert kms_bucket == {
        "algorithm": "aws:kms",
        "bucket_key": "true",
        "key_manager": "customer",
        "region": "us-east-1",
    }
    assert dict(got[("s3_bucket", "arn:aws:s3:::sse-s3")].attributes)["algorithm"] == "AES256"
    assert got[("ebs_volume", f"{region}:volume/{ids['vol-enc']}")].kms_key_id == ids["static"]


def test_metrics(result: SourceResult, ids: dict[str, Any]) -> None:
    text = render_once([result])
    base = 'source="aws-prod",location="{}",environment="production"'

    def line(family: str, kind: str, location: str, value: str) -> str:
        return f'{family}{{source_kind="{kind}",{base.format(location)}}} {value}\n'

    assert line("certscope_kms_key_rotation_enabled", "aws_kms", ids["rotating"], "1") in text
    assert line("certscope_kms_key_rotation_enabled", "aws_kms", ids["static"], "0") in text
    assert (
        f'certscope_kms_key_rotation_enabled{{source_kind="aws_kms",source="aws-prod",location="{ids["signing"]}"'
        not in text
    )
    assert (
        line("certscope_kms_key_rotation_period_seconds", "aws_kms", ids["rotating"], "31536000")
        in text
    )
    assert (
        f'certscope_kms_key_deletion_timestamp_seconds{{source_kind="aws_kms",{base.format(ids["doomed"])}}}'
        in text
    )
    assert (
        f'certscope_kms_key_last_rotation_timestamp_seconds{{source_kind="aws_kms",{base.format(ids["rotating"])}}}'
        in text
    )
    key_id = ids["static"].rsplit("/", 1)[1]
    assert (
        f'certscope_kms_key_info{{source_kind="aws_kms",{base.format(ids["static"])},'
        f'key_id="{key_id}",alias="alias/app-data",key_spec="SYMMETRIC_DEFAULT",'
        'key_usage="ENCRYPT_DECRYPT",origin="AWS_KMS",state="Enabled"} 1\n'
    ) in text
    assert (
        line("certscope_secret_rotation_enabled", "aws_secretsmanager", ids["api-token"], "1")
        in text
    )
    assert (
        line("certscope_secret_rotation_enabled", "aws_secretsmanager", ids["db-password"], "0")
        in text
    )
    assert (
        line(
            "certscope_secret_rotation_interval_seconds",
            "aws_secretsmanager",
            ids["api-token"],
            "2592000",
        )
        in text
    )
    assert (
        'certscope_storage_encryption_enabled{source_kind="aws_s3",source="aws-prod",'
        'resource_kind="s3_bucket",resource="arn:aws:s3:::plain",kms_key_id="",'
        'environment="production"} 0\n'
    ) in text
    assert (
        'certscope_storage_encryption_enabled{source_kind="aws_ebs",source="aws-prod",'
        'resource_kind="ebs_default",resource="eu-west-1",kms_key_id="",'
        'environment="production"} 1\n'
    ) in text
    assert (
        'certscope_cert_not_after_timestamp_seconds{source_kind="aws_acm",source="aws-prod",'
        f'location="{ids["imported"]}",environment="production",chain_position="0",'
        'subject_cn="imported.test"'
    ) in text
    assert (
        f'certscope_acm_certificate_info{{source_kind="aws_acm",{base.format(ids["imported"])},'
        'certificate_type="IMPORTED",certificate_status="ISSUED",'
        'renewal_eligibility="INELIGIBLE"} 1\n'
    ) in text
    assert line("certscope_acm_certificate_in_use_by", "aws_acm", ids["imported"], "0") in text
    assert (
        'certscope_s3_bucket_encryption_info{source_kind="aws_s3",source="aws-prod",'
        'resource_kind="s3_bucket",resource="arn:aws:s3:::sse-kms",sse_algorithm="aws:kms",'
        'bucket_key="true",key_manager="customer",environment="production"} 1\n'
    ) in text
    assert (
        'certscope_source_item_errors{source_kind="aws",source="aws-prod",environment="production",reason="bad_response"} 2\n'
        in text
    )


def test_findings(result: SourceResult, ids: dict[str, Any]) -> None:
    found = {
        (a.source_kind, a.location, f.rule, f.severity, f.control)
        for a in assess_cloud(result, result.labels, Policy(), datetime.now(UTC))
        for f in a.assessment.findings
    }
    region = f"arn:aws:ec2:us-east-1:{ACCOUNT}"
    assert found == {
        ("aws_kms", ids["static"], "kms_rotation_disabled", "warning", "CC6.1"),
        ("aws_kms", ids["doomed"], "kms_key_pending_deletion", "warning", "CC6.1"),
        ("aws_secretsmanager", ids["db-password"], "secret_rotation_disabled", "warning", "CC6.1"),
        ("aws_secretsmanager", ids["tls-bundle"], "secret_rotation_disabled", "warning", "CC6.1"),
        ("aws_s3", "arn:aws:s3:::plain", "storage_unencrypted", "critical", "CC6.1"),
        (
            "aws_rds",
            f"arn:aws:rds:us-east-1:{ACCOUNT}:db:db-clear",
            "storage_unencrypted",
            "critical",
            "CC6.1",
        ),
        (
            "aws_ebs",
            f"{region}:volume/{ids['vol-clear']}",
            "storage_unencrypted",
            "critical",
            "CC6.1",
        ),
        (
            "aws_ebs",
            f"arn:aws:ec2:us-east-1::snapshot/{ids['snap-clear']}",
            "storage_unencrypted",
            "critical",
            "CC6.1",
        ),
        ("aws_ebs", "us-east-1", "storage_unencrypted", "warning", "CC6.1"),
    }


def test_inventory_rows(result: SourceResult, ids: dict[str, Any]) -> None:
    table = list(rows([], [result], datetime.now(UTC)))
    by = {(r["kind"], r["location"], r["chain_position"]): r for r in table}
    kms = by[("kms_key", ids["static"], None)]
    assert kms["source_kind"] == "aws_kms" and kms["environment"] == "production"
    assert kms["attributes"]["rotation_enabled"] == "false"
    secret = by[("secret", ids["api-token"], None)]
    assert secret["source_kind"] == "aws_secretsmanager"
    assert secret["attributes"]["rotation_interval_days"] == "30"
    cert = by[("certificate", ids["imported"], 0)]
    assert cert["source_kind"] == "aws_acm" and cert["renewal"] == "manual"
    assert cert["attributes"]["certificate_type"] == "IMPORTED"
    assert {r["kind"] for r in table} == {"certificate", "kms_key", "secret", "error"}
    # every item error (moto lacks GetEbsDefaultKmsKeyId) is an error row at its place
    assert {r["location"] for r in table if r["kind"] == "error"} == {
        e.location for e in result.errors
    }


async def test_service_intervals_reuse_parts(moto: MotoServer, ids: dict[str, Any]) -> None:
    """KMS (1 h by default) is not read again on the next refresh; Secrets Manager (the
    source's interval, here 1 s) is."""
    source = aws_source(moto, "    interval: 1s\n    services: [kms, secretsmanager]\n")
    reader = AwsReader(source)
    first = await reader.refresh(None)
    kms = moto.client("kms")
    new_key = kms.create_key()["KeyMetadata"]["Arn"]
    new_secret = moto.client("secretsmanager").create_secret(Name="late", SecretString="x")["ARN"]
    try:
        await asyncio.sleep(1.0)  # Secrets Manager is due again after the source's 1 s
        second = await reader.refresh(first)
        locations = {k.location for k in second.keys}
        assert new_secret in locations and new_key not in locations
        assert {k.location for k in first.keys if k.kind == "kms_key"} <= locations
    finally:
        kms.schedule_key_deletion(KeyId=key_id(new_key), PendingWindowInDays=7)
        moto.client("secretsmanager").delete_secret(
            SecretId=new_secret, ForceDeleteWithoutRecovery=True
        )


async def test_unreachable_endpoint_is_the_source_down() -> None:
    from helpers.promserver import free_port

    text = (
        "sources:\n  - {name: gone, kind: aws, regions: [us-east-1], max_attempts: 1, timeout: 2s,"
        f" endpoint_url: 'http://127.0.0.1:{free_port()}'}}\n"
    )
    source = one_source(text)
    got = await AwsReader(source).refresh(None)
    assert not got.up and got.error_reason == "unreachable"
    assert "GetCallerIdentity" in got.error


async def test_no_credentials_is_auth_failed(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    source = aws_source(moto, "    max_attempts: 1\n")
    got = await AwsReader(source).refresh(None)
    assert not got.up and got.error_reason == "auth_failed"
    assert "no AWS credentials" in got.error


# --- IAM enforced: access denied, rejected credentials, an assumed role -------------------------


READ_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
NO_KMS = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "kms:*", "Resource": "*"},
    ],
}


def documented_policy(drop: str = "") -> dict[str, Any]:
    """The IAM policy of docs/aws-iam-policy.md (its first JSON block), less ``drop``."""
    text = (ROOT / "docs" / "aws-iam-policy.md").read_text()
    policy: dict[str, Any] = json.loads(text.split("```json\n", 1)[1].split("```", 1)[0])
    for statement in policy["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != drop]
    return policy


@pytest.fixture(scope="module")
def iam_moto(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MotoServer, dict[str, Any]]]:
    """An emulator that authorises with IAM: ``no-kms`` may do anything but KMS; ``hopper``
    may only assume ``certscope-reader``, a role that may read everything."""
    server = MotoServer.start(tmp_path_factory.mktemp("moto-iam"))
    try:
        iam = server.client("iam")
        users: dict[str, Any] = {}
        for name, policy in (
            ("no-kms", NO_KMS),
            ("hopper", None),
            ("flaky", NO_KMS),
            ("admin", READ_ALL),
            ("documented", documented_policy()),
            ("documented-less", documented_policy(drop="kms:ListKeyRotations")),
        ):
            iam.create_user(UserName=name)
            if policy is not None:
                iam.put_user_policy(
                    UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy)
                )
            users[name] = iam.create_access_key(UserName=name)["AccessKey"]
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
            ],
        }
        role = iam.create_role(
            RoleName="certscope-reader", AssumeRolePolicyDocument=json.dumps(trust)
        )
        iam.put_role_policy(
            RoleName="certscope-reader", PolicyName="read", PolicyDocument=json.dumps(READ_ALL)
        )
        assume = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
        }
        iam.put_user_policy(UserName="hopper", PolicyName="hop", PolicyDocument=json.dumps(assume))
        users["role"] = role["Role"]["Arn"]
        rotating = server.client("kms").create_key()["KeyMetadata"]["KeyId"]
        server.client("kms").enable_key_rotation(KeyId=rotating)
        server.client("acm").request_certificate(DomainName="seen.example.com")
        server.client("s3").create_bucket(Bucket="seen")
        server.client("secretsmanager").create_secret(Name="s", SecretString="x")
        server.enforce_iam()
        yield server, users
    finally:
        server.stop()


async def read_as(
    monkeypatch: pytest.MonkeyPatch, server: MotoServer, key: dict[str, Any], extra: str = ""
) -> SourceResult:
    """One refresh of a one-region source with ``key``'s credentials (``extra``: more keys)."""
    return await iam_reader(monkeypatch, server, key, extra).refresh(None)


def iam_reader(
    monkeypatch: pytest.MonkeyPatch, server: MotoServer, key: dict[str, Any], extra: str = ""
) -> AwsReader:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    text = (
        "sources:\n  - {name: a, kind: aws, regions: [us-east-1], max_attempts: 1,"
        f" endpoint_url: '{server.url}'{extra}}}\n"
    )
    return AwsReader(one_source(text))


async def test_access_denied_for_one_service_is_an_item_error(
    iam_moto: tuple[MotoServer, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, users = iam_moto
    got = await read_as(
        monkeypatch, server, users["no-kms"], ", services: [kms, s3, secretsmanager]"
    )
    assert got.up
    assert [(e.location, e.reason) for e in got.errors] == [("kms/us-east-1", "access_denied")]
    assert "kms:ListKeys" in got.errors[0].message
    assert [k.kind for k in got.keys] == ["secret"]  # no KMS key: absent, not assumed
    assert [s.resource for s in got.storage] == ["arn:aws:s3:::seen"]
    text_out = render_once([got])
    assert (
        'certscope_source_item_errors{source_kind="aws",source="a",reason="access_denied"} 1'
        in text_out
    )
    assert "certscope_kms_key_info" not in text_out


async def test_rejected_credentials_are_the_source_down(
    iam_moto: tuple[MotoServer, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = iam_moto
    unknown = {"AccessKeyId": "AKIAUNKNOWNUNKNOWN00", "SecretAccessKey": "nope"}
    got = await read_as(monkeypatch, server, unknown)
    assert not got.up and got.error_reason == "auth_failed"
    assert "nope" not in got.error


async def test_assume_role(
    iam_moto: tuple[MotoServer, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hopper`` may do nothing but assume the role; everything read proves the role was used."""
    server, users = iam_moto
    services = ", services: [kms, s3]"
    denied = await read_as(monkeypatch, server, users["hopper"], services)
    assert {e.reason for e in denied.errors} == {"access_denied"}
    role = f"{services}, assume_role_arn: '{users['role']}'"
    got = await read_as(monkeypatch, server, users["hopper"], role)
    assert got.up and got.errors == ()
    assert len(got.keys) == 1 and [s.resource for s in got.storage] == ["arn:aws:s3:::seen"]


# --- end to end ----------------------------------------------------------------------------------


def test_exporter_end_to_end(
    moto: MotoServer, ids: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "certscope.yml"
    config.write_text(
        "sources:\n"
        "  - name: aws-prod\n"
        "    kind: aws\n"
        "    regions: [us-east-1]\n"
        f"    endpoint_url: {moto.url}\n"
        "    labels: {environment: production}\n"
    )
    for name, value in aws_env().items():
        monkeypatch.setenv(name, value)
    with Exporter(config, tmp_path / "exporter.log") as exporter:
        with urllib.request.urlopen(f"{exporter.url}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        with urllib.request.urlopen(f"{exporter.url}/inventory", timeout=10) as r:
            inventory = json.load(r)
    assert (
        'certscope_source_up{source_kind="aws",source="aws-prod",environment="production"} 1'
        in metrics
    )
    assert (
        f'certscope_kms_key_rotation_enabled{{source_kind="aws_kms",source="aws-prod",location="{ids["static"]}",environment="production"}} 0'
        in metrics
    )
    assert (
        'certscope_policy_violation{source_kind="aws_s3",source="aws-prod",'
        'location="arn:aws:s3:::plain",environment="production",rule="storage_unencrypted",'
        'severity="critical",control="CC6.1"} 1'
    ) in metrics
    items = inventory["items"] if isinstance(inventory, dict) else inventory
    kinds = {(i["kind"], i["source_kind"]) for i in items}
    assert {
        ("kms_key", "aws_kms"),
        ("secret", "aws_secretsmanager"),
        ("certificate", "aws_acm"),
    } <= kinds


async def test_listings_are_capped(
    moto: MotoServer, ids: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from certscope.sources.aws import client

    monkeypatch.setattr(client, "MAX_ITEMS", 2)
    got = await AwsReader(aws_source(moto, "    services: [s3]\n")).refresh(None)
    assert len(got.storage) == 2
    assert [(e.location, e.reason) for e in got.errors] == [("s3/global", "too_many_items")]
    assert "s3:ListBuckets: more than 2 items" in got.errors[0].message


async def test_debug_logging_shows_no_secret(
    moto: MotoServer, ids: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """``--log.level debug`` sets the root logger to DEBUG; botocore, which logs response
    bodies (secret values) there, stays at WARNING. The first read shows the leak is real
    when botocore is let through, so the second read's silence means something."""
    caplog.set_level(logging.DEBUG)
    source = aws_source(moto, "    services: [secretsmanager]\n    secret_certificates: true\n")
    botocore_log = logging.getLogger("botocore")
    assert botocore_log.level == logging.WARNING
    botocore_log.setLevel(logging.DEBUG)
    try:
        await AwsReader(source).refresh(None)
    finally:
        botocore_log.setLevel(logging.WARNING)
    assert "hunter2-not-real" in caplog.text
    caplog.clear()
    got = await AwsReader(source).refresh(None)
    assert got.up and any(c.location.startswith(ids["tls-bundle"]) for c in got.certs)
    for secret in ("hunter2-not-real", "token-value", ids["key_pem"].splitlines()[1]):
        assert secret not in caplog.text


async def test_failed_part_is_retried_and_others_stay_cached(
    iam_moto: tuple[MotoServer, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """KMS denied, S3 read: at the next refresh KMS (failed) is read again although its interval
    (1 h) has not passed, while S3 (1 h, read) comes from the cache."""
    server, users = iam_moto
    reader = iam_reader(monkeypatch, server, users["flaky"], ", interval: 1s, services: [kms, s3]")
    first = await reader.refresh(None)
    assert [(e.location, e.reason) for e in first.errors] == [("kms/us-east-1", "access_denied")]
    admin = users["admin"]
    creds = {"key": admin["AccessKeyId"], "secret": admin["SecretAccessKey"]}
    server.client("iam", **creds).put_user_policy(
        UserName="flaky", PolicyName="p", PolicyDocument=json.dumps(READ_ALL)
    )
    server.client("s3", **creds).create_bucket(Bucket="late")
    second = await reader.refresh(first)
    assert second.errors == ()
    assert [k.kind for k in second.keys] == ["kms_key"]
    assert [s.resource for s in second.storage] == ["arn:aws:s3:::seen"]  # cached, not re-read


async def test_the_documented_iam_policy_is_enough(
    iam_moto: tuple[MotoServer, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user with exactly the policy of docs/aws-iam-policy.md reads every service without a
    denial; without one of its actions, the denial shows. S3 is left out: moto authorises S3
    requests under the API's name (s3:GetBucketEncryption) where IAM uses
    s3:GetEncryptionConfiguration, the action the document names."""
    server, users = iam_moto
    services = ", services: [kms, acm, secretsmanager, rds, ebs]"
    got = await read_as(monkeypatch, server, users["documented"], services)
    assert got.up
    assert {e.reason for e in got.errors} <= {"bad_response"}  # GetEbsDefaultKmsKeyId: moto
    assert {k.kind for k in got.keys} == {"kms_key", "secret"}
    assert any(c.source_kind == "aws_acm" for c in got.certs)
    (key,) = [k for k in got.keys if k.kind == "kms_key"]
    assert dict(key.attributes)["rotation_enabled"] == "true"
    less = await read_as(monkeypatch, server, users["documented-less"], services)
    denied = [e.message for e in less.errors if e.reason == "access_denied"]
    assert len(denied) == 1 and denied[0].startswith("kms:ListKeyRotations: ")
