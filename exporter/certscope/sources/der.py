"""Just enough DER to find things without a full decoder. Pure, no I/O.

:func:`header` reads one element's tag and length; :func:`ec_public_spki` finds the public
point an EC private key carries (SEC 1 ``ECPrivateKey`` alone or inside PKCS#8) and wraps it as
a SubjectPublicKeyInfo. Loading the private key would compute that point again from the secret
scalar (OpenSSL checks the key), about 0.3 ms a key: 10,000 ``tls.key`` values cost seconds.
"""

from __future__ import annotations

from collections.abc import Iterator

#: DER of OBJECT IDENTIFIER 1.2.840.10045.2.1 (id-ecPublicKey).
EC_PUBLIC_KEY_OID = bytes.fromhex("06072a8648ce3d0201")
#: Named curves (DER of their OID) whose size is known without asking OpenSSL.
EC_CURVE_BITS = {
    bytes.fromhex("06082a8648ce3d030107"): 256,  # prime256v1 / P-256
    bytes.fromhex("06052b81040022"): 384,  # secp384r1 / P-384
    bytes.fromhex("06052b81040023"): 521,  # secp521r1 / P-521
}


def header(data: bytes, offset: int) -> tuple[int, int, int | None] | None:
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


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``(tag, element start, content start, element end)`` of each definite-length child."""
    pos = start
    while pos < end:
        head = header(data, pos)
        if head is None:
            return
        tag, content, length = head
        if length is None or content + length > end:
            return
        yield tag, pos, content, content + length
        pos = content + length


def _sequence_children(data: bytes) -> list[tuple[int, int, int, int]] | None:
    head = header(data, 0)
    if head is None:
        return None
    tag, content, length = head
    if tag != 0x30 or length is None or content + length != len(data):
        return None
    return list(_children(data, content, content + length))


def _encode(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = (n.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + n.to_bytes(size, "big") + content


def _sec1(data: bytes) -> tuple[bytes | None, bytes | None]:
    """(parameters element, public key BIT STRING element) of an ``ECPrivateKey``."""
    kids = _sequence_children(data)
    if not kids or kids[0][0] != 0x02:
        return None, None
    params = bitstring = None
    for tag, _, content, end in kids[1:]:
        if tag == 0xA0:
            params = data[content:end]
        elif tag == 0xA1 and data[content : content + 1] == b"\x03":
            bitstring = data[content:end]
    return params, bitstring


def ec_public_spki(der: bytes) -> bytes | None:
    """The SubjectPublicKeyInfo of an EC private key (PKCS#8 or SEC 1) that carries its public
    point, or None (another key type, no point stored, or not DER)."""
    kids = _sequence_children(der)
    if not kids:
        return None
    if len(kids) >= 3 and [k[0] for k in kids[:3]] == [0x02, 0x30, 0x04]:  # PKCS#8
        _, alg_start, alg_content, alg_end = kids[1]
        if not der.startswith(EC_PUBLIC_KEY_OID, alg_content):
            return None
        _, bitstring = _sec1(der[kids[2][2] : kids[2][3]])
        algorithm = der[alg_start:alg_end]
    else:  # SEC 1 ``EC PRIVATE KEY``: the curve is in its [0] parameters
        params, bitstring = _sec1(der)
        if params is None:
            return None
        algorithm = _encode(0x30, EC_PUBLIC_KEY_OID + params)
    if bitstring is None:
        return None
    return _encode(0x30, algorithm + bitstring)


def ec_curve_bits(spki: bytes) -> int | None:
    """The curve size of an EC SubjectPublicKeyInfo on a known named curve with an
    uncompressed point (the form certificates carry, so its hash is theirs); else None."""
    kids = _sequence_children(spki)
    if not kids or len(kids) != 2 or kids[0][0] != 0x30 or kids[1][0] != 0x03:
        return None
    algorithm = spki[kids[0][2] : kids[0][3]]
    if not algorithm.startswith(EC_PUBLIC_KEY_OID):
        return None
    if spki[kids[1][2] : kids[1][2] + 2] != b"\x00\x04":  # no unused bits; uncompressed
        return None
    return EC_CURVE_BITS.get(algorithm[len(EC_PUBLIC_KEY_OID) :])
