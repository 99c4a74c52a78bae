"""The keys each section of the configuration accepts: the document's shape, read from the
models that validate it, so the two cannot drift apart.

Anything else is an unknown key (with the nearest known one suggested). The Helm chart's
``values.schema.json`` mirrors these lists, and a test holds the two together.
"""

from __future__ import annotations

from pydantic import BaseModel

from .schema import TOP_KEYS, DefaultsModel
from .schema_policy import PolicyModel, SSHPolicyModel, WaiverModel
from .schema_sources import SOURCE_MODELS, SourceModel, VaultAuthModel
from .schema_targets import TLS_ONLY_KEYS, ProbeModel, TargetModel
from .schema_tls import TLSModel

__all__ = [
    "AWS_KEYS",
    "DEFAULT_KEYS",
    "EXCEPTION_KEYS",
    "FILES_KEYS",
    "K8S_KEYS",
    "POLICY_KEYS",
    "PROBE_KEYS",
    "SOURCE_COMMON",
    "SSH_KEYS_KEYS",
    "SSH_POLICY_KEYS",
    "TARGET_KEYS",
    "TLS_KEYS",
    "TLS_ONLY_KEYS",
    "TOP_KEYS",
    "VAULT_AUTH_KEYS",
    "VAULT_KEYS",
]


def _keys(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(model.model_fields)


DEFAULT_KEYS = _keys(DefaultsModel)
TLS_KEYS = _keys(TLSModel)
TARGET_KEYS = _keys(TargetModel)
PROBE_KEYS = _keys(ProbeModel)
POLICY_KEYS = _keys(PolicyModel)
EXCEPTION_KEYS = _keys(WaiverModel)
SSH_POLICY_KEYS = _keys(SSHPolicyModel)
SOURCE_COMMON = ("kind", *_keys(SourceModel))
FILES_KEYS = _keys(SOURCE_MODELS["files"])
VAULT_KEYS = _keys(SOURCE_MODELS["vault"])
VAULT_AUTH_KEYS = _keys(VaultAuthModel)
K8S_KEYS = _keys(SOURCE_MODELS["kubernetes"])
SSH_KEYS_KEYS = _keys(SOURCE_MODELS["ssh_authorized_keys"])
AWS_KEYS = _keys(SOURCE_MODELS["aws"])
