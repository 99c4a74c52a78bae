"""YAML configuration → frozen, validated dataclasses.

Validation collects *every* problem with its location (``targets[3].port: must be 1-65535``)
before raising one :class:`~certscope.errors.ConfigError`, because fixing a config one error
per run is miserable. Unknown keys are errors: a misspelt ``timeout`` silently ignored is how
a probe ends up with the wrong deadline.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import fnmatch
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import yaml

from .errors import ConfigError, Problem
from .net import PortError, is_hostname, is_ip, join_address, split_address

DEFAULT_INTERVAL = 300.0
DEFAULT_ENUMERATE_INTERVAL = 6 * 3600.0
DEFAULT_TIMEOUT = 10.0
#: Most bytes a server may send during one handshake (chain, stapled OCSP, key exchange).
DEFAULT_MAX_HANDSHAKE_BYTES = 1024 * 1024
MAX_HANDSHAKE_BYTES_RANGE = (64 * 1024, 16 * 1024 * 1024)
DEFAULT_CONCURRENCY = 64
DEFAULT_JITTER = 0.1
#: At most this many problems are listed, then their count.
MAX_PROBLEMS = 100
#: Documented limits (docs/configuration.md): a probe at most once a second, a full
#: enumeration (hundreds of handshakes) at most once a minute, any duration at most 100 years.
MIN_INTERVAL = 1.0
MIN_ENUMERATE_INTERVAL = 60.0
MIN_TIMEOUT = 0.1
MAX_DURATION = 100 * 365 * 86400.0
_MAX_DURATION_TEXT = 64

STARTTLS_PROTOCOLS = ("smtp", "imap", "pop3", "ftp", "ldap", "postgres", "mysql")
SOURCE_KINDS = ("files", "kubernetes", "vault", "ssh_authorized_keys", "aws")
TARGET_PROTOCOLS = ("tls", "ssh")

_DURATION_RE = re.compile(
    r"^(?:(?P<y>\d+)y)?(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?"
    r"(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$"
)
_DURATION_UNITS = {
    "y": 365 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


#: Label names certscope sets itself; a user label with one of these names would clash.
RESERVED_LABELS = frozenset(
    {
        "job",
        "instance",
        "source_kind",
        "source",
        "location",
        "chain_position",
        "subject_cn",
        "issuer_cn",
        "serial",
        "fingerprint_sha256",
        "subject",
        "issuer",
        "sans",
        "key_algorithm",
        "key_bits",
        "key_curve",
        "public_key_sha256",
        "expected_location",
        "exception_owner",
        "certmanager_issuer",
        "certmanager_certificate",
        "signature_algorithm",
        "signature_hash",
        "is_ca",
        "self_signed",
        "reason",
        "alert",
        "version",
        "cipher",
        "group",
        "phase",
        "protocol",
        "class",
        "grade",
        "profile",
        "rule",
        "severity",
        "control",
        "result",
        "method",
        "status",
        "log_id",
        # SSH series
        "kind",
        "algorithm",
        "bits",
        "software",
        "comments",
        "account",
        "owner_status",
        "cert_authority",
        # AWS source series (kms keys, secrets, storage encryption)
        "key_id",
        "alias",
        "key_spec",
        "key_usage",
        "origin",
        "state",
        "resource_kind",
        "resource",
        "kms_key_id",
        "certificate_type",
        "certificate_status",
        "renewal_eligibility",
        "sse_algorithm",
        "bucket_key",
        "key_manager",
    }
)


def parse_duration(value: object) -> float:
    """Prometheus-style duration (``1h30m``, ``500ms``) or a number of seconds → seconds.

    The result is finite, positive and at most :data:`MAX_DURATION`: a NaN or infinite
    interval would make the scheduler spin or never run the job again.
    """
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s, 5m or 6h")
    if isinstance(value, int | float):
        # int first: a 400-digit integer is a valid YAML int but overflows float().
        if isinstance(value, int) and value > MAX_DURATION:
            raise ValueError(f"must be at most {format_duration(MAX_DURATION)}")
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError("must be a finite number of seconds")
    elif isinstance(value, str) and value and len(value) <= _MAX_DURATION_TEXT:
        m = _DURATION_RE.match(value.strip())
        if not m or not any(m.groupdict().values()):
            raise ValueError(f"{value!r} is not a duration such as 30s, 5m or 6h")
        seconds = sum(_DURATION_UNITS[k] * int(v) for k, v in m.groupdict().items() if v)
    else:
        raise ValueError("must be a duration such as 30s, 5m or 6h")
    if seconds <= 0:
        raise ValueError("must be positive")
    if seconds > MAX_DURATION:
        raise ValueError(f"must be at most {format_duration(MAX_DURATION)}")
    return seconds


def format_duration(seconds: float) -> str:
    """Inverse of :func:`parse_duration` for display (``300.0`` → ``5m``)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out = []
    rest = int(seconds)
    for unit in ("d", "h", "m", "s"):
        size = int(_DURATION_UNITS[unit])
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"


@dataclass(frozen=True)
class RevocationOptions:
    """Whether and how a target's leaf is checked for revocation (see docs/configuration.md).

    A stapled OCSP response is always judged when the server sends one; ``ocsp`` and ``crl``
    allow fetching from the responder (AIA) and the CRL distribution points.
    """

    ocsp: bool = True
    crl: bool = True
    timeout: float = 5.0  # per fetch; the probe's own timeout bounds the whole check
    max_crl_bytes: int = 10 * 1024 * 1024
    #: Not configured here: a ``/probe`` target outside the configured ones carries
    #: ``probe.allowed_networks``, so the responder and CRL URLs in a certificate that any
    #: server can present are held to the same networks as the target itself.
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.ocsp or self.crl


#: Stored certificates are checked for revocation only when their source asks (fetching from
#: every CA a file tree names is not something to do unasked).
STORED_REVOCATION_OFF: Final = RevocationOptions(ocsp=False, crl=False)


@dataclass(frozen=True)
class TLSOptions:
    """How to talk to one endpoint: shared by configured targets, /probe modules and ``scan``."""

    sni: str | None = None  # None: the host name (no SNI for IP addresses)
    starttls: str | None = None
    alpn: tuple[str, ...] = ()
    ca_file: str | None = None  # None: the system trust store
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    max_handshake_bytes: int = DEFAULT_MAX_HANDSHAKE_BYTES
    revocation: RevocationOptions = RevocationOptions()


@dataclass(frozen=True)
class Target:
    name: str
    host: str
    port: int
    tls: TLSOptions
    interval: float = DEFAULT_INTERVAL
    labels: tuple[tuple[str, str], ...] = ()
    enumerate: bool = True
    enumerate_interval: float = DEFAULT_ENUMERATE_INTERVAL
    expects: tuple[str, str] | None = None  # (source name, location glob) it should serve
    # The IP address to connect to instead of resolving ``host`` (set by /probe after checking
    # the address against probe.allowed_networks, so that no second resolution can differ).
    connect_to: str | None = None
    protocol: str = "tls"  # "ssh": an SSH server (posture, host keys), no TLS handshake

    @property
    def address(self) -> str:
        return join_address(self.host, self.port)

    @property
    def connect_host(self) -> str:
        return self.connect_to or self.host

    @property
    def server_name(self) -> str | None:
        """The SNI actually sent: configured, else the host unless it is an IP address."""
        if self.tls.sni is not None:
            return self.tls.sni or None
        return None if is_ip(self.host) else self.host

    @property
    def verify_name(self) -> str:
        """The name the certificate must match."""
        return self.tls.sni or self.host


