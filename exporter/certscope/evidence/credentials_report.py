"""The credential tables of the evidence directory: CSV files and the sections of report.html.

Each table is defined once (:data:`TABLES`: file name, header, rows) and written both as a CSV
file (every cell through :mod:`certscope.csvsafe`) and, by :func:`sections`, as HTML.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .. import csvsafe
from .credentials import REMOVED, Credentials
from .facts import Finding
from .model import bool_text, iso, iso_or_empty

Row = Sequence[object]
#: page.py's table renderer: (header, rows of HTML cells, text when empty) → HTML
TableHtml = Callable[[Sequence[str], Sequence[Sequence[str]], str], str]

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


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _html(table: Table, c: Credentials, render: TableHtml) -> str:
    shown = [table.header.index(h) for h in table.html_columns or table.header]
    rows = [[_e(row[i]) for i in shown] for row in table.rows(c)]
    note = f'<p class="muted">All rows and columns: <code>{_e(table.file)}</code>.</p>'
    return render([table.header[i] for i in shown], rows, table.empty) + note


def _counts(pairs: Iterable[tuple[str, str]]) -> str:
    counts = Counter(pairs)
    return "; ".join(f"{kind} encrypted={enc}: {n}" for (kind, enc), n in sorted(counts.items()))


def _private_html(c: Credentials, findings: Sequence[Finding], render: TableHtml) -> list[str]:
    active = [
        f
        for f in findings
        if f.rule.startswith("private_key_") and f.status == "violation" and f.active_at_end
    ]
    out = ['<h2 id="private-keys">Private keys</h2>']
    which = "; ".join(f"{f.rule} at {f.labels.get('location', '')}" for f in active)
    totals = _counts((k.source_kind, k.encrypted) for k in c.private_keys) or "none"
    out.append(
        f"<p>At the end of the period: {_e(totals)}. Active private-key findings at the end: "
        f"{len(active)}{': ' + _e(which) if active else ''}.</p>"
    )
    out.append(_html(PRIVATE_KEYS, c, render))
    out.append("<h3>Inventory incomplete</h3>")
    out.append(
        '<p class="muted">Sources that could not read some items at the end of the period: '
        "their inventory, and every table above built from it, is incomplete.</p>"
    )
    out.append(_html(ITEM_ERRORS, c, render))
    return out


def _ssh_html(c: Credentials, render: TableHtml) -> list[str]:
    added = sum(1 for k in c.ssh_keys if k.added_in_period)
    removed = sum(1 for k in c.ssh_keys if k.state == REMOVED)
    present = sum(1 for k in c.ssh_keys if k.state == "present")
    out = ['<h2 id="ssh-keys">SSH keys</h2>']
    out.append(
        f"<p>{present} authorized key(s) present at the end of the period; {added} added and "
        f"{removed} removed during it. A key is identified by its source, file and public key; "
        "its removal time is the last time it was reported.</p>"
    )
    if any(k.state == "unknown" for k in c.ssh_keys):
        out.append(
            '<p class="note">An SSH authorized keys source was not up at the end of the period: '
            "whether its keys were removed is unknown (state <code>unknown</code>).</p>"
        )
    out.append(_html(SSH_KEYS, c, render))
    out.append("<h3>Keys of departed owners</h3>")
    out.append(_html(DEPARTED, c, render))
    out.append("<h3>Host key changes</h3>")
    out.append(_html(HOST_KEYS, c, render))
    return out


def _kms_html(c: Credentials, render: TableHtml) -> list[str]:
    out = ['<h2 id="key-management">Key management and encryption at rest</h2>']
    for why in c.aws_insufficient:
        out.append(f'<p class="note">Insufficient data: {_e(why)}.</p>')
    out.append(
        "<p>Rotation status over the period: <code>enabled_throughout</code> only when it was "
        "reported on at every step the key was seen; <code>unknown</code> when it was not.</p>"
    )
    out.append(_html(ROTATIONS, c, render))
    out.append("<h3>Encryption at rest</h3>")
    out.append(_html(STORAGE, c, render))
    return out


def _revocation_html(c: Credentials, render: TableHtml) -> list[str]:
    revoked = sum(1 for r in c.revocation if r.status == "revoked")
    missing = sum(1 for r in c.revocation if r.status not in EVIDENCED)
    return [
        '<h2 id="revocation">Revocation</h2>',
        f"<p>{revoked} endpoint check(s) revoked at the end of the period; {missing} not "
        "evidenced (status <code>error</code>, <code>unknown</code>, or no status "
        "reported).</p>",
        _html(REVOCATION, c, render),
    ]


def sections(c: Credentials, findings: Sequence[Finding], render: TableHtml) -> str:
    """The credential sections of report.html."""
    return "".join(
        [
            *_private_html(c, findings, render),
            *_ssh_html(c, render),
            *_kms_html(c, render),
            *_revocation_html(c, render),
        ]
    )
