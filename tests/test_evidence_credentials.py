"""The credential sections of the evidence report against a real Prometheus.

Synthetic series (SSH authorized keys, host keys, KMS keys, secrets, storage, private keys,
revocation) are written as OpenMetrics, turned into blocks by ``promtool tsdb
create-blocks-from openmetrics`` and served by Prometheus; ``certscope evidence`` runs over two
6-hour periods at a 1-minute step: one with every kind of credential, and the day before it, when
the sources report but no credential series exists (nothing may pass there).
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from certscope.evidence import credentials
from certscope.evidence.model import Grid, Matrix, Run, iso, series_key
from helpers.promserver import Prometheus, binary, free_port


def _prometheus_major() -> int:
    out = subprocess.run(
        [binary("prometheus", "prometheus"), "--version"], capture_output=True, text=True
    )
    return int(re.search(r"version (\d+)\.", out.stdout + out.stderr).group(1))  # type: ignore[union-attr]


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


T0 = ts("2025-03-01T00:00:00")  # the period with credentials
EMPTY = ts("2025-02-28T00:00:00")  # the period without
HOURS = 3600.0
PERIOD = 6 * HOURS
JOB = 'job="certscope",instance="c1:9899"'
SSH = 'source_kind="ssh_authorized_keys",source="hosts"'
AWS = 'source_kind="aws",source="prod"'
KEY = 'kind="ssh_authorized_key",key_algorithm="ssh-ed25519",key_bits="256"'
ALICE = "/home/alice/.ssh/authorized_keys"
BOB = "/home/bob/.ssh/authorized_keys"
KMS = "arn:aws:kms:eu-west-1:111111111111:key/"
PROMETHEUS_2 = _prometheus_major() < 3
AWS_DOWN = (T0 + 5.5 * HOURS, T0 + 5.5 * HOURS + 600)


def _times(lo: float, hi: float) -> Iterator[float]:
    t = lo
    while t < hi:
        yield t
        t += 60


class Writer:
    """OpenMetrics text: each series' samples together and in time order."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[str, list[tuple[float, float]]]] = {}

    def gauge(self, name: str, labels: str, value: float, lo: float, hi: float) -> None:
        """``name{labels} value`` every minute in [lo, hi)."""
        series = self.samples.setdefault(name, {}).setdefault(
            ",".join(x for x in (JOB, labels) if x), []
        )
        series.extend((t, value) for t in _times(lo, hi))

    def text(self) -> str:
        out = []
        for name, by_labels in self.samples.items():
            out.append(f"# TYPE {name} gauge")
            for labels, samples in by_labels.items():
                out.extend(f"{name}{{{labels}}} {v:.17g} {t:.0f}" for t, v in sorted(samples))
        return "\n".join(out) + "\n# EOF\n"


def _sources(w: Writer, lo: float, hi: float) -> None:
    for day in (EMPTY, T0):  # both periods: the exporter, the sources and a TLS target report
        a, b = day - 600, day + PERIOD + 600
        w.gauge("up", "", 1, a, b)
        w.gauge("certscope_source_up", SSH, 1, a, b)
        w.gauge(
            "certscope_probe_success", 'source_kind="tls",source="web",location="old:443"', 1, a, b
        )
        if day == EMPTY:
            w.gauge("certscope_source_up", AWS, 1, a, b)
    w.gauge("certscope_source_up", AWS, 1, lo, AWS_DOWN[0])
    w.gauge("certscope_source_up", AWS, 0, AWS_DOWN[0], AWS_DOWN[1])
    w.gauge("certscope_source_up", AWS, 1, AWS_DOWN[1], hi)