@dataclass(frozen=True)
class FilesSource:
    name: str
    paths: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    interval: float = DEFAULT_INTERVAL
    labels: tuple[tuple[str, str], ...] = ()
    # Passwords for PKCS#12 and Java KeyStores: from an environment variable or a file. Only the
    # name of the variable or file is kept here, never the password.
    password_env: str | None = None
    password_file: str | None = None
    stale_after: float | None = None
    kind: str = "files"
    # Walking: ``**`` enters directory symlinks only when asked (then each directory once); at
    # most ``max_files`` files; ``timeout`` bounds one refresh's walk and reads.
    follow_symlinks: bool = False
    max_files: int = 200_000
    timeout: float = 60.0
    revocation: RevocationOptions = STORED_REVOCATION_OFF


@dataclass(frozen=True)
class SecretRef:
    """Where a credential is read from at use time (never the credential itself)."""

    env: str | None = None
    file: str | None = None


@dataclass(frozen=True)
class VaultAuth:
    method: str  # token, approle, kubernetes
    token: SecretRef = SecretRef()
    role_id: SecretRef = SecretRef()
    secret_id: SecretRef = SecretRef()
    role: str | None = None  # kubernetes auth role
    jwt_file: str = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    mount: str | None = None  # auth mount path; defaults to the method name


@dataclass(frozen=True)
class VaultKV:
    mount: str
    path: str = ""
    keys: tuple[str, ...] = ("certificate",)


@dataclass(frozen=True)
class VaultPKI:
    mount: str
    include_revoked: bool = False
    issuers: bool = True


@dataclass(frozen=True)
class VaultSource:
    name: str
    address: str
    auth: VaultAuth
    kv: tuple[VaultKV, ...] = ()
    pki: tuple[VaultPKI, ...] = ()
    namespace: str | None = None
    ca_file: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    interval: float = DEFAULT_INTERVAL
    labels: tuple[tuple[str, str], ...] = ()
    stale_after: float | None = None
    kind: str = "vault"
    revocation: RevocationOptions = STORED_REVOCATION_OFF


@dataclass(frozen=True)
class KubernetesSource:
    name: str
    kubeconfig: str | None = None  # None: in-cluster service account, then $KUBECONFIG
    context: str | None = None
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    exclude_namespaces: tuple[str, ...] = ()
    label_selector: str = ""
    secret_types: tuple[str, ...] = ("kubernetes.io/tls",)
    opaque_keys: tuple[str, ...] = ()  # key-name globs read from Opaque secrets
    configmaps: bool = False
    configmap_keys: tuple[str, ...] = ("ca.crt", "*.pem", "*.crt")
    configmap_label_selector: str = ""
    labels_from_annotations: tuple[tuple[str, str], ...] = ()  # metric label -> annotation
    labels_from_labels: tuple[tuple[str, str], ...] = ()  # metric label -> object label
    qps: float = 5.0
    burst: int = 10
    interval: float = DEFAULT_INTERVAL  # full re-list period; watch keeps it current between
    labels: tuple[tuple[str, str], ...] = ()
    stale_after: float | None = None
    shard: tuple[int, int] | None = None  # set by --shard: keep only Secrets hashing here
    kind: str = "kubernetes"


@dataclass(frozen=True)
class SSHKeysSource:
    """authorized_keys files, SSH user certificates and trusted user CA keys on disk."""

    name: str
    paths: tuple[str, ...]  # authorized_keys files (globs)
    certificate_paths: tuple[str, ...] = ()  # user certificates (*-cert.pub globs)
    ca_key_paths: tuple[str, ...] = ()  # TrustedUserCAKeys files (globs)
    exclude: tuple[str, ...] = ()
    people: str | None = None  # YAML or CSV: person, status, key fingerprints or comments
    state_file: str | None = None  # first-seen times, so key age survives restarts
    interval: float = DEFAULT_INTERVAL
    labels: tuple[tuple[str, str], ...] = ()
    stale_after: float | None = None
    kind: str = "ssh_authorized_keys"


#: The AWS services an ``aws`` source can read, in the order they are read.
AWS_SERVICES = ("kms", "acm", "secretsmanager", "s3", "rds", "ebs")
#: Services whose settings change rarely are read less often than the source's interval.
AWS_DEFAULT_SERVICE_INTERVALS = {"kms": 3600.0, "s3": 3600.0}
_AWS_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_AWS_ROLE_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")


@dataclass(frozen=True)
class AwsSource:
    """AWS KMS keys, ACM certificates, Secrets Manager secrets and encryption at rest (S3, RDS,
    EBS), read with the standard credential chain (optionally through an assumed role)."""

    name: str
    regions: tuple[str, ...]
    services: tuple[str, ...] = AWS_SERVICES
    endpoint_url: str | None = None  # one endpoint for every service (emulators, VPC endpoints)
    assume_role_arn: str | None = None
    external_id: str | None = None
    profile: str | None = None  # a named profile of the shared config files
    # service -> seconds between reads; a service not listed is read every ``interval``
    service_intervals: tuple[tuple[str, float], ...] = tuple(
        sorted(AWS_DEFAULT_SERVICE_INTERVALS.items())
    )
    secret_certificates: bool = False  # read secret values to inventory PEM certificates
    concurrency: int = 8  # API calls in flight per region
    timeout: float = DEFAULT_TIMEOUT  # per API call (connect and read), retries excluded
    max_attempts: int = 5  # botocore adaptive retry mode: attempts per call, throttling included
    interval: float = DEFAULT_INTERVAL
    labels: tuple[tuple[str, str], ...] = ()
    stale_after: float | None = None
    kind: str = "aws"

    def service_interval(self, service: str) -> float:
        """Seconds between reads of ``service``: never more often than the source refreshes."""
        return max(dict(self.service_intervals).get(service, self.interval), self.interval)


Source = FilesSource | VaultSource | KubernetesSource | SSHKeysSource | AwsSource


RULE_IDS = (
    "protocol_deprecated",
    "cipher_insecure",
    "cipher_weak",
    "cipher_not_allowed",
    "key_too_small",
    "signature_hash_forbidden",
    "cert_lifetime_too_long",
    "hostname_mismatch",
    "chain_untrusted",
    "cert_expired",
    "cert_not_yet_valid",
    "served_not_stored",
    "private_key_mismatch",
    "private_key_unencrypted",
    "private_key_orphaned",
    "private_key_weak",
    "ssh_kex_weak",
    "ssh_cipher_weak",
    "ssh_mac_weak",
    "ssh_host_key_weak",
    "ssh_host_certificate_expiring",
    "ssh_host_certificate_expired",
    "ssh_software_outdated",
    "ssh_key_unknown_owner",
    "ssh_key_departed_owner",
    "ssh_key_weak",
    "ssh_key_too_old",
    "ssh_key_no_expiry",
    "kms_rotation_disabled",
    "kms_key_pending_deletion",
    "secret_rotation_disabled",
    "secret_rotation_overdue",
    "storage_unencrypted",
)
SSH_ALGORITHM_CLASSES = ("broken", "weak", "deprecated", "recommended")
CIPHER_CLASSES = ("insecure", "weak", "secure", "recommended")
PROTOCOL_NAMES = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
HASH_NAMES = ("md2", "md5", "sha1", "sha224", "sha256", "sha384", "sha512")


