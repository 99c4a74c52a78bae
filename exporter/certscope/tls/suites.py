"""The IANA TLS cipher-suite registry, the SSLv2 cipher kinds, and their security class.

Facts (code, names, protocols, key exchange, cipher, MAC) live in ``data/cipher_suites.csv``;
this module loads them once, on first use, and derives the class and the flags from them so
the policy can be read in one place (:func:`classify`) rather than hidden in a data column.

The class follows ciphersuite.info's four levels:

``insecure``
    NULL encryption, anonymous authentication, export-grade key exchange, RC4, single DES,
    an MD5 MAC, or fewer than 112 bits of key.
``weak``
    a 64-bit block cipher (3DES, IDEA, RC2, GOST 28147 and Magma), a key exchange without
    forward secrecy (static RSA, DH, ECDH, plain PSK, Kerberos, GOST VKO), CBC mode, or a
    SHA-1 MAC.
``secure``
    none of the above, but not recommended: forward-secret AEAD with CCM_8's truncated
    64-bit tag (IANA marks every CCM_8 suite "not recommended").
``recommended``
    forward-secret AEAD: ECDHE/DHE (plain or PSK) with GCM, CCM or ChaCha20-Poly1305, and
    the TLS 1.3 AEAD suites.

Lookups are by code, IANA name or OpenSSL name; :func:`iana_name` normalises either kind
of name to the IANA one so results can be labelled consistently whichever tool produced them.
"""

from __future__ import annotations

import csv
import enum
import functools
import io
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Final

__all__ = [
    "PROTOCOLS",
    "CipherSuite",
    "SuiteClass",
    "all_suites",
    "by_code",
    "by_name",
    "by_openssl_name",
    "classify",
    "for_protocol",
    "iana_name",
]

#: Protocol names, oldest first, as used in :attr:`CipherSuite.protocols`.
PROTOCOLS: Final = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")

_DATA_FILE: Final = "cipher_suites.csv"

# Key exchanges that use a fresh key per handshake. Anonymous DH is ephemeral too (OpenSSL
# calls it kx-dhe), so it counts here; its lack of authentication is judged separately.
# TLS 1.3 suites say ANY because the group is negotiated on its own, always ephemeral in
# the handshakes this project makes.
_FORWARD_SECRET_KEX: Final = frozenset(
    {"DHE", "ECDHE", "DHE_PSK", "ECDHE_PSK", "SRP", "ECCPWD", "ANY", "DHE_EXPORT"}
)
# Ciphers with a 64-bit block: Sweet32-class birthday bounds make them weak at any key size.
_SMALL_BLOCK: Final = ("3DES", "IDEA", "RC2", "28147", "MAGMA")
_SINGLE_DES: Final = frozenset({"DES_CBC", "DES40_CBC", "DES_CBC_40"})


class SuiteClass(enum.StrEnum):
    """Security class of a cipher suite, worst first."""

    INSECURE = "insecure"
    WEAK = "weak"
    SECURE = "secure"
    RECOMMENDED = "recommended"


@dataclass(frozen=True, slots=True)
class CipherSuite:
    """One registry entry. ``code`` is two bytes for TLS suites, three for SSLv2 kinds."""

    code: int
    name: str
    openssl_name: str | None
    protocols: frozenset[str]
    kex: str
    auth: str
    encryption: str
    bits: int
    mac: str
    cls: SuiteClass
    forward_secrecy: bool
    aead: bool

    @property
    def code_hex(self) -> str:
        """``0xC02F`` for TLS suites, ``0x0700C0`` for SSLv2 cipher kinds."""
        return f"0x{self.code:06X}" if self.code > 0xFFFF else f"0x{self.code:04X}"

    @property
    def is_sslv2(self) -> bool:
        return self.code > 0xFFFF


def classify(
    *, kex: str, auth: str, encryption: str, bits: int, mac: str, forward_secrecy: bool
) -> SuiteClass:
    """The class for a suite with these properties (see the module docstring)."""
    if (
        encryption == "NULL"
        or auth in ("anon", "NULL")
        or kex.endswith("_EXPORT")
        or encryption.startswith("RC4")
        or encryption in _SINGLE_DES
        or mac == "MD5"
        or bits < 112
    ):
        return SuiteClass.INSECURE
    aead = mac == "AEAD"
    if (
        any(encryption.startswith(c) for c in _SMALL_BLOCK)
        or not forward_secrecy
        or "CBC" in encryption
        or mac == "SHA1"
        or not aead
    ):
        # The last clause catches the non-AEAD, non-CBC stragglers (GOST CTR+OMAC), which
        # are MAC-then-encrypt like CBC and only occur without forward secrecy anyway.
        return SuiteClass.WEAK
    if encryption.endswith("CCM_8"):
        return SuiteClass.SECURE
    return SuiteClass.RECOMMENDED


