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
``reason`` is one of :data:`REASONS`. An error about one certificate inside a location is
reported at ``<location>#<position>``.

Private keys are read only to compare their public half with a certificate
(:func:`key_spki_hashes`, :func:`apply_key_match`); only the SHA-256 of that public key leaves
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
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from ..certs import facts_from_der
from ..results import ItemError, StoredCert

Format = Literal["pem", "der", "pkcs7", "pkcs12", "jks", "kubeconfig", "key", "unknown"]

#: Every ``ItemError.reason`` this module produces.
REASONS = (
    "corrupt_pem",  # a PEM block whose base64 is broken or that never ends
    "unparseable",  # the container or certificate is malformed
    "unknown_format",  # none of the formats above
    "no_certificate",  # a readable file or entry without any certificate
    "bad_password",  # PKCS#12 or keystore: no candidate password opened it
    "corrupt_key",  # a private key stored beside a certificate could not be read
)

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
_CERT_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE"})
_PKCS7_LABELS = frozenset({"PKCS7", "CMS"})
_KEY_LABELS = frozenset({"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "DSA PRIVATE KEY"})


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


# --- detection ---------------------------------------------------------------------------------


def _der_header(data: bytes, offset: int) -> tuple[int, int, int | None] | None:
    """``(tag, content offset, content length)`` of the DER/BER element at ``offset``.

    Length ``None`` means BER indefinite length (Windows exports PFX files that way).
    """
    if offset + 2 > len(data):
        return None
    tag, first = data[offset], data[offset + 1]
    if first < 0x80:
        return tag, offset + 2, first
    if first == 0x80:
        return tag, offset + 2, None
    n = first & 0x7F
    if n > 4 or offset + 2 + n > len(data):
        return None
    return tag, offset + 2 + n, int.from_bytes(data[offset + 2 : offset + 2 + n], "big")


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
    fmt = sniff(data)
    if fmt == "pem":
        return parse_pem(path, data)
    if fmt == "der":
        return parse_der_certificate(path, data)
    if fmt == "pkcs7":
        return parse_pkcs7(path, data)
    if fmt == "pkcs12":
        return parse_pkcs12(path, data, passwords)
    if fmt == "jks":
        return parse_keystore(path, data, passwords)
    if fmt == "kubeconfig":
        return parse_kubeconfig(path, data)
    if fmt == "key":
        return Parsed("key", has_key=True)
    return Parsed(
        "unknown",
        errors=(
            ItemError(
                path,
                "unknown_format",
                "not a PEM, DER, PKCS#7, PKCS#12, JKS/JCEKS or kubeconfig certificate file",
            ),
        ),
    )


# --- certificates ------------------------------------------------------------------------------


def _cert(location: str, position: int, der: bytes) -> StoredCert | ItemError:
    facts = facts_from_der(der)
    if facts.parse_errors and not facts.subject and not facts.not_after:
        return ItemError(f"{location}#{position}", "unparseable", facts.parse_errors[0])
    return StoredCert(location, position, facts)


class _Collector:
    """Certificates and errors for one location, with the running position."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.position = 0
        self.certs: list[StoredCert] = []
        self._errors: list[ItemError] = []
        self._dropped: dict[str, int] = {}

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

    def fail(self, reason: str, message: str) -> None:
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


def _b64(body: bytes) -> bytes | None:
    try:
        return base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _add_pkcs7(out: _Collector, der: bytes) -> None:
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except Exception as exc:  # ValueError for malformed input, UnsupportedAlgorithm for others
        out.fail("unparseable", f"PKCS#7: {str(exc)[:160]}")
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
                out.fail("corrupt_pem", "unterminated PEM block")
                continue
            der = _b64(block.body)
            if der is None:
                out.fail("corrupt_pem", "invalid base64 in PEM block")
            elif label in _CERT_LABELS:
                out.add_der(der)
            else:
                _add_pkcs7(out, der)
        elif label.endswith("PRIVATE KEY") and block.body is not None:
            keys.append(block.text)
    return keys, cert_blocks


def parse_pem(path: str, data: bytes) -> Parsed:
    """PEM bundle: CERTIFICATE and PKCS7 blocks in order, position counted across both; a
    corrupt block is an error and the rest is still read. A PRIVATE KEY block in the same file
    is compared with the certificates (:func:`apply_key_match`); a file of keys alone is not a
    certificate file and is skipped without an error."""
    out = _Collector(path)
    keys, cert_blocks = _pem_into(out, data)
    has_key = bool(keys)
    if has_key and not cert_blocks:
        return Parsed("key", has_key=True)
    certs: tuple[StoredCert, ...] = tuple(out.certs)
    errors = list(out.errors)
    if keys and certs:
        key_hashes, corrupt = _pem_key_hashes(keys)
        certs = apply_key_match(certs, key_hashes)
        if corrupt:
            errors.append(ItemError(path, "corrupt_key", "private key in the file is unreadable"))
    del keys
    if not certs and not errors:
        errors.append(ItemError(path, "no_certificate", "no PEM certificate in file"))
    return Parsed("pem", certs, tuple(errors), has_key=has_key)


def parse_der_certificate(path: str, data: bytes) -> Parsed:
    """One DER certificate (position 0)."""
    facts = facts_from_der(data)
    if facts.subject or facts.not_after:
        return Parsed("der", (StoredCert(path, 0, facts),))
    message = (facts.parse_errors or ("not DER",))[0]
    return Parsed("der", errors=(ItemError(path, "unparseable", message),))


def parse_pkcs7(path: str, data: bytes) -> Parsed:
    """PKCS#7 / CMS signedData in DER (``.p7b``, ``.p7c``): every certificate, file order."""
    out = _Collector(path)
    _add_pkcs7(out, data)
    errors = list(out.errors)
    if not out.certs and not errors:
        errors.append(ItemError(path, "no_certificate", "PKCS#7 structure holds no certificate"))
    return Parsed("pkcs7", tuple(out.certs), tuple(errors))


# --- private keys ------------------------------------------------------------------------------


def _spki_sha256(key: Any) -> str:
    """SHA-256 of a private key's public half (SPKI DER), as in ``CertFacts``; "" if none."""
    try:
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except Exception:  # a key type without an SPKI form: nothing to compare
        return ""
    return hashlib.sha256(spki).hexdigest()


def _pem_key_hashes(blocks: Iterable[bytes]) -> tuple[frozenset[str], bool]:
    hashes: set[str] = set()
    corrupt = False
    for text in blocks:
        if text.startswith(b"-----BEGIN ENCRYPTED") or b"Proc-Type: 4,ENCRYPTED" in text:
            continue  # no password for keys: the check is skipped
        label = text[11 : text.find(b"-----", 11)].decode("ascii", "replace")
        if label not in _KEY_LABELS:
            continue  # OPENSSH PRIVATE KEY and friends: not a certificate's key
        try:
            # Only the public half is used, so RSA's slow consistency check buys nothing.
            key = serialization.load_pem_private_key(
                text, None, unsafe_skip_rsa_key_validation=True
            )
        except TypeError:  # encrypted after all
            continue
        except Exception:  # malformed, or an algorithm this build cannot load
            corrupt = True
            continue
        hashes.add(_spki_sha256(key))
        del key
    hashes.discard("")
    return frozenset(hashes), corrupt


def key_spki_hashes(data: bytes) -> tuple[frozenset[str], bool]:
    """SHA-256 of the public key (SPKI DER) of every unencrypted private key in ``data`` (PEM
    blocks, or one DER key), and whether something that should be a key could not be read.

    Encrypted keys are skipped without complaint: there is no password for them.
    """
    if b"-----BEGIN " in data:
        return _pem_key_hashes(b.text for b in _pem_blocks(data) if b.body is not None)
    try:
        key = serialization.load_der_private_key(data, None, unsafe_skip_rsa_key_validation=True)
    except TypeError:  # an encrypted PKCS#8 key
        return frozenset(), False
    except Exception:
        return frozenset(), True
    digest = _spki_sha256(key)
    del key
    return (frozenset({digest}) if digest else frozenset()), False


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


def parse_pkcs12(path: str, data: bytes, passwords: Sequence[Password]) -> Parsed:
    """PKCS#12 (``.p12``, ``.pfx``): the key's certificate (position 0) and the others.

    Tries each configured password, then the empty one. When the bundle holds a key, the
    certificate's ``key_matches`` says whether they belong together.
    """
    # surrogateescape: an environment variable that is not UTF-8 gets its bytes back.
    candidates: list[bytes | None] = [p.value.encode("utf-8", "surrogateescape") for p in passwords]
    candidates += [None, b""]  # "no password" is spelt both ways in the wild
    loaded = None
    for candidate in dict.fromkeys(candidates):
        try:
            loaded = pkcs12.load_pkcs12(data, candidate)
            break
        except ValueError as exc:
            if "password" not in str(exc):
                return Parsed(
                    "pkcs12",
                    errors=(ItemError(path, "unparseable", f"PKCS#12: {str(exc)[:160]}"),),
                    used_password=True,
                )
        except Exception as exc:  # UnsupportedAlgorithm (e.g. RC2 without legacy provider)
            message = f"PKCS#12: {type(exc).__name__}: {str(exc)[:160]}"
            return Parsed(
                "pkcs12", errors=(ItemError(path, "unparseable", message),), used_password=True
            )
    del candidates
    if loaded is None:
        tried = f"the password from {_origins(passwords)} or " if passwords else ""
        message = f"PKCS#12 could not be opened with {tried}the empty password"
        return Parsed(
            "pkcs12", errors=(ItemError(path, "bad_password", message),), used_password=True
        )
    out = _Collector(path)
    main = loaded.cert.certificate if loaded.cert is not None else None
    if main is not None:
        out.add_der(main.public_bytes(serialization.Encoding.DER))
    for extra in loaded.additional_certs:
        out.add_der(extra.certificate.public_bytes(serialization.Encoding.DER))
    certs: tuple[StoredCert, ...] = tuple(out.certs)
    has_key = loaded.key is not None
    key_hash = _spki_sha256(loaded.key) if loaded.key is not None else ""
    if key_hash and main is not None and certs and certs[0].position == 0:
        matches = key_hash == certs[0].facts.public_key_sha256
        certs = (replace(certs[0], key_matches=matches), *certs[1:])
    del loaded
    errors = list(out.errors)
    if not certs and not errors:
        errors.append(ItemError(path, "no_certificate", "PKCS#12 bundle holds no certificate"))
    return Parsed("pkcs12", certs, tuple(errors), used_password=True, has_key=has_key)


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
        except Exception as exc:  # malformed: truncated, bad tags, unknown version
            # pyjks's own messages describe the structure; others (the Java-serialisation
            # parser behind JCEKS secret keys) may quote stored bytes: name only.
            detail = f": {str(exc)[:160]}" if isinstance(exc, jks.util.KeystoreException) else ""
            message = f"keystore: {type(exc).__name__}{detail}"
            return Parsed(
                "jks", errors=(ItemError(path, "unparseable", message),), used_password=True
            )
        store_password = candidate.value
        break
    if store is None:
        if passwords:
            tried = f"the password from {_origins(passwords)} and with Java's default password"
        else:
            tried = "Java's default password (no password_env or password_file configured)"
        message = f"keystore integrity check failed with {tried}"
        return Parsed("jks", errors=(ItemError(path, "bad_password", message),), used_password=True)
    certs: list[StoredCert] = []
    errors: list[ItemError] = []
    has_key = False
    for alias, entry in store.entries.items():
        out = _Collector(f"{path}#{alias}")
        if isinstance(entry, jks.TrustedCertEntry):
            if entry.type == "X.509":
                out.add_der(entry.cert)
        elif isinstance(entry, jks.PrivateKeyEntry):
            has_key = True
            for cert_type, der in entry.cert_chain:
                if cert_type == "X.509":
                    out.add_der(der)
                else:
                    out.position += 1
            if out.certs and out.certs[0].position == 0:
                key_hash = _keystore_key_hash(entry, store_password)
                if key_hash is not None:
                    first = out.certs[0]
                    out.certs[0] = replace(
                        first, key_matches=first.facts.public_key_sha256 == key_hash
                    )
        certs += out.certs
        errors += out.errors
    del store, store_password
    if not certs and not errors:
        errors.append(ItemError(path, "no_certificate", "keystore holds no certificate"))
    return Parsed("jks", tuple(certs), tuple(errors), used_password=True, has_key=has_key)


def _keystore_key_hash(entry: Any, store_password: str) -> str | None:
    """The public key hash of a keystore private key that opens with the store password."""
    try:
        entry.decrypt(store_password)
        key = serialization.load_der_private_key(
            entry.pkey_pkcs8, None, unsafe_skip_rsa_key_validation=True
        )
    except Exception:  # its own key password, or an algorithm we cannot load: no check
        return None
    digest = _spki_sha256(key)
    del key
    return digest or None


# --- kubeconfig --------------------------------------------------------------------------------


def _yaml_loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _blob_into(out: _Collector, data: bytes) -> None:
    if b"-----BEGIN " in data:
        _pem_into(out, data)
    else:
        out.add_der(data)


def _named(items: object, key: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get(key), dict):
            yield str(item.get("name", i)), item[key]


def parse_kubeconfig(path: str, data: bytes) -> Parsed:
    """kubeconfig: each cluster's ``certificate-authority-data`` and each user's
    ``client-certificate-data``. ``client-key-data`` is decoded only to set ``key_matches`` on
    the user's certificate. File references (``certificate-authority``, ``client-certificate``)
    are not followed: they lie outside the configured paths and excludes."""
    import yaml

    try:
        doc = yaml.load(data, Loader=_yaml_loader())  # noqa: S506 -- a safe loader
    except yaml.YAMLError as exc:
        # str(exc) quotes the offending line, which may be a key: only the line number.
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        return Parsed(
            "kubeconfig",
            errors=(ItemError(path, "unparseable", f"kubeconfig is not valid YAML{where}"),),
        )
    if not isinstance(doc, dict) or not any(
        isinstance(doc.get(k), list) for k in ("clusters", "users")
    ):
        return Parsed(
            "kubeconfig",
            errors=(ItemError(path, "unknown_format", "YAML, but not a kubeconfig"),),
        )
    certs: list[StoredCert] = []
    errors: list[ItemError] = []
    has_key = False
    for name, cluster in _named(doc.get("clusters"), "cluster"):
        out = _Collector(f"{path}#cluster:{name}")
        value = cluster.get("certificate-authority-data")
        if value is None:
            continue
        blob = _b64(str(value).encode("ascii", "replace"))
        if blob is None:
            out.fail("unparseable", "certificate-authority-data is not valid base64")
        else:
            _blob_into(out, blob)
        certs += out.certs
        errors += out.errors
    for name, user in _named(doc.get("users"), "user"):
        out = _Collector(f"{path}#user:{name}")
        value = user.get("client-certificate-data")
        if value is None:
            continue
        blob = _b64(str(value).encode("ascii", "replace"))
        if blob is None:
            out.fail("unparseable", "client-certificate-data is not valid base64")
        else:
            _blob_into(out, blob)
        user_certs: tuple[StoredCert, ...] = tuple(out.certs)
        if user_certs and user.get("client-key-data") is not None:
            has_key = True
            key_hashes, corrupt = _kubeconfig_key(user)
            user_certs = apply_key_match(user_certs, key_hashes)
            if corrupt:
                errors.append(
                    ItemError(out.location, "corrupt_key", "client-key-data is unreadable")
                )
        certs += user_certs
        errors += out.errors
    del doc
    if not certs and not errors:
        errors.append(
            ItemError(
                path,
                "no_certificate",
                "no embedded certificate data (file references are not followed)",
            )
        )
    return Parsed("kubeconfig", tuple(certs), tuple(errors), has_key=has_key)


def _kubeconfig_key(user: dict[str, Any]) -> tuple[frozenset[str], bool]:
    key = _b64(str(user.get("client-key-data")).encode("ascii", "replace"))
    if key is None:
        return frozenset(), True
    try:
        return key_spki_hashes(key)
    finally:
        del key
