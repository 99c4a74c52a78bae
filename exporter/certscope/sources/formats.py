"""Certificate file formats: bytes in, certificates out, no I/O.

:func:`sniff` tells the format from the content (extensions lie: a ``.crt`` may hold DER, PEM or
a PKCS#7 bundle), and :func:`parse` hands the bytes to one function per format:

=================  ============================================  ==============================
format             detected by                                   location, position
=================  ============================================  ==============================
``pem``            ``-----BEGIN`` armour: CERTIFICATE, PKCS7     ``<path>``, running count of
                   and CMS blocks; PRIVATE KEY blocks are only   certificates in the file
                   used for the key check
``der``            a DER SEQUENCE that opens with a SEQUENCE     ``<path>``, 0
                   (the tbsCertificate)
``pkcs7``          DER ContentInfo of type signedData            ``<path>``, order in the file
``pkcs12``         DER PFX (SEQUENCE, INTEGER 3, ContentInfo)    ``<path>``: the key's
                                                                 certificate first, then the
                                                                 others
``jks``            magic ``FEEDFEED`` (JKS) or ``CECECECE``      ``<path>#<alias>``, position
                   (JCEKS)                                       in that entry's chain
``kubeconfig``     YAML with top-level ``clusters``/``users``    ``<path>#cluster:<name>``,
                                                                 ``<path>#user:<name>``
``key``            a private key alone (PEM or DER)              nothing: skipped silently
=================  ============================================  ==============================

Nothing here raises: every problem comes back as an :class:`~certscope.results.ItemError` whose
``reason`` is an :class:`~certscope.errors.ItemFailure`. An error about one certificate inside a location is
reported at ``<location>#<position>``.

Private keys are read only to compare their public half with a certificate
(:func:`keys_in`, :func:`apply_key_match`); only the SHA-256 of that public key leaves
this module. Passwords travel in :class:`Password`, whose ``repr`` hides the value, and no
message ever contains one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from ..certs import CertFacts, facts_from_der, iter_pem_blocks
from ..errors import ItemFailure, ItemReason
from ..results import ItemError, StoredCert, StoredKey
from . import keys as keyrec
from .der import header as _der_header

Format = Literal["pem", "der", "pkcs7", "pkcs12", "jks", "kubeconfig", "key", "unknown"]

#: Errors listed per location; the rest are counted in one more error per reason.
MAX_ERRORS_PER_LOCATION = 100

#: Java's ``keytool`` default store password, tried after the configured ones.
JAVA_DEFAULT_PASSWORD = "changeit"  # noqa: S105 -- a public default, not a secret

_JKS_MAGIC = b"\xfe\xed\xfe\xed"
_JCEKS_MAGIC = b"\xce\xce\xce\xce"
# DER of OBJECT IDENTIFIER 1.2.840.113549.1.7.2 (PKCS#7 / CMS signedData).
_SIGNED_DATA_OID = bytes.fromhex("06092a864886f70d010702")
_PEM_BEGIN_RE = re.compile(rb"-----BEGIN ([A-Z0-9][A-Z0-9 ]{0,63})-----")
# Top-level YAML keys, or JSON keys (a kubeconfig may be JSON, which YAML also reads).
_KUBECONFIG_RE = re.compile(
    rb'^(?:clusters|users)[ \t]*:|"(?:clusters|users)"\s*:',
    re.MULTILINE,
)
_CERT_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"})
_PKCS7_LABELS = frozenset({"PKCS7", "CMS"})


@dataclass(frozen=True)
class Password:
    """A candidate password and where it came from; ``repr`` never shows the value."""

    origin: str  # for messages: "password_env CERTS_PW", "password_file /run/secrets/pw"
    value: str = field(repr=False)


@dataclass(frozen=True)
class Parsed:
    """What one file held."""

    format: Format
    certs: tuple[StoredCert, ...] = ()
    errors: tuple[ItemError, ...] = ()
    #: The result depends on the configured passwords (PKCS#12, keystores): a password change
    #: must re-parse the file even if its bytes did not change.
    used_password: bool = False
    #: The file carried its own private key (so a sibling ``.key`` is not consulted).
    has_key: bool = False
    #: The private keys the file holds, as public facts (see :mod:`certscope.sources.keys`).
    keys: tuple[StoredKey, ...] = ()


# --- detection ---------------------------------------------------------------------------------


def _sniff_der(data: bytes) -> Format | None:
    outer = _der_header(data, 0)
    if outer is None or outer[0] != 0x30:
        return None
    _, start, length = outer
    # Exactly one element, or a truncated/padded one (still worth a precise error below).
    exact = length is None or start + length == len(data)
    inner = _der_header(data, start)
    if inner is None:
        return None
    tag, content, inner_len = inner
    if tag == 0x30:
        # Certificate ::= SEQUENCE { tbsCertificate SEQUENCE, ... }; a loose match could be
        # text that happens to start with "00", so only an exact one counts here.
        return "der" if exact else None
    if tag == 0x06 and data.startswith(_SIGNED_DATA_OID, start):
        return "pkcs7"
    if tag == 0x02 and inner_len == 1:
        version = data[content : content + 1]
        if version == b"\x03":
            return "pkcs12"  # PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe, ... }
        if version in (b"\x00", b"\x01"):
            return "key"  # PKCS#1, PKCS#8 (v1/v2) and SEC 1 private keys start with 0 or 1
    return None


def trim_der(data: bytes) -> bytes:
    """DER followed by nothing but whitespace (a certificate saved with a trailing newline) is
    that DER; anything else is returned unchanged."""
    head = _der_header(data, 0)
    if head is None or head[0] != 0x30 or head[2] is None:
        return data
    end = head[1] + head[2]
    if end < len(data) and not data[end:].strip(b" \t\r\n\x00"):
        return data[:end]
    return data


def sniff(data: bytes) -> Format:
    """The format of ``data``, from its content alone."""
    if data[:4] in (_JKS_MAGIC, _JCEKS_MAGIC):
        return "jks"
    der = _sniff_der(data)
    if der is not None:
        return der
    if b"-----BEGIN " in data:
        return "pem"
    if data[:1] == b"\x30":
        return "der"  # DER-looking but malformed: reported as an unparseable certificate
    if _KUBECONFIG_RE.search(data):
        return "kubeconfig"
    return "unknown"


def parse(path: str, data: bytes, passwords: Sequence[Password] = ()) -> Parsed:
    """Every certificate in one file's bytes, whatever the format; never raises."""
    data = trim_der(data)
    fmt = sniff(data)
    if fmt == "pem":
        return parse_pem(path, data)
    if fmt == "der":
        return parse_der_certificate(path, data)
    if fmt == "pkcs7":
        return parse_pkcs7(path, data)
    if fmt == "pkcs12":
        from .pkcs12 import parse_pkcs12

        return parse_pkcs12(path, data, passwords)
    if fmt == "jks":
        return parse_keystore(path, data, passwords)
    if fmt == "kubeconfig":
        from .kubeconfig import parse_kubeconfig

        return parse_kubeconfig(path, data)
    if fmt == "key":
        return parse_der_key(path, data)
    return Parsed(
        "unknown",
        errors=(
            ItemError(
                path,
                ItemFailure.UNKNOWN_FORMAT,
                "not a PEM, DER, PKCS#7, PKCS#12, JKS/JCEKS or kubeconfig certificate file",
            ),
        ),
    )


