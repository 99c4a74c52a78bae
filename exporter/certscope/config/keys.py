"""The keys each section of the configuration accepts: the document's shape in one place.

Anything else is an unknown key (with the nearest known one suggested). The Helm chart's
``values.schema.json`` mirrors these lists, and a test holds the two together.
"""

from __future__ import annotations

TOP_KEYS = ("defaults", "targets", "sources", "probe", "scheduler", "policy")

DEFAULT_KEYS = (
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

TLS_KEYS = (
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

TARGET_KEYS = (
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
    *TLS_KEYS,
)

TLS_ONLY_KEYS = ("sni", "starttls", "alpn", "ca_file", "client_cert", "client_key", "expects")

PROBE_KEYS = ("allowed_targets", "allowed_networks", "max_concurrent", "modules", "timeout")

POLICY_KEYS = (
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

EXCEPTION_KEYS = ("target", "location", "rule", "owner", "reason", "expires")

SSH_POLICY_KEYS = (
    "allowed_algorithm_classes",
    "min_rsa_bits",
    "min_versions",
    "certificate_warning",
    "max_key_age",
)

SOURCE_COMMON = ("name", "kind", "interval", "labels", "stale_after")

FILES_KEYS = (
    *SOURCE_COMMON,
    "paths",
    "exclude",
    "password_env",
    "password_file",
    "follow_symlinks",
    "max_files",
    "timeout",
    "revocation",
)

VAULT_KEYS = (
    *SOURCE_COMMON,
    "address",
    "auth",
    "kv",
    "pki",
    "namespace",
    "ca_file",
    "timeout",
    "revocation",
)

VAULT_AUTH_KEYS = (
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

K8S_KEYS = (
    *SOURCE_COMMON,
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

AWS_KEYS = (
    *SOURCE_COMMON,
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

SSH_KEYS_KEYS = (
    *SOURCE_COMMON,
    "paths",
    "certificate_paths",
    "ca_key_paths",
    "exclude",
    "people",
    "state_file",
)
