"""Results: the immutable records that work produces and exposition consumes.

Every outcome, good or bad, is one of these; nothing downstream needs to know how it was made.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple

from .certs import CertFacts, shared
from .errors import ItemReason, SourceFailure
from .policy import Assessment
from .posture import PostureScan
from .revocation import Revocation
from .ssh.model import SSHScan
from .tls.handshake import Outcome, Phases, pack_phases, unpack_phases
from .verify import Verdict

Labels = tuple[tuple[str, str], ...]


class JobKind(StrEnum):
    """What a scheduled job does. The state keeps a source's assessments under its source
    job's ``JobKey`` and a target's one assessment under the target's name: a target's posture
    scan is judged together with its probe, so enumeration jobs store theirs there too."""

    PROBE = "probe"  # a target's TLS or SSH probe
    ENUMERATION = "enumeration"  # a target's protocol and cipher-suite scan
    SOURCE = "source"  # a certificate, key or cloud source


class JobKey(NamedTuple):
    kind: JobKind
    name: str  # the target's or source's configured name

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe of one TLS endpoint."""

    name: str
    address: str
    server_name: str | None
    labels: Labels
    timestamp: float  # unix seconds when the probe finished
    duration: float
    outcome: Outcome
    facts: tuple[CertFacts, ...]
    verdict: Verdict | None
    last_success: float | None  # carried from earlier results: continuity evidence
    revocation: Revocation | None = None  # None: not checked (no certificate)
    # The probe's phase timings (:func:`tls.handshake.pack_phases`), moved here from the
    # outcome, given with it or (``replace``) kept: they are the result's own, and the outcome
    # without them reads the same for every target behind one endpoint (see ``scheduler``).
    packed_phases: bytes = field(default=b"", repr=False)
    # The exposition's rendering of this result (collector/exposition.py): the layout it
    # shares with other results, its identity and its own values, set once when it is first
    # rendered, so that they live and go with the result; not part of its value.
    rendered: object = field(default=None, init=False, repr=False, compare=False)
    rendered_identity: bytes = field(default=b"", init=False, repr=False, compare=False)
    rendered_values: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Most targets' verdicts read the same (trusted, matching, valid): one object for
        # them all instead of one per stored result.
        if self.verdict is not None:
            object.__setattr__(self, "verdict", shared(self.verdict))
        phases = self.outcome.phases  # always a Phases once the outcome is made
        if isinstance(phases, Phases) and len(phases):
            object.__setattr__(self, "packed_phases", pack_phases(phases))
            object.__setattr__(self, "outcome", replace(self.outcome, phases=()))

    @property
    def phases(self) -> tuple[tuple[str, float], ...]:
        """The probe's (phase, seconds) pairs, in order."""
        return unpack_phases(self.packed_phases)

    @property
    def success(self) -> bool:
        return self.outcome.error is None and bool(self.facts)

    @property
    def source_kind(self) -> str:
        return "tls"

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, UTC)


@dataclass(frozen=True, slots=True)
class SSHProbeResult:
    """One probe of one SSH server (a target with ``protocol: ssh``)."""

    name: str
    address: str
    labels: Labels
    timestamp: float
    duration: float
    scan: SSHScan
    last_success: float | None
    # The exposition's rendering of this result (collector/exposition.py): the layout it
    # shares with other results, its identity and its own values, set once when it is first
    # rendered, so that they live and go with the result; not part of its value.
    rendered: object = field(default=None, init=False, repr=False, compare=False)
    rendered_identity: bytes = field(default=b"", init=False, repr=False, compare=False)
    rendered_values: bytes = field(default=b"", init=False, repr=False, compare=False)

    @property
    def success(self) -> bool:
        return self.scan.info is not None and self.scan.error is None

    @property
    def source_kind(self) -> str:
        return "ssh"


