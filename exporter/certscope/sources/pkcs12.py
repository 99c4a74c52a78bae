"""PKCS#12 (``.p12``, ``.pfx``) read per alias, the same model as a Java keystore. No I/O.

:mod:`cryptography` opens the file (integrity MAC, decryption of the certificate bags, the
``friendlyName`` of each certificate) but returns one private key only. keytool (PKCS#12 is its
default since Java 9) writes one key bag per ``PrivateKeyEntry``, so the key bags are also read
from the file's plain SafeContents with :mod:`pyasn1_modules` (RFC 7292) and each is decrypted
with the password that opened the file.

Each key is paired with its certificate by public key (or, for a key no password opens, by
``friendlyName``); its chain follows by issuer among the certificates without a name. Locations:

* ``<path>#<alias>``: a key entry's chain (positions 0, 1, …) and its key; ``alias`` is the
  ``friendlyName`` (keytool's alias, openssl's ``-name``);
* ``<path>#<name>``: a named certificate without a key (a keytool trusted entry), position 0;
* ``<path>``: everything without a name (openssl's default), positions in file order, key
  certificate first; with one unnamed key, the key is at ``<path>`` too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from ..errors import ItemFailure
from ..results import ItemError, StoredCert, StoredKey
from . import keys as keyrec
from .formats import JAVA_DEFAULT_PASSWORD, Parsed, Password, _Collector, container, pair

_FRIENDLY_NAME = "1.2.840.113549.1.9.20"
_KEY_BAG = "1.2.840.113549.1.12.10.1.1"
_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
_DATA = "1.2.840.113549.1.7.1"


@dataclass(frozen=True)
class _KeyBag:
    der: bytes
    shrouded: bool
    name: str | None


def _open(
    data: bytes, passwords: Sequence[Password]
) -> tuple[Any, bytes | None] | ItemError | None:
    """(loaded bundle, the password that opened it), an error, or None (no password fits)."""
    # surrogateescape: an environment variable that is not UTF-8 gets its bytes back.
    candidates: list[bytes | None] = [p.value.encode("utf-8", "surrogateescape") for p in passwords]
    candidates += [None, b""]  # "no password" is spelt both ways in the wild
    for candidate in dict.fromkeys(candidates):
        try:
            return pkcs12.load_pkcs12(data, candidate), candidate
        except ValueError as exc:
            if "password" not in str(exc):
                return ItemError("", ItemFailure.UNPARSEABLE, f"PKCS#12: {str(exc)[:160]}")
        except keyrec.LOAD_ERRORS as exc:  # e.g. RC2 without the legacy provider
            message = f"PKCS#12: {type(exc).__name__}: {str(exc)[:160]}"
            return ItemError("", ItemFailure.UNPARSEABLE, message)
    return None


def parse_pkcs12(path: str, data: bytes, passwords: Sequence[Password]) -> Parsed:
    """Every certificate and key of a PKCS#12 file, per alias (see the module docstring).

    Tries each configured password, then the empty one. A key whose certificate is in the
    bundle sets that certificate's ``key_matches``.
    """
    opened = _open(data, passwords)
    if opened is None:
        tried = f"the password from {_origins(passwords)} or " if passwords else ""
        message = f"PKCS#12 could not be opened with {tried}the empty password"
        return Parsed(
            "pkcs12",
            errors=(ItemError(path, ItemFailure.BAD_PASSWORD, message),),
            used_password=True,
        )
    if isinstance(opened, ItemError):
        error = ItemError(path, opened.reason, opened.message)
        return Parsed("pkcs12", errors=(error,), used_password=True)
    loaded, password = opened
    named = [(loaded.cert.friendly_name, loaded.cert.certificate)] if loaded.cert else []
    named += [(c.friendly_name, c.certificate) for c in loaded.additional_certs]
    bags = _key_bags(data)
    if bags is None:  # structure not readable here (BER oddities): the one key cryptography saw
        bags = [] if loaded.key is None else [_KeyBag(b"", True, _name(loaded.cert))]
        found = [loaded.key]
    else:
        found = [_decrypt(b, password) for b in bags]
    del loaded
    # A shrouded key bag is as safe as the password; a plain key bag (openssl -keypbe NONE)
    # is not encrypted whatever password opened the file around it.
    strong = password not in (None, b"", JAVA_DEFAULT_PASSWORD.encode())
    del password
    parsed = _assemble(path, named, bags, found, [strong and b.shrouded for b in bags])
    del found
    return parsed


def _origins(passwords: Sequence[Password]) -> str:
    return " or ".join(dict.fromkeys(p.origin for p in passwords))


def _name(cert: Any) -> str | None:
    if cert is None or cert.friendly_name is None:
        return None
    return bytes(cert.friendly_name).decode("utf-8", "replace")


def _decrypt(bag: _KeyBag, password: bytes | None) -> Any | None:
    try:
        secret = (password or b"") if bag.shrouded else None
        return serialization.load_der_private_key(
            bag.der, secret, unsafe_skip_rsa_key_validation=True
        )
    except keyrec.LOAD_ERRORS:  # a key bag with its own password, or an algorithm we lack
        return None


def _key_bags(data: bytes) -> list[_KeyBag] | None:
    """The key bags of the file's unencrypted SafeContents (where keytool and openssl put
    them, each shrouded), with their ``friendlyName``; None when the structure is unusual."""
    from pyasn1.codec.ber import decoder
    from pyasn1.type import char, univ
    from pyasn1_modules import rfc7292

    try:
        pfx, _ = decoder.decode(data, asn1Spec=rfc7292.PFX())
        if str(pfx["authSafe"]["contentType"]) != _DATA:
            return None
        octets, _ = decoder.decode(pfx["authSafe"]["content"], asn1Spec=univ.OctetString())
        safe, _ = decoder.decode(bytes(octets), asn1Spec=rfc7292.AuthenticatedSafe())
        bags: list[_KeyBag] = []
        for info in safe:
            if str(info["contentType"]) != _DATA:
                continue  # encrypted SafeContents hold the certificates
            octets, _ = decoder.decode(info["content"], asn1Spec=univ.OctetString())
            contents, _ = decoder.decode(bytes(octets), asn1Spec=rfc7292.SafeContents())
            for bag in contents:
                bag_id = str(bag["bagId"])
                if bag_id not in (_KEY_BAG, _SHROUDED_KEY_BAG):
                    continue
                name = None
                for attr in bag["bagAttributes"]:
                    if str(attr["attrType"]) == _FRIENDLY_NAME and len(attr["attrValues"]):
                        value, _ = decoder.decode(
                            bytes(attr["attrValues"][0]), asn1Spec=char.BMPString()
                        )
                        name = str(value)
                bags.append(_KeyBag(bytes(bag["bagValue"]), bag_id == _SHROUDED_KEY_BAG, name))
        return bags
    except Exception:  # pyasn1 raises its own error types for structures it cannot map
        return None


def _spki(cert: x509.Certificate) -> str:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def _assemble(
    path: str,
    named: list[tuple[bytes | None, x509.Certificate]],
    bags: Sequence[_KeyBag],
    found: Sequence[Any | None],
    encrypted: Sequence[bool],
) -> Parsed:
    certs = [(n.decode("utf-8", "replace") if n is not None else None, c) for n, c in named]
    used: set[int] = set()
    groups: list[tuple[str, list[x509.Certificate], StoredKey | None]] = []
    unnamed_keys = sum(1 for b in bags if b.name is None)
    for n, (bag, key, protected) in enumerate(zip(bags, found, encrypted, strict=True)):
        hashed = _spki_of(key)
        leaf = next(
            (
                i
                for i, (_, c) in enumerate(certs)
                if i not in used and hashed and _spki(c) == hashed
            ),
            None,
        )
        alias = bag.name or (certs[leaf][0] if leaf is not None else None)
        if leaf is None and alias is not None:
            leaf = next(
                (i for i, (nm, _) in enumerate(certs) if nm == alias and i not in used), None
            )
        if alias is not None:
            location = f"{path}#{alias}"
        else:
            location = path if unnamed_keys == 1 else f"{path}#key{n}"
        record = (
            keyrec.unknown(location, "pkcs12")
            if key is None
            else keyrec.from_private(location, key, protected, "pkcs12")
        )
        chain: list[x509.Certificate] = []
        if leaf is not None:
            used.add(leaf)
            chain = [certs[leaf][1], *_issuers(certs[leaf][1], certs, used)]
        groups.append((location, chain, record))
    for i, (nm, c) in enumerate(certs):
        if i not in used and nm is not None:
            used.add(i)
            groups.append((f"{path}#{nm}", [c], None))
    rest = [c for i, (_, c) in enumerate(certs) if i not in used]
    return _parsed(path, groups, rest)


def _spki_of(key: Any | None) -> str:
    if key is None:
        return ""
    try:
        return hashlib.sha256(
            key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).hexdigest()
    except keyrec.LOAD_ERRORS:  # a key type without an SPKI form
        return ""


def _issuers(
    leaf: x509.Certificate, certs: list[tuple[str | None, x509.Certificate]], used: set[int]
) -> list[x509.Certificate]:
    """The chain above ``leaf`` from the unnamed certificates, by issuer name."""
    chain: list[x509.Certificate] = []
    current = leaf
    while current.issuer != current.subject:
        nxt = next(
            (
                i
                for i, (nm, c) in enumerate(certs)
                if i not in used and nm is None and c.subject == current.issuer
            ),
            None,
        )
        if nxt is None:
            break
        used.add(nxt)
        current = certs[nxt][1]
        chain.append(current)
    return chain


def _parsed(
    path: str,
    groups: list[tuple[str, list[x509.Certificate], StoredKey | None]],
    rest: list[x509.Certificate],
) -> Parsed:
    all_certs: list[StoredCert] = []
    errors: list[ItemError] = []
    records: list[StoredKey] = []
    # The unnamed certificates share ``<path>`` with an unnamed key's chain: positions run on.
    plain = _Collector(path)
    for location, chain, record in groups:
        out = plain if location == path else _Collector(location)
        start = len(out.certs)
        for c in chain:
            out.add_der(c.public_bytes(serialization.Encoding.DER))
        if record is not None:
            if len(out.certs) > start and out.certs[start].position == 0:
                out.certs[start], record = pair(out.certs[start], record)
            records.append(record)
        if out is not plain:
            all_certs += out.certs
            errors += out.errors
    for c in rest:
        plain.add_der(c.public_bytes(serialization.Encoding.DER))
    all_certs += plain.certs
    errors += plain.errors
    return container("pkcs12", path, all_certs, errors, records)
