"""Pure: Kubernetes Secret and ConfigMap objects (parsed JSON) → certificates, private-key
records and item errors. No I/O; nothing of an object is kept but its :class:`Entry`."""

from __future__ import annotations

import base64
import binascii
import fnmatch
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ...certs import facts_from_der
from ...config import KubernetesSource
from ...errors import ItemFailure
from ...results import ItemError, Labels, StoredCert, StoredKey
from ...sharding import owns
from .. import keys as keyrec
from ..formats import keys_in, pem_certificates

TLS_TYPE = "kubernetes.io/tls"
OPAQUE_TYPE = "Opaque"
TLS_KEYS = ("tls.crt", "ca.crt")
#: Private keys by convention: never read as certificates, even when a glob matches them.
NEVER_READ = ("tls.key", "*.key")

ObjKey = tuple[str, str]  # (namespace, name)
_H = TypeVar("_H", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Entry:
    """What is kept of one object: never the object or its data."""

    resource_version: str
    certs: tuple[StoredCert, ...]
    errors: tuple[ItemError, ...]
    keys: tuple[StoredKey, ...] = ()  # public facts of the private keys (never the keys)


def _has_magic(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


@dataclass(frozen=True)
class KeySpec:
    named: frozenset[str]
    globs: tuple[str, ...]

    @classmethod
    def of(cls, patterns: Iterable[str]) -> KeySpec:
        pats = tuple(patterns)
        return cls(frozenset(p for p in pats if not _has_magic(p)), tuple(filter(_has_magic, pats)))

    def select(self, key: str) -> bool | None:
        """True: a named key; False: matched by a wildcard glob; None: not read."""
        if any(fnmatch.fnmatchcase(key, p) for p in NEVER_READ):
            return None
        if key in self.named:
            return True
        if any(fnmatch.fnmatchcase(key, g) for g in self.globs):
            return False
        return None


class Extractor:
    """Object JSON → :class:`Entry`. Pure apart from the label interning table."""

    def __init__(self, source: KubernetesSource) -> None:
        self.source = source
        self.types = frozenset(source.secret_types)
        self.tls_spec = KeySpec.of(TLS_KEYS)
        self.other_spec = KeySpec.of(source.opaque_keys or TLS_KEYS)
        self.configmap_spec = KeySpec.of(source.configmap_keys)
        self.excluded = frozenset(source.exclude_namespaces)
        self.included = frozenset(source.namespaces)
        # Thousands of Secrets share a few label pairs (same issuer, same team) and often
        # whole label sets. Both tables are bounded and simply start over when full, so they
        # never pin more than a few thousand stale tuples.
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}
        self._sets: dict[Labels, Labels] = {}

    def wanted_namespace(self, namespace: str) -> bool:
        if namespace in self.excluded:
            return False
        return not self.included or namespace in self.included

    def secret_spec(self, secret_type: str) -> KeySpec | None:
        if secret_type == TLS_TYPE:
            return self.tls_spec if TLS_TYPE in self.types else None
        if secret_type in self.types or (secret_type == OPAQUE_TYPE and self.source.opaque_keys):
            return self.other_spec
        return None

    def labels(self, namespace: str, meta: Mapping[str, Any]) -> Labels:
        annotations = meta.get("annotations")
        obj_labels = meta.get("labels")
        ann = annotations if isinstance(annotations, dict) else {}
        lab = obj_labels if isinstance(obj_labels, dict) else {}
        out: dict[str, str] = {}
        issuer = ann.get("cert-manager.io/issuer-name")
        certificate = ann.get("cert-manager.io/certificate-name")
        if isinstance(issuer, str) or isinstance(certificate, str):
            out["renewal"] = "cert-manager"
        if isinstance(issuer, str) and issuer:
            kind = ann.get("cert-manager.io/issuer-kind")
            out["certmanager_issuer"] = (
                f"{kind if isinstance(kind, str) and kind else 'Issuer'}/{issuer}"
            )
        if isinstance(certificate, str) and certificate:
            out["certmanager_certificate"] = f"{namespace}/{certificate}"
        # Configured mappings come last: an explicit choice wins over the built-in ones.
        for label, key in self.source.labels_from_annotations:
            value = ann.get(key)
            if isinstance(value, str):
                out[label] = value
        for label, key in self.source.labels_from_labels:
            value = lab.get(key)
            if isinstance(value, str):
                out[label] = value
        result = tuple(_intern(self._pairs, pair) for pair in sorted(out.items()))
        return _intern(self._sets, result)

    def extract(
        self, resource: str, obj: object, old: Mapping[ObjKey, Entry] | None = None
    ) -> tuple[ObjKey, Entry | None] | None:
        """``(key, entry)`` for one object; entry None when nothing in it is of interest."""
        if not isinstance(obj, dict):
            return None
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return None
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        if not isinstance(namespace, str) or not isinstance(name, str) or not name:
            return None
        key = (namespace, name)
        if not self.wanted_namespace(namespace):
            return key, None
        if not owns(f"{namespace}/{name}", self.source.shard):
            return key, None  # another replica's share of the cluster (--shard)
        rv = str(meta.get("resourceVersion") or "")
        if old is not None and rv:
            previous = old.get(key)
            if previous is not None and previous.resource_version == rv:
                return key, previous  # unchanged since it was parsed: skip the decoding
        if resource == "secrets":
            entry = self._secret(namespace, name, rv, meta, obj)
        else:
            entry = self._configmap(namespace, name, rv, meta, obj)
        return key, entry

    def _secret(
        self, namespace: str, name: str, rv: str, meta: Mapping[str, Any], obj: Mapping[str, Any]
    ) -> Entry | None:
        secret_type = obj.get("type") or OPAQUE_TYPE
        spec = self.secret_spec(secret_type if isinstance(secret_type, str) else "")
        if spec is None:
            return None
        base = f"{namespace}/{name}"
        data = obj.get("data") or {}
        if not isinstance(data, dict):
            return Entry(
                rv, (), (ItemError(base, ItemFailure.CORRUPT_DATA, "data is not a mapping"),)
            )
        labels = self.labels(namespace, meta)
        certs: list[StoredCert] = []
        errors: list[ItemError] = []
        for k in sorted(data):
            named = spec.select(k)
            if named is None:
                continue
            location = f"{base}#{k}"
            raw = _decoded(location, data[k], errors)
            if raw is None:
                continue
            _parse_value(location, raw, named, labels, certs, errors)
        keys = _secret_keys(base, data, labels, errors, certs)
        if secret_type == TLS_TYPE:
            for required in ("tls.crt", "tls.key"):
                if required not in data:
                    message = f"the {TLS_TYPE} Secret has no {required}"
                    errors.append(ItemError(f"{base}#{required}", ItemFailure.MISSING_KEY, message))
        if certs or errors or keys:
            return Entry(rv, tuple(certs), tuple(errors), keys)
        return None

    def _configmap(
        self, namespace: str, name: str, rv: str, meta: Mapping[str, Any], obj: Mapping[str, Any]
    ) -> Entry | None:
        base = f"configmap:{namespace}/{name}"
        labels: Labels | None = None
        certs: list[StoredCert] = []
        errors: list[ItemError] = []
        for field_name in ("data", "binaryData"):
            data = obj.get(field_name) or {}
            if not isinstance(data, dict):
                errors.append(
                    ItemError(base, ItemFailure.CORRUPT_DATA, f"{field_name} is not a mapping")
                )
                continue
            for k in sorted(data):
                named = self.configmap_spec.select(k)
                if named is None:
                    continue
                location = f"{base}#{k}"
                value = data[k]
                if field_name == "binaryData":
                    raw = _b64(value)
                elif isinstance(value, str):
                    raw = value.encode("utf-8", "surrogateescape")
                else:
                    raw = None
                if raw is None:
                    errors.append(
                        ItemError(location, ItemFailure.CORRUPT_DATA, "value is not valid data")
                    )
                    continue
                if labels is None:
                    labels = self.labels(namespace, meta)
                _parse_value(location, raw, named, labels, certs, errors)
        return Entry(rv, tuple(certs), tuple(errors)) if certs or errors else None


INTERN_LIMIT = 4096


def _intern(table: dict[_H, _H], value: _H) -> _H:
    """The table's equal value, or ``value`` itself (added; the table is emptied when full)."""
    got = table.get(value)
    if got is None:
        if len(table) >= INTERN_LIMIT:
            table.clear()
        table[value] = got = value
    return got


def _b64(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _decoded(location: str, value: object, errors: list[ItemError]) -> bytes | None:
    """A Secret value's bytes, or None and a ``corrupt_data`` error."""
    raw = _b64(value)
    if raw is None:
        errors.append(ItemError(location, ItemFailure.CORRUPT_DATA, "value is not valid base64"))
    return raw


def _secret_keys(
    base: str,
    data: Mapping[str, Any],
    labels: Labels,
    errors: list[ItemError],
    certs: list[StoredCert],
) -> tuple[StoredKey, ...]:
    """Records of the private keys of a selected Secret (``tls.key``, ``*.key``): decoded only
    to learn the public key, never kept. A key is linked to its own Secret's certificate here,
    once, so that publishing does not rebuild 10,000 records each time."""
    records: list[StoredKey] = []
    for k in sorted(data):
        if not any(fnmatch.fnmatchcase(k, p) for p in NEVER_READ):
            continue
        location = f"{base}#{k}"
        raw = _decoded(location, data[k], errors)
        if raw is None:
            continue
        if not raw.strip():
            continue  # an empty placeholder (cert-manager before issuance): no key to report
        found, corrupt = keys_in(location, raw)
        del raw
        if corrupt:
            errors.append(
                ItemError(location, ItemFailure.CORRUPT_KEY, "not a readable private key")
            )
        if found:
            own = {c.facts.public_key_sha256: c.location for c in reversed(certs)}
            records.extend(_with_secret_facts(r, labels, own) for r in found)
    return tuple(records)


def _with_secret_facts(record: StoredKey, labels: Labels, own: Mapping[str, str]) -> StoredKey:
    """The key with the Secret's labels and its certificate in the same Secret, if any."""
    holder = own.get(record.public_key_sha256, "") if record.public_key_sha256 else ""
    encrypted = keyrec.attribute(record, "encrypted") == "true"
    return StoredKey(
        kind=record.kind,
        location=record.location,
        algorithm=record.algorithm,
        bits=record.bits,
        public_key_sha256=record.public_key_sha256,
        attributes=keyrec.attributes(encrypted, "pem", holder),
        labels=labels,
    )


def _parse_value(
    location: str,
    raw: bytes,
    named: bool,
    labels: Labels,
    certs: list[StoredCert],
    errors: list[ItemError],
) -> None:
    """Certificates in one key's bytes; problems become item errors (never with content)."""
    if b"-----BEGIN" in raw:
        found, problems = pem_certificates(location, raw, "certificate")
        certs.extend(StoredCert(location, pos, facts, labels) for pos, facts, _ in found)
        errors.extend(problems)
        if not found and not problems and named:
            errors.append(
                ItemError(location, ItemFailure.NO_CERTIFICATE, "no PEM certificate in value")
            )
        return
    if raw[:1] == b"\x30":
        facts = facts_from_der(raw)
        if facts.subject or facts.not_after:
            certs.append(StoredCert(location, 0, facts, labels))
        elif named:
            errors.append(
                ItemError(
                    location, ItemFailure.UNPARSEABLE, (facts.parse_errors or ("not DER",))[0]
                )
            )
        return
    if named:
        if raw.strip():
            errors.append(
                ItemError(location, ItemFailure.UNKNOWN_FORMAT, "not a PEM or DER certificate")
            )
        else:
            errors.append(ItemError(location, ItemFailure.NO_CERTIFICATE, "value is empty"))
