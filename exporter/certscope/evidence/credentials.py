"""Evidence of the credentials beyond certificates: private keys, SSH keys, KMS keys, secrets,
encryption at rest and revocation.

The series are range queries of the report's plan (:func:`queries`, fetched with the others,
so they are chunked, retried and listed in the manifest), and :func:`build` turns their runs
into tables. Times have the resolution of the report's step: a series present at step ``k`` was
sampled in the window ``(time(k) - window, time(k)]``; "last seen" is the latest time the last
sample can have been taken (as for findings), "first seen" the step where it first showed.

Missing data is never a pass: a key whose rotation status was not reported at some time of its
presence is ``unknown``, not ``enabled_throughout``; a key absent at the end of the period is
``removed`` only when its source still reported keys at the end, else ``unknown``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .model import Grid, Matrix, Run, iso, promql_duration, value_at

SSH_SOURCE = "ssh_authorized_keys"
DEPARTED_RULE = "ssh_key_departed_owner"
_LINE = re.compile(r":\d+$")

# status strings (stable: they appear in the CSV files)
ENABLED_THROUGHOUT = "enabled_throughout"
DISABLED_AT_SOME_TIME = "disabled_at_some_time"
UNKNOWN = "unknown"
PRESENT = "present"
REMOVED = "removed"


def _quote(value: str) -> str:
    """A PromQL string literal, as :func:`.query.quote` (which imports this module)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def queries(job_regex: str, window: float) -> list[tuple[str, str, str]]:
    """(name, PromQL, purpose) of each range query this module reads."""
    job = f"job=~{_quote(job_regex)}"
    w = promql_duration(window)

    def series(metric: str, extra: str = "", fn: str = "last_over_time", agg: str = "max") -> str:
        sel = f"{job}, {extra}" if extra else job
        return f"{agg} without (job, instance) ({fn}({metric}{{{sel}}}[{w}]))"

    ssh = f"source_kind={_quote(SSH_SOURCE)}"
    return [
        ("private_keys", series("certscope_private_key_info"), "private keys found in stores"),
        (
            "source_item_errors",
            "max by (source_kind, source, reason) "
            f"(last_over_time(certscope_source_item_errors{{{job}}}[{w}])) > 0",
            "items a source could not read (its inventory is incomplete)",
        ),
        ("ssh_keys", series("certscope_key_info", ssh), "SSH authorized keys"),
        (
            "ssh_key_created",
            series("certscope_key_created_timestamp_seconds", ssh),
            "when certscope first saw each SSH authorized key",
        ),
        ("ssh_host_keys", series("certscope_ssh_host_key_info"), "SSH servers' host keys"),
        ("kms_keys", series("certscope_kms_key_info"), "customer-managed KMS keys"),
        (
            "kms_rotation",
            series("certscope_kms_key_rotation_enabled", fn="min_over_time", agg="min"),
            "KMS automatic rotation: 1 on throughout the window, 0 off at some time",
        ),
        (
            "kms_last_rotation",
            series("certscope_kms_key_last_rotation_timestamp_seconds"),
            "the latest rotation of each KMS key (a new value is a rotation)",
        ),
        (
            "secret_rotation",
            series("certscope_secret_rotation_enabled", fn="min_over_time", agg="min"),
            "Secrets Manager rotation: 1 on throughout the window, 0 off at some time",
        ),
        (
            "secret_last_rotated",
            series("certscope_secret_last_rotated_timestamp_seconds"),
            "the latest rotation of each secret (a new value is a rotation)",
        ),
        (
            "storage_encryption",
            series("certscope_storage_encryption_enabled", fn="min_over_time", agg="min"),
            "encryption at rest per resource: 1 throughout the window, 0 off at some time",
        ),
        (
            "revocation",
            series("certscope_cert_revocation_status"),
            "OCSP/CRL status of each endpoint's leaf",
        ),
    ]


# --- the tables ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrivateKey:
    source_kind: str
    source: str
    location: str
    algorithm: str
    bits: str
    encrypted: str
    certificate_location: str


@dataclass(frozen=True)
class ItemErrors:
    source_kind: str
    source: str
    reason: str
    items: int


@dataclass(frozen=True)
class SshKey:
    source: str
    file: str
    location: str  # the last location seen (file:line)
    public_key_sha256: str
    algorithm: str
    bits: str
    account: str
    owner_status: str
    created: float | None
    first_seen: float
    last_seen: float
    state: str  # present, removed, unknown (the source did not report at the end)
    added_in_period: bool


@dataclass(frozen=True)
class DepartedKey:
    source: str
    location: str
    public_key_sha256: str
    first_flagged: float
    last_flagged: float
    removed_at: float | None  # None: the key was not removed within the period


