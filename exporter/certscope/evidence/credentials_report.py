"""The credential tables of the evidence directory: CSV files and the sections of report.html.

Each table is defined once (:data:`TABLES`: file name, header, rows) and written both as a CSV
file (every cell through :mod:`certscope.csvsafe`) and, by :func:`view`, as a section of
report.html (``templates/credentials.html``, autoescaped).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .. import csvsafe
from .credentials import REMOVED, Credentials
from .facts import FindingSeries
from .model import bool_text, iso, iso_or_empty

Row = Sequence[object]

#: A revocation status that evidences the certificate's state; others are not evidence.
EVIDENCED = ("good", "revoked")


@dataclass(frozen=True)
class Table:
    file: str
    header: tuple[str, ...]
    rows: Callable[[Credentials], list[Row]]
    empty: str
    #: the columns report.html shows (all when empty); the CSV file has every column
    html_columns: tuple[str, ...] = ()


def _private_keys(c: Credentials) -> list[Row]:
    return [
        (
            k.source_kind,
            k.source,
            k.location,
            k.algorithm,
            k.bits,
            k.encrypted,
            k.certificate_location,
        )
        for k in c.private_keys
    ]


def _item_errors(c: Credentials) -> list[Row]:
    return [(e.source_kind, e.source, e.reason, e.items) for e in c.item_errors]


def _ssh_keys(c: Credentials) -> list[Row]:
    return [
        (
            k.source,
            k.file,
            k.location,
            k.public_key_sha256,
            k.algorithm,
            k.bits,
            k.account,
            k.owner_status,
            iso_or_empty(k.created),
            bool_text(k.added_in_period),
            iso(k.first_seen),
            iso(k.last_seen),
            k.state,
            iso(k.last_seen) if k.state == REMOVED else "",
        )
        for k in c.ssh_keys
    ]


def _departed(c: Credentials) -> list[Row]:
    return [
        (
            d.source,
            d.location,
            d.public_key_sha256,
            iso(d.first_flagged),
            iso(d.last_flagged),
            iso_or_empty(d.removed_at),
        )
        for d in c.departed
    ]


def _host_keys(c: Credentials) -> list[Row]:
    return [
        (h.source, h.location, h.algorithm, fp, iso(at))
        for h in c.host_key_changes
        for fp, at in h.fingerprints
    ]


def _rotations(c: Credentials) -> list[Row]:
    return [
        (
            r.kind,
            r.source,
            r.location,
            r.status,
            r.detail,
            len(r.rotations),
            ";".join(iso(t) for t in r.rotations),
        )
        for r in c.rotations
    ]


def _storage(c: Credentials) -> list[Row]:
    return [
        (s.source, s.resource_kind, s.resource, s.kms_key_id, s.status, s.detail) for s in c.storage
    ]


def _revocation(c: Credentials) -> list[Row]:
    return [
        (
            r.source_kind,
            r.source,
            r.location,
            r.method,
            r.status,
            bool_text(r.status in EVIDENCED),
        )
        for r in c.revocation
    ]


PRIVATE_KEYS = Table(
    "private-keys.csv",
    (
        "source_kind",
        "source",
        "location",
        "key_algorithm",
        "key_bits",
        "encrypted",
        "certificate_location",
    ),
    _private_keys,
    "No private key was present at the end of the period.",
)
ITEM_ERRORS = Table(
    "source-item-errors.csv",
    ("source_kind", "source", "reason", "items"),
    _item_errors,
    "Every source read all its items at the end of the period.",
)
SSH_KEYS = Table(
    "ssh-keys.csv",
    (
        "source",
        "file",
        "location",
        "public_key_sha256",
        "key_algorithm",
        "key_bits",
        "account",
        "owner_status",
        "created",
        "added_in_period",
        "first_seen",
        "last_seen",
        "state",
        "removed_at",
    ),
    _ssh_keys,
    "No SSH authorized key was seen during the period.",
    (
        "source",
        "location",
        "public_key_sha256",
        "key_algorithm",
        "owner_status",
        "created",
        "state",
        "removed_at",
    ),
)
DEPARTED = Table(
    "ssh-departed-keys.csv",
    ("source", "location", "public_key_sha256", "first_flagged", "last_flagged", "removed_at"),
    _departed,
    "No key of a departed owner was flagged during the period.",
)
HOST_KEYS = Table(
    "ssh-host-key-changes.csv",
    ("source", "location", "algorithm", "fingerprint_sha256", "first_seen"),
    _host_keys,
    "No SSH host key changed during the period.",
)
ROTATIONS = Table(
    "key-rotation.csv",
    ("kind", "source", "location", "status", "detail", "rotations", "rotated_at"),
    _rotations,
    "No KMS key or secret was reported during the period.",
)
STORAGE = Table(
    "storage-encryption.csv",
    ("source", "resource_kind", "resource", "kms_key_id", "status", "detail"),
    _storage,
    "No storage resource was reported during the period.",
)
REVOCATION = Table(
    "revocation.csv",
    ("source_kind", "source", "location", "method", "status", "evidenced"),
    _revocation,
    "No TLS endpoint was monitored during the period.",
)
TABLES = (PRIVATE_KEYS, ITEM_ERRORS, SSH_KEYS, DEPARTED, HOST_KEYS, ROTATIONS, STORAGE, REVOCATION)


def csv_files(c: Credentials) -> dict[str, bytes]:
    """Every credential table as a CSV file (cells made safe by :mod:`certscope.csvsafe`)."""
    return {
        t.file: csvsafe.dict_rows(
            t.header, (dict(zip(t.header, row, strict=True)) for row in t.rows(c))
        ).encode()
        for t in TABLES
    }


def summary(c: Credentials) -> dict[str, object]:
    """The credential figures of summary.json (the CSV files hold the rows)."""
    present = [k for k in c.ssh_keys if k.state == "present"]
    return {
        "private_keys_at_end": len(c.private_keys),
        "unencrypted_private_keys_at_end": sum(k.encrypted == "false" for k in c.private_keys),
        "sources_with_item_errors_at_end": len({(e.source_kind, e.source) for e in c.item_errors}),
        "ssh_keys_at_end": len(present),
        "ssh_keys_added": sum(k.added_in_period for k in c.ssh_keys),
        "ssh_keys_removed": sum(k.state == REMOVED for k in c.ssh_keys),
        "ssh_keys_removal_unknown": sum(k.state == "unknown" for k in c.ssh_keys),
        "departed_owner_keys_flagged": len(c.departed),
        "departed_owner_keys_not_removed": sum(d.removed_at is None for d in c.departed),
        "host_key_changes": len(c.host_key_changes),
        "rotation": {
            kind: dict(Counter(r.status for r in c.rotations if r.kind == kind))
            for kind in ("kms_key", "secret")
        },
        "storage": dict(Counter(s.status for s in c.storage)),
        "aws_insufficient": list(c.aws_insufficient),
        "revoked_at_end": sum(r.status == "revoked" for r in c.revocation),
        "revocation_not_evidenced": sum(r.status not in EVIDENCED for r in c.revocation),
    }


# --- report.html -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HtmlTable:
    """A table as report.html shows it (plain text cells; the template escapes them)."""

    file: str
    header: list[str]
    rows: list[list[str]]
    empty: str


def _html(table: Table, c: Credentials) -> HtmlTable:
    shown = [table.header.index(h) for h in table.html_columns or table.header]
    rows = [["" if row[i] is None else str(row[i]) for i in shown] for row in table.rows(c)]
    return HtmlTable(table.file, [table.header[i] for i in shown], rows, table.empty)


def _counts(pairs: Iterable[tuple[str, str]]) -> str:
    counts = Counter(pairs)
    return "; ".join(f"{kind} encrypted={enc}: {n}" for (kind, enc), n in sorted(counts.items()))


def view(c: Credentials, findings: Sequence[FindingSeries]) -> dict[str, object]:
    """What the credential sections of report.html show (``templates/credentials.html``)."""
    active = [
        f
        for f in findings
        if f.rule.startswith("private_key_") and f.status == "violation" and f.active_at_end
    ]
    return {
        "private_totals": _counts((k.source_kind, k.encrypted) for k in c.private_keys) or "none",
        "active": len(active),
        "active_which": "; ".join(f"{f.rule} at {f.labels.get('location', '')}" for f in active),
        "ssh_present": sum(1 for k in c.ssh_keys if k.state == "present"),
        "ssh_added": sum(1 for k in c.ssh_keys if k.added_in_period),
        "ssh_removed": sum(1 for k in c.ssh_keys if k.state == REMOVED),
        "ssh_unknown": any(k.state == "unknown" for k in c.ssh_keys),
        "aws_insufficient": c.aws_insufficient,
        "revoked": sum(1 for r in c.revocation if r.status == "revoked"),
        "not_evidenced": sum(1 for r in c.revocation if r.status not in EVIDENCED),
        "tables": {
            name: _html(table, c)
            for name, table in (
                ("private_keys", PRIVATE_KEYS),
                ("item_errors", ITEM_ERRORS),
                ("ssh_keys", SSH_KEYS),
                ("departed", DEPARTED),
                ("host_keys", HOST_KEYS),
                ("rotations", ROTATIONS),
                ("storage", STORAGE),
                ("revocation", REVOCATION),
            )
        },
    }
