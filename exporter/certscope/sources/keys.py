"""Private keys as :class:`~certscope.results.StoredKey` records: public facts only. No I/O.

A private key found in a store becomes one record of kind ``private_key`` with its type and
size, the SHA-256 of its public key (the same hash as a certificate's ``public_key_sha256``),
and these attributes:

* ``encrypted``: ``true`` when the key is protected by a password that is neither empty nor a
  public default (PKCS#8 ``ENCRYPTED PRIVATE KEY``, legacy ``Proc-Type: 4,ENCRYPTED`` PEM, a
  PKCS#12 or keystore password other than ``""`` and Java's ``changeit``); ``false`` otherwise.
* ``format``: ``pem`` (files, Kubernetes Secrets, Vault values), ``der``, ``pkcs12``, ``jks``,
  ``jceks``, ``kubeconfig``.
* ``certificate_location``: the location of the certificate that holds the key's public key
  (found by public key, or by the container's own pairing: a PKCS#12 alias, a keystore
  entry's chain); empty when no certificate in the source uses it.

An encrypted key whose password is not configured has no public key here: its type, size and
hash are empty, which says "unknown", never "fine". The private part is loaded only to compute
the public key and dropped at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ..certs import public_key_facts
from ..policy import KeyFacts
from ..results import SourceResult, StoredCert, StoredKey
from . import der

KIND = "private_key"

#: PEM labels of private keys a certificate can belong to (OPENSSH keys are SSH credentials).
KEY_LABELS = frozenset(
    {"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "DSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"}
)


_ENCRYPTED = {True: ("encrypted", "true"), False: ("encrypted", "false")}
_FORMATS: dict[str, tuple[str, str]] = {}


def attributes(
    encrypted: bool, fmt: str, certificate_location: str = ""
) -> tuple[tuple[str, str], ...]:
    # The constant pairs are shared: 10,000 Secrets need not hold 20,000 copies of them.
    pair = _FORMATS.setdefault(fmt, ("format", fmt))
    return (("certificate_location", certificate_location), _ENCRYPTED[encrypted], pair)


#: What cryptography raises for key bytes or a key it cannot use: malformed (ValueError), a
#: password needed (TypeError), an algorithm or encoding this build lacks (UnsupportedAlgorithm).
LOAD_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm)


def from_private(
    location: str, key: Any, encrypted: bool, fmt: str, certificate_location: str = ""
) -> StoredKey:
    """The record of a loaded private key (only its public half is looked at)."""
    try:
        public = key.public_key()
    except LOAD_ERRORS:  # a key type without a public half this build can give
        public = None
    return from_public(location, public, encrypted, fmt, certificate_location)


@dataclass(frozen=True)
class PublicFacts:
    """A public key's facts read straight from DER (see :func:`_ec_facts`)."""

    algorithm: str
    bits: int
    spki_sha256: str


def _ec_facts(raw: bytes) -> PublicFacts | None:
    """The public facts of an EC private key from the point stored in it, without OpenSSL
    (which would recompute the point from the secret scalar: 0.3 ms a key)."""
    spki = der.ec_public_spki(raw)
    bits = der.ec_curve_bits(spki) if spki is not None else None
    if spki is None or bits is None:
        return None
    return PublicFacts("EC", bits, hashlib.sha256(spki).hexdigest())


def from_public(
    location: str, public: Any, encrypted: bool, fmt: str, certificate_location: str = ""
) -> StoredKey:
    """The record of a private key known by its public key (or its :class:`PublicFacts`)."""
    if isinstance(public, PublicFacts):
        algorithm, bits, spki = public.algorithm, public.bits, public.spki_sha256
    else:
        try:
            algorithm, bits, _curve, spki = public_key_facts(public)
        except LOAD_ERRORS:  # a key type without an SPKI form (X25519 and friends)
            algorithm, bits, spki = type(public).__name__, 0, ""
    return StoredKey(
        kind=KIND,
        location=location,
        algorithm=algorithm,
        bits=bits or None,
        public_key_sha256=spki,
        attributes=attributes(encrypted, fmt, certificate_location),
    )


def unknown(location: str, fmt: str, certificate_location: str = "") -> StoredKey:
    """An encrypted key that no configured password opens: only that it is there."""
    return StoredKey(
        kind=KIND, location=location, attributes=attributes(True, fmt, certificate_location)
    )


