"""The ``policy:`` section (rules, waivers, ``policy.ssh``) → :class:`~.model.Policy`.

Declared as pydantic models (:mod:`.fields`): each waiver is validated as its own model, so
every bad entry is reported with its index, and a valid policy converts to the frozen
:class:`~.model.Policy`.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator

from ..tls.suites import by_name, iana_name
from .checker import Checker
from .fields import (
    Flag,
    RequiredText,
    Section,
    Text,
    choices,
    duration,
    listed,
    number,
    one_of,
    problem,
    required_text,
    string_list,
    validate,
)
from .model import (
    CIPHER_CLASSES,
    HASH_NAMES,
    PROTOCOL_NAMES,
    RULE_IDS,
    SOURCE_KINDS,
    SSH_ALGORITHM_CLASSES,
    Policy,
    SSHPolicy,
    Waiver,
)

_VERSION_TEXT_RE = re.compile(r"^\d+(?:\.\d+)*$")
_VERSION_HINT = "must be a version such as '9.6'"


def _expiry(v: object) -> _dt.date:
    if isinstance(v, str):
        try:
            v = _dt.date.fromisoformat(v)
        except ValueError:
            v = None
    if isinstance(v, _dt.datetime):
        v = v.date()
    if not isinstance(v, _dt.date):
        raise problem("is required, a date such as 2027-03-31")
    return v


def _rule(v: object) -> str:
    rule = required_text(v)
    if rule not in RULE_IDS:
        raise problem(f"unknown rule {rule!r}; rules: {', '.join(RULE_IDS)}")
    return rule


def _cipher(name: str) -> str:
    if by_name(iana_name(name)) is None:
        raise problem(f"{name!r} is not a known cipher suite")
    return iana_name(name)


def _product(v: object) -> str:
    if not isinstance(v, str):
        raise problem(_VERSION_HINT)
    return v


def _version(v: object) -> tuple[int, ...]:
    text = str(v) if isinstance(v, str | int | float) and not isinstance(v, bool) else ""
    if not _VERSION_TEXT_RE.match(text):
        raise problem(_VERSION_HINT)
    return tuple(int(x) for x in text.split("."))


def _version_map(v: object) -> object:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise problem("must map product names to versions, e.g. OpenSSH: '9.6'")
    return v


class WaiverModel(Section):
    """One ``policy.exceptions`` entry: an accepted risk with an owner and an expiry date."""

    target: RequiredText
    rule: Annotated[str, PlainValidator(_rule)]
    owner: RequiredText
    reason: RequiredText
    expires: Annotated[_dt.date | None, PlainValidator(_expiry)] = Field(
        default=None, validate_default=True
    )
    location: Text = None

    def build(self) -> Waiver:
        assert self.expires is not None  # the validator refuses a missing date
        return Waiver(
            target=self.target,
            rule=self.rule,
            owner=self.owner,
            reason=self.reason,
            expires=self.expires,
            location=self.location or "*",
        )


class SSHPolicyModel(Section):
    """``policy.ssh``: what an SSH server and the SSH keys found may use."""

    allowed_algorithm_classes: Annotated[tuple[str, ...] | None, choices(SSH_ALGORITHM_CLASSES)] = (
        None
    )
    min_rsa_bits: Annotated[float | None, number(1024, 16384)] = None
    min_versions: Annotated[
        dict[
            Annotated[str, PlainValidator(_product)],
            Annotated[tuple[int, ...], PlainValidator(_version)],
        ],
        BeforeValidator(_version_map),
    ] = Field(default_factory=dict)
    certificate_warning: Annotated[float | None, duration()] = None
    max_key_age: Annotated[float | None, duration()] = None

    def build(self) -> SSHPolicy:
        base = SSHPolicy()
        return SSHPolicy(
            allowed_classes=_or(self.allowed_algorithm_classes, base.allowed_classes),
            min_rsa_bits=int(_or(self.min_rsa_bits, base.min_rsa_bits)),
            min_versions=tuple(sorted(self.min_versions.items())),
            certificate_warning=_or(self.certificate_warning, base.certificate_warning),
            max_key_age=_or(self.max_key_age, base.max_key_age),
        )


class PolicyModel(Section):
    """``policy:``: the rules every probed endpoint and stored credential is judged by."""

    min_protocol: Annotated[
        str | None, one_of(PROTOCOL_NAMES, f"must be one of {', '.join(PROTOCOL_NAMES)}")
    ] = None
    allowed_cipher_classes: Annotated[tuple[str, ...] | None, choices(CIPHER_CLASSES)] = None
    allowed_ciphers: Annotated[
        tuple[Annotated[str, AfterValidator(_cipher)], ...], string_list()
    ] = ()
    forbidden_signature_hashes: Annotated[tuple[str, ...] | None, choices(HASH_NAMES)] = None
    exceptions: Annotated[tuple[WaiverModel, ...], listed("must be a list")] = ()
    min_rsa_bits: Annotated[float | None, number(512, 16384)] = None
    min_ec_bits: Annotated[float | None, number(160, 571)] = None
    max_cert_lifetime: Annotated[float | None, duration()] = None
    require_hostname_match: Flag = None
    require_trusted_chain: Flag = None
    allow_unencrypted_private_keys: Annotated[tuple[str, ...] | None, choices(SOURCE_KINDS)] = None
    ssh: SSHPolicyModel | None = None

    def build(self) -> Policy:
        base = Policy()
        return Policy(
            min_protocol=self.min_protocol or base.min_protocol,
            allowed_classes=_or(self.allowed_cipher_classes, base.allowed_classes),
            allowed_ciphers=self.allowed_ciphers,
            min_rsa_bits=int(_or(self.min_rsa_bits, base.min_rsa_bits)),
            min_ec_bits=int(_or(self.min_ec_bits, base.min_ec_bits)),
            forbidden_signature_hashes=_or(
                self.forbidden_signature_hashes, base.forbidden_signature_hashes
            ),
            max_cert_lifetime=_or(self.max_cert_lifetime, base.max_cert_lifetime),
            require_hostname_match=_or(self.require_hostname_match, True),
            require_trusted_chain=_or(self.require_trusted_chain, True),
            exceptions=tuple(w.build() for w in self.exceptions),
            allow_unencrypted_private_keys=_or(
                self.allow_unencrypted_private_keys, base.allow_unencrypted_private_keys
            ),
            ssh=(self.ssh or SSHPolicyModel()).build(),
        )


_T = TypeVar("_T")


def _or(value: _T | None, default: _T) -> _T:
    """A key left out (``None``) takes the default; an empty list given is kept."""
    return default if value is None else value


def build_policy(c: Checker, raw: object) -> Policy:
    """The ``policy:`` section; its problems are recorded on ``c``."""
    return validate(c, PolicyModel, raw, "policy").build()
