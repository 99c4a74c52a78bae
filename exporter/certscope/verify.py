"""Verification of a presented chain, kept apart from the handshake.

The probe always completes (or fails) the handshake *without* verifying, so that the chain is
captured whatever its validity. This module then gives the verdict: chain trust (OpenSSL's
chain builder against a trust store, with time checks switched off so that trust and validity
are reported as separate reasons), hostname match (RFC 6125), and validity period. It never
raises for a bad certificate; every problem is a :class:`~certscope.errors.VerifyFailure`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import NamedTuple

from OpenSSL import crypto

from .certs import CertFacts, facts_from_der, hostname_matches
from .errors import VerifyFailure
from .trust import system_ca_paths

# X509_V_FLAG_NO_CHECK_TIME: trust is judged without the clock; expiry is reported on its own.
_NO_CHECK_TIME = 0x200000

# OpenSSL 3's X509_V_ERR_* codes, see openssl/x509_vfy.h. OpenSSL 3 renumbered some of
# 1.1's: 24, once INVALID_CA, is NO_ISSUER_PUBLIC_KEY, and INVALID_CA is 79.
# tests/test_verify_codes.py checks each against OpenSSL's own description of it.
_ISSUER_UNKNOWN = {2, 20, 21}
_CODE_REASONS = {
    4: VerifyFailure.BAD_SIGNATURE,  # unable to decrypt certificate's signature
    5: VerifyFailure.BAD_SIGNATURE,  # unable to decrypt CRL's signature
    6: VerifyFailure.BAD_SIGNATURE,  # unable to decode issuer public key
    7: VerifyFailure.BAD_SIGNATURE,  # certificate signature failure
    8: VerifyFailure.BAD_SIGNATURE,  # CRL signature failure
    9: VerifyFailure.NOT_YET_VALID,
    10: VerifyFailure.EXPIRED,
    18: VerifyFailure.SELF_SIGNED,  # self-signed certificate (the leaf)
    19: VerifyFailure.UNTRUSTED_ROOT,  # self-signed certificate in certificate chain
    22: VerifyFailure.CHAIN_TOO_LONG,
    24: VerifyFailure.BAD_SIGNATURE,  # issuer certificate doesn't have a public key
    25: VerifyFailure.INVALID_CA,  # path length constraint exceeded
    26: VerifyFailure.UNSUPPORTED_CERTIFICATE,  # unsuitable certificate purpose
    27: VerifyFailure.UNTRUSTED_ROOT,  # certificate not trusted
    28: VerifyFailure.UNTRUSTED_ROOT,  # certificate rejected
    79: VerifyFailure.INVALID_CA,  # invalid CA certificate
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of verifying one presented chain for one host name."""

    chain_trusted: bool
    hostname_match: bool
    valid_now: bool
    errors: tuple[VerifyFailure, ...]
    #: trusted through the system store (no ``ca_file``): a publicly trusted chain, which
    #: browsers hold to Certificate Transparency.
    public_trust: bool = False

    @property
    def verified(self) -> bool:
        return not self.errors


@lru_cache(maxsize=64)
def _store(ca_file: str | None, stamp: int) -> crypto.X509Store:
    # ``stamp`` is part of the key so that a changed trust store is reloaded without a restart.
    store = crypto.X509Store()
    if ca_file:
        store.load_locations(ca_file)
    else:
        cafile, capath = system_ca_paths()
        if cafile or capath:
            store.load_locations(cafile, capath)
    store.set_flags(_NO_CHECK_TIME)
    return store


def _stamp(ca_file: str | None, day: int) -> int:
    """What identifies the current contents of a trust store: a file's modification time; for
    the system store (a bundle and a directory, updated by the OS), the day, so it is read
    again at least daily."""
    if not ca_file:
        return day
    try:
        return os.stat(ca_file).st_mtime_ns
    except OSError:
        return -1


def trust_store(ca_file: str | None) -> crypto.X509Store:
    """The trust store for ``ca_file`` (None: the system store), cached until it changes."""
    return _store(ca_file, _stamp(ca_file, date.today().toordinal()))


@lru_cache(maxsize=256)
def _to_openssl(der: bytes) -> crypto.X509:
    # Per DER: the intermediate behind many endpoints is parsed once, not once per new chain
    # (a new chain's trust is judged once, :func:`_trust_errors`; the LRU keeps what recurs).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # negative serials and similar: judged, not warned about
        return crypto.load_certificate(crypto.FILETYPE_ASN1, der)


class Trust(NamedTuple):
    """A chain's trust judgement: the reasons it is not trusted (none: trusted), and which
    presented certificate OpenSSL checked the leaf's signature with when it trusted the chain
    (its index in the chain; None when untrusted, or when the issuer came only from the
    store), so that :mod:`certscope.revocation` need not check that signature again."""

    errors: tuple[VerifyFailure, ...]
    signer: int | None = None


