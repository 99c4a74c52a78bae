"""Findings for cloud keys, secrets and storage: pure functions, no emulator needed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from certscope.config import Policy, Waiver
from certscope.keypolicy import (
    SECRET_ROTATION_GRACE,
    key_findings,
    storage_findings,
)
from certscope.policy import CONTROLS, Rule
from certscope.results import SourceResult, StorageResource, StoredKey
from certscope.sources.aws.acm import renewal
from certscope.sources.aws.kms import key_bits, rotation_supported
from certscope.sources.aws.secretsmanager import interval_days, rotation_due

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def kms(**attrs: str) -> StoredKey:
    return StoredKey(kind="kms_key", location="arn:k", attributes=tuple(sorted(attrs.items())))


def secret(**attrs: str) -> StoredKey:
    return StoredKey(kind="secret", location="arn:s", attributes=tuple(sorted(attrs.items())))


def rules(findings: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(f.rule, f.severity) for f in findings]


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"rotation_enabled": "false", "state": "Enabled"}, [("kms_rotation_disabled", "warning")]),
        (
            {"rotation_enabled": "false", "state": "Disabled"},
            [("kms_rotation_disabled", "warning")],
        ),
        ({"rotation_enabled": "true", "state": "Enabled"}, []),
        ({"rotation_enabled": "unsupported", "state": "Enabled"}, []),
        ({"state": "Enabled"}, []),  # unknown rotation: no finding, the item error says why
        (
            {"state": "PendingDeletion", "pending_deletion": "true", "deletion_date": "2026-06-08"},
            [("kms_key_pending_deletion", "warning")],
        ),
    ],
)
def test_kms_findings(attrs: dict[str, str], expected: list[tuple[str, str]]) -> None:
    assert rules(key_findings(kms(**attrs), NOW)) == expected


def test_secret_rotation_disabled() -> None:
    got = key_findings(secret(rotation_enabled="false"), NOW)
    assert rules(got) == [("secret_rotation_disabled", "warning")]


def test_secret_rotation_overdue_only_after_the_grace() -> None:
    due = NOW - SECRET_ROTATION_GRACE
    on_time = secret(rotation_enabled="true", rotation_due=due.isoformat())
    assert key_findings(on_time, NOW) == []
    late = secret(rotation_enabled="true", rotation_due=(due - timedelta(seconds=1)).isoformat())
    assert rules(key_findings(late, NOW)) == [("secret_rotation_overdue", "warning")]
    assert timedelta(days=1) == SECRET_ROTATION_GRACE


def test_secret_without_due_date_is_not_judged() -> None:
    assert key_findings(secret(rotation_enabled="true"), NOW) == []


@pytest.mark.parametrize(
    ("kind", "encrypted", "expected"),
    [
        ("s3_bucket", False, [("storage_unencrypted", "critical")]),
        ("rds_instance", False, [("storage_unencrypted", "critical")]),
        ("rds_cluster", False, [("storage_unencrypted", "critical")]),
        ("ebs_volume", False, [("storage_unencrypted", "critical")]),
        ("ebs_snapshot", False, [("storage_unencrypted", "critical")]),
        ("ebs_default", False, [("storage_unencrypted", "warning")]),
        ("s3_bucket", True, []),
    ],
)
def test_storage_findings(kind: str, encrypted: bool, expected: list[tuple[str, str]]) -> None:
    assert rules(storage_findings(StorageResource(kind, "r", encrypted))) == expected


def test_controls() -> None:
    for rule in (
        Rule.KMS_ROTATION_DISABLED,
        Rule.KMS_KEY_PENDING_DELETION,
        Rule.SECRET_ROTATION_DISABLED,
        Rule.SECRET_ROTATION_OVERDUE,
        Rule.STORAGE_UNENCRYPTED,
    ):
        assert CONTROLS[rule] == "CC6.1"


def test_exceptions_waive_cloud_findings() -> None:
    from certscope.keypolicy import assess_cloud

    result = SourceResult(
        name="aws",
        kind="aws",
        labels=(),
        timestamp=0,
        duration=0,
        up=True,
        certs=(),
        errors=(),
        last_success=None,
        storage=(
            StorageResource("s3_bucket", "arn:aws:s3:::logs", False, source_kind="aws_s3"),
            StorageResource("s3_bucket", "arn:aws:s3:::data", False, source_kind="aws_s3"),
        ),
    )
    waiver = Waiver(
        target="aws",
        rule="storage_unencrypted",
        owner="platform",
        reason="public logs",
        expires=date(2099, 1, 1),
        location="arn:aws:s3:::logs",
    )
    got = {
        a.location: [(f.rule, f.active) for f in a.assessment.findings]
        for a in assess_cloud(result, (), Policy(exceptions=(waiver,)), NOW)
    }
    assert got == {
        "arn:aws:s3:::logs": [("storage_unencrypted", False)],
        "arn:aws:s3:::data": [("storage_unencrypted", True)],
    }


def test_secret_intervals_and_due_dates() -> None:
    assert interval_days({"AutomaticallyAfterDays": 30}) == 30
    assert interval_days({"ScheduleExpression": "rate(10 days)"}) == 10
    assert interval_days({"ScheduleExpression": "rate(12 hours)"}) == 0.5
    assert interval_days({"ScheduleExpression": "cron(0 16 1,15 * ? *)"}) is None
    last = datetime(2026, 1, 1, tzinfo=UTC)
    assert rotation_due({"LastRotatedDate": last}, 30) == last + timedelta(days=30)
    given = datetime(2026, 2, 1, tzinfo=UTC)
    assert rotation_due({"LastRotatedDate": last, "NextRotationDate": given}, 30) == given
    assert rotation_due({"CreatedDate": last}, None) is None


def test_kms_helpers_and_acm_renewal() -> None:
    assert key_bits("SYMMETRIC_DEFAULT") == 256
    assert key_bits("RSA_4096") == 4096
    assert key_bits("ECC_NIST_P384") == 384
    assert key_bits("HMAC_512") == 512
    assert rotation_supported({"KeySpec": "SYMMETRIC_DEFAULT", "Origin": "AWS_KMS"})
    assert not rotation_supported({"KeySpec": "SYMMETRIC_DEFAULT", "Origin": "EXTERNAL"})
    assert not rotation_supported({"KeySpec": "RSA_2048", "Origin": "AWS_KMS"})
    assert renewal({"Type": "IMPORTED", "RenewalEligibility": "ELIGIBLE"}) == "manual"
    assert renewal({"Type": "AMAZON_ISSUED", "RenewalEligibility": "ELIGIBLE"}) == "acm"
    assert renewal({"Type": "AMAZON_ISSUED", "RenewalEligibility": "INELIGIBLE"}) == "manual"
