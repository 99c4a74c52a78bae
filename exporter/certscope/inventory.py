"""The credential inventory: one row per certificate and per key-like credential from every
target and source.

This is the document auditors ask for ("all certificates with owner, expiry, location"), served
as ``GET /inventory`` (JSON, or CSV with ``?format=csv``) and printed by ``certscope inventory``.
The ``kind`` column says what a row is: ``certificate`` for certificates, or the
:class:`~certscope.results.StoredKey` kind (``private_key``, ``ssh_authorized_key``, …) for keys;
columns that do not apply to a kind are empty. Rows are built from results only; key material
never reaches a result, so it cannot reach a row.

Items a source could not read are rows too, of kind ``error``: ``location`` says where,
``attributes`` holds the stable ``reason`` and the ``message`` (never content). An inventory
with error rows is incomplete, and says so in the same document.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from . import csvsafe
from .certs import CertFacts
from .results import ItemError, Labels, ProbeResult, SourceResult, SSHProbeResult, StoredKey

COLUMNS = (
    "kind",
    "source_kind",
    "source",
    "location",
    "chain_position",
    "subject",
    "subject_cn",
    "sans",
    "issuer",
    "issuer_cn",
    "serial",
    "not_before",
    "not_after",
    "days_left",
    "key_algorithm",
    "key_bits",
    "signature_algorithm",
    "signature_hash",
    "fingerprint_sha256",
    "is_ca",
    "self_signed",
    "owner",
    "renewal",
    "environment",
    "labels",
    "verified",
    "verification_errors",
    "revoked",
    "public_key_sha256",
    "attributes",
    "last_seen",
)


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def _row(
    kind: str,
    source: str,
    location: str,
    position: int,
    f: CertFacts,
    labels: Labels,
    now: datetime,
    last_seen: float | None,
) -> dict[str, Any]:
    lab = dict(labels)
    days = f.days_left(now)
    return {
        "kind": "certificate",
        "source_kind": kind,
        "source": source,
        "location": location,
        "chain_position": position,
        "subject": f.subject,
        "subject_cn": f.subject_cn,
        "sans": list(f.sans),
        "issuer": f.issuer,
        "issuer_cn": f.issuer_cn,
        "serial": f.serial,
        "not_before": _iso(f.not_before),
        "not_after": _iso(f.not_after),
        "days_left": round(days, 2) if days is not None else None,
        "key_algorithm": f.key_algorithm,
        "key_bits": f.key_bits,
        "signature_algorithm": f.signature_algorithm,
        "signature_hash": f.signature_hash,
        "fingerprint_sha256": f.fingerprint_sha256,
        "is_ca": f.is_ca,
        "self_signed": f.self_signed,
        "owner": lab.get("owner"),
        "renewal": lab.get("renewal"),
        "environment": lab.get("environment"),
        "labels": lab,
        "verified": None,
        "verification_errors": [],
        "revoked": False,
        "public_key_sha256": f.public_key_sha256,
        "attributes": {},
        "last_seen": _iso(datetime.fromtimestamp(last_seen, UTC)) if last_seen else None,
    }


def _other_row(
    kind: str, source_kind: str, source: str, location: str, labels: Labels
) -> dict[str, Any]:
    """A row that is not a certificate: certificate-only columns stay empty."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    lab = dict(labels)
    row.update(
        kind=kind,
        source_kind=source_kind,
        source=source,
        location=location,
        sans=[],
        owner=lab.get("owner"),
        renewal=lab.get("renewal"),
        environment=lab.get("environment"),
        labels=lab,
        verification_errors=[],
        revoked=False,
        attributes={},
    )
    return row


def _key_row(
    source_kind: str, source: str, k: StoredKey, labels: Labels, now: datetime, seen: float | None
) -> dict[str, Any]:
    """A key-like credential as an inventory row."""
    row = _other_row(k.kind, source_kind, source, k.location, labels)
    expires = datetime.fromtimestamp(k.not_after, UTC) if k.not_after is not None else None
    row.update(
        not_before=_iso(datetime.fromtimestamp(k.created, UTC)) if k.created else None,
        not_after=_iso(expires),
        days_left=round((expires - now).total_seconds() / 86400, 2) if expires else None,
        key_algorithm=k.algorithm or None,
        key_bits=k.bits,
        public_key_sha256=k.public_key_sha256 or None,
        attributes=dict(k.attributes),
        last_seen=_iso(datetime.fromtimestamp(seen, UTC)) if seen else None,
    )
    return row