def _ssh_authorized_keys(w: Writer, lo: float, hi: float) -> None:
    # Alice's key moves from line 1 to 2 when a new key is put above it; bob (departed) loses
    # his key at T0+2h; the key "dd" is added at T0+1h.
    old = ts("2024-01-01T00:00:00")
    for loc, sha, a, b, created in (
        (f"{ALICE}:1", "aa" * 32, lo, T0 + HOURS, old),
        (f"{ALICE}:2", "aa" * 32, T0 + HOURS, hi, old),
        (f"{ALICE}:1", "dd" * 32, T0 + HOURS, hi, T0 + HOURS),
        (f"{BOB}:1", "bb" * 32, lo, T0 + 2 * HOURS, old),
    ):
        owner = "departed" if loc.startswith(BOB) else "active"
        labels = f'{SSH},location="{loc}"'
        w.gauge(
            "certscope_key_info",
            f'{labels},{KEY},public_key_sha256="{sha}",account="x",owner_status="{owner}"',
            1,
            a,
            b,
        )
        w.gauge(
            "certscope_key_created_timestamp_seconds",
            f'{labels},kind="ssh_authorized_key"',
            created,
            a,
            b,
        )
    w.gauge(
        "certscope_policy_violation",
        f'{SSH},location="{BOB}:1",rule="ssh_key_departed_owner",severity="warning",'
        'control="CC6.1"',
        1,
        T0 + 1800,
        T0 + 2 * HOURS,
    )


def _ssh_host_keys(w: Writer, lo: float, hi: float) -> None:
    # The ed25519 key of bastion changes at T0+4h, its RSA key does not.
    bastion = 'source_kind="ssh",source="ssh",location="bastion:22"'
    w.gauge("certscope_probe_success", bastion, 1, lo, hi)
    for alg, fp, a, b in (
        ("ssh-ed25519", "SHA256:old", lo, T0 + 4 * HOURS),
        ("ssh-ed25519", "SHA256:new", T0 + 4 * HOURS, hi),
        ("rsa-sha2-512", "SHA256:rsa", lo, hi),
    ):
        w.gauge(
            "certscope_ssh_host_key_info",
            f'{bastion},algorithm="{alg}",bits="256",fingerprint_sha256="{fp}"',
            1,
            a,
            b,
        )


def _kms_and_secrets(w: Writer, lo: float, hi: float) -> None:
    # KMS keys: k1 rotates at T0+4.5h (seen at T0+5h); k2's rotation is off from T0+2h; k3's
    # status is never reported. A secret that does not rotate in the period.
    for k in ("k1", "k2", "k3"):
        w.gauge("certscope_kms_key_info", f'{AWS},location="{KMS}{k}",key_id="{k}"', 1, lo, hi)
    w.gauge("certscope_kms_key_rotation_enabled", f'{AWS},location="{KMS}k1"', 1, lo, hi)
    w.gauge("certscope_kms_key_rotation_enabled", f'{AWS},location="{KMS}k2"', 1, lo, T0 + 7200)
    w.gauge("certscope_kms_key_rotation_enabled", f'{AWS},location="{KMS}k2"', 0, T0 + 7200, hi)
    last = "certscope_kms_key_last_rotation_timestamp_seconds"
    w.gauge(last, f'{AWS},location="{KMS}k1"', ts("2024-12-01T00:00:00"), lo, T0 + 5 * HOURS)
    w.gauge(last, f'{AWS},location="{KMS}k1"', T0 + 4.5 * HOURS, T0 + 5 * HOURS, hi)
    secret = f'{AWS},location="arn:aws:secretsmanager:eu-west-1:1:secret:db"'
    w.gauge("certscope_secret_rotation_enabled", secret, 1, lo, hi)
    w.gauge("certscope_secret_last_rotated_timestamp_seconds", secret, ts("2025-02-01"), lo, hi)


def _storage(w: Writer, lo: float, hi: float) -> None:
    # b1 encrypted throughout, b2 not from T0+3h, db-1 unreported for 30 minutes.
    def store(kind: str, res: str) -> str:
        return f'{AWS},resource_kind="{kind}",resource="{res}",kms_key_id=""'

    enc = "certscope_storage_encryption_enabled"
    w.gauge(enc, store("s3_bucket", "b1"), 1, lo, hi)
    w.gauge(enc, store("s3_bucket", "b2"), 1, lo, T0 + 3 * HOURS)
    w.gauge(enc, store("s3_bucket", "b2"), 0, T0 + 3 * HOURS, hi)
    w.gauge(enc, store("rds_instance", "db-1"), 1, lo, T0 + HOURS)
    w.gauge(enc, store("rds_instance", "db-1"), 1, T0 + 1.5 * HOURS, hi)


