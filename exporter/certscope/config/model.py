"""The configuration's public types: plain frozen data, validated by :mod:`.schema`.

Nothing here reads files or checks values; every instance is built by
:func:`certscope.config.schema.build_config` (or by code that already holds valid values,
such as ``/probe`` and ``certscope scan``).
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

from ..certs import Interner
from ..net import is_ip, join_address
from ..rulebook import WAIVABLE
from ..ssh.algorithms import AlgorithmClass
from ..tls.options import (
    DEFAULT_TIMEOUT,
    STORED_REVOCATION_OFF,
    RevocationOptions,
    TLSOptions,
)
from ..tls.starttls import PREAMBLES
from ..tls.suites import PROTOCOLS, SuiteClass

DEFAULT_INTERVAL = 300.0
DEFAULT_ENUMERATE_INTERVAL = 6 * 3600.0
DEFAULT_CONCURRENCY = 64
DEFAULT_JITTER = 0.1
#: Documented limits (docs/configuration.md): a probe at most once a second, a full
#: enumeration (hundreds of handshakes) at most once a minute.
MIN_INTERVAL = 1.0
MIN_ENUMERATE_INTERVAL = 60.0
MIN_TIMEOUT = 0.1

# Enumerations the configuration accepts, taken from the modules that implement them, so that
# a protocol, class or preamble added there is accepted here without a second list.
STARTTLS_PROTOCOLS = tuple(PREAMBLES)
TARGET_PROTOCOLS = ("tls", "ssh")
PROTOCOL_NAMES: tuple[str, ...] = PROTOCOLS
CIPHER_CLASSES = tuple(c.value for c in SuiteClass)
#: The classes a policy can allow; ``extension`` and ``unknown`` are not judgements.
SSH_ALGORITHM_CLASSES = tuple(
    c.value for c in AlgorithmClass if c not in (AlgorithmClass.EXTENSION, AlgorithmClass.UNKNOWN)
)
HASH_NAMES = ("md2", "md5", "sha1", "sha224", "sha256", "sha384", "sha512")


#: Equal label sets as one object: most targets of a fleet carry the same few (environment,
#: team), and every target's result and assessment hold its labels.
_label_sets = Interner(4096)
#: Equal addresses as one object: names on one virtual-hosting address (one ``host:port``,
#: a name per SNI) share it, and a target named by its address (the default) holds one
#: string for both.
_addresses = Interner(4096)
#: Equal TLS options as one object: most targets take the defaults (their SNI is their host),
#: and the configuration builds options for each.
_tls_options = Interner(4096)


@dataclass(frozen=True, slots=True)
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
    # ``host:port``, made once: every result and assessment of the target holds this string.
    address: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _label_sets(self.labels))
        object.__setattr__(self, "tls", _tls_options(self.tls))
        address = join_address(self.host, self.port)
        address = self.name if address == self.name else _addresses(address)
        object.__setattr__(self, "address", address)

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
#: The ``kind`` of each source, in the order error messages list them.
SOURCE_KINDS: tuple[str, ...] = tuple(
    cls.kind for cls in (FilesSource, KubernetesSource, VaultSource, SSHKeysSource, AwsSource)
)


#: The rule ids a waiver may name, from the policy's own list.
RULE_IDS: tuple[str, ...] = tuple(rule.value for rule in WAIVABLE)


@dataclass(frozen=True)
class Waiver:
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
    exceptions: tuple[Waiver, ...] = ()
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
    default: TLSOptions = TLSOptions()  # noqa: RUF009 - frozen, so one shared instance is safe


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

    @cached_property
    def target_addresses(self) -> frozenset[str]:
        """Every configured target's ``host:port``, computed once per configuration (/probe
        exempts them from its allow-lists on every request)."""
        return frozenset(t.address for t in self.targets)
