"""Key-exchange arithmetic for the methods certscope speaks, through ``cryptography``. No I/O.

certscope completes a key exchange only to receive the server's host key and check that the
server holds its private key (the signature over the exchange hash, RFC 4253 8). It never
derives session keys. Methods, cheapest first, which is the order a probe prefers:

* ``curve25519-sha256`` (RFC 8731) and its pre-standard name ``curve25519-sha256@libssh.org``
* ``ecdh-sha2-nistp256/384/521`` (RFC 5656)
* ``diffie-hellman-group14-sha256``, ``-group16-sha512``, ``-group18-sha512`` (RFC 8268),
  and the legacy ``-group14-sha1`` and ``-group1-sha1`` (RFC 4253) for servers that offer
  nothing better

Finite-field Diffie-Hellman is plain modular exponentiation with Python integers:
``cryptography`` deprecates its FFDH support, and the arithmetic needs nothing it adds. The
private exponent has 512 bits, at least twice the security strength of every group (RFC 8268
section 4, NIST SP 800-56A).

The MODP primes are computed from their published definition (RFC 2412 appendix E, RFC 3526):
``p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) * pi) + k)``, so no long constant can hide a
typing error; a test checks them against the RFC text's first and last digits, and the real
servers in the tests check the arithmetic end to end.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from . import wire

__all__ = ["METHODS", "KexMethod", "KexState", "exchange_hash", "modp_prime", "start"]


@dataclass(frozen=True)
class KexMethod:
    name: str
    kind: str  # "x25519", "ecdh", "dh"
    hash: str  # hashlib name
    curve: str = ""  # ecdh: nistp256, nistp384, nistp521
    group: int = 0  # dh: MODP group number


_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "nistp256": ec.SECP256R1,
    "nistp384": ec.SECP384R1,
    "nistp521": ec.SECP521R1,
}

METHODS: dict[str, KexMethod] = {
    m.name: m
    for m in (
        KexMethod("curve25519-sha256", "x25519", "sha256"),
        KexMethod("curve25519-sha256@libssh.org", "x25519", "sha256"),
        KexMethod("ecdh-sha2-nistp256", "ecdh", "sha256", curve="nistp256"),
        KexMethod("ecdh-sha2-nistp384", "ecdh", "sha384", curve="nistp384"),
        KexMethod("ecdh-sha2-nistp521", "ecdh", "sha512", curve="nistp521"),
        KexMethod("diffie-hellman-group14-sha256", "dh", "sha256", group=14),
        KexMethod("diffie-hellman-group16-sha512", "dh", "sha512", group=16),
        KexMethod("diffie-hellman-group18-sha512", "dh", "sha512", group=18),
        KexMethod("diffie-hellman-group14-sha1", "dh", "sha1", group=14),
        KexMethod("diffie-hellman-group1-sha1", "dh", "sha1", group=1),
    )
}

# group -> (bits, k) from RFC 2409 section 6.1 (group 1, "Oakley group 2") and RFC 3526.
_MODP = {1: (1024, 129093), 14: (2048, 124476), 16: (4096, 240904), 18: (8192, 4743158)}


def _pi_scaled(bits: int) -> int:
    """floor(pi * 2^bits), by Machin's formula in integer arithmetic with guard bits."""
    guard = 64
    one = 1 << (bits + guard)

    def arctan_inv(x: int) -> int:
        total = term = one // x
        x2, n, sign = x * x, 1, -1
        while term:
            term //= x2
            n += 2
            total += sign * (term // n)
            sign = -sign
        return total

    return (4 * (4 * arctan_inv(5) - arctan_inv(239))) >> guard


@cache
def modp_prime(group: int) -> int:
    bits, k = _MODP[group]
    return (1 << bits) - (1 << (bits - 64)) - 1 + (1 << 64) * (_pi_scaled(bits - 130) + k)


@dataclass(frozen=True)
class KexState:
    """Our half of one exchange: what we send, and how to finish with the server's half."""

    method: KexMethod
    client_value: bytes  # Q_C (ECDH) or the magnitude of e (DH)
    _private: x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey | int

    def message(self) -> bytes:
        return wire.build_kex_init(self.client_value, dh=self.method.kind == "dh")

    def client_field(self) -> bytes:
        """e or Q_C exactly as it enters the exchange hash."""
        if self.method.kind == "dh":
            return wire.mpint(int.from_bytes(self.client_value, "big"))
        return wire.string(self.client_value)

    def shared_secret(self, server_value: bytes) -> int:
        """K from the server's f or Q_S. Raises ValueError for a value that is not a valid
        public value of the method (wrong length, not on the curve, out of range)."""
        priv = self._private
        if isinstance(priv, x25519.X25519PrivateKey):
            if len(server_value) != 32:
                raise ValueError("curve25519 public value is not 32 bytes")
            raw = priv.exchange(x25519.X25519PublicKey.from_public_bytes(server_value))
            if not any(raw):
                raise ValueError("curve25519 shared secret is zero")
            return int.from_bytes(raw, "big")
        if isinstance(priv, ec.EllipticCurvePrivateKey):
            peer = ec.EllipticCurvePublicKey.from_encoded_point(priv.curve, server_value)
            return int.from_bytes(priv.exchange(ec.ECDH(), peer), "big")
        p = modp_prime(self.method.group)
        f = int.from_bytes(server_value, "big", signed=True)
        if not 1 < f < p - 1:  # RFC 4253 8: values outside [1, p-1] must not be used
            raise ValueError("DH public value out of range")
        return pow(f, priv, p)


def start(name: str) -> KexState:
    """Begin an exchange with the method ``name`` (a key of :data:`METHODS`)."""
    method = METHODS[name]
    if method.kind == "x25519":
        xk = x25519.X25519PrivateKey.generate()
        pub = xk.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return KexState(method, pub, xk)
    if method.kind == "ecdh":
        ek = ec.generate_private_key(_CURVES[method.curve]())
        pub = ek.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return KexState(method, pub, ek)
    p = modp_prime(method.group)
    x = secrets.randbits(_DH_EXPONENT_BITS) | (1 << (_DH_EXPONENT_BITS - 1))
    e = pow(2, x, p)
    return KexState(method, e.to_bytes((e.bit_length() + 7) // 8, "big"), x)


_DH_EXPONENT_BITS = 512


def exchange_hash(
    state: KexState,
    client_id: bytes,
    server_id: bytes,
    client_kexinit: bytes,
    server_kexinit: bytes,
    reply: wire.KexReply,
    shared: int,
) -> bytes:
    """H (RFC 4253 8, RFC 5656 4, RFC 8731 3): the value the host key signs."""
    server_field = wire.string(reply.server_value)
    h = hashlib.new(state.method.hash)
    for part in (
        wire.string(client_id),
        wire.string(server_id),
        wire.string(client_kexinit),
        wire.string(server_kexinit),
        wire.string(reply.host_key),
        state.client_field(),
        server_field,
        wire.mpint(shared),
    ):
        h.update(part)
    return h.digest()
