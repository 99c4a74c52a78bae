"""Is the leaf revoked? OCSP (stapled, else the responder in AIA) and CRLs.

Order of evidence, as browsers and RFC 6960/5280 describe it:

1. a **stapled** OCSP response the server sent in its handshake: its signature (by the issuer
   or a responder the issuer delegated with ``id-kp-OCSPSigning``), its freshness
   (``thisUpdate`` ≤ now ≤ ``nextUpdate``) and the status for this certificate;
2. otherwise the **OCSP responder** named in the leaf's AIA, asked by POST and, when that
   fails, by GET (RFC 6960 A.1); answers are cached until their ``nextUpdate``;
3. independently, the **CRLs** named in the leaf's CRL distribution points, verified against
   the issuer, cached until their ``nextUpdate`` and capped in size.

The judgements are pure (:func:`judge_ocsp`, :func:`judge_crl`); fetching goes through
:mod:`certscope.httpfetch`, and CRL parsing, which can take long for big lists, runs in a
worker thread so the event loop never waits on it. The caller bounds the time (the probe's
deadline); failures become a check with status ``error``, never an exception.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import hashlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final, Generic, TypeVar
from urllib.parse import quote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from .certs import CertFacts
from .config import RevocationOptions
from .httpfetch import NOT_ALLOWED, FetchError, fetch

__all__ = [
    "Check",
    "Method",
    "Revocation",
    "Status",
    "cached_revocation",
    "check_revocation",
    "judge_crl",
    "judge_ocsp",
    "leaf_and_issuer",
]

#: Clock skew tolerated on thisUpdate and nextUpdate.
SKEW: Final = timedelta(minutes=5)
#: How long a failed fetch is remembered before the responder is asked again.
ERROR_TTL: Final = 300.0
#: How long an answer without nextUpdate is reused.
DEFAULT_TTL: Final = 3600.0
_MAX_OCSP_BYTES: Final = 1024 * 1024
_CACHE_ENTRIES: Final = 4096
_CRL_ENTRIES: Final = 64


class Method(enum.StrEnum):
    OCSP = "ocsp"
    CRL = "crl"


class Status(enum.StrEnum):
    """Stable label values of ``certscope_cert_revocation_status``."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    ERROR = "error"


@dataclass(frozen=True)
class Check:
    """One method's answer for the leaf."""

    method: Method
    status: Status
    detail: str
    source: str = ""  # "staple", the responder or CRL URL
    next_update: float | None = None


@dataclass(frozen=True)
class Revocation:
    """Everything known about the leaf's revocation after one probe."""

    checks: tuple[Check, ...] = ()
    stapled: bool = False
    staple_next_update: float | None = None
    must_staple: bool = False

    @property
    def revoked(self) -> bool:
        return any(c.status is Status.REVOKED for c in self.checks)


# --- pure judgements ---------------------------------------------------------------------------


def _verify_signature(key: object, signature: bytes, data: bytes, digest: object) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey) and isinstance(digest, hashes.HashAlgorithm):
            key.verify(signature, data, padding.PKCS1v15(), digest)
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(
            digest, hashes.HashAlgorithm
        ):
            key.verify(signature, data, ec.ECDSA(digest))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _delegated(resp: ocsp.OCSPResponse, issuer: x509.Certificate) -> x509.Certificate | None:
    """A responder certificate the issuer signed for OCSP signing (RFC 6960 4.2.2.2)."""
    for cert in resp.certificates:
        try:
            cert.verify_directly_issued_by(issuer)
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
            return cert
    return None


def _signer_key(resp: ocsp.OCSPResponse, issuer: x509.Certificate) -> object | None:
    issuer_key = issuer.public_key()
    # RFC 6960 KeyHash is SHA-1 of the subjectPublicKey bits: RFC 5280's key identifier.
    key_hash = x509.SubjectKeyIdentifier.from_public_key(issuer_key).digest
    if resp.responder_key_hash == key_hash or resp.responder_name == issuer.subject:
        return issuer_key
    delegate = _delegated(resp, issuer)
    return delegate.public_key() if delegate is not None else None


@dataclass(frozen=True)
class OCSPAnswer:
    status: Status
    detail: str
    this_update: datetime | None = None
    next_update: datetime | None = None


