"""SSH public keys and OpenSSH certificates → facts, and signature checks. No I/O.

Parsing goes through ``cryptography``'s SSH support (``load_ssh_public_identity`` for keys and
certificates; ``load_ssh_public_key`` for DSA, which the former refuses). Security-key types
(``sk-ssh-ed25519@openssh.com``, ``sk-ecdsa-sha2-nistp256@openssh.com``), which
``cryptography`` cannot load, still get a type, size and fingerprint from their wire blob, so
an inventory never drops them.

Fingerprints are OpenSSH's (``SHA256:`` and unpadded base64 of the SHA-256 of the key blob),
the form ``ssh-keygen -l`` and ``ssh-keyscan`` users compare; for a certificate it is the
fingerprint of the certified key, as ``ssh-keygen -l`` shows it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = [
    "CertificateFacts",
    "KeyFacts",
    "blob_type",
    "fingerprint",
    "parse_blob",
    "parse_line",
    "verify_signature",
]

#: OpenSSH writes "valid forever" as the largest 64-bit value.
_FOREVER = 0xFFFFFFFFFFFFFFFF
_SK_TYPES = {
    "sk-ssh-ed25519@openssh.com": ("sk-ssh-ed25519@openssh.com", 256),
    "sk-ecdsa-sha2-nistp256@openssh.com": ("sk-ecdsa-sha2-nistp256@openssh.com", 256),
}
_MAX_BLOB = 64 * 1024  # an RSA-16384 certificate is about 5 KiB

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | dsa.DSAPublicKey
)


@dataclass(frozen=True)
class CertificateFacts:
    """An OpenSSH certificate (PROTOCOL.certkeys), without its key material."""

    type: str  # "host" or "user"
    key_id: str
    serial: int
    principals: tuple[str, ...]
    valid_after: float | None  # unix seconds; None: from the beginning of time
    valid_before: float | None  # unix seconds; None: forever
    critical_options: tuple[tuple[str, str], ...]
    extensions: tuple[str, ...]
    ca_algorithm: str
    ca_bits: int
    ca_fingerprint_sha256: str
    ca_public_key_sha256: str  # hex, as StoredKey.public_key_sha256
    signature_valid: bool  # the CA's signature over the certificate verifies
    blob_sha256: str  # hex SHA-256 of the whole certificate blob

    def not_after(self) -> datetime | None:
        return None if self.valid_before is None else datetime.fromtimestamp(self.valid_before, UTC)


@dataclass(frozen=True)
class KeyFacts:
    """A public key or certificate as seen on the wire or in a file."""

    blob_type: str  # the type name in the blob: ssh-ed25519, ssh-rsa-cert-v01@openssh.com, …
    algorithm: str  # the key's own type: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ssh-dss, …
    bits: int
    fingerprint_sha256: str  # "SHA256:…" of the (certified) key
    public_key_sha256: str  # hex SHA-256 of the (certified) key blob
    certificate: CertificateFacts | None = None
    key: PublicKey | None = field(default=None, compare=False, repr=False)


def fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def blob_type(blob: bytes) -> str:
    """The type name a key blob starts with; ValueError when there is none."""
    if len(blob) < 4:
        raise ValueError("key blob is truncated")
    n = struct.unpack(">I", blob[:4])[0]
    if n == 0 or n > 64 or len(blob) < 4 + n:
        raise ValueError("key blob has no type name")
    try:
        return blob[4 : 4 + n].decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("key blob type is not ASCII") from None


def _key_blob(key: PublicKey) -> bytes:
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return base64.b64decode(line.split()[1])


def _bits(key: PublicKey) -> int:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return 256
    return key.key_size


def _algorithm(key: PublicKey) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "ssh-rsa"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ssh-ed25519"
    if isinstance(key, dsa.DSAPublicKey):
        return "ssh-dss"
    return f"ecdsa-sha2-nistp{key.curve.key_size}"


def _load(blob: bytes, type_name: str) -> object:
    line = type_name.encode() + b" " + base64.b64encode(blob)
    if type_name == "ssh-dss":
        # cryptography still reads DSA keys but warns that it will stop; the warning is
        # about cryptography's future, not this key, so it is not passed on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return serialization.load_ssh_public_key(line)
    return serialization.load_ssh_public_identity(line)


@lru_cache(maxsize=4096)
def parse_blob(blob: bytes) -> KeyFacts:
    """Facts of one key or certificate blob. ValueError when it cannot be read.

    Cached by blob: a server presents the same host keys probe after probe, and parsing (with
    the certificate's CA signature check) is most of a probe's CPU after the key exchange.
    The facts are immutable; a changed key is a different blob and is parsed anew."""
    if len(blob) > _MAX_BLOB:
        raise ValueError(f"key blob larger than {_MAX_BLOB} bytes")
    type_name = blob_type(blob)
    if type_name in _SK_TYPES:
        algorithm, bits = _SK_TYPES[type_name]
        return KeyFacts(
            type_name, algorithm, bits, fingerprint(blob), hashlib.sha256(blob).hexdigest()
        )
    try:
        loaded = _load(blob, type_name)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"{type_name}: {exc}") from None
    if isinstance(loaded, serialization.SSHCertificate):
        key = loaded.public_key()
        assert not isinstance(key, dsa.DSAPublicKey)  # cryptography refuses DSA certificates
        kblob = _key_blob(key)
        return KeyFacts(
            type_name,
            _algorithm(key),
            _bits(key),
            fingerprint(kblob),
            hashlib.sha256(kblob).hexdigest(),
            _certificate(loaded, blob),
            key,
        )
    if not isinstance(
        loaded,
        rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | dsa.DSAPublicKey,
    ):
        raise ValueError(f"{type_name}: unsupported key type")
    return KeyFacts(
        type_name,
        _algorithm(loaded),
        _bits(loaded),
        fingerprint(blob),
        hashlib.sha256(blob).hexdigest(),
        None,
        loaded,
    )


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _option_value(value: bytes) -> str:
    """Critical option data is itself a string (force-command, source-address)."""
    if len(value) >= 4 and struct.unpack(">I", value[:4])[0] == len(value) - 4:
        return _text(value[4:])
    return _text(value)


def _certificate(cert: serialization.SSHCertificate, blob: bytes) -> CertificateFacts:
    ca = cert.signature_key()
    assert not isinstance(ca, dsa.DSAPublicKey)
    ca_blob = _key_blob(ca)
    try:
        cert.verify_cert_signature()
        valid = True
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        valid = False
    return CertificateFacts(
        type="host" if cert.type is serialization.SSHCertificateType.HOST else "user",
        key_id=_text(cert.key_id),
        serial=cert.serial,
        principals=tuple(_text(p) for p in cert.valid_principals),
        valid_after=float(cert.valid_after) if cert.valid_after else None,
        valid_before=None if cert.valid_before >= _FOREVER else float(cert.valid_before),
        critical_options=tuple(
            sorted((_text(k), _option_value(v)) for k, v in cert.critical_options.items())
        ),
        extensions=tuple(sorted(_text(k) for k in cert.extensions)),
        ca_algorithm=_algorithm(ca),
        ca_bits=_bits(ca),
        ca_fingerprint_sha256=fingerprint(ca_blob),
        ca_public_key_sha256=hashlib.sha256(ca_blob).hexdigest(),
        signature_valid=valid,
        blob_sha256=hashlib.sha256(blob).hexdigest(),
    )


def parse_line(text: str) -> tuple[KeyFacts, str]:
    """``type base64 [comment]`` → (facts, comment). ValueError when it is not a key."""
    parts = text.strip().split(None, 2)
    if len(parts) < 2:
        raise ValueError("not a public key line (type and base64 key expected)")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the key is not valid base64") from None
    facts = parse_blob(blob)
    if facts.blob_type != parts[0]:
        raise ValueError(f"the line says {parts[0]} but the key is {facts.blob_type}")
    return facts, parts[2] if len(parts) > 2 else ""


# --- signatures over the exchange hash ----------------------------------------------------------

_RSA_HASHES: dict[str, hashes.HashAlgorithm] = {
    "ssh-rsa": hashes.SHA1(),  # noqa: S303 - verifying what the server chose, not choosing it
    "rsa-sha2-256": hashes.SHA256(),
    "rsa-sha2-512": hashes.SHA512(),
}
_EC_HASHES: dict[int, hashes.HashAlgorithm] = {
    256: hashes.SHA256(),
    384: hashes.SHA384(),
    521: hashes.SHA512(),
}


def _strings(data: bytes, count: int) -> list[bytes]:
    out, pos = [], 0
    for _ in range(count):
        if pos + 4 > len(data):
            raise ValueError("signature is truncated")
        n = struct.unpack(">I", data[pos : pos + 4])[0]
        if pos + 4 + n > len(data):
            raise ValueError("signature is truncated")
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


def verify_signature(key: PublicKey, signature: bytes, data: bytes) -> str:
    """Check an SSH signature blob over ``data``; returns the signature algorithm name.
    Raises ValueError when the blob is malformed or the signature does not verify."""
    name_b, sig = _strings(signature, 2)
    name = name_b.decode("ascii", "replace")
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if name not in _RSA_HASHES:
                raise ValueError(f"{name} is not an RSA signature")
            key.verify(sig, data, padding.PKCS1v15(), _RSA_HASHES[name])
        elif isinstance(key, ed25519.Ed25519PublicKey):
            if name != "ssh-ed25519":
                raise ValueError(f"{name} is not an Ed25519 signature")
            key.verify(sig, data)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if name != f"ecdsa-sha2-nistp{key.curve.key_size}":
                raise ValueError(f"{name} does not match the key's curve")
            r_b, s_b = _strings(sig, 2)
            der = encode_dss_signature(int.from_bytes(r_b, "big"), int.from_bytes(s_b, "big"))
            key.verify(der, data, ec.ECDSA(_EC_HASHES[key.curve.key_size]))
        else:
            if name != "ssh-dss" or len(sig) != 40:
                raise ValueError(f"{name} is not a DSA signature")
            der = encode_dss_signature(
                int.from_bytes(sig[:20], "big"), int.from_bytes(sig[20:], "big")
            )
            key.verify(der, data, hashes.SHA1())  # noqa: S303 - ssh-dss is SHA-1 by definition
    except InvalidSignature:
        raise ValueError(f"the {name} signature does not verify") from None
    return name