@dataclass(frozen=True, slots=True)
class _Registry:
    suites: tuple[CipherSuite, ...]
    by_code: MappingProxyType[int, CipherSuite]
    by_name: MappingProxyType[str, CipherSuite]
    by_openssl: MappingProxyType[str, CipherSuite]


def _parse_row(row: dict[str, str]) -> tuple[CipherSuite, tuple[str, ...]]:
    kex, auth, encryption, mac = row["kex"], row["auth"], row["encryption"], row["mac"]
    bits = int(row["bits"])
    fs = kex in _FORWARD_SECRET_KEX
    suite = CipherSuite(
        code=int(row["code"], 16),
        name=row["name"],
        openssl_name=row["openssl_name"] or None,
        protocols=frozenset(row["protocols"].split()),
        kex=kex,
        auth=auth,
        encryption=encryption,
        bits=bits,
        mac=mac,
        cls=classify(
            kex=kex, auth=auth, encryption=encryption, bits=bits, mac=mac, forward_secrecy=fs
        ),
        forward_secrecy=fs,
        aead=mac == "AEAD",
    )
    unknown = suite.protocols.difference(PROTOCOLS)
    if unknown:
        raise ValueError(f"{suite.code_hex}: unknown protocol(s) {sorted(unknown)}")
    return suite, tuple(row["openssl_aliases"].split())


@functools.cache
def _registry() -> _Registry:
    text = resources.files("certscope.tls").joinpath("data", _DATA_FILE).read_text("utf-8")
    lines = (line for line in io.StringIO(text) if not line.startswith("#"))
    suites: list[CipherSuite] = []
    codes: dict[int, CipherSuite] = {}
    names: dict[str, CipherSuite] = {}
    openssl: dict[str, CipherSuite] = {}
    aliases: dict[str, CipherSuite] = {}
    for row in csv.DictReader(lines):
        suite, old_names = _parse_row(row)
        if suite.code in codes:
            raise ValueError(f"duplicate code {suite.code_hex} in {_DATA_FILE}")
        codes[suite.code] = suite
        names[suite.name] = suite
        # SSLv2 kinds reuse SSLv3 names (RC4-MD5, EXP-RC4-MD5 ...); the TLS suite wins, and
        # the SSLv2 rows come last in the file, so first-come keeps that order.
        if suite.openssl_name is not None:
            openssl.setdefault(suite.openssl_name, suite)
        for alias in old_names:
            aliases.setdefault(alias, suite)
        suites.append(suite)
    for alias, suite in aliases.items():
        openssl.setdefault(alias, suite)
    return _Registry(
        suites=tuple(suites),
        by_code=MappingProxyType(codes),
        by_name=MappingProxyType(names),
        by_openssl=MappingProxyType(openssl),
    )


def all_suites() -> tuple[CipherSuite, ...]:
    """Every entry, in registry (code) order, SSLv2 kinds last."""
    return _registry().suites


def by_code(code: int) -> CipherSuite | None:
    return _registry().by_code.get(code)


def by_name(iana_name: str) -> CipherSuite | None:
    return _registry().by_name.get(iana_name)


def by_openssl_name(name: str) -> CipherSuite | None:
    """Look up by OpenSSL name, including the EDH-* spellings of older releases."""
    return _registry().by_openssl.get(name)


def for_protocol(protocol: str) -> tuple[CipherSuite, ...]:
    """Suites that ``protocol`` can negotiate, in registry order.

    Raises ``ValueError`` for a name not in :data:`PROTOCOLS`, because a typo would
    otherwise silently produce an empty scan.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    return tuple(s for s in _registry().suites if protocol in s.protocols)


def iana_name(openssl_or_iana_name: str) -> str:
    """The IANA name for an OpenSSL or IANA suite name; unknown names come back unchanged.

    TLS 1.3 suites already carry their IANA names in OpenSSL, so they pass through.
    """
    reg = _registry()
    if openssl_or_iana_name in reg.by_name:
        return openssl_or_iana_name
    suite = reg.by_openssl.get(openssl_or_iana_name)
    return suite.name if suite is not None else openssl_or_iana_name