@dataclass(frozen=True)
class HostKeyChange:
    source: str
    location: str
    algorithm: str
    fingerprints: tuple[tuple[str, float], ...]  # fingerprint, first seen; oldest first


@dataclass(frozen=True)
class Rotation:
    """Rotation evidence of one KMS key or secret."""

    kind: str  # kms_key or secret
    source: str
    location: str
    status: str  # enabled_throughout, disabled_at_some_time, unknown
    detail: str
    rotations: tuple[float, ...]  # rotation times within the period


@dataclass(frozen=True)
class Storage:
    source: str
    resource_kind: str
    resource: str
    kms_key_id: str
    status: str  # enabled_throughout, disabled_at_some_time, unknown
    detail: str


@dataclass(frozen=True)
class Revocation:
    source_kind: str
    source: str
    location: str
    method: str
    status: str  # good, revoked, unknown, error, or "absent" when not checked at the end


@dataclass(frozen=True)
class Credentials:
    private_keys: tuple[PrivateKey, ...] = ()
    item_errors: tuple[ItemErrors, ...] = ()
    ssh_keys: tuple[SshKey, ...] = ()
    departed: tuple[DepartedKey, ...] = ()
    host_key_changes: tuple[HostKeyChange, ...] = ()
    rotations: tuple[Rotation, ...] = ()
    storage: tuple[Storage, ...] = ()
    aws_insufficient: tuple[str, ...] = ()  # why the AWS evidence is incomplete
    revocation: tuple[Revocation, ...] = ()


# --- analysis --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    grid: Grid
    window: float

    def first(self, k: int) -> float:
        return self.grid.start if k == 0 else self.grid.time(k)

    def last(self, k: int) -> float:
        g = self.grid
        return g.end if k == g.count - 1 else max(g.time(k) - self.window + g.step, g.start)


def _steps(runs: Iterable[Run]) -> set[int]:
    out: set[int] = set()
    for r in runs:
        out.update(range(r.first, r.last + 1))
    return out


def _series(data: Mapping[str, Matrix], name: str) -> list[tuple[dict[str, str], list[Run]]]:
    return [(labels, runs) for labels, runs in data.get(name, Matrix()).items() if runs]


def _at_end(grid: Grid, runs: Sequence[Run]) -> bool:
    return bool(runs) and runs[-1].last == grid.count - 1


def private_keys(grid: Grid, data: Mapping[str, Matrix]) -> tuple[PrivateKey, ...]:
    """Private keys present at the end of the period."""
    out = [
        PrivateKey(
            labels.get("source_kind", ""),
            labels.get("source", ""),
            labels.get("location", ""),
            labels.get("key_algorithm", ""),
            labels.get("key_bits", ""),
            labels.get("encrypted", ""),
            labels.get("certificate_location", ""),
        )
        for labels, runs in _series(data, "private_keys")
        if _at_end(grid, runs)
    ]
    return tuple(sorted(set(out), key=lambda k: (k.source_kind, k.source, k.location)))


def item_errors(grid: Grid, data: Mapping[str, Matrix]) -> tuple[ItemErrors, ...]:
    """Sources with unreadable items at the end of the period."""
    out = [
        ItemErrors(
            labels.get("source_kind", ""),
            labels.get("source", ""),
            labels.get("reason", ""),
            int(runs[-1].value),
        )
        for labels, runs in _series(data, "source_item_errors")
        if _at_end(grid, runs)
    ]
    return tuple(sorted(out, key=lambda e: (e.source_kind, e.source, e.reason)))


def _ssh_identity(labels: Mapping[str, str]) -> tuple[str, str, str]:
    location = labels.get("location", "")
    return (labels.get("source", ""), _LINE.sub("", location), labels.get("public_key_sha256", ""))