@dataclass(frozen=True)
class PolicyException:
    """A waiver of one rule for matching targets or sources, until ``expires`` (inclusive)."""

    target: str  # target or source name; * and ? are wildcards
    rule: str
    owner: str
    reason: str
    expires: date
    location: str = "*"

    def matches_subject(self, subject: tuple[str, str]) -> bool:
        name, location = subject
        return fnmatch.fnmatchcase(name, self.target) and fnmatch.fnmatchcase(
            location, self.location
        )

    def covers(self, subject: tuple[str, str], rule: str) -> bool:
        return rule == self.rule and self.matches_subject(subject)


@dataclass(frozen=True)
class SSHPolicy:
    """What "good" means for SSH servers and keys (docs/policy.md, "SSH")."""

    allowed_classes: tuple[str, ...] = ("recommended", "deprecated")
    min_rsa_bits: int = 3072
    min_versions: tuple[
        tuple[str, tuple[int, ...]], ...
    ] = ()  # (product, version), e.g. OpenSSH 9.6
    certificate_warning: float = 30 * 86400.0  # host certificate "expiring" threshold
    max_key_age: float = 365 * 86400.0  # authorized keys older than this: ssh_key_too_old


@dataclass(frozen=True)
class Policy:
    """What "good" means. Defaults follow Mozilla's intermediate profile (version 5.7)."""

    min_protocol: str = "TLSv1.2"
    allowed_classes: tuple[str, ...] = ("recommended",)
    allowed_ciphers: tuple[str, ...] = ()  # IANA names; when set, replaces allowed_classes
    min_rsa_bits: int = 2048
    min_ec_bits: int = 256
    forbidden_signature_hashes: tuple[str, ...] = ("md2", "md5", "sha1")
    max_cert_lifetime: float = 366 * 86400.0
    require_hostname_match: bool = True
    require_trusted_chain: bool = True
    exceptions: tuple[PolicyException, ...] = ()
    # Source kinds whose private keys are expected to be stored unencrypted: a Kubernetes TLS
    # Secret's tls.key must be plain PEM for Ingress controllers; Vault encrypts its storage.
    allow_unencrypted_private_keys: tuple[str, ...] = ("kubernetes", "vault")
    ssh: SSHPolicy = SSHPolicy()


DEFAULT_PROBE_CONCURRENCY = 32


@dataclass(frozen=True)
class ProbeSettings:
    allowed_targets: tuple[str, ...] = ()
    # When set, a /probe target must resolve into one of these networks (configured targets
    # are exempt, like from allowed_targets).
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_concurrent: int = DEFAULT_PROBE_CONCURRENCY
    modules: Mapping[str, TLSOptions] = field(default_factory=dict)
    default: TLSOptions = TLSOptions()


@dataclass(frozen=True)
class Config:
    targets: tuple[Target, ...] = ()
    sources: tuple[Source, ...] = ()
    probe: ProbeSettings = ProbeSettings()
    policy: Policy = Policy()
    concurrency: int = DEFAULT_CONCURRENCY
    jitter: float = DEFAULT_JITTER
    origin: str = "<embedded default>"
    shard: tuple[int, int] | None = None


# --- validation -------------------------------------------------------------------------------