@dataclass(frozen=True, slots=True)
class StoredCert:
    """One certificate found in a store, at ``location`` and ``position`` within it."""

    location: str
    position: int
    facts: CertFacts
    labels: Labels = ()  # per-item labels (owner from annotations, cert-manager issuer, …)
    revoked: bool = False  # Vault PKI: the CA has revoked it
    key_matches: bool | None = None  # a private key stored beside it: does it match? (None: none)
    # The kind of store within a source that reads several (``aws_acm`` in an ``aws`` source);
    # empty: the source's own kind. It is the ``source_kind`` label of the certificate's series.
    source_kind: str = ""
    # Facts the store keeps about the certificate (ACM: type, status, renewal eligibility,
    # how many resources use it), as sorted name/value strings; as for StoredKey.attributes.
    attributes: tuple[tuple[str, str], ...] = ()
    # The certificate itself, kept only by sources that check revocation (a later refresh asks
    # again when a cached answer expires); empty otherwise, so memory stays as it was.
    der: bytes = field(default=b"", repr=False)
    revocation: Revocation | None = None  # None: not checked (the source does not ask)


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One key-like credential found in a store: a private key on disk, an SSH key, a cloud
    KMS key, a managed secret. Never the key material: only public facts about it.

    Every kind shares the identity of a certificate location (``location`` within a source,
    the source's labels), so the inventory, rules and evidence cover new kinds without special
    cases. ``kind`` names the credential (``private_key``, ``ssh_authorized_key``,
    ``ssh_host_key``, ``kms_key``, ``secret``, …); ``attributes`` holds the facts that only
    that kind has (``encrypted``, ``certificate_location``, ``comment``, ``rotation_enabled``,
    …) as sorted name/value strings, never secret values.
    """

    kind: str
    location: str
    algorithm: str = ""
    bits: int | None = None
    public_key_sha256: str = ""  # hex SHA-256 of the public key (SSH: of the wire blob)
    attributes: tuple[tuple[str, str], ...] = ()
    labels: Labels = ()  # per-item labels, as for StoredCert
    created: float | None = None  # unix seconds, where the store knows it
    not_after: float | None = None  # unix seconds, where the credential expires
    source_kind: str = (
        ""  # as for StoredCert: ``aws_kms`` in an ``aws`` source; empty: the source's
    )


@dataclass(frozen=True, slots=True)
class StorageResource:
    """Whether one storage resource encrypts data at rest (an S3 bucket's default encryption,
    an RDS instance or cluster, an EBS volume or snapshot, a region's EBS default).

    ``encrypted`` is what the provider reported; a resource whose setting could not be read is
    not a StorageResource but an item error, so absence never reads as "encrypted".
    """

    resource_kind: (
        str  # s3_bucket, rds_instance, rds_cluster, ebs_volume, ebs_snapshot, ebs_default
    )
    resource: str  # the ARN (ebs_default: the region)
    encrypted: bool
    kms_key_id: str = ""  # the KMS key (ARN as the provider gives it), empty for SSE-S3 or none
    attributes: tuple[tuple[str, str], ...] = ()  # algorithm, bucket_key, key_manager, …
    source_kind: str = ""  # aws_s3, aws_rds, aws_ebs


@dataclass(frozen=True, slots=True)
class ItemError:
    """A file, Secret or path that could not be read, with the reason and no content."""

    location: str
    reason: ItemReason
    message: str


@dataclass(frozen=True, slots=True)
class SourceResult:
    """One refresh of one certificate store."""

    name: str
    kind: str
    labels: Labels
    timestamp: float
    duration: float
    up: bool
    certs: tuple[StoredCert, ...]
    errors: tuple[ItemError, ...]
    last_success: float | None
    error: str = ""  # the whole source failed (its certs are the last good ones, if any)
    error_reason: SourceFailure | None = None  # why the refresh failed; None when up
    errors_total: tuple[tuple[str, int], ...] = ()  # failed refreshes by reason, since start
    stale: bool = False  # failing for longer than the source's stale_after
    keys: tuple[StoredKey, ...] = ()  # key-like credentials the store holds (see StoredKey)
    storage: tuple[StorageResource, ...] = ()  # encryption at rest of cloud storage
    # The exposition's rendering of this result (collector/exposition.py): the layout it
    # shares with other results, its identity and its own values, set once when it is first
    # rendered, so that they live and go with the result; not part of its value.
    rendered: object = field(default=None, init=False, repr=False, compare=False)
    rendered_identity: bytes = field(default=b"", init=False, repr=False, compare=False)
    rendered_values: bytes = field(default=b"", init=False, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class AssessedLocation:
    """Policy's verdict on one TLS target or one stored location, with its identity labels."""

    source_kind: str
    source: str
    location: str
    labels: Labels
    assessment: Assessment
    posture: PostureScan | None = None
    scan_interval: float | None = None  # the enumeration interval, for staleness alerts
    scan_last_success: float | None = None
    served_matches_stored: bool | None = None  # None: no stored certificate to compare with
    expected_location: str = ""  # "<source>:<location>" of the newest stored certificate
    # The exposition's rendering of this result (collector/exposition.py): the layout it
    # shares with other results, its identity and its own values, set once when it is first
    # rendered, so that they live and go with the result; not part of its value.
    rendered: object = field(default=None, init=False, repr=False, compare=False)
    rendered_identity: bytes = field(default=b"", init=False, repr=False, compare=False)
    rendered_values: bytes = field(default=b"", init=False, repr=False, compare=False)
