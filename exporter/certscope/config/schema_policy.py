"""The ``policy:`` section (rules, waivers, ``policy.ssh``) → :class:`~.model.Policy`."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping
from typing import Any

from ..tls.suites import by_name, iana_name
from .checker import Checker, join
from .keys import EXCEPTION_KEYS, POLICY_KEYS, SSH_POLICY_KEYS
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


def build_policy(c: Checker, raw: object) -> Policy:
    d = c.mapping(raw, "policy", POLICY_KEYS)
    base = Policy()
    min_protocol = c.string(d, "min_protocol", "policy") or base.min_protocol
    if min_protocol not in PROTOCOL_NAMES:
        c.add("policy.min_protocol", f"must be one of {', '.join(PROTOCOL_NAMES)}")
        min_protocol = base.min_protocol
    classes = c.choices(d, "allowed_cipher_classes", "policy", CIPHER_CLASSES)
    ciphers = c.strings(d, "allowed_ciphers", "policy")
    if ciphers:
        for i, name in enumerate(ciphers):
            if by_name(iana_name(name)) is None:
                c.add(f"policy.allowed_ciphers[{i}]", f"{name!r} is not a known cipher suite")
        ciphers = tuple(iana_name(n) for n in ciphers)
    hashes = c.choices(d, "forbidden_signature_hashes", "policy", HASH_NAMES)
    exceptions: list[Waiver] = []
    raw_exc = d.get("exceptions") or []
    if not isinstance(raw_exc, list):
        c.add("policy.exceptions", "must be a list")
        raw_exc = []
    for i, e in enumerate(raw_exc):
        loc = f"policy.exceptions[{i}]"
        ed = c.mapping(e, loc, EXCEPTION_KEYS)
        if not isinstance(e, dict):
            continue
        target = c.string(ed, "target", loc, required=True)
        rule = c.string(ed, "rule", loc, required=True)
        if rule is not None and rule not in RULE_IDS:
            c.add(join(loc, "rule"), f"unknown rule {rule!r}; rules: {', '.join(RULE_IDS)}")
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
            c.add(join(loc, "expires"), "is required, a date such as 2027-03-31")
            expires = None
        if target and rule and owner and reason and expires:
            exceptions.append(
                Waiver(
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


_VERSION_TEXT_RE = re.compile(r"^\d+(?:\.\d+)*$")


def _ssh_policy(c: Checker, raw: object) -> SSHPolicy:
    loc = "policy.ssh"
    d = c.mapping(raw, loc, SSH_POLICY_KEYS)
    base = SSHPolicy()
    classes = c.choices(d, "allowed_algorithm_classes", loc, SSH_ALGORITHM_CLASSES)
    versions: list[tuple[str, tuple[int, ...]]] = []
    raw_versions = d.get("min_versions") or {}
    if not isinstance(raw_versions, dict):
        c.add(join(loc, "min_versions"), "must map product names to versions, e.g. OpenSSH: '9.6'")
        raw_versions = {}
    for product, version in raw_versions.items():
        text = str(version) if isinstance(version, str | int | float) else ""
        if not isinstance(product, str) or not _VERSION_TEXT_RE.match(text):
            c.add(join(loc, f"min_versions.{product}"), "must be a version such as '9.6'")
            continue
        versions.append((product, tuple(int(x) for x in text.split("."))))
    return SSHPolicy(
        allowed_classes=classes if classes is not None else base.allowed_classes,
        min_rsa_bits=int(c.number(d, "min_rsa_bits", loc, base.min_rsa_bits, 1024, 16384)),
        min_versions=tuple(sorted(versions)),
        certificate_warning=c.duration(d, "certificate_warning", loc, base.certificate_warning),
        max_key_age=c.duration(d, "max_key_age", loc, base.max_key_age),
    )


def _allowed_kinds(c: Checker, d: Mapping[str, Any], base: Policy) -> tuple[str, ...]:
    kinds = c.choices(d, "allow_unencrypted_private_keys", "policy", SOURCE_KINDS)
    return base.allow_unencrypted_private_keys if kinds is None else kinds