class _Checker:
    """Collects problems; every ``get_*`` returns a usable default after recording a problem."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.hidden = 0

    def add(self, loc: str, msg: str) -> None:
        # A hostile file can hold a million wrong entries: list the first ones and a count.
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(loc, msg))
        else:
            self.hidden += 1

    def listed(self) -> list[Problem]:
        more = [Problem("", f"and {self.hidden} more problems")] if self.hidden else []
        return [*self.problems, *more]

    def problems_at(self, loc: str) -> bool:
        return any(p.location.startswith(loc + ".") for p in self.problems)

    def mapping(self, value: object, loc: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(loc, f"must be a mapping, got {_type(value)}")
            return {}
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                extra = f' (did you mean "{hint[0]}"?)' if hint else ""
                self.add(_join(loc, str(key)), f"unknown key{extra}")
        return {k: v for k, v in value.items() if isinstance(k, str) and k in allowed}

    def string(
        self, d: Mapping[str, Any], key: str, loc: str, required: bool = False
    ) -> str | None:
        if key not in d or d[key] is None:
            if required:
                self.add(_join(loc, key), "is required")
            return None
        v = d[key]
        if not isinstance(v, str) or not v.strip():
            self.add(_join(loc, key), f"must be a non-empty string, got {_type(v)}")
            return None
        return v

    def strings(self, d: Mapping[str, Any], key: str, loc: str) -> tuple[str, ...]:
        v = d.get(key)
        if v is None:
            return ()
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            self.add(_join(loc, key), "must be a list of non-empty strings")
            return ()
        return tuple(v)

    def duration(
        self, d: Mapping[str, Any], key: str, loc: str, default: float, minimum: float = 0.0
    ) -> float:
        if key not in d:
            return default
        try:
            seconds = parse_duration(d[key])
        except ValueError as exc:
            self.add(_join(loc, key), str(exc))
            return default
        if seconds < minimum:
            self.add(_join(loc, key), f"must be at least {format_duration(minimum)}")
            return default
        return seconds

    def number(
        self, d: Mapping[str, Any], key: str, loc: str, default: float, lo: float, hi: float
    ) -> float:
        if key not in d:
            return default
        v = d[key]
        # NaN fails every comparison, but say so explicitly: a NaN that slipped through would
        # poison every computation it reaches.
        numeric = isinstance(v, int | float) and not isinstance(v, bool)
        if not numeric or (isinstance(v, float) and not math.isfinite(v)) or not lo <= v <= hi:
            self.add(_join(loc, key), f"must be a number from {lo:g} to {hi:g}")
            return default
        return float(v)

    def boolean(self, d: Mapping[str, Any], key: str, loc: str, default: bool) -> bool:
        if key not in d:
            return default
        v = d[key]
        if not isinstance(v, bool):
            self.add(_join(loc, key), f"must be true or false, got {_type(v)}")
            return default
        return v

    def choices(
        self, d: Mapping[str, Any], key: str, loc: str, allowed: tuple[str, ...]
    ) -> tuple[str, ...] | None:
        if key not in d:
            return None
        values = self.strings(d, key, loc)
        bad = [v for v in values if v not in allowed]
        if bad:
            self.add(_join(loc, key), f"unknown value {bad[0]!r}; allowed: {', '.join(allowed)}")
        return tuple(v for v in values if v in allowed)

    def labels(self, value: object, loc: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(loc, f"must be a mapping of label names to values, got {_type(value)}")
            return {}
        out: dict[str, str] = {}
        for k, v in value.items():
            kloc = _join(loc, str(k))
            if not isinstance(k, str) or not _LABEL_RE.match(k) or k.startswith("__"):
                self.add(kloc, "is not a valid Prometheus label name")
            elif k in RESERVED_LABELS:
                self.add(kloc, "is a label name certscope sets itself; choose another")
            elif not isinstance(v, str | int | float) or isinstance(v, bool):
                self.add(kloc, f"label values must be strings, got {_type(v)}")
            else:
                out[k] = str(v)
        return out

    def readable_file(self, path: str | None, loc: str, pem_certs: bool = False) -> str | None:
        if path is None:
            return None
        try:
            with open(path, "rb") as fh:
                head = fh.read(4 * 1024 * 1024)
        except OSError as exc:
            self.add(loc, f"cannot read {path}: {exc.strerror or exc}")
            return None
        if pem_certs and b"-----BEGIN CERTIFICATE-----" not in head:
            self.add(loc, f"{path} contains no PEM certificate")
        return path


def _join(loc: str, key: str) -> str:
    return f"{loc}.{key}" if loc else key


def _type(v: object) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "a number",
        float: "a number",
        bool: "a boolean",
        type(None): "nothing",
    }.get(type(v), type(v).__name__)


_TLS_KEYS = (
    "sni",
    "starttls",
    "alpn",
    "ca_file",
    "client_cert",
    "client_key",
    "timeout",
    "max_handshake_bytes",
    "revocation",
)
_TARGET_KEYS = (
    "address",
    "host",
    "port",
    "name",
    "interval",
    "labels",
    "enumerate",
    "enumerate_interval",
    "expects",
    "protocol",
    *_TLS_KEYS,
)
_DEFAULT_KEYS = (
    "interval",
    "timeout",
    "max_handshake_bytes",
    "revocation",
    "ca_file",
    "labels",
    "alpn",
    "enumerate",
    "enumerate_interval",
)
_TOP_KEYS = ("defaults", "targets", "sources", "probe", "scheduler", "policy")
_POLICY_KEYS = (
    "min_protocol",
    "allowed_cipher_classes",
    "allowed_ciphers",
    "min_rsa_bits",
    "min_ec_bits",
    "forbidden_signature_hashes",
    "max_cert_lifetime",
    "require_hostname_match",
    "require_trusted_chain",
    "exceptions",
    "allow_unencrypted_private_keys",
    "ssh",
)
_PROBE_KEYS = ("allowed_targets", "allowed_networks", "max_concurrent", "modules", "timeout")
_EXCEPTION_KEYS = ("target", "location", "rule", "owner", "reason", "expires")
_SOURCE_COMMON = ("name", "kind", "interval", "labels", "stale_after")
_FILES_KEYS = (
    *_SOURCE_COMMON,
    "paths",
    "exclude",
    "password_env",
    "password_file",
    "follow_symlinks",
    "max_files",
    "timeout",
    "revocation",
)
_VAULT_KEYS = (
    *_SOURCE_COMMON,
    "address",
    "auth",
    "kv",
    "pki",
    "namespace",
    "ca_file",
    "timeout",
    "revocation",
)
_VAULT_AUTH_KEYS = (
    "method",
    "token_file",
    "token_env",
    "role_id_file",
    "role_id_env",
    "secret_id_file",
    "secret_id_env",
    "role",
    "jwt_file",
    "mount",
)
_K8S_KEYS = (
    *_SOURCE_COMMON,
    "kubeconfig",
    "context",
    "namespaces",
    "exclude_namespaces",
    "label_selector",
    "secret_types",
    "opaque_keys",
    "configmaps",
    "configmap_keys",
    "configmap_label_selector",
    "labels_from_annotations",
    "labels_from_labels",
    "qps",
    "burst",
)


def _tls_options(c: _Checker, d: Mapping[str, Any], loc: str, base: TLSOptions) -> TLSOptions:
    sni = c.string(d, "sni", loc)
    if sni is not None and not is_hostname(sni):
        c.add(_join(loc, "sni"), f"{sni!r} is not a valid host name")
    starttls = c.string(d, "starttls", loc)
    if starttls is not None and starttls not in STARTTLS_PROTOCOLS:
        c.add(_join(loc, "starttls"), f"must be one of {', '.join(STARTTLS_PROTOCOLS)}")
        starttls = None
    alpn = c.strings(d, "alpn", loc) if "alpn" in d else base.alpn
    ca_file = c.readable_file(c.string(d, "ca_file", loc), _join(loc, "ca_file"), pem_certs=True)
    cert = c.readable_file(c.string(d, "client_cert", loc), _join(loc, "client_cert"))
    key = c.readable_file(c.string(d, "client_key", loc), _join(loc, "client_key"))
    if (cert is None) != (key is None) and not c.problems_at(loc):
        c.add(loc, "client_cert and client_key must be given together")
    return TLSOptions(
        sni=sni,
        starttls=starttls,
        alpn=alpn,
        ca_file=ca_file if "ca_file" in d else base.ca_file,
        client_cert=cert,
        client_key=key,
        timeout=c.duration(d, "timeout", loc, base.timeout, MIN_TIMEOUT),
        max_handshake_bytes=_max_handshake_bytes(c, d, loc, base.max_handshake_bytes),
        revocation=_revocation(c, d, loc, base.revocation),
    )


def _revocation(
    c: _Checker, d: Mapping[str, Any], loc: str, base: RevocationOptions
) -> RevocationOptions:
    """``revocation: false`` (no fetching), or a mapping of the RevocationOptions fields."""
    if "revocation" not in d:
        return base
    raw, rloc = d["revocation"], _join(loc, "revocation")
    if isinstance(raw, bool):
        return RevocationOptions(ocsp=raw, crl=raw, timeout=base.timeout)
    rd = c.mapping(raw, rloc, ("ocsp", "crl", "timeout", "max_crl_bytes"))
    return RevocationOptions(
        ocsp=c.boolean(rd, "ocsp", rloc, base.ocsp),
        crl=c.boolean(rd, "crl", rloc, base.crl),
        timeout=c.duration(rd, "timeout", rloc, base.timeout, MIN_TIMEOUT),
        max_crl_bytes=int(c.number(rd, "max_crl_bytes", rloc, base.max_crl_bytes, 1024, 2**30)),
    )


def _source_revocation(c: _Checker, d: Mapping[str, Any], loc: str) -> RevocationOptions:
    """A store's ``revocation``: off unless set; when set, the same shape and defaults as a
    target's (``true``, or a mapping whose unnamed methods are on)."""
    if "revocation" not in d:
        return STORED_REVOCATION_OFF
    return _revocation(c, d, loc, RevocationOptions())


def _max_handshake_bytes(c: _Checker, d: Mapping[str, Any], loc: str, default: int) -> int:
    low, high = MAX_HANDSHAKE_BYTES_RANGE
    return int(c.number(d, "max_handshake_bytes", loc, default, low, high))


@dataclass(frozen=True)
class _TargetDefaults:
    tls: TLSOptions
    interval: float
    labels: dict[str, str]
    enumerate: bool
    enumerate_interval: float