# --- certificates ------------------------------------------------------------------------------


def _cert(location: str, position: int, der: bytes) -> StoredCert | ItemError:
    facts = facts_from_der(der)
    if facts.parse_errors and not facts.subject and not facts.not_after:
        return ItemError(f"{location}#{position}", ItemFailure.UNPARSEABLE, facts.parse_errors[0])
    # The DER rides along for revocation checks; a reader that does not check drops it.
    return StoredCert(location, position, facts, der=der)


def pem_certificates(
    location: str, data: bytes, noun: str
) -> tuple[list[tuple[int, CertFacts, bytes]], list[ItemError]]:
    """The CERTIFICATE blocks of one stored value: (position, facts, DER) of each that parses,
    and an error at ``location`` for each that does not ("<noun> <position>: why").

    For readers of one value at a time (a Kubernetes Secret key, a Vault value), which report
    at the value's location; files go through :func:`parse`, which numbers per file.
    """
    found: list[tuple[int, CertFacts, bytes]] = []
    errors: list[ItemError] = []
    for pos, der, problem in iter_pem_blocks(data):
        if der is None:
            errors.append(ItemError(location, ItemFailure.CORRUPT_PEM, f"{noun} {pos}: {problem}"))
            continue
        facts = facts_from_der(der)
        if facts.parse_errors and not facts.subject and not facts.not_after:
            msg = f"{noun} {pos}: {facts.parse_errors[0]}"
            errors.append(ItemError(location, ItemFailure.UNPARSEABLE, msg))
            continue
        found.append((pos, facts, der))
    return found, errors