def _private_keys(w: Writer, lo: float, hi: float) -> None:
    # a.key unencrypted (and flagged), b.key gone before the end; items unread.
    files = 'source_kind="files",source="etc"'
    for loc, encrypted, b in (("/etc/ssl/a.key", "false", hi), ("/etc/ssl/b.key", "true", T0)):
        w.gauge(
            "certscope_private_key_info",
            f'{files},location="{loc}",key_algorithm="EC",key_bits="256",'
            f'encrypted="{encrypted}",public_key_sha256="cc",certificate_location=""',
            1,
            lo,
            b,
        )
    w.gauge(
        "certscope_policy_violation",
        f'{files},location="/etc/ssl/a.key",rule="private_key_unencrypted",severity="warning",'
        'control="CC6.1"',
        1,
        lo,
        hi,
    )
    w.gauge("certscope_source_item_errors", f'{files},reason="permission_denied"', 2, lo, hi)


def _revocation(w: Writer, lo: float, hi: float) -> None:
    # Web revoked (and flagged), api's responder fails, old (above) unchecked.
    for loc, status in (("web:443", "revoked"), ("api:443", "error")):
        ep = f'source_kind="tls",source="web",location="{loc}"'
        w.gauge("certscope_probe_success", ep, 1, lo, hi)
        w.gauge(
            "certscope_cert_revocation_status", f'{ep},method="ocsp",status="{status}"', 1, lo, hi
        )
    w.gauge(
        "certscope_policy_violation",
        'source_kind="tls",source="web",location="web:443",rule="cert_revoked",'
        'severity="critical",control="CC6.1"',
        1,
        lo,
        hi,
    )