def judge_ocsp(
    der: bytes, leaf: x509.Certificate, issuer: x509.Certificate, now: datetime
) -> OCSPAnswer:
    """The leaf's status in the OCSP response ``der``; ``error`` when it cannot be trusted."""
    try:
        resp = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        return OCSPAnswer(Status.ERROR, f"unparseable OCSP response: {str(exc)[:80]}")
    if resp.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return OCSPAnswer(Status.ERROR, f"responder said {resp.response_status.name.lower()}")
    key = _signer_key(resp, issuer)
    if key is None:
        return OCSPAnswer(Status.ERROR, "response not signed by the issuer or its delegate")
    if not _verify_signature(
        key, resp.signature, resp.tbs_response_bytes, resp.signature_hash_algorithm
    ):
        return OCSPAnswer(Status.ERROR, "OCSP response signature does not verify")
    single = next((r for r in resp.responses if r.serial_number == leaf.serial_number), None)
    if single is None:
        return OCSPAnswer(Status.ERROR, "response is for another certificate")
    this, nxt = single.this_update_utc, single.next_update_utc
    if this > now + SKEW:
        return OCSPAnswer(Status.ERROR, f"response from the future ({this:%Y-%m-%d %H:%M})")
    if nxt is not None and now > nxt + SKEW:
        return OCSPAnswer(
            Status.ERROR, f"stale response (nextUpdate {nxt:%Y-%m-%d %H:%M})", this, nxt
        )
    status = single.certificate_status
    if status is ocsp.OCSPCertStatus.REVOKED:
        when = single.revocation_time_utc
        reason = single.revocation_reason.name if single.revocation_reason else "unspecified"
        detail = f"revoked {when:%Y-%m-%d} ({reason})" if when else "revoked"
        return OCSPAnswer(Status.REVOKED, detail, this, nxt)
    if status is ocsp.OCSPCertStatus.UNKNOWN:
        return OCSPAnswer(Status.UNKNOWN, "responder does not know the certificate", this, nxt)
    return OCSPAnswer(Status.GOOD, "good", this, nxt)


def judge_crl(
    crl: x509.CertificateRevocationList,
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime,
) -> OCSPAnswer:
    """The leaf's status in ``crl``; ``error`` when the CRL cannot be trusted."""
    if crl.issuer != issuer.subject:
        return OCSPAnswer(Status.ERROR, "CRL issued by another CA")
    try:
        valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        valid = False
    if not valid:
        return OCSPAnswer(Status.ERROR, "CRL signature does not verify")
    this, nxt = crl.last_update_utc, crl.next_update_utc
    if nxt is not None and now > nxt + SKEW:
        return OCSPAnswer(Status.ERROR, f"stale CRL (nextUpdate {nxt:%Y-%m-%d %H:%M})", this, nxt)
    entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
    if entry is not None:
        return OCSPAnswer(
            Status.REVOKED, f"revoked {entry.revocation_date_utc:%Y-%m-%d}", this, nxt
        )
    return OCSPAnswer(Status.GOOD, "not listed", this, nxt)


# --- caches --------------------------------------------------------------------------------------


K = TypeVar("K")
V = TypeVar("V")


class _TTLCache(Generic[K, V]):
    """A small LRU whose entries expire at a given monotonic time."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        if hit[0] <= time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return hit[1]

    def put(self, key: K, value: V, ttl: float) -> None:
        self._data[key] = (time.monotonic() + max(ttl, 1.0), value)
        self._data.move_to_end(key)
        while len(self._data) > self._size:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()


# Answers are kept as the Check a probe reports, so a cache hit builds nothing.
_ocsp_cache: _TTLCache[tuple[str, str], Check] = _TTLCache(_CACHE_ENTRIES)
_crl_cache: _TTLCache[str, x509.CertificateRevocationList] = _TTLCache(_CRL_ENTRIES)
_staple_cache: _TTLCache[tuple[bytes, bytes], OCSPAnswer] = _TTLCache(_CACHE_ENTRIES)
_crl_answers: _TTLCache[tuple[str, int], Check] = _TTLCache(_CACHE_ENTRIES)
_unreachable: _TTLCache[str, Check] = _TTLCache(_CRL_ENTRIES)
_crl_failed: _TTLCache[str, Check] = _TTLCache(_CRL_ENTRIES)


def clear_caches() -> None:
    """Forget every cached answer (tests; a reload keeps them on purpose)."""
    for cache in (_ocsp_cache, _crl_cache, _staple_cache, _crl_answers, _unreachable, _crl_failed):
        cache.clear()


def _ttl(answer: OCSPAnswer, now: datetime) -> float:
    if answer.status is Status.ERROR:
        return ERROR_TTL
    if answer.next_update is None:
        return DEFAULT_TTL
    return (answer.next_update - now).total_seconds()


# --- fetching ------------------------------------------------------------------------------------


def ocsp_request(leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """A DER OCSP request for ``leaf`` (SHA-1 CertID, what responders expect)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())  # noqa: S303
    return builder.build().public_bytes(serialization.Encoding.DER)


