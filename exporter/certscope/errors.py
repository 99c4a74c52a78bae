"""Stable reason codes and the few exceptions certscope raises.

Runtime failures are *data*: a probe or a source that fails produces a result carrying one of
the reason codes below, which become label values and JSON fields. Exceptions are reserved for
problems the operator must fix before anything runs::

    CertscopeError
    ├── ConfigError        every problem in a config file, each with its location
    └── UsageError         a command-line mistake (bad flag value, bad target syntax)

The string values of the enums are a public contract (documented in docs/metrics.md): never
rename one, only add.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ProbeFailure(StrEnum):
    """Why a probe did not complete a TLS handshake (or got no certificate), or, for an SSH
    target, the key exchanges that collect its host keys."""

    DNS = "dns"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
    TLS_ALERT = "tls_alert"
    TLS_ERROR = "tls_error"
    NOT_TLS = "not_tls"
    STARTTLS_REFUSED = "starttls_refused"
    STARTTLS_ERROR = "starttls_error"
    RESPONSE_TOO_LARGE = "response_too_large"
    CONNECTION_CLOSED = "connection_closed"
    CLIENT_CONFIG = "client_config"
    INTERNAL = "internal_error"
    # SSH targets (protocol: ssh)
    NOT_SSH = "not_ssh"
    SSH_VERSION = "ssh_unsupported_version"
    SSH_PROTOCOL_ERROR = "ssh_protocol_error"
    SSH_DISCONNECT = "ssh_disconnect"
    SSH_KEX_UNSUPPORTED = "ssh_kex_unsupported"
    SSH_HOST_KEY_INVALID = "ssh_host_key_invalid"


class VerifyFailure(StrEnum):
    """Why a presented chain is not acceptable. Several can apply at once."""

    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    INTERMEDIATE_EXPIRED = "intermediate_expired"
    SELF_SIGNED = "self_signed"
    UNKNOWN_ISSUER = "unknown_issuer"
    UNTRUSTED_ROOT = "untrusted_root"
    INCOMPLETE_CHAIN = "incomplete_chain"
    HOSTNAME_MISMATCH = "hostname_mismatch"
    BAD_SIGNATURE = "bad_signature"
    INVALID_CA = "invalid_ca"
    UNSUPPORTED_CERTIFICATE = "unsupported_certificate"
    CHAIN_TOO_LONG = "chain_too_long"
    NO_CERTIFICATE = "no_certificate"
    VERIFY_ERROR = "verify_error"
    REVOKED = "revoked"


class CertscopeError(Exception):
    """Base class of the exceptions certscope raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a config file, at a dotted location such as ``targets[3].port``."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ConfigError(CertscopeError):
    """A config that cannot be used. Carries *every* problem found, not only the first."""

    def __init__(self, problems: list[Problem], source: str = "") -> None:
        self.problems = problems
        self.source = source
        head = f"invalid configuration in {source}" if source else "invalid configuration"
        super().__init__(head + ":\n" + "\n".join(f"  - {p}" for p in problems))


class UsageError(CertscopeError):
    """A command-line argument that cannot be used."""