def with_attribute(key: StoredKey, name: str, value: str) -> StoredKey:
    """``key`` with one attribute set (the others, and their order, kept)."""
    pair = _FORMATS.setdefault(value, (name, value)) if name == "format" else (name, value)
    attrs = [p for p in key.attributes if p[0] != name]
    return replace(key, attributes=tuple(sorted((*attrs, pair))))


def attribute(key: StoredKey, name: str) -> str:
    return dict(key.attributes).get(name, "")


def is_encrypted_pem(text: bytes) -> bool:
    return text.startswith(b"-----BEGIN ENCRYPTED") or b"Proc-Type: 4,ENCRYPTED" in text


def _pem_der(text: bytes) -> bytes | None:
    body = text[text.find(b"-----", 11) + 5 : text.rfind(b"-----END")]
    try:
        return base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def public_pem(text: bytes) -> Any | None:
    """The public key of an unencrypted PEM private key, or None (encrypted). Raises for a
    corrupt one. An EC key's public point is taken from the key as stored (see
    :mod:`certscope.sources.der`); other keys are loaded, their public half kept."""
    if is_encrypted_pem(text):
        return None
    raw = _pem_der(text)
    facts = _ec_facts(raw) if raw is not None else None
    if facts is not None:
        return facts
    try:
        # Only the public half is used, so RSA's slow consistency check buys nothing.
        key = serialization.load_pem_private_key(text, None, unsafe_skip_rsa_key_validation=True)
    except TypeError:  # encrypted after all
        return None
    return key.public_key()


def public_der(data: bytes) -> tuple[Any | None, bool]:
    """(public key, encrypted) of a DER private key; raises ValueError when it is not one."""
    facts = _ec_facts(data)
    if facts is not None:
        return facts, False
    try:
        key = serialization.load_der_private_key(data, None, unsafe_skip_rsa_key_validation=True)
    except TypeError:  # an encrypted PKCS#8 EncryptedPrivateKeyInfo
        return None, True
    return key.public_key(), False


def _base(location: str) -> str:
    return location.split("#")[0]


def _stem(location: str) -> str:
    return os.path.splitext(_base(location))[0]


@dataclass
class _Holders:
    """The locations of the certificates with one public key, indexed for the nearest one."""

    first: str
    every: set[str] = field(default_factory=set)
    by_base: dict[str, str] = field(default_factory=dict)
    by_stem: dict[str, str] = field(default_factory=dict)

    def add(self, location: str) -> None:
        self.every.add(location)
        self.by_base.setdefault(_base(location), location)
        self.by_stem.setdefault(_stem(location), location)

    def nearest(self, key_location: str) -> str:
        """The same location, the same container (Secret, KV secret, file), the same stem
        (``tls.key`` and ``tls.crt``), or the first by location."""
        if key_location in self.every:
            return key_location
        return self.by_base.get(
            _base(key_location), self.by_stem.get(_stem(key_location), self.first)
        )


def link(keys: Iterable[StoredKey], certs: Sequence[StoredCert]) -> tuple[StoredKey, ...]:
    """Fill ``certificate_location`` from the certificates of the same source, by public key;
    of several, the nearest (:meth:`_Holders.nearest`). Linear in keys and certificates: one
    key shared by 10,000 certificates is a common shape (a bench, a wildcard)."""
    holders: dict[str, _Holders] = {}
    for c in sorted(certs, key=lambda c: (c.location, c.position)):
        digest = c.facts.public_key_sha256
        if digest:
            holders.setdefault(digest, _Holders(c.location)).add(c.location)
    out: list[StoredKey] = []
    for k in keys:
        found = holders.get(k.public_key_sha256) if k.public_key_sha256 else None
        if attribute(k, "certificate_location") or found is None:
            out.append(k)
            continue
        out.append(with_attribute(k, "certificate_location", found.nearest(k.location)))
    return tuple(out)


def private_keys_by_location(result: SourceResult) -> dict[str, list[KeyFacts]]:
    """The private keys of a source result as policy sees them, by location."""
    out: dict[str, list[KeyFacts]] = {}
    for k in result.keys:
        if k.kind != KIND:
            continue
        facts = KeyFacts(
            algorithm=k.algorithm,
            bits=k.bits,
            encrypted=attribute(k, "encrypted") == "true",
            has_certificate=bool(attribute(k, "certificate_location")),
            source_kind=result.kind,
        )
        out.setdefault(k.location, []).append(facts)
    return out