def ssh_keys(grid: Grid, window: float, data: Mapping[str, Matrix]) -> tuple[SshKey, ...]:
    """Every SSH authorized key seen in the period, with its state at the end."""
    span = _Span(grid, window)
    steps: dict[tuple[str, str, str], set[int]] = {}
    latest: dict[tuple[str, str, str], tuple[int, dict[str, str]]] = {}
    for labels, runs in _series(data, "ssh_keys"):
        ident = _ssh_identity(labels)
        steps.setdefault(ident, set()).update(_steps(runs))
        if ident not in latest or runs[-1].last >= latest[ident][0]:
            latest[ident] = (runs[-1].last, labels)
    # a location (file:line) may hold another key later: read it at the key's last step
    created_at: dict[tuple[str, str], list[Run]] = {}
    for labels, runs in _series(data, "ssh_key_created"):
        created_at[(labels.get("source", ""), labels.get("location", ""))] = runs
    end = grid.count - 1
    # a source up at the end with no key left has removed them all; one not reporting has not
    # shown whether its keys are gone
    sources_at_end = {ident[0] for ident, s in steps.items() if end in s} | {
        labels.get("source", "")
        for labels, runs in _series(data, "source_up")
        if labels.get("source_kind") == SSH_SOURCE and _at_end(grid, runs) and runs[-1].value == 1
    }
    out = []
    for ident, s in steps.items():
        labels = latest[ident][1]
        when = value_at(created_at.get((ident[0], labels.get("location", "")), []), max(s))
        if end in s:
            state = PRESENT
        elif ident[0] in sources_at_end:
            state = REMOVED
        else:
            state = UNKNOWN
        out.append(
            SshKey(
                source=ident[0],
                file=ident[1],
                location=labels.get("location", ""),
                public_key_sha256=ident[2],
                algorithm=labels.get("key_algorithm", ""),
                bits=labels.get("key_bits", ""),
                account=labels.get("account", ""),
                owner_status=labels.get("owner_status", ""),
                created=when,
                first_seen=span.first(min(s)),
                last_seen=span.last(max(s)),
                state=state,
                added_in_period=when is not None and grid.start < when <= grid.end,
            )
        )
    out.sort(key=lambda k: (k.source, k.file, k.public_key_sha256))
    return tuple(out)


def departed_keys(
    grid: Grid, window: float, data: Mapping[str, Matrix], keys: Sequence[SshKey]
) -> tuple[DepartedKey, ...]:
    """Keys flagged ``ssh_key_departed_owner``: when first flagged, and when removed."""
    span = _Span(grid, window)
    by_location = {(k.source, k.location): k for k in keys}
    by_file: dict[tuple[str, str], list[SshKey]] = {}
    for k in keys:
        by_file.setdefault((k.source, k.file), []).append(k)
    out = []
    for name in ("violations", "waived"):
        for labels, runs in _series(data, name):
            if labels.get("rule") != DEPARTED_RULE:
                continue
            source, location = labels.get("source", ""), labels.get("location", "")
            key = by_location.get((source, location))
            if key is None:  # the key moved to another line: the file's only removed key
                removed = [
                    k
                    for k in by_file.get((source, _LINE.sub("", location)), [])
                    if k.state == REMOVED
                ]
                key = removed[0] if len(removed) == 1 else None
            out.append(
                DepartedKey(
                    source=source,
                    location=location,
                    public_key_sha256=key.public_key_sha256 if key else "",
                    first_flagged=span.first(runs[0].first),
                    last_flagged=span.last(runs[-1].last),
                    removed_at=key.last_seen if key and key.state == REMOVED else None,
                )
            )
    out.sort(key=lambda d: (d.source, d.location, d.first_flagged))
    return tuple(out)


def host_key_changes(
    grid: Grid, window: float, data: Mapping[str, Matrix]
) -> tuple[HostKeyChange, ...]:
    """(source, location, algorithm) with more than one host key fingerprint in the period."""
    span = _Span(grid, window)
    seen: dict[tuple[str, str, str], dict[str, int]] = {}
    for labels, runs in _series(data, "ssh_host_keys"):
        ident = (labels.get("source", ""), labels.get("location", ""), labels.get("algorithm", ""))
        fps = seen.setdefault(ident, {})
        fp = labels.get("fingerprint_sha256", "")
        fps[fp] = min(fps.get(fp, runs[0].first), runs[0].first)
    out = [
        HostKeyChange(
            *ident, tuple((fp, span.first(k)) for fp, k in sorted(fps.items(), key=lambda x: x[1]))
        )
        for ident, fps in sorted(seen.items())
        if len(fps) > 1
    ]
    return tuple(out)


def _rotation_status(grid: Grid, present: set[int], enabled: Sequence[Run]) -> tuple[str, str]:
    off = [r for r in enabled if r.value == 0]
    if off:
        return DISABLED_AT_SOME_TIME, f"rotation off from {iso(grid.time(off[0].first))}"
    observed = _steps(enabled)
    missing = len(present - observed) if present else grid.count - len(observed)
    if not observed:
        return UNKNOWN, "rotation status never reported"
    if missing:
        return UNKNOWN, f"rotation status not reported at {missing} step(s) of the key's presence"
    return ENABLED_THROUGHOUT, ""


def _changes(grid: Grid, runs: Sequence[Run]) -> tuple[float, ...]:
    """Rotation times (the series' values) that fall within the period, in order."""
    return tuple(sorted({r.value for r in runs if grid.start < r.value <= grid.end}))