def _series() -> str:
    w = Writer()
    lo, hi = T0 - 600, T0 + PERIOD + 600
    for part in (
        _sources,
        _ssh_authorized_keys,
        _ssh_host_keys,
        _kms_and_secrets,
        _storage,
        _private_keys,
        _revocation,
    ):
        part(w, lo, hi)
    return w.text()


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("credentials")
    text = tmp / "series.om"
    text.write_text(_series())
    subprocess.run(
        [
            binary("promtool", "prometheus"),
            *("tsdb", "create-blocks-from", "openmetrics", str(text), str(tmp / "tsdb")),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = Prometheus(
        tmp,
        [f"127.0.0.1:{free_port()}"],  # nothing listens: the job exists, as in production
        interval="60s",
        extra_args=["--storage.tsdb.retention.time=30y"],
    )
    with server:
        yield server


def _report(prom: Prometheus, out: Path, start: float) -> dict[str, Any]:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "certscope.evidence.cli", "--prometheus.url", prom.url),
            *("--out", str(out), "--from", iso(start), "--to", iso(start + PERIOD)),
            *("--step", "1m", "--no-pdf", "--allow-partial"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads((out / "summary.json").read_text())
    data["_out"] = out
    return data


@pytest.fixture(scope="module")
def full(prom: Prometheus, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _report(prom, tmp_path_factory.mktemp("full") / "out", T0)


@pytest.fixture(scope="module")
def empty(prom: Prometheus, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _report(prom, tmp_path_factory.mktemp("empty") / "out", EMPTY)


def rows(report: dict[str, Any], name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((report["_out"] / name).read_text())))


def checks(report: dict[str, Any]) -> dict[str, str]:
    return {ch["id"]: ch["result"] for c in report["controls"].values() for ch in c["checks"]}


def at(offset: float, base: float = T0) -> str:
    return iso(base + offset)


#: Bob's last sample is at T0+2h-60s. The report's resolution is its step: Prometheus 2 range
#: selectors include their left end, so that sample is seen at one more step (up to 3.0).
REMOVED = at(7200) if PROMETHEUS_2 else at(7140)


def test_ssh_keys_added_removed_and_departed(full: dict[str, Any]) -> None:
    keys = {
        r["public_key_sha256"][:2]: (
            r["file"],
            r["location"],
            r["created"],
            r["added_in_period"],
            r["state"],
            r["removed_at"],
        )
        for r in rows(full, "ssh-keys.csv")
    }
    assert keys == {
        # one key although it moved from line 1 to line 2
        "aa": (ALICE, f"{ALICE}:2", "2024-01-01T00:00:00Z", "false", "present", ""),
        "dd": (ALICE, f"{ALICE}:1", at(HOURS), "true", "present", ""),
        "bb": (BOB, f"{BOB}:1", "2024-01-01T00:00:00Z", "false", "removed", REMOVED),
    }
    departed = [
        (r["location"], r["public_key_sha256"][:2], r["first_flagged"], r["removed_at"])
        for r in rows(full, "ssh-departed-keys.csv")
    ]
    assert departed == [(f"{BOB}:1", "bb", at(1800), REMOVED)]
    changes = [
        (r["algorithm"], r["fingerprint_sha256"], r["first_seen"])
        for r in rows(full, "ssh-host-key-changes.csv")
    ]
    html = (full["_out"] / "report.html").read_text()
    assert "2 authorized key(s) present at the end of the period; 1 added and 1 removed" in html
    assert "<th>removed_at</th>" in html and "<th>account</th>" not in html  # CSV-only column
    # the old key was present from the start; the RSA key did not change
    assert changes == [
        ("ssh-ed25519", "SHA256:old", at(0)),
        ("ssh-ed25519", "SHA256:new", at(4 * HOURS)),
    ]


def test_key_management_and_storage(full: dict[str, Any]) -> None:
    rot = {
        r["location"].rsplit("/", 1)[-1].rsplit(":", 1)[-1]: (
            r["kind"],
            r["status"],
            r["detail"],
            r["rotations"],
            r["rotated_at"],
        )
        for r in rows(full, "key-rotation.csv")
    }
    assert rot == {
        "k1": ("kms_key", "enabled_throughout", "", "1", at(4.5 * HOURS)),
        "k2": ("kms_key", "disabled_at_some_time", f"rotation off from {at(7200)}", "0", ""),
        "k3": ("kms_key", "unknown", "rotation status never reported", "0", ""),
        "db": ("secret", "enabled_throughout", "", "0", ""),
    }
    storage = {
        (r["resource"], r["status"], r["detail"]) for r in rows(full, "storage-encryption.csv")
    }
    assert storage == {
        ("b1", "enabled_throughout", ""),
        ("b2", "disabled_at_some_time", f"unencrypted from {at(3 * HOURS)}"),
        ("db-1", "unknown", f"not reported at {28 if PROMETHEUS_2 else 29} step(s) while present"),
    }
    # the AWS source was down for 10 minutes: neither check can pass, and none fails without a
    # finding
    result = checks(full)
    assert result["key_rotation"] == "insufficient_data"
    assert result["encryption_at_rest"] == "insufficient_data"
    html = (full["_out"] / "report.html").read_text()
    assert (
        f"Insufficient data: AWS source &#39;prod&#39; was not up at {8 if PROMETHEUS_2 else 9} of 360 step(s)"
        in html
    )


def test_private_keys_and_revocation(full: dict[str, Any]) -> None:
    keys = [(r["location"], r["encrypted"]) for r in rows(full, "private-keys.csv")]
    assert keys == [("/etc/ssl/a.key", "false")]  # b.key was gone before the end
    errors = [(r["source"], r["reason"], r["items"]) for r in rows(full, "source-item-errors.csv")]
    assert errors == [("etc", "permission_denied", "2")]
    revocation = [
        (r["location"], r["method"], r["status"], r["evidenced"])
        for r in rows(full, "revocation.csv")
    ]
    assert revocation == [
        ("api:443", "ocsp", "error", "false"),
        ("old:443", "", "absent", "false"),
        ("web:443", "ocsp", "revoked", "true"),
    ]
    result = checks(full)
    assert result["private_keys"] == "fail"
    assert result["certificates_not_revoked"] == "fail"
    assert result["ssh_authorized_keys"] == "fail"  # the departed owner's key
    assert result["ssh_host_keys"] == "pass"
    assert result["ssh_algorithms"] == "pass"
    html = (full["_out"] / "report.html").read_text()
    assert "files encrypted=false: 1" in html
    assert "private_key_unencrypted at /etc/ssl/a.key" in html
    assert full["credentials"] == {
        "private_keys_at_end": 1,
        "unencrypted_private_keys_at_end": 1,
        "sources_with_item_errors_at_end": 1,
        "ssh_keys_at_end": 2,
        "ssh_keys_added": 1,
        "ssh_keys_removed": 1,
        "ssh_keys_removal_unknown": 0,
        "departed_owner_keys_flagged": 1,
        "departed_owner_keys_not_removed": 0,
        "host_key_changes": 1,
        "rotation": {
            "kms_key": {"enabled_throughout": 1, "disabled_at_some_time": 1, "unknown": 1},
            "secret": {"enabled_throughout": 1},
        },
        "storage": {"enabled_throughout": 1, "disabled_at_some_time": 1, "unknown": 1},
        "aws_insufficient": [
            f"AWS source 'prod' was not up at {8 if PROMETHEUS_2 else 9} of 360 step(s)"
        ],
        "revoked_at_end": 1,
        "revocation_not_evidenced": 2,
    }
    manifest = json.loads((full["_out"] / "manifest.json").read_text())
    names = {f["name"] for f in manifest["files"]}
    # every file written (the credential CSVs read above among them) is hashed in the manifest
    written = {p.name for p in full["_out"].iterdir()} - {"manifest.json", "manifest.json.sha256"}
    assert names == written
    assert {"ssh-keys.csv", "key-rotation.csv", "revocation.csv"} <= written
    queries = {q["name"] for q in manifest["queries"]}
    assert {"ssh_keys", "kms_rotation", "storage_encryption", "revocation"} <= queries


def test_no_credential_data_is_never_a_pass(empty: dict[str, Any]) -> None:
    result = checks(empty)
    # the SSH and AWS sources reported, but no key, rotation or storage series: no evidence
    assert result["ssh_authorized_keys"] == "insufficient_data"
    assert result["key_rotation"] == "insufficient_data"
    assert result["encryption_at_rest"] == "insufficient_data"
    # nothing of these kinds is monitored at all: not applicable, never pass
    assert result["private_keys"] == "not_applicable"
    assert result["certificates_not_revoked"] == "not_applicable"
    assert result["ssh_host_keys"] == "not_applicable"
    for name in ("ssh-keys.csv", "key-rotation.csv", "storage-encryption.csv", "private-keys.csv"):
        assert rows(empty, name) == []
    # the TLS endpoint without a revocation status is not evidenced
    revocation = [
        (r["location"], r["status"], r["evidenced"]) for r in rows(empty, "revocation.csv")
    ]
    assert revocation == [("old:443", "absent", "false")]


def test_every_policy_rule_is_judged_by_its_own_control() -> None:
    """A rule the exporter reports lands in a named check of the control policy.py gives it."""
    from certscope import policy
    from certscope.evidence.controls import CONTROLS

    judged = {rule: c.id for c in CONTROLS for rule in c.rules}
    assert {r.value: judged.get(r.value) for r in policy.Rule} == {
        r.value: policy.CONTROLS[r] for r in policy.Rule
    }


def test_a_key_is_removed_only_when_its_source_reported_at_the_end() -> None:
    grid = Grid(T0, 60, 10)
    key = {"source_kind": "ssh_authorized_keys", "source": "hosts", "location": f"{BOB}:1"}
    gone = Matrix.of({series_key({**key, "public_key_sha256": "bb"}): [Run(0, 4, 1)]})
    assert [k.state for k in credentials.ssh_keys(grid, 120, {"ssh_keys": gone})] == ["unknown"]
    for up, state in ((0.0, "unknown"), (1.0, "removed")):
        source = Matrix.of(
            {series_key({"source_kind": "ssh_authorized_keys", "source": "hosts"}): [Run(0, 9, up)]}
        )
        keys = credentials.ssh_keys(grid, 120, {"ssh_keys": gone, "source_up": source})
        assert [(k.state, k.last_seen) for k in keys] == [(state, T0 + 5 * 60 - 60)]