def _target(c: _Checker, raw: object, loc: str, td: _TargetDefaults) -> Target | None:
    defaults, interval, labels = td.tls, td.interval, td.labels
    d = c.mapping(raw, loc, _TARGET_KEYS)
    if not isinstance(raw, dict):
        return None
    host: str | None = None
    port = 0
    address = c.string(d, "address", loc)
    if address is not None:
        if "host" in d or "port" in d:
            c.add(loc, "give either address or host and port, not both")
        try:
            host, port = split_address(address)
        except PortError as exc:
            c.add(_join(loc, "port"), str(exc))
        except ValueError as exc:
            c.add(_join(loc, "address"), str(exc))
    elif "host" in d or "port" in d:
        host = c.string(d, "host", loc, required=True)
        p = d.get("port")
        if isinstance(p, bool) or not isinstance(p, int):
            c.add(
                _join(loc, "port"),
                "is required and must be a number" if p is None else "must be a number",
            )
        elif not 1 <= p <= 65535:
            c.add(_join(loc, "port"), f"must be 1-65535, got {p}")
        else:
            port = p
        if host is not None and not is_ip(host) and not is_hostname(host):
            c.add(_join(loc, "host"), f"{host!r} is not a valid host name")
            host = None
    else:
        c.add(_join(loc, "address"), "is required (host:port)")
    tls = _tls_options(c, d, loc, defaults)
    own = c.labels(d.get("labels"), _join(loc, "labels"))
    name = c.string(d, "name", loc)
    t_interval = c.duration(d, "interval", loc, interval, MIN_INTERVAL)
    enumerate_ = c.boolean(d, "enumerate", loc, td.enumerate)
    expects = None
    if "expects" in d:
        eloc = _join(loc, "expects")
        ed = c.mapping(d["expects"], eloc, ("source", "location"))
        esrc = c.string(ed, "source", eloc, required=True)
        if esrc:
            expects = (esrc, c.string(ed, "location", eloc) or "*")
    e_interval = c.duration(
        d, "enumerate_interval", loc, td.enumerate_interval, MIN_ENUMERATE_INTERVAL
    )
    protocol = _target_protocol(c, d, loc)
    if host is None or not port:
        return None
    if tls.timeout >= t_interval:
        c.add(_join(loc, "timeout"), "must be shorter than the interval")
    return Target(
        name=name or join_address(host, port),
        host=host,
        port=port,
        tls=tls,
        interval=t_interval,
        labels=tuple(sorted({**labels, **own}.items())),
        enumerate=enumerate_ and protocol == "tls",  # an SSH probe is its own posture scan
        enumerate_interval=e_interval,
        expects=expects,
        protocol=protocol,
    )


def _source(
    c: _Checker, raw: object, loc: str, interval: float, labels: dict[str, str]
) -> Source | None:
    if not isinstance(raw, dict):
        c.add(loc, f"must be a mapping, got {_type(raw)}")
        return None
    kind = raw.get("kind")
    if kind not in SOURCE_KINDS:
        c.add(_join(loc, "kind"), f"must be one of {', '.join(SOURCE_KINDS)}")
        return None
    keys = {
        "files": _FILES_KEYS,
        "vault": _VAULT_KEYS,
        "kubernetes": _K8S_KEYS,
        "ssh_authorized_keys": _SSH_KEYS_KEYS,
        "aws": _AWS_KEYS,
    }[kind]
    d = c.mapping(raw, loc, keys)
    name = c.string(d, "name", loc, required=True)
    common: dict[str, Any] = {
        "name": name or "",
        "interval": c.duration(d, "interval", loc, interval, MIN_INTERVAL),
        "labels": tuple(
            sorted({**labels, **c.labels(d.get("labels"), _join(loc, "labels"))}.items())
        ),
        "stale_after": c.duration(d, "stale_after", loc, 0) or None,
    }
    src: Source
    if kind == "files":
        paths = c.strings(d, "paths", loc)
        if not paths:
            c.add(_join(loc, "paths"), "must list at least one path or glob")
        _check_patterns(c, d, loc)
        src = FilesSource(
            paths=paths,
            exclude=c.strings(d, "exclude", loc),
            follow_symlinks=c.boolean(d, "follow_symlinks", loc, False),
            max_files=int(c.number(d, "max_files", loc, FilesSource.max_files, 1, 10_000_000)),
            timeout=c.duration(d, "timeout", loc, FilesSource.timeout),
            password_env=c.string(d, "password_env", loc),
            password_file=c.readable_file(
                c.string(d, "password_file", loc), _join(loc, "password_file")
            ),
            revocation=_source_revocation(c, d, loc),
            **common,
        )
    elif kind == "vault":
        src = _vault_source(c, d, loc, common)
    elif kind == "ssh_authorized_keys":
        src = _ssh_keys_source(c, d, loc, common)
    elif kind == "aws":
        src = _aws_source(c, d, loc, common)
    else:
        src = _kubernetes_source(c, d, loc, common)
    return src if name else None


def _check_patterns(c: _Checker, d: Mapping[str, Any], loc: str) -> None:
    """A glob that cannot match what it says is a config error, not a silent empty source."""
    from .sources.walk import pattern_problems

    for key in ("paths", "exclude"):
        value = d.get(key)
        for i, pattern in enumerate(value if isinstance(value, list) else []):
            if isinstance(pattern, str):
                for problem in pattern_problems(pattern):
                    c.add(f"{_join(loc, key)}[{i}]", problem)


def _secret_ref(c: _Checker, d: Mapping[str, Any], loc: str, what: str) -> SecretRef:
    env = c.string(d, f"{what}_env", loc)
    path = c.string(d, f"{what}_file", loc)
    if path is not None:
        c.readable_file(path, _join(loc, f"{what}_file"))
    return SecretRef(env=env, file=path)


def _vault_source(
    c: _Checker, d: Mapping[str, Any], loc: str, common: dict[str, Any]
) -> VaultSource:
    address = c.string(d, "address", loc, required=True) or ""
    if address and not address.startswith(("http://", "https://")):
        c.add(_join(loc, "address"), "must start with http:// or https://")
    aloc = _join(loc, "auth")
    ad = c.mapping(d.get("auth"), aloc, _VAULT_AUTH_KEYS)
    method = c.string(ad, "method", aloc, required=True) or "token"
    if method not in ("token", "approle", "kubernetes"):
        c.add(_join(aloc, "method"), "must be one of token, approle, kubernetes")
    auth = VaultAuth(
        method=method,
        token=_secret_ref(c, ad, aloc, "token"),
        role_id=_secret_ref(c, ad, aloc, "role_id"),
        secret_id=_secret_ref(c, ad, aloc, "secret_id"),
        role=c.string(ad, "role", aloc),
        jwt_file=c.string(ad, "jwt_file", aloc) or VaultAuth.jwt_file,
        mount=c.string(ad, "mount", aloc),
    )
    if method == "token" and not (auth.token.env or auth.token.file):
        c.add(aloc, "token auth needs token_file or token_env")
    if method == "approle" and not (auth.role_id.env or auth.role_id.file):
        c.add(aloc, "approle auth needs role_id_file or role_id_env (and secret_id_*)")
    if method == "kubernetes" and not auth.role:
        c.add(aloc, "kubernetes auth needs a role")
    kv: list[VaultKV] = []
    for i, item in enumerate(d.get("kv") or []):
        iloc = f"{loc}.kv[{i}]"
        kd = c.mapping(item, iloc, ("mount", "path", "keys"))
        mount = c.string(kd, "mount", iloc, required=True)
        if mount:
            kv.append(
                VaultKV(
                    mount=mount.strip("/"),
                    path=(c.string(kd, "path", iloc) or "").lstrip("/"),
                    keys=c.strings(kd, "keys", iloc) or VaultKV.keys,
                )
            )
    pki: list[VaultPKI] = []
    for i, item in enumerate(d.get("pki") or []):
        iloc = f"{loc}.pki[{i}]"
        pd = c.mapping(item, iloc, ("mount", "include_revoked", "issuers"))
        mount = c.string(pd, "mount", iloc, required=True)
        if mount:
            pki.append(
                VaultPKI(
                    mount=mount.strip("/"),
                    include_revoked=c.boolean(pd, "include_revoked", iloc, False),
                    issuers=c.boolean(pd, "issuers", iloc, True),
                )
            )
    if not kv and not pki:
        c.add(loc, "a vault source needs at least one kv or pki entry")
    return VaultSource(
        address=address.rstrip("/"),
        auth=auth,
        kv=tuple(kv),
        pki=tuple(pki),
        namespace=c.string(d, "namespace", loc),
        ca_file=c.readable_file(c.string(d, "ca_file", loc), _join(loc, "ca_file"), pem_certs=True),
        timeout=c.duration(d, "timeout", loc, DEFAULT_TIMEOUT, MIN_TIMEOUT),
        revocation=_source_revocation(c, d, loc),
        **common,
    )