def rotations(grid: Grid, data: Mapping[str, Matrix]) -> tuple[Rotation, ...]:
    """Rotation status and rotations of every KMS key and secret."""
    out = []
    for kind, info, enabled, last in (
        ("kms_key", "kms_keys", "kms_rotation", "kms_last_rotation"),
        ("secret", None, "secret_rotation", "secret_last_rotated"),
    ):
        present: dict[tuple[str, str], set[int]] = {}
        if info is not None:
            for labels, runs in _series(data, info):
                ident = (labels.get("source", ""), labels.get("location", ""))
                present.setdefault(ident, set()).update(_steps(runs))
        status: dict[tuple[str, str], list[Run]] = {}
        for labels, runs in _series(data, enabled):
            status[(labels.get("source", ""), labels.get("location", ""))] = runs
        rotated: dict[tuple[str, str], tuple[float, ...]] = {}
        for labels, runs in _series(data, last):
            rotated[(labels.get("source", ""), labels.get("location", ""))] = _changes(grid, runs)
        for ident in sorted(set(present) | set(status)):
            result, detail = _rotation_status(
                grid, present.get(ident, set()), status.get(ident, [])
            )
            out.append(Rotation(kind, *ident, result, detail, rotated.get(ident, ())))
    return tuple(out)


def storage(grid: Grid, data: Mapping[str, Matrix]) -> tuple[Storage, ...]:
    """Encryption at rest of every storage resource over its presence in the period."""
    out = []
    for labels, runs in _series(data, "storage_encryption"):
        s = _steps(runs)
        gaps = (max(s) - min(s) + 1) - len(s)
        off = [r for r in runs if r.value == 0]
        if off:
            status, detail = (
                DISABLED_AT_SOME_TIME,
                f"unencrypted from {iso(grid.time(off[0].first))}",
            )
        elif gaps:
            status, detail = UNKNOWN, f"not reported at {gaps} step(s) while present"
        else:
            status, detail = ENABLED_THROUGHOUT, ""
        out.append(
            Storage(
                labels.get("source", ""),
                labels.get("resource_kind", ""),
                labels.get("resource", ""),
                labels.get("kms_key_id", ""),
                status,
                detail,
            )
        )
    out.sort(key=lambda r: (r.source, r.resource_kind, r.resource))
    return tuple(out)


def aws_insufficient(grid: Grid, data: Mapping[str, Matrix]) -> tuple[str, ...]:
    """Why the AWS evidence is incomplete: the source failing or unreported, access denied."""
    out = []
    for labels, runs in _series(data, "source_up"):
        if labels.get("source_kind") != "aws":
            continue
        up = _steps(r for r in runs if r.value == 1)
        if len(up) < grid.count:
            out.append(
                f"AWS source {labels.get('source', '')!r} was not up at "
                f"{grid.count - len(up)} of {grid.count} step(s)"
            )
    for labels, runs in _series(data, "source_item_errors"):
        if labels.get("source_kind") == "aws" and labels.get("reason") == "access_denied":
            out.append(
                f"AWS source {labels.get('source', '')!r} was denied access to some items "
                f"during {len(_steps(runs))} step(s)"
            )
    return tuple(out)


def revocation(grid: Grid, data: Mapping[str, Matrix]) -> tuple[Revocation, ...]:
    """Each TLS endpoint's revocation status at the end; "absent" when none was reported."""
    out = []
    checked: set[tuple[str, str, str]] = set()
    for labels, runs in _series(data, "revocation"):
        if not _at_end(grid, runs) or runs[-1].value != 1:
            continue
        ident = (
            labels.get("source_kind", ""),
            labels.get("source", ""),
            labels.get("location", ""),
        )
        checked.add(ident)
        out.append(Revocation(*ident, labels.get("method", ""), labels.get("status", "")))
    for labels, _ in _series(data, "probe_success"):
        ident = (
            labels.get("source_kind", ""),
            labels.get("source", ""),
            labels.get("location", ""),
        )
        if ident[0] == "tls" and ident not in checked:
            out.append(Revocation(*ident, "", "absent"))
    out.sort(key=lambda r: (r.source_kind, r.source, r.location, r.method))
    return tuple(out)


def build(grid: Grid, window: float, data: Mapping[str, Matrix]) -> Credentials:
    keys = ssh_keys(grid, window, data)
    return Credentials(
        private_keys=private_keys(grid, data),
        item_errors=item_errors(grid, data),
        ssh_keys=keys,
        departed=departed_keys(grid, window, data, keys),
        host_key_changes=host_key_changes(grid, window, data),
        rotations=rotations(grid, data),
        storage=storage(grid, data),
        aws_insufficient=aws_insufficient(grid, data),
        revocation=revocation(grid, data),
    )