@lru_cache(maxsize=4096)
def _trust_errors(chain: tuple[bytes, ...], ca_file: str | None, stamp: int, day: int) -> Trust:
    # Trust depends only on the chain and the store, not on the clock (time checks are off),
    # so the verdict is cached per (chain, store contents, day): steady-state probes of an
    # unchanged endpoint skip chain building, a changed chain or trust store is judged afresh,
    # and nothing is trusted on an old judgement for more than a day.
    del day  # part of the cache key only
    try:
        certs = [_to_openssl(der) for der in chain]
    except crypto.Error:  # DER OpenSSL will not load (cryptography may have parsed it)
        return Trust((VerifyFailure.UNSUPPORTED_CERTIFICATE,))
    ctx = crypto.X509StoreContext(_store(ca_file, stamp), certs[0], certs[1:])
    try:
        # The same verification as ``verify_certificate``, which also returns the chain built.
        built = ctx.get_verified_chain()
    except crypto.X509StoreContextError as exc:
        code = int(exc.errors[0]) if exc.errors else -1
        if code in _ISSUER_UNKNOWN:
            depth = int(exc.errors[1]) if len(exc.errors) > 1 else 0
            return Trust((_issuer_unknown_reason(exc, depth),))
        return Trust((_CODE_REASONS.get(code, VerifyFailure.VERIFY_ERROR),))
    except crypto.Error:  # OpenSSL failed inside the chain builder, not on the chain's merits
        return Trust((VerifyFailure.VERIFY_ERROR,))
    return Trust((), _signer(chain, built))


def _signer(chain: tuple[bytes, ...], built: Sequence[crypto.X509]) -> int | None:
    """The index in ``chain`` of the certificate a trusted chain's leaf was verified with."""
    if len(built) < 2:
        return None
    issuer = crypto.dump_certificate(crypto.FILETYPE_ASN1, built[1])
    return next((i for i in range(1, len(chain)) if chain[i] == issuer), None)


def judge_trust(chain: Sequence[bytes], ca_file: str | None, now: datetime) -> Trust:
    """The trust judgement of ``chain`` against ``ca_file`` (None: the system store), cached
    per chain, store contents and day."""
    day = now.date().toordinal()
    return _trust_errors(tuple(chain), ca_file, _stamp(ca_file, day), day)


def _issuer_unknown_reason(exc: crypto.X509StoreContextError, depth: int) -> VerifyFailure:
    """Tell a chain the server failed to complete from one issued by an unknown CA.

    The missing issuer cannot be seen, so certscope follows what browsers do: a *leaf* that
    names where to fetch its issuer (AIA caIssuers) is a chain the server should have sent in
    full (``incomplete_chain``). When the server did send intermediates and the last one's
    issuer is unknown, that issuer is a root nobody here trusts (``unknown_issuer``), even
    though intermediates carry AIA too: roots are never sent, so "incomplete" would send the
    operator to the wrong fix.
    """
    stuck = exc.certificate
    try:
        der = crypto.dump_certificate(crypto.FILETYPE_ASN1, stuck)
    except crypto.Error:
        return VerifyFailure.UNKNOWN_ISSUER
    facts = facts_from_der(der)
    if facts.self_signed:
        return VerifyFailure.UNTRUSTED_ROOT
    if facts.ca_issuer_urls and depth == 0:
        return VerifyFailure.INCOMPLETE_CHAIN
    # Without AIA, "unknown CA" and "intermediate missing" look the same from here, and
    # unknown_issuer is the honest answer.
    return VerifyFailure.UNKNOWN_ISSUER


#: Host-name matches already judged, by host and the leaf's names: a target asks for the same
#: name of the same certificate on every probe (the names' strings cache their hashes, so
#: the key costs far less than the IDNA and address parsing of a match). Emptied when full.
_MATCHES: dict[tuple[str, tuple[str, ...], str, tuple[str, ...]], bool] = {}
_MATCHES_HELD = 4096


def _host_matches(host: str, leaf: CertFacts) -> bool:
    key = (host, leaf.sans, leaf.subject_cn, leaf.ip_sans)
    match = _MATCHES.get(key)
    if match is None:
        match = hostname_matches(host, leaf.sans, leaf.subject_cn, ip_sans=leaf.ip_sans)
        if len(_MATCHES) >= _MATCHES_HELD:
            _MATCHES.clear()
        _MATCHES[key] = match
    return match


def verify_chain(
    chain: Sequence[bytes],
    facts: Sequence[CertFacts],
    host: str | None,
    ca_file: str | None,
    now: datetime,
    revoked: bool = False,
    trust: Trust | None = None,
) -> Verdict:
    """Verify a presented chain (leaf first) for ``host`` at ``now``.

    ``revoked``: OCSP or a CRL says the leaf is revoked (:mod:`certscope.revocation`); the
    chain is then not acceptable whatever else holds, and ``revoked`` is among the reasons.
    ``trust``: :func:`judge_trust` of the same chain and store, when the caller has it.
    """
    if not chain:
        return Verdict(False, False, False, (VerifyFailure.NO_CERTIFICATE,))
    errors: list[VerifyFailure] = []
    leaf = facts[0]
    valid_now = True
    if leaf.not_after is not None and now > leaf.not_after:
        errors.append(VerifyFailure.EXPIRED)
        valid_now = False
    if leaf.not_before is not None and now < leaf.not_before:
        errors.append(VerifyFailure.NOT_YET_VALID)
        valid_now = False
    if any(f.not_after is not None and now > f.not_after for f in facts[1:] if not f.self_signed):
        errors.append(VerifyFailure.INTERMEDIATE_EXPIRED)
        valid_now = False
    untrusted = (trust or judge_trust(chain, ca_file, now)).errors
    errors.extend(untrusted)
    match = True
    if host:
        match = _host_matches(host, leaf)
        if not match:
            errors.append(VerifyFailure.HOSTNAME_MISMATCH)
    if revoked:
        errors.append(VerifyFailure.REVOKED)
    return Verdict(
        chain_trusted=not untrusted,
        hostname_match=match,
        valid_now=valid_now,
        errors=tuple(errors),
        public_trust=not untrusted and ca_file is None,
    )