_AWS_KEYS = (
    *_SOURCE_COMMON,
    "regions",
    "services",
    "endpoint_url",
    "assume_role_arn",
    "external_id",
    "profile",
    "intervals",
    "secret_certificates",
    "concurrency",
    "timeout",
    "max_attempts",
)


def _aws_source(c: _Checker, d: Mapping[str, Any], loc: str, common: dict[str, Any]) -> AwsSource:
    regions = c.strings(d, "regions", loc)
    if "regions" not in d or d["regions"] is None:
        c.add(_join(loc, "regions"), "is required: the regions to read, e.g. [us-east-1]")
    elif not regions and not any(p.location == _join(loc, "regions") for p in c.problems):
        c.add(_join(loc, "regions"), "must list at least one region")
    for i, region in enumerate(regions):
        if not _AWS_REGION_RE.match(region):
            c.add(f"{loc}.regions[{i}]", f"{region!r} is not an AWS region name such as us-east-1")
    if len(set(regions)) != len(regions):
        c.add(_join(loc, "regions"), "lists a region twice")
    services = c.choices(d, "services", loc, AWS_SERVICES)
    if services is not None and not services and not c.problems_at(loc):
        c.add(_join(loc, "services"), "must name at least one service")
    endpoint = c.string(d, "endpoint_url", loc)
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        c.add(_join(loc, "endpoint_url"), "must start with http:// or https://")
    role = c.string(d, "assume_role_arn", loc)
    if role is not None and not _AWS_ROLE_RE.match(role):
        c.add(
            _join(loc, "assume_role_arn"),
            "must be an IAM role ARN such as arn:aws:iam::123456789012:role/certscope",
        )
    external_id = c.string(d, "external_id", loc)
    if external_id is not None and role is None:
        c.add(_join(loc, "external_id"), "only applies with assume_role_arn")
    intervals = dict(AWS_DEFAULT_SERVICE_INTERVALS)
    iloc = _join(loc, "intervals")
    for service, value in c.mapping(d.get("intervals"), iloc, AWS_SERVICES).items():
        intervals[service] = c.duration({service: value}, service, iloc, common["interval"])
    return AwsSource(
        regions=tuple(dict.fromkeys(regions)),
        services=tuple(s for s in AWS_SERVICES if s in services) if services else AWS_SERVICES,
        endpoint_url=endpoint.rstrip("/") if endpoint else None,
        assume_role_arn=role,
        external_id=external_id,
        profile=c.string(d, "profile", loc),
        service_intervals=tuple(sorted(intervals.items())),
        secret_certificates=c.boolean(d, "secret_certificates", loc, False),
        concurrency=int(c.number(d, "concurrency", loc, 8, 1, 64)),
        timeout=c.duration(d, "timeout", loc, DEFAULT_TIMEOUT),
        max_attempts=int(c.number(d, "max_attempts", loc, 5, 1, 20)),
        **common,
    )