def _error_row(source_kind: str, source: str, e: ItemError, labels: Labels) -> dict[str, Any]:
    """An item the source could not read: where, the stable reason and the message."""
    row = _other_row("error", source_kind, source, e.location, labels)
    row["attributes"] = {"reason": e.reason, "message": e.message}
    return row


def rows(
    probes: Iterable[ProbeResult],
    sources: Iterable[SourceResult],
    now: datetime,
    ssh: Iterable[SSHProbeResult] = (),
) -> Iterator[dict[str, Any]]:
    for r in sorted(probes, key=lambda r: r.name):
        seen = r.timestamp if r.facts else r.last_success
        for pos, f in enumerate(r.facts):
            row = _row("tls", r.name, r.address, pos, f, r.labels, now, seen)
            if r.verdict is not None:
                row["verified"] = r.verdict.verified
                row["verification_errors"] = [str(e) for e in r.verdict.errors]
            yield row
    for sr in sorted(ssh, key=lambda sr: sr.name):
        ssh_seen = sr.timestamp if sr.success else sr.last_success
        for k in ssh_host_keys(sr):
            yield _key_row("ssh", sr.name, k, sr.labels, now, ssh_seen)
    for s in sorted(sources, key=lambda s: s.name):
        for c in sorted(s.certs, key=lambda c: (c.location, c.position)):
            labels = tuple({**dict(s.labels), **dict(c.labels)}.items())
            kind = c.source_kind or s.kind
            row = _row(kind, s.name, c.location, c.position, c.facts, labels, now, s.last_success)
            row["revoked"] = c.revoked
            row["attributes"] = dict(c.attributes)
            yield row
        for k in sorted(s.keys, key=lambda k: (k.kind, k.location)):
            labels = tuple({**dict(s.labels), **dict(k.labels)}.items())
            yield _key_row(k.source_kind or s.kind, s.name, k, labels, now, s.last_success)
        for e in sorted(set(s.errors), key=lambda e: (e.location, e.reason, e.message)):
            yield _error_row(s.kind, s.name, e, s.labels)


def ssh_host_keys(r: SSHProbeResult) -> list[StoredKey]:
    """The host keys an SSH server proved it holds, as ``ssh_host_key`` records at
    ``<address>#<host-key algorithm>``; a host certificate adds its facts and validity."""
    out = []
    for hk in r.scan.host_keys:
        f = hk.facts
        if f is None or hk.error:
            continue
        attrs = {"fingerprint_sha256": f.fingerprint_sha256, "host_key_algorithm": hk.algorithm}
        c = f.certificate
        if c is not None:
            attrs |= {
                "key_id": c.key_id,
                "serial": str(c.serial),
                "principals": ",".join(c.principals),
                "ca_fingerprint_sha256": c.ca_fingerprint_sha256,
            }
        out.append(
            StoredKey(
                kind="ssh_host_key",
                location=f"{r.address}#{hk.algorithm}",
                algorithm=f.algorithm,
                bits=f.bits,
                public_key_sha256=f.public_key_sha256,
                attributes=tuple(sorted(attrs.items())),
                created=c.valid_after if c else None,
                not_after=c.valid_before if c else None,
            )
        )
    return out


def to_csv(items: Iterable[dict[str, Any]]) -> str:
    """The rows as CSV; text cells that a spreadsheet would run as a formula are neutralised
    (:mod:`certscope.csvsafe`), because SANs and subjects come from servers."""
    return csvsafe.dict_rows(COLUMNS, (_flat(row) for row in items))


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    """One row with its lists and maps joined into single cells."""
    flat = dict(row)
    flat["sans"] = " ".join(row["sans"])
    flat["labels"] = ";".join(f"{k}={v}" for k, v in sorted(row["labels"].items()))
    flat["attributes"] = ";".join(f"{k}={v}" for k, v in sorted(row["attributes"].items()))
    flat["verification_errors"] = " ".join(row["verification_errors"])
    for key in ("is_ca", "self_signed", "revoked", "verified"):
        if isinstance(flat[key], bool):
            flat[key] = "true" if flat[key] else "false"
    return flat