class _Collector:
    """Certificates and errors for one location, with the running position."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.position = 0
        self.certs: list[StoredCert] = []
        self._errors: list[ItemError] = []
        self._dropped: dict[ItemReason, int] = {}

    def _error(self, error: ItemError) -> None:
        # A hostile file can hold a million broken blocks; a hundred make the point.
        if len(self._errors) < MAX_ERRORS_PER_LOCATION:
            self._errors.append(error)
        else:
            self._dropped[error.reason] = self._dropped.get(error.reason, 0) + 1

    @property
    def errors(self) -> list[ItemError]:
        more = [
            ItemError(self.location, reason, f"{count} more like this not listed")
            for reason, count in self._dropped.items()
        ]
        return self._errors + more

    def add_der(self, der: bytes) -> None:
        got = _cert(self.location, self.position, der)
        if isinstance(got, StoredCert):
            self.certs.append(got)
        else:
            self._error(got)
        self.position += 1

    def fail(self, reason: ItemFailure, message: str) -> None:
        """A broken entry that held one or more certificates: it takes one position."""
        self._error(ItemError(f"{self.location}#{self.position}", reason, message))
        self.position += 1


@dataclass(frozen=True)
class _PemBlock:
    label: str
    body: bytes | None  # None: the block never ends
    text: bytes = b""  # the whole armoured block, for private keys only


def _pem_blocks(data: bytes) -> Iterator[_PemBlock]:
    """Every armoured block in order; an unterminated one does not swallow the next."""
    pos = 0
    while (m := _PEM_BEGIN_RE.search(data, pos)) is not None:
        label = m.group(1)
        end_marker = b"-----END " + label + b"-----"
        following = data.find(b"-----BEGIN ", m.end())
        # Look for the end only up to the next block: linear time even for a file that is
        # nothing but BEGIN lines.
        end = data.find(end_marker, m.end(), len(data) if following == -1 else following)
        if end == -1:
            yield _PemBlock(label.decode("ascii"), None)
            if following == -1:
                return
            pos = following
            continue
        # The whole armoured text is kept only for keys, which are loaded from it.
        text = data[m.start() : end + len(end_marker)] if label.endswith(b"PRIVATE KEY") else b""
        yield _PemBlock(label.decode("ascii"), data[m.end() : end], text)
        pos = end + len(end_marker)


def first_element(der: bytes) -> bytes:
    """The first DER element of ``der`` (all of it when its header cannot be read)."""
    head = _der_header(der, 0)
    if head is None or head[2] is None or head[1] + head[2] > len(der):
        return der
    return der[: head[1] + head[2]]


def _b64(body: bytes) -> bytes | None:
    try:
        return base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _add_pkcs7(out: _Collector, der: bytes) -> None:
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except keyrec.LOAD_ERRORS as exc:  # malformed input, or an algorithm this build lacks
        out.fail(ItemFailure.UNPARSEABLE, f"PKCS#7: {str(exc)[:160]}")
        return
    for cert in certs:
        out.add_der(cert.public_bytes(serialization.Encoding.DER))


def _pem_into(out: _Collector, data: bytes) -> tuple[list[bytes], bool]:
    """Certificates of a PEM text into ``out``; returns the private key blocks and whether any
    block could have held certificates."""
    keys: list[bytes] = []
    cert_blocks = False
    for block in _pem_blocks(data):
        label = block.label
        if label in _CERT_LABELS or label in _PKCS7_LABELS:
            cert_blocks = True
            if block.body is None:
                out.fail(ItemFailure.CORRUPT_PEM, "unterminated PEM block")
                continue
            der = _b64(block.body)
            if der is None:
                out.fail(ItemFailure.CORRUPT_PEM, "invalid base64 in PEM block")
            elif label == "TRUSTED CERTIFICATE":
                out.add_der(first_element(der))  # OpenSSL appends its trust settings
            elif label in _CERT_LABELS:
                out.add_der(der)
            else:
                _add_pkcs7(out, der)
        elif label.endswith("PRIVATE KEY") and block.body is not None:
            keys.append(block.text)
    return keys, cert_blocks


def parse_pem(path: str, data: bytes) -> Parsed:
    """PEM bundle: CERTIFICATE, TRUSTED CERTIFICATE and PKCS7 blocks in order, position counted
    across them; a corrupt block is an error and the rest is still read. PRIVATE KEY blocks
    become key records (:func:`pem_keys`) and are compared with the certificates
    (:func:`apply_key_match`); a file of keys alone is a key file, not a certificate error."""
    out = _Collector(path)
    texts, cert_blocks = _pem_into(out, data)
    records, corrupt = pem_keys(path, texts)
    del texts
    if (records or corrupt) and not cert_blocks:
        bad = (ItemError(path, ItemFailure.CORRUPT_KEY, "private key in the file is unreadable"),)
        return Parsed("key", errors=bad if corrupt else (), has_key=True, keys=records)
    certs: tuple[StoredCert, ...] = tuple(out.certs)
    errors = list(out.errors)
    if records and certs:
        certs = apply_key_match(certs, key_hashes(records))
    if corrupt:
        errors.append(
            ItemError(path, ItemFailure.CORRUPT_KEY, "private key in the file is unreadable")
        )
    if not certs and not errors:
        errors.append(ItemError(path, ItemFailure.NO_CERTIFICATE, "no PEM certificate in file"))
    return Parsed("pem", certs, tuple(errors), has_key=bool(records), keys=records)


def parse_der_certificate(path: str, data: bytes) -> Parsed:
    """One DER certificate (position 0), or an encrypted PKCS#8 key (which also opens with two
    SEQUENCEs)."""
    facts = facts_from_der(data)
    if facts.subject or facts.not_after:
        return Parsed("der", (StoredCert(path, 0, facts, der=data),))
    key = parse_der_key(path, data)
    if key.keys:
        return key
    message = (facts.parse_errors or ("not DER",))[0]
    return Parsed("der", errors=(ItemError(path, ItemFailure.UNPARSEABLE, message),))


def parse_der_key(path: str, data: bytes) -> Parsed:
    """A private key alone in DER (PKCS#1, SEC 1, PKCS#8, encrypted PKCS#8)."""
    try:
        public, encrypted = keyrec.public_der(data)
    except keyrec.LOAD_ERRORS:  # not a key this build can read
        error = ItemError(path, ItemFailure.CORRUPT_KEY, "not a readable DER private key")
        return Parsed("key", errors=(error,), has_key=True)
    record = (
        keyrec.unknown(path, "der")
        if public is None
        else keyrec.from_public(path, public, encrypted, "der")
    )
    return Parsed("key", has_key=True, keys=(record,))


def parse_pkcs7(path: str, data: bytes) -> Parsed:
    """PKCS#7 / CMS signedData in DER (``.p7b``, ``.p7c``): every certificate, file order."""
    out = _Collector(path)
    _add_pkcs7(out, data)
    errors = list(out.errors)
    if not out.certs and not errors:
        errors.append(
            ItemError(path, ItemFailure.NO_CERTIFICATE, "PKCS#7 structure holds no certificate")
        )
    return Parsed("pkcs7", tuple(out.certs), tuple(errors))


# --- private keys ------------------------------------------------------------------------------


def _spki_sha256(key: Any) -> str:
    """SHA-256 of a private key's public half (SPKI DER), as in ``CertFacts``; "" if none."""
    try:
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except keyrec.LOAD_ERRORS:  # a key type without an SPKI form: nothing to compare
        return ""
    return hashlib.sha256(spki).hexdigest()


def key_hashes(records: Iterable[StoredKey]) -> frozenset[str]:
    return frozenset(r.public_key_sha256 for r in records if r.public_key_sha256)


def pem_keys(location: str, texts: Sequence[bytes]) -> tuple[tuple[StoredKey, ...], bool]:
    """A record for every private key block (``<location>`` for one, ``<location>#key<n>`` for
    several), and whether one of them could not be read. Encrypted keys are recorded without
    their public facts: there is no password for them."""
    texts = [t for t in texts if _pem_label(t) in keyrec.KEY_LABELS]
    records: list[StoredKey] = []
    corrupt = False
    for n, text in enumerate(texts):
        where = f"{location}#key{n}" if len(texts) > 1 else location
        try:
            public = keyrec.public_pem(text)
        except keyrec.LOAD_ERRORS:  # malformed, or an algorithm this build cannot load
            corrupt = True
            continue
        if public is None:
            records.append(keyrec.unknown(where, "pem"))
        else:
            records.append(keyrec.from_public(where, public, False, "pem"))
    return tuple(records), corrupt


def _pem_label(text: bytes) -> str:
    return text[11 : text.find(b"-----", 11)].decode("ascii", "replace")


def keys_in(location: str, data: bytes) -> tuple[tuple[StoredKey, ...], bool]:
    """Records of the private keys in ``data`` (PEM blocks, or one DER key), and whether
    something that should be a key could not be read."""
    if b"-----BEGIN " in data:
        return pem_keys(location, [b.text for b in _pem_blocks(data) if b.body is not None])
    parsed = parse_der_key(location, data)
    return parsed.keys, bool(parsed.errors)


def apply_key_match(
    certs: Sequence[StoredCert], key_hashes: frozenset[str]
) -> tuple[StoredCert, ...]:
    """Mark the certificates a private key beside them belongs to.

    A certificate whose public key is one of ``key_hashes`` gets ``key_matches=True``. When none
    does, the first certificate (the leaf, in the usual order of a bundle) gets ``False``: the
    key beside it is not its key. Others stay ``None``. No keys: unchanged.
    """
    if not key_hashes or not certs:
        return tuple(certs)
    out = [
        replace(c, key_matches=True) if c.facts.public_key_sha256 in key_hashes else c
        for c in certs
    ]
    if not any(c.key_matches for c in out):
        out[0] = replace(out[0], key_matches=False)
    return tuple(out)


# --- password-protected containers ------------------------------------------------------------


def _origins(passwords: Sequence[Password]) -> str:
    return " or ".join(dict.fromkeys(p.origin for p in passwords))


def parse_keystore(path: str, data: bytes, passwords: Sequence[Password]) -> Parsed:
    """Java KeyStore (JKS) or JCEKS: trusted certificates and private key entries' chains.

    The store password is needed for the integrity check: each configured password is tried,
    then Java's default. Each entry is its own location, ``<path>#<alias>``. A private key entry
    whose key opens with the store password (the usual setup) gets ``key_matches`` on its first
    certificate.
    """
    import jks  # imported on use: most deployments never see a keystore

    candidates = [*passwords, Password("Java's default password", JAVA_DEFAULT_PASSWORD)]
    store = None
    store_password = ""
    for candidate in {c.value: c for c in candidates}.values():
        try:
            store = jks.KeyStore.loads(data, candidate.value, try_decrypt_keys=False)
        except jks.util.KeystoreSignatureException:
            continue
        except UnicodeError:  # not encodable as UTF-16 (its message would quote a character)
            continue
        except Exception as exc:  # untrusted bytes: pyjks raises whatever its parser meets
            # pyjks's own messages describe the structure; others (the Java-serialisation
            # parser behind JCEKS secret keys) may quote stored bytes: name only.
            detail = f": {str(exc)[:160]}" if isinstance(exc, jks.util.KeystoreException) else ""
            message = f"keystore: {type(exc).__name__}{detail}"
            return Parsed(
                "jks",
                errors=(ItemError(path, ItemFailure.UNPARSEABLE, message),),
                used_password=True,
            )
        store_password = candidate.value
        break
    if store is None:
        if passwords:
            tried = f"the password from {_origins(passwords)} and with Java's default password"
        else:
            tried = "Java's default password (no password_env or password_file configured)"
        message = f"keystore integrity check failed with {tried}"
        return Parsed(
            "jks", errors=(ItemError(path, ItemFailure.BAD_PASSWORD, message),), used_password=True
        )
    certs: list[StoredCert] = []
    errors: list[ItemError] = []
    records: list[StoredKey] = []
    fmt = "jceks" if data[:4] == _JCEKS_MAGIC else "jks"
    key_passwords = [store_password, *(p.value for p in passwords)]
    for alias, entry in store.entries.items():
        out = _Collector(f"{path}#{alias}")
        if isinstance(entry, jks.TrustedCertEntry):
            if entry.type == "X.509":
                out.add_der(entry.cert)
        elif isinstance(entry, jks.PrivateKeyEntry):
            for cert_type, der in entry.cert_chain:
                if cert_type == "X.509":
                    out.add_der(der)
                else:
                    out.position += 1
            record = _keystore_key(out.location, entry, key_passwords, fmt)
            if out.certs and out.certs[0].position == 0:
                out.certs[0], record = pair(out.certs[0], record)
            records.append(record)
        certs += out.certs
        errors += out.errors
    del store, store_password, key_passwords
    return container("jks", path, certs, errors, records)


def container(
    fmt: Format,
    path: str,
    certs: Sequence[StoredCert],
    errors: Sequence[ItemError],
    records: Sequence[StoredKey],
) -> Parsed:
    """What a password-protected container (keystore, PKCS#12) held; an empty one is an
    error."""
    errors = list(errors)
    if not certs and not errors and not records:
        what = "keystore" if fmt == "jks" else "PKCS#12 bundle"
        errors.append(ItemError(path, ItemFailure.NO_CERTIFICATE, f"{what} holds no certificate"))
    return Parsed(
        fmt,
        tuple(certs),
        tuple(errors),
        used_password=True,
        has_key=bool(records),
        keys=tuple(records),
    )


def pair(cert: StoredCert, record: StoredKey) -> tuple[StoredCert, StoredKey]:
    """A container's certificate and the key it pairs it with (a keystore entry's chain, a
    PKCS#12 alias): a key whose public key is known is checked against the certificate
    (``key_matches``); an encrypted key that no password opens is taken at the container's
    word for ``certificate_location``."""
    if record.public_key_sha256:
        return replace(
            cert, key_matches=cert.facts.public_key_sha256 == record.public_key_sha256
        ), record
    return cert, keyrec.with_attribute(record, "certificate_location", cert.location)


def _keystore_key(location: str, entry: Any, passwords: Sequence[str], fmt: str) -> StoredKey:
    """A keystore private key: opened with the store password or another configured one (keys
    may have their own password); encrypted unless that password is a public default."""
    for password in dict.fromkeys(passwords):
        key = _open_entry(entry, password)
        if key is not None:
            encrypted = password not in ("", JAVA_DEFAULT_PASSWORD)
            record = keyrec.from_private(location, key, encrypted, fmt)
            del key
            return record
    return keyrec.unknown(location, fmt)


def _open_entry(entry: Any, password: str) -> Any | None:
    try:
        entry.decrypt(password)
        return serialization.load_der_private_key(
            entry.pkey_pkcs8, None, unsafe_skip_rsa_key_validation=True
        )
    except Exception:  # untrusted bytes: pyjks raises arbitrary errors for a wrong password
        return None
