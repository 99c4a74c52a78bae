"""Stable reason codes and the few exceptions certscope raises.

Runtime failures are *data*: a probe or a source that fails produces a result carrying one of
the reason codes below, which become label values and JSON fields. Every stable reason lives
here, one vocabulary per kind of work:

=================  ==========================================================================
enum               where it appears
=================  ==========================================================================
``ProbeFailure``   ``certscope_probe_error_info{reason}``: a TLS or SSH probe that failed
``VerifyFailure``  ``certscope_cert_verification_failure{reason}``: why a chain is not accepted
``ScanFailure``    ``PostureScan.error``: why an enumeration is incomplete
``HelloFailure``   ``PostureScan.error``: why the server's hello bytes were rejected
``SSHWireFailure`` the SSH codec's reason, in the detail of ``ssh_protocol_error`` (``not_ssh``
                   becomes the probe's own reason)
``SourceFailure``  ``certscope_source_errors_total{reason}``: why a whole refresh failed (and,
                   at ``<namespace>/*`` or ``<service>/<region>``, a store-level failure
                   confined to one place)
``ItemFailure``    ``certscope_source_item_errors{reason}``: one file, Secret, key or item
=================  ==========================================================================

Exceptions are reserved for problems the operator must fix before anything runs::

    CertscopeError
    ├── ConfigError        every problem in a config file, each with its location
    └── UsageError         a command-line mistake (bad flag value, bad target syntax)

The string values of the enums are a public contract (documented in docs/metrics.md, and
``tests/test_errors.py`` keeps the two equal): never rename one, only add.
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
    # The handshake completed but the server presented no certificate.
    NO_CERTIFICATE = "no_certificate"


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


class ScanFailure(StrEnum):
    """Why an enumeration (or part of it) is incomplete.

    Failures of the hello parser are reported with their own :class:`HelloFailure` values
    instead.
    """

    DNS = "dns"
    CONNECT_REFUSED = "connect_refused"
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
    DEADLINE = "deadline"
    STARTTLS_REFUSED = "starttls_refused"
    STARTTLS_ERROR = "starttls_error"
    CONNECTION_RESET = "connection_reset"
    SUITE_NOT_OFFERED = "suite_not_offered"
    UNKNOWN_VERSION = "unknown_version"
    VERSION_NOT_OFFERED = "version_not_offered"
    PROTOCOL_VIOLATION = "protocol_violation"
    INCONSISTENT = "inconsistent_answers"
    INVALID_ARGUMENT = "invalid_argument"
    INTERNAL = "internal_error"


class HelloFailure(StrEnum):
    """Why the server's bytes were rejected by the hello parser."""

    NOT_TLS = "not_tls"
    UNSUPPORTED_VERSION = "unsupported_record_version"
    UNEXPECTED_CONTENT_TYPE = "unexpected_content_type"
    UNEXPECTED_MESSAGE = "unexpected_handshake_message"
    RECORD_OVERFLOW = "record_overflow"
    BAD_LENGTH = "bad_length"
    MALFORMED = "malformed"
    BUFFER_LIMIT = "buffer_limit"
    TRUNCATED = "truncated"


class SSHWireFailure(StrEnum):
    """Why the server's bytes were not usable SSH (certscope.ssh.wire)."""

    NOT_SSH = "not_ssh"
    IDENTIFICATION_TOO_LONG = "identification_too_long"
    PACKET_TOO_LARGE = "packet_too_large"
    BAD_PACKET = "bad_packet"
    MALFORMED_KEXINIT = "malformed_kexinit"
    MALFORMED_KEX_REPLY = "malformed_kex_reply"


class SourceFailure(StrEnum):
    """Why a refresh of a whole store failed (its last good certificates are kept).

    A store-level failure confined to one place (a namespace the exporter may not list, an
    AWS service denied in one region) is an item error with the same reason at that place.
    """

    UNREACHABLE = "unreachable"  # connection refused or reset, DNS failure
    TIMEOUT = "timeout"
    TLS_ERROR = "tls_error"  # the store's certificate is not trusted, handshake failure
    UNAUTHORIZED = "unauthorized"  # kubernetes: 401
    FORBIDDEN = "forbidden"  # 403 on a list or read
    AUTH_FAILED = "auth_failed"  # login refused, credentials missing, rejected or expired
    ACCESS_DENIED = "access_denied"  # aws: the identity lacks a permission
    THROTTLED = "throttled"  # 429, or still throttled after the client's retries
    SEALED = "sealed"  # vault: 503 "Vault is sealed"
    NOT_FOUND = "not_found"  # aws: the item vanished between listing and reading
    HTTP_ERROR = "http_error"  # any other HTTP status
    API_ERROR = "api_error"  # aws: any other error code from the service
    BAD_RESPONSE = "bad_response"  # an answer that is not of the expected shape
    CONFIG_ERROR = "config_error"  # kubernetes: the kubeconfig or in-cluster config
    PEOPLE_OR_STATE = "people_or_state"  # ssh_authorized_keys: people or state file unreadable
    INTERNAL = "internal_error"  # a certscope bug (logged with its traceback)


class ItemFailure(StrEnum):
    """Why one file, Secret, key or store item could not be read; the rest still counts."""

    NOT_FOUND = "not_found"
    UNREADABLE = "unreadable"
    PERMISSION_DENIED = "permission_denied"
    NO_MATCH = "no_match"  # a glob or base directory that matches no file
    LIMIT_REACHED = "limit_reached"  # max_files or the timeout cut a walk short
    DUPLICATE_NAME = "duplicate_name"  # kubeconfig: two clusters or users with one name
    TOO_LARGE = "too_large"
    CORRUPT_PEM = "corrupt_pem"
    CORRUPT_DATA = "corrupt_data"  # kubernetes: a value that is not base64
    UNPARSEABLE = "unparseable"
    UNKNOWN_FORMAT = "unknown_format"
    NO_CERTIFICATE = "no_certificate"
    TOO_MANY_FILES = "too_many_files"  # older releases; the file cap is now LIMIT_REACHED
    BAD_PASSWORD = "bad_password"  # noqa: S105 -- a reason code, not a password
    PASSWORD_UNAVAILABLE = "password_unavailable"  # noqa: S105 -- a reason code
    CORRUPT_KEY = "corrupt_key"
    MISSING_KEY = "missing_key"
    TOO_MANY_SECRETS = "too_many_secrets"
    TOO_MANY_CERTS = "too_many_certs"
    TOO_MANY_ITEMS = "too_many_items"
    UNSAFE_NAME = "unsafe_name"


#: The reason of an item error: its own, or a store-level failure confined to one place.
ItemReason = ItemFailure | SourceFailure


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