def ocsp_get_url(url: str, request: bytes) -> str:
    """RFC 6960 A.1: the GET form, the URL-encoded base64 request appended to the URL."""
    return url.rstrip("/") + "/" + quote(base64.b64encode(request).decode("ascii"), safe="")


async def _ask_responder(
    url: str, leaf: x509.Certificate, issuer: x509.Certificate, opts: RevocationOptions
) -> bytes:
    request = ocsp_request(leaf, issuer)
    try:
        return await fetch(
            url,
            body=request,
            content_type="application/ocsp-request",
            max_bytes=_MAX_OCSP_BYTES,
            timeout=opts.timeout,
            allowed_networks=opts.allowed_networks,
        )
    except FetchError as first:
        if first.reason != "http_error":
            raise  # unreachable or too slow: GET would fail the same way
        # A responder that refuses POST (405 and the like) may still answer GET.
        return await fetch(
            ocsp_get_url(url, request),
            max_bytes=_MAX_OCSP_BYTES,
            timeout=opts.timeout,
            allowed_networks=opts.allowed_networks,
        )


def _ocsp_cached(url: str, key: tuple[str, str]) -> Check | None:
    # A responder that cannot be reached is remembered per URL, not per certificate: a
    # fleet of certificates naming one dead responder costs one attempt, not one each.
    return _ocsp_cache.get(key) or _unreachable.get(url)


def _error(method: Method, exc: FetchError, url: str) -> Check:
    return Check(method, Status.ERROR, f"{exc.reason}: {exc}", url)


def _answered(method: Method, answer: OCSPAnswer, url: str) -> Check:
    return Check(method, answer.status, answer.detail, url, _ts(answer.next_update))


async def _ocsp_check(
    url: str,
    key: tuple[str, str],
    leaf: x509.Certificate,
    issuer: x509.Certificate,
    opts: RevocationOptions,
) -> Check:
    now = datetime.now(UTC)
    try:
        der = await _ask_responder(url, leaf, issuer, opts)
    except FetchError as exc:
        check = _error(Method.OCSP, exc, url)
        if exc.reason == NOT_ALLOWED:
            return check  # a verdict on the asker's networks, not on the responder: not cached
        _ocsp_cache.put(key, check, ERROR_TTL)
        if exc.reason in ("unreachable", "timeout", "unsupported_url"):
            _unreachable.put(url, check, ERROR_TTL)
        return check
    answer = judge_ocsp(der, leaf, issuer, now)
    check = _answered(Method.OCSP, answer, url)
    _ocsp_cache.put(key, check, _ttl(answer, now))
    return check


def _load_crl(data: bytes) -> x509.CertificateRevocationList:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


def _crl_cached(url: str, serial: int) -> Check | None:
    return _crl_failed.get(url) or _crl_answers.get((url, serial))


async def _fetch_crl(url: str, opts: RevocationOptions) -> x509.CertificateRevocationList:
    data = await fetch(
        url,
        max_bytes=opts.max_crl_bytes,
        timeout=opts.timeout,
        allowed_networks=opts.allowed_networks,
    )
    try:
        # Parsing a CRL of many thousand entries takes long enough to stall other probes.
        return await asyncio.to_thread(_load_crl, data)
    except ValueError as exc:
        raise FetchError("unparseable", f"not a CRL: {str(exc)[:80]}") from None


async def _crl_check(
    url: str, leaf: x509.Certificate, issuer: x509.Certificate, opts: RevocationOptions
) -> Check:
    now = datetime.now(UTC)
    crl = _crl_cache.get(url)
    if crl is None:
        try:
            crl = await _fetch_crl(url, opts)
        except FetchError as exc:
            check = _error(Method.CRL, exc, url)
            if exc.reason != NOT_ALLOWED:  # as for OCSP: says nothing about the CRL's server
                _crl_failed.put(url, check, ERROR_TTL)
            return check
        nxt = crl.next_update_utc
        _crl_cache.put(url, crl, (nxt - now).total_seconds() if nxt else DEFAULT_TTL)
    answer = await asyncio.to_thread(judge_crl, crl, leaf, issuer, now)
    check = _answered(Method.CRL, answer, url)
    _crl_answers.put((url, leaf.serial_number), check, min(_ttl(answer, now), DEFAULT_TTL))
    return check