def _label_map(c: _Checker, value: object, loc: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        c.add(loc, "must map metric label names to annotation or label keys")
        return ()
    names = c.labels({k: "x" for k in value}, loc)
    return tuple(sorted((k, str(v)) for k, v in value.items() if k in names and isinstance(v, str)))


def _kubernetes_source(
    c: _Checker, d: Mapping[str, Any], loc: str, common: dict[str, Any]
) -> KubernetesSource:
    kubeconfig = c.readable_file(c.string(d, "kubeconfig", loc), _join(loc, "kubeconfig"))
    return KubernetesSource(
        kubeconfig=kubeconfig,
        context=c.string(d, "context", loc),
        namespaces=c.strings(d, "namespaces", loc),
        exclude_namespaces=c.strings(d, "exclude_namespaces", loc),
        label_selector=c.string(d, "label_selector", loc) or "",
        secret_types=c.strings(d, "secret_types", loc) or KubernetesSource.secret_types,
        opaque_keys=c.strings(d, "opaque_keys", loc),
        configmaps=c.boolean(d, "configmaps", loc, False),
        configmap_keys=c.strings(d, "configmap_keys", loc) or KubernetesSource.configmap_keys,
        configmap_label_selector=c.string(d, "configmap_label_selector", loc) or "",
        labels_from_annotations=_label_map(
            c, d.get("labels_from_annotations"), _join(loc, "labels_from_annotations")
        ),
        labels_from_labels=_label_map(
            c, d.get("labels_from_labels"), _join(loc, "labels_from_labels")
        ),
        qps=c.number(d, "qps", loc, 5.0, 0.1, 1000),
        burst=int(c.number(d, "burst", loc, 10, 1, 10000)),
        **common,
    )


def _probe(c: _Checker, raw: object, defaults: TLSOptions) -> ProbeSettings:
    d = c.mapping(raw, "probe", _PROBE_KEYS)
    patterns = c.strings(d, "allowed_targets", "probe")
    for i, pat in enumerate(patterns):
        if ":" not in pat:
            c.add(f"probe.allowed_targets[{i}]", "patterns are host:port, e.g. '*.example.com:443'")
    networks = []
    for i, cidr in enumerate(c.strings(d, "allowed_networks", "probe")):
        try:
            networks.append(ipaddress.ip_network(cidr.strip()))
        except ValueError as exc:
            c.add(f"probe.allowed_networks[{i}]", f"is not a network such as 10.0.0.0/8: {exc}")
    base = TLSOptions(
        alpn=defaults.alpn,
        ca_file=defaults.ca_file,
        timeout=c.duration(d, "timeout", "probe", defaults.timeout, MIN_TIMEOUT),
        revocation=defaults.revocation,
    )
    modules: dict[str, TLSOptions] = {}
    raw_modules = d.get("modules") or {}
    if not isinstance(raw_modules, dict):
        c.add("probe.modules", "must be a mapping of module names to settings")
        raw_modules = {}
    for mname, mraw in raw_modules.items():
        mloc = f"probe.modules.{mname}"
        md = c.mapping(mraw, mloc, _TLS_KEYS)
        modules[str(mname)] = _tls_options(c, md, mloc, base)
    return ProbeSettings(
        allowed_targets=patterns,
        allowed_networks=tuple(networks),
        max_concurrent=int(
            c.number(d, "max_concurrent", "probe", DEFAULT_PROBE_CONCURRENCY, 1, 10000)
        ),
        modules=modules,
        default=base,
    )


def _policy(c: _Checker, raw: object) -> Policy:
    d = c.mapping(raw, "policy", _POLICY_KEYS)
    base = Policy()
    min_protocol = c.string(d, "min_protocol", "policy") or base.min_protocol
    if min_protocol not in PROTOCOL_NAMES:
        c.add("policy.min_protocol", f"must be one of {', '.join(PROTOCOL_NAMES)}")
        min_protocol = base.min_protocol
    classes = c.choices(d, "allowed_cipher_classes", "policy", CIPHER_CLASSES)
    ciphers = c.strings(d, "allowed_ciphers", "policy")
    if ciphers:
        from .tls.suites import by_name, iana_name

        for i, name in enumerate(ciphers):
            if by_name(iana_name(name)) is None:
                c.add(f"policy.allowed_ciphers[{i}]", f"{name!r} is not a known cipher suite")
        ciphers = tuple(iana_name(n) for n in ciphers)
    hashes = c.choices(d, "forbidden_signature_hashes", "policy", HASH_NAMES)
    exceptions: list[PolicyException] = []
    raw_exc = d.get("exceptions") or []
    if not isinstance(raw_exc, list):
        c.add("policy.exceptions", "must be a list")
        raw_exc = []
    for i, e in enumerate(raw_exc):
        loc = f"policy.exceptions[{i}]"
        ed = c.mapping(e, loc, _EXCEPTION_KEYS)
        if not isinstance(e, dict):
            continue
        target = c.string(ed, "target", loc, required=True)
        rule = c.string(ed, "rule", loc, required=True)
        if rule is not None and rule not in RULE_IDS:
            c.add(_join(loc, "rule"), f"unknown rule {rule!r}; rules: {', '.join(RULE_IDS)}")
            rule = None
        owner = c.string(ed, "owner", loc, required=True)
        reason = c.string(ed, "reason", loc, required=True)
        expires = ed.get("expires")
        if isinstance(expires, str):
            try:
                expires = _dt.date.fromisoformat(expires)
            except ValueError:
                expires = None
        if isinstance(expires, _dt.datetime):
            expires = expires.date()
        if not isinstance(expires, _dt.date):
            c.add(_join(loc, "expires"), "is required, a date such as 2027-03-31")
            expires = None
        if target and rule and owner and reason and expires:
            exceptions.append(
                PolicyException(
                    target=target,
                    rule=rule,
                    owner=owner,
                    reason=reason,
                    expires=expires,
                    location=c.string(ed, "location", loc) or "*",
                )
            )
    return Policy(
        min_protocol=min_protocol,
        allowed_classes=classes if classes is not None else base.allowed_classes,
        allowed_ciphers=ciphers,
        min_rsa_bits=int(c.number(d, "min_rsa_bits", "policy", base.min_rsa_bits, 512, 16384)),
        min_ec_bits=int(c.number(d, "min_ec_bits", "policy", base.min_ec_bits, 160, 571)),
        forbidden_signature_hashes=hashes
        if hashes is not None
        else base.forbidden_signature_hashes,
        max_cert_lifetime=c.duration(d, "max_cert_lifetime", "policy", base.max_cert_lifetime),
        require_hostname_match=c.boolean(d, "require_hostname_match", "policy", True),
        require_trusted_chain=c.boolean(d, "require_trusted_chain", "policy", True),
        exceptions=tuple(exceptions),
        allow_unencrypted_private_keys=_allowed_kinds(c, d, base),
        ssh=_ssh_policy(c, d.get("ssh")),
    )


# --- SSH: target protocol, the ssh_authorized_keys source, policy.ssh ---------------------------

_SSH_KEYS_KEYS = (
    *_SOURCE_COMMON,
    "paths",
    "certificate_paths",
    "ca_key_paths",
    "exclude",
    "people",
    "state_file",
)
_SSH_POLICY_KEYS = (
    "allowed_algorithm_classes",
    "min_rsa_bits",
    "min_versions",
    "certificate_warning",
    "max_key_age",
)
_TLS_ONLY_KEYS = ("sni", "starttls", "alpn", "ca_file", "client_cert", "client_key", "expects")


def _target_protocol(c: _Checker, d: Mapping[str, Any], loc: str) -> str:
    protocol = c.string(d, "protocol", loc) or "tls"
    if protocol not in TARGET_PROTOCOLS:
        c.add(_join(loc, "protocol"), f"must be one of {', '.join(TARGET_PROTOCOLS)}")
        return "tls"
    if protocol == "ssh":
        for key in _TLS_ONLY_KEYS:
            if key in d:
                c.add(_join(loc, key), "applies to TLS targets only, not to protocol: ssh")
    return protocol


def _ssh_keys_source(
    c: _Checker, d: Mapping[str, Any], loc: str, common: dict[str, Any]
) -> SSHKeysSource:
    paths = c.strings(d, "paths", loc)
    certs = c.strings(d, "certificate_paths", loc)
    cas = c.strings(d, "ca_key_paths", loc)
    if not (paths or certs or cas):
        c.add(_join(loc, "paths"), "must list at least one path or glob")
    people = c.string(d, "people", loc)
    if people is not None:
        c.readable_file(people, _join(loc, "people"))
    state = c.string(d, "state_file", loc)
    if state is not None and not os.path.isdir(os.path.dirname(os.path.abspath(state))):
        c.add(_join(loc, "state_file"), f"the directory of {state} does not exist")
    return SSHKeysSource(
        paths=paths,
        certificate_paths=certs,
        ca_key_paths=cas,
        exclude=c.strings(d, "exclude", loc),
        people=people,
        state_file=state,
        **common,
    )


_VERSION_TEXT_RE = re.compile(r"^\d+(?:\.\d+)*$")


def _ssh_policy(c: _Checker, raw: object) -> SSHPolicy:
    loc = "policy.ssh"
    d = c.mapping(raw, loc, _SSH_POLICY_KEYS)
    base = SSHPolicy()
    classes = c.choices(d, "allowed_algorithm_classes", loc, SSH_ALGORITHM_CLASSES)
    versions: list[tuple[str, tuple[int, ...]]] = []
    raw_versions = d.get("min_versions") or {}
    if not isinstance(raw_versions, dict):
        c.add(_join(loc, "min_versions"), "must map product names to versions, e.g. OpenSSH: '9.6'")
        raw_versions = {}
    for product, version in raw_versions.items():
        text = str(version) if isinstance(version, str | int | float) else ""
        if not isinstance(product, str) or not _VERSION_TEXT_RE.match(text):
            c.add(_join(loc, f"min_versions.{product}"), "must be a version such as '9.6'")
            continue
        versions.append((product, tuple(int(x) for x in text.split("."))))
    return SSHPolicy(
        allowed_classes=classes if classes is not None else base.allowed_classes,
        min_rsa_bits=int(c.number(d, "min_rsa_bits", loc, base.min_rsa_bits, 1024, 16384)),
        min_versions=tuple(sorted(versions)),
        certificate_warning=c.duration(d, "certificate_warning", loc, base.certificate_warning),
        max_key_age=c.duration(d, "max_key_age", loc, base.max_key_age),
    )


def _allowed_kinds(c: _Checker, d: Mapping[str, Any], base: Policy) -> tuple[str, ...]:
    kinds = c.choices(d, "allow_unencrypted_private_keys", "policy", SOURCE_KINDS)
    return base.allow_unencrypted_private_keys if kinds is None else kinds


def build_config(raw: object, origin: str) -> Config:
    """Validate an already-parsed YAML document. Raises ConfigError listing every problem."""
    c = _Checker()
    if raw is None:
        raw = {}
    top = c.mapping(raw, "", _TOP_KEYS)
    dd = c.mapping(top.get("defaults"), "defaults", _DEFAULT_KEYS)
    interval = c.duration(dd, "interval", "defaults", DEFAULT_INTERVAL, MIN_INTERVAL)
    timeout = c.duration(dd, "timeout", "defaults", DEFAULT_TIMEOUT, MIN_TIMEOUT)
    ca_file = c.readable_file(c.string(dd, "ca_file", "defaults"), "defaults.ca_file", True)
    default_labels = c.labels(dd.get("labels"), "defaults.labels")
    defaults = TLSOptions(
        ca_file=ca_file,
        timeout=timeout,
        alpn=c.strings(dd, "alpn", "defaults"),
        max_handshake_bytes=_max_handshake_bytes(c, dd, "defaults", DEFAULT_MAX_HANDSHAKE_BYTES),
        revocation=_revocation(c, dd, "defaults", RevocationOptions()),
    )
    tdefaults = _TargetDefaults(
        tls=defaults,
        interval=interval,
        labels=default_labels,
        enumerate=c.boolean(dd, "enumerate", "defaults", True),
        enumerate_interval=c.duration(
            dd,
            "enumerate_interval",
            "defaults",
            DEFAULT_ENUMERATE_INTERVAL,
            MIN_ENUMERATE_INTERVAL,
        ),
    )
    sd = c.mapping(top.get("scheduler"), "scheduler", ("concurrency", "jitter"))
    concurrency = int(c.number(sd, "concurrency", "scheduler", DEFAULT_CONCURRENCY, 1, 10000))
    jitter = c.number(sd, "jitter", "scheduler", DEFAULT_JITTER, 0, 1)

    targets: list[Target] = []
    raw_targets = top.get("targets") or []
    if not isinstance(raw_targets, list):
        c.add("targets", f"must be a list, got {_type(raw_targets)}")
        raw_targets = []
    seen: dict[str, str] = {}
    target_locs: list[str] = []
    for i, rt in enumerate(raw_targets):
        loc = f"targets[{i}]"
        t = _target(c, rt, loc, tdefaults)
        if t is None:
            continue
        where = (
            _join(loc, "name") if isinstance(rt, dict) and "name" in rt else _join(loc, "address")
        )
        if t.name in seen:
            c.add(where, f"duplicate target name {t.name!r} (first at {seen[t.name]})")
            continue
        seen[t.name] = loc
        targets.append(t)
        target_locs.append(loc)

    sources: list[Source] = []
    raw_sources = top.get("sources") or []
    if not isinstance(raw_sources, list):
        c.add("sources", f"must be a list, got {_type(raw_sources)}")
        raw_sources = []
    seen_src: dict[str, str] = {}
    for i, rs in enumerate(raw_sources):
        loc = f"sources[{i}]"
        s = _source(c, rs, loc, interval, default_labels)
        if s is None:
            continue
        if s.name in seen_src:
            c.add(
                _join(loc, "name"),
                f"duplicate source name {s.name!r} (first at {seen_src[s.name]})",
            )
            continue
        seen_src[s.name] = loc
        sources.append(s)

    probe = _probe(c, top.get("probe"), defaults)
    policy = _policy(c, top.get("policy"))
    source_names = {s.name for s in sources}
    for tloc, t in zip(target_locs, targets, strict=True):
        if t.expects is not None and t.expects[0] not in source_names:
            c.add(f"{tloc}.expects.source", f"no source named {t.expects[0]!r}")
    if c.problems:
        raise ConfigError(c.listed(), origin)
    return Config(
        targets=tuple(targets),
        sources=tuple(sources),
        probe=probe,
        policy=policy,
        concurrency=concurrency,
        jitter=jitter,
        origin=origin,
    )


#: Limits on the YAML document, checked before it is built: ten thousand targets with an
#: address, a name and a label are about 0.75 MiB, 110,000 YAML events and 4 levels deep.
MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 500_000  # about 50,000 targets


def load_config(path: str) -> Config:
    """Read and validate a YAML config file."""
    try:
        with open(path, "rb") as fh:
            text = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            [Problem("", f"cannot read {path}: {exc.strerror or exc}")], path
        ) from None
    return parse_config(text, path)