def _ts(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


# --- putting it together -------------------------------------------------------------------------


#: Signature algorithms for which OpenSSL's verdict on a signature is cryptography's too
#: (``verify_directly_issued_by``: the same library underneath; it refuses SHA-1, MD5 and
#: checks PSS parameters its own way, so those are always checked here).
_SAME_VERDICT = frozenset(
    {
        SignatureAlgorithmOID.RSA_WITH_SHA256,
        SignatureAlgorithmOID.RSA_WITH_SHA384,
        SignatureAlgorithmOID.RSA_WITH_SHA512,
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
        SignatureAlgorithmOID.ED25519,
        SignatureAlgorithmOID.ED448,
    }
)


def _tbs_names(der: bytes) -> tuple[bytes, bytes] | None:
    """The issuer and subject names of a certificate as encoded in ``der``; None when its
    outline is not what RFC 5280 says (the caller then compares parsed names)."""
    cert = _element(der, 0)
    tbs = _element(der, cert[1]) if cert is not None else None
    if tbs is None:
        return None
    pos, end = tbs[1], tbs[2]
    first = _element(der, pos)
    if first is not None and first[0] == 0xA0:  # the optional [0] version
        pos = first[2]
    fields: list[bytes] = []
    # serial, signature algorithm, issuer, validity, subject
    while len(fields) < 5 and pos < end:
        got = _element(der, pos)
        if got is None:
            return None
        fields.append(der[pos : got[2]])
        pos = got[2]
    return (fields[2], fields[4]) if len(fields) == 5 else None


def _element(der: bytes, pos: int) -> tuple[int, int, int] | None:
    """``(tag, content start, element end)`` of the DER element at ``pos``."""
    if pos + 2 > len(der):
        return None
    first = der[pos + 1]
    start, length = pos + 2, first
    if first & 0x80:
        n = first & 0x7F
        if not 0 < n <= 4:
            return None
        start, length = pos + 2 + n, int.from_bytes(der[pos + 2 : pos + 2 + n], "big")
    end = start + length
    return (der[pos], start, end) if end <= len(der) else None


def _same_name(chain: tuple[bytes, ...], issued: tuple[bytes, bytes] | None, index: int) -> bool:
    """Whether ``chain[index]``'s subject is the leaf's issuer name as encoded (``issued``:
    the leaf's names), byte for byte."""
    theirs = _tbs_names(chain[index]) if issued is not None else None
    return theirs is not None and issued is not None and issued[0] == theirs[1]


@lru_cache(maxsize=1024)
def _leaf_and_issuer(
    chain: tuple[bytes, ...], signer: int | None = None
) -> tuple[x509.Certificate, x509.Certificate | None] | None:
    # Steady-state probes present the same chain: parse it and find the issuer once.
    # ``signer``: the index of the certificate OpenSSL verified the leaf's signature with
    # while trusting the chain (verify.judge_trust).
    try:
        certs = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError:
        return None
    leaf = certs[0]
    issued = _tbs_names(chain[0])
    for index, cert in enumerate(certs[1:], 1):
        # Names equal as encoded are equal parsed too, and building cryptography's Name
        # objects costs more than hashing the signed part: the bytes are compared first.
        same_bytes = _same_name(chain, issued, index)
        if not same_bytes and cert.subject != leaf.issuer:
            continue
        if same_bytes and index == signer and leaf.signature_algorithm_oid in _SAME_VERDICT:
            # cryptography's check would compare these names byte for byte, load the issuer's
            # key (it refuses some OpenSSL accepts, such as EC keys with explicit curve
            # parameters: loaded here too), then verify the signature OpenSSL has already
            # verified, with the same library underneath.
            try:
                cert.public_key()
            except (ValueError, TypeError):
                continue
            return leaf, cert
        try:
            leaf.verify_directly_issued_by(cert)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return leaf, cert
    return leaf, None


def leaf_and_issuer(
    chain: Sequence[bytes],
) -> tuple[x509.Certificate, x509.Certificate | None] | None:
    """``chain[0]`` parsed, and the certificate among the others that signed it (or None);
    None when a certificate does not parse."""
    return _leaf_and_issuer(tuple(chain)) if chain else None


def _staple_check(
    staple: bytes, leaf_der: bytes, leaf: x509.Certificate, issuer: x509.Certificate, now: datetime
) -> Check:
    key = (hashlib.sha256(staple).digest(), hashlib.sha256(leaf_der).digest())
    answer = _staple_cache.get(key)
    if answer is None or (answer.next_update is not None and now > answer.next_update + SKEW):
        answer = judge_ocsp(staple, leaf, issuer, now)
        # Freshness changes with the clock: keep a judgement until nextUpdate at the latest.
        _staple_cache.put(key, answer, min(_ttl(answer, now), DEFAULT_TTL))
    return Check(Method.OCSP, answer.status, answer.detail, "staple", _ts(answer.next_update))


@dataclass(frozen=True)
class _Pending:
    """A check whose answer is not cached: it needs a fetch."""

    method: Method
    url: str


@dataclass(frozen=True)
class _Plan:
    revocation: Revocation  # its checks: whatever needed no fetch
    slots: tuple[Check | _Pending, ...] = ()
    leaf: x509.Certificate | None = None
    issuer: x509.Certificate | None = None


def _plan(
    chain: Sequence[bytes],
    leaf_facts: CertFacts,
    staple: bytes | None,
    opts: RevocationOptions,
    signer: int | None,
) -> _Plan:
    must = leaf_facts.must_staple
    if not (staple or (opts.ocsp and leaf_facts.ocsp_urls) or (opts.crl and leaf_facts.crl_urls)):
        # Nothing to check: the first sight of such a chain skips parsing it again and the
        # signature check that finds the issuer (the same answer as below with no slots).
        return _Plan(Revocation(must_staple=must))
    parsed = _leaf_and_issuer(tuple(chain), signer) if chain else None
    if parsed is None:
        return _Plan(Revocation(stapled=bool(staple), must_staple=must))
    leaf, issuer = parsed
    if issuer is None:
        detail = "issuer not presented: cannot check revocation"
        wanted = staple or (opts.ocsp and leaf_facts.ocsp_urls)
        none = (Check(Method.OCSP, Status.ERROR, detail),) if wanted else ()
        return _Plan(Revocation(none, stapled=bool(staple), must_staple=must))
    slots: list[Check | _Pending] = []
    staple_next: float | None = None
    if staple:
        stapled = _staple_check(staple, chain[0], leaf, issuer, datetime.now(UTC))
        slots.append(stapled)
        staple_next = stapled.next_update
    elif opts.ocsp and leaf_facts.ocsp_urls:
        url = leaf_facts.ocsp_urls[0]
        slots.append(_ocsp_cached(url, (url, leaf_facts.der_sha256)) or _Pending(Method.OCSP, url))
    if opts.crl and leaf_facts.crl_urls:
        url = leaf_facts.crl_urls[0]
        slots.append(_crl_cached(url, leaf.serial_number) or _Pending(Method.CRL, url))
    done = tuple(c for c in slots if isinstance(c, Check))
    rev = Revocation(done, stapled=bool(staple), staple_next_update=staple_next, must_staple=must)
    return _Plan(rev, tuple(slots), leaf, issuer)


def cached_revocation(
    chain: Sequence[bytes],
    leaf_facts: CertFacts,
    staple: bytes | None,
    opts: RevocationOptions,
    signer: int | None = None,
) -> Revocation | None:
    """The answer from caches alone (steady state, no I/O); None when a fetch is needed.
    ``signer``: :attr:`verify.Trust.signer` of the chain, when the caller has judged it."""
    plan = _plan(chain, leaf_facts, staple, opts, signer)
    if any(isinstance(slot, _Pending) for slot in plan.slots):
        return None
    return plan.revocation


async def check_revocation(
    chain: Sequence[bytes],
    leaf_facts: CertFacts,
    staple: bytes | None,
    opts: RevocationOptions,
    signer: int | None = None,
) -> Revocation:
    """Revocation of ``chain[0]``: the staple if any, else the responder; and the CRLs.
    ``signer`` as for :func:`cached_revocation`."""
    plan = _plan(chain, leaf_facts, staple, opts, signer)
    leaf, issuer = plan.leaf, plan.issuer
    checks: list[Check] = []
    for slot in plan.slots:
        if isinstance(slot, Check):
            checks.append(slot)
        elif leaf is not None and issuer is not None and slot.method is Method.OCSP:
            key = (slot.url, leaf_facts.der_sha256)
            checks.append(await _ocsp_check(slot.url, key, leaf, issuer, opts))
        elif leaf is not None and issuer is not None:
            checks.append(await _crl_check(slot.url, leaf, issuer, opts))
    return replace(plan.revocation, checks=tuple(checks))