def parse_config(text: bytes | str, origin: str) -> Config:
    """Parse and validate; every failure, whatever raised it, becomes a located problem."""
    try:
        raw = load_yaml(text)
        if raw is not None and not isinstance(raw, dict):
            raise ConfigError([Problem("", "the top level must be a mapping")], origin)
        return build_config(raw, origin)
    except ConfigError as exc:
        raise ConfigError(exc.problems, origin) from None
    except yaml.MarkedYAMLError as exc:
        where = _mark(exc.problem_mark)
        raise ConfigError([Problem(where, f"malformed YAML: {exc.problem}")], origin) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem("", f"malformed YAML: {exc}")], origin) from None
    except Exception as exc:  # documented boundary: a config must never crash the exporter
        # RecursionError, OverflowError, ValueError (int digit limit), MemoryError…: the type
        # names the limit that was hit; the message may quote the input, so it is left out.
        raise ConfigError(
            [Problem("", f"cannot load the configuration ({type(exc).__name__})")], origin
        ) from None


def _mark(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""


# libyaml's parser when PyYAML was built with it (ten times faster on large files).
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):  # type: ignore[misc,valid-type]
    """``yaml.SafeLoader`` that records duplicate mapping keys instead of keeping the last."""

    def __init__(self, stream: str | bytes) -> None:
        super().__init__(stream)
        self.duplicates: list[Problem] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[object, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *defaults" keys are meant to be overridden
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:
                continue  # an unhashable key: the constructor reports it below
            if first is not key_node.start_mark:
                self.duplicates.append(
                    Problem(
                        _mark(key_node.start_mark),
                        f"duplicate key {str(key)[:64]!r} (first at {_mark(first)})",
                    )
                )
        mapping: dict[Any, Any] = super().construct_mapping(node, deep)
        return mapping


def load_yaml(text: bytes | str) -> object:
    """One YAML document within the limits above, duplicate keys refused (ConfigError)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError([Problem("", f"larger than {MAX_CONFIG_BYTES // 2**20} MiB")])
    # PyYAML's parser is iterative but its composer recurses once per level: measure the depth
    # on the event stream first, so deep nesting is a located problem, not a RecursionError.
    depth = 0
    for count, event in enumerate(yaml.parse(text, Loader=_SafeLoader)):
        if count > MAX_YAML_NODES:
            raise ConfigError(
                [Problem(_mark(event.start_mark), f"more than {MAX_YAML_NODES:,} YAML nodes")]
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise ConfigError(
                    [Problem(_mark(event.start_mark), f"nested deeper than {MAX_YAML_DEPTH}")]
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    loader = _Loader(text)
    try:
        raw = loader.get_single_data()
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError(loader.duplicates)
    return raw


def targets_from_env(value: str) -> list[dict[str, str]]:
    """``CERTSCOPE_TARGETS=host:port,host:port`` → raw target entries."""
    return [{"address": part.strip()} for part in value.split(",") if part.strip()]


def default_config(environ: Mapping[str, str] = os.environ) -> Config:
    """The embedded default: the operating system's trust store plus ``CERTSCOPE_TARGETS``.

    It shows real data on a fresh, offline machine: the CA certificates on disk are real
    certificates with real expiry dates.
    """
    from .verify import system_ca_paths

    cafile, capath = system_ca_paths()
    paths = [p for p in (cafile,) if p] or ([os.path.join(capath, "*.pem")] if capath else [])
    raw: dict[str, Any] = {
        "sources": [
            {
                "name": "system-trust-store",
                "kind": "files",
                "paths": paths,
                "labels": {"owner": "operating-system"},
            }
        ]
        if paths
        else [],
        "targets": targets_from_env(environ.get("CERTSCOPE_TARGETS", "")),
    }
    return build_config(
        raw, "<embedded default>" + (" + CERTSCOPE_TARGETS" if raw["targets"] else "")
    )
