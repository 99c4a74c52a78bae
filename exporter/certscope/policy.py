"""Policy findings, SSL Labs-style grades and Mozilla profile conformance. Pure functions.

Inputs are results (certificate facts, the verification verdict, the posture scan) and the
configured :class:`~certscope.config.Policy`; outputs are plain records. Nothing here does
I/O or reads the clock: ``now`` is passed in, so every judgement is reproducible in a test.

Rule ids, severities and the SOC 2 criterion each one evidences are a public contract (label
values of ``certscope_policy_violation``, documented in docs/policy.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from .certs import CertFacts, Interner, shared
from .config import Policy, Waiver
from .errors import VerifyFailure
from .posture import DHEGroup, PostureScan
from .rulebook import CONTROLS as CONTROLS  # re-exported: the policy API names its rules
from .rulebook import Rule as Rule
from .tls.suites import PROTOCOLS, CipherSuite, SuiteClass
from .verify import Verdict

_PROTOCOL_RANK = {p: i for i, p in enumerate(PROTOCOLS)}


@dataclass(frozen=True, slots=True)
class Finding:
    rule: Rule
    severity: str  # critical, warning, info
    detail: str
    waived_by: Waiver | None = None

    @property
    def control(self) -> str:
        return CONTROLS[self.rule]

    @property
    def active(self) -> bool:
        return self.waived_by is None


def _finding(rule: Rule, severity: str, detail: str) -> Finding:
    return Finding(rule, severity, detail)


# --- certificates ------------------------------------------------------------------------------


def _issued(chain: Sequence[CertFacts]) -> list[tuple[int, CertFacts]]:
    """Certificates whose own key and signature matter: all but self-signed roots."""
    return [(i, f) for i, f in enumerate(chain) if not (i > 0 and f.self_signed)]


#: Below these sizes a key is broken outright (``key_too_small`` is critical): RSA and DSA
#: under 1024 bits, and EC keys under 160 bits, their equivalent strength (NIST SP 800-57).
CRITICAL_RSA_BITS = 1024
CRITICAL_EC_BITS = 160


def key_severity(algorithm: str, bits: int) -> str:
    """``critical`` for a key below the broken-outright size, else ``warning``."""
    if algorithm in ("RSA", "DSA"):
        return "critical" if bits < CRITICAL_RSA_BITS else "warning"
    if algorithm == "EC":
        return "critical" if bits < CRITICAL_EC_BITS else "warning"
    return "warning"


def _key_problem(f: CertFacts, policy: Policy) -> str | None:
    if f.key_algorithm == "RSA" and f.key_bits < policy.min_rsa_bits:
        return f"RSA {f.key_bits} bits < {policy.min_rsa_bits}"
    if f.key_algorithm == "EC" and f.key_bits < policy.min_ec_bits:
        return f"EC {f.key_bits} bits < {policy.min_ec_bits}"
    if f.key_algorithm == "DSA":
        return f"DSA keys are not allowed ({f.key_bits} bits)"
    return None


def certificate_findings(
    chain: Sequence[CertFacts], policy: Policy, now: datetime, is_store: bool = False
) -> list[Finding]:
    """Key, signature, lifetime and validity findings for a chain (leaf first).

    For stored certificates (``is_store``) each certificate is judged on its own; a CA
    certificate in a trust store is not held to leaf rules such as maximum lifetime.
    """
    out: list[Finding] = []
    if not chain:
        return out
    small: list[str] = []
    key_worst = "warning"
    bad_sig: list[str] = []
    worst_sig = "warning"
    for i, f in _issued(chain):
        where = f"[{i}] {f.subject_cn or f.subject or f.fingerprint_sha256[:16]}"
        problem = _key_problem(f, policy)
        if problem is not None:
            small.append(f"{where}: {problem}")
            if key_severity(f.key_algorithm, f.key_bits) == "critical":
                key_worst = "critical"
        if f.signature_hash in policy.forbidden_signature_hashes and not (
            is_store and f.self_signed
        ):
            bad_sig.append(f"{where}: signed with {f.signature_hash}")
            if f.signature_hash in ("md5", "md2"):
                worst_sig = "critical"
    if small:
        out.append(_finding(Rule.KEY_TOO_SMALL, key_worst, "; ".join(small)))
    if bad_sig:
        out.append(_finding(Rule.SIGNATURE_HASH_FORBIDDEN, worst_sig, "; ".join(bad_sig)))
    leaf = chain[0]
    if not leaf.is_ca:
        life = leaf.validity_seconds
        if life is not None and life > policy.max_cert_lifetime:
            out.append(
                _finding(
                    Rule.CERT_LIFETIME_TOO_LONG,
                    "warning",
                    f"valid for {life / 86400:.0f} days, policy allows {policy.max_cert_lifetime / 86400:.0f}",
                )
            )
    if leaf.not_after is not None and now > leaf.not_after:
        out.append(_finding(Rule.CERT_EXPIRED, "critical", f"expired {leaf.not_after:%Y-%m-%d}"))
    if leaf.not_before is not None and now < leaf.not_before:
        out.append(
            _finding(Rule.CERT_NOT_YET_VALID, "warning", f"valid from {leaf.not_before:%Y-%m-%d}")
        )
    if not is_store:
        out.extend(presented_chain_findings(chain, now))
    return out


def presented_chain_findings(chain: Sequence[CertFacts], now: datetime) -> list[Finding]:
    """Findings about a chain as a server presents it: names, order, intermediates."""
    out: list[Finding] = []
    leaf = chain[0]
    names = [s for s in leaf.sans if not s.startswith(("URI:", "email:"))]
    if not leaf.is_ca and not names:
        # Browsers ignore the subject CN since 2017 (CA/B Forum BR 7.1.4.2.1; Chrome 58).
        detail = f"no DNS or IP subject alternative name (CN {leaf.subject_cn!r} only)"
        out.append(_finding(Rule.SAN_MISSING, "warning", detail))
    order = _order_problem(chain)
    if order:
        out.append(_finding(Rule.CHAIN_ORDER_WRONG, "warning", order))
    expired = [
        f"[{i}] {f.subject_cn or f.subject} expired {f.not_after:%Y-%m-%d}"
        for i, f in enumerate(chain)
        if i > 0 and not f.self_signed and f.not_after is not None and now > f.not_after
    ]
    if expired:
        out.append(_finding(Rule.INTERMEDIATE_EXPIRED, "critical", "; ".join(expired)))
    return out


def _order_problem(chain: Sequence[CertFacts]) -> str:
    """Each certificate must be followed by its issuer (RFC 5246 7.4.2); '' when it is.

    A chain whose next issuer is simply absent is incomplete, not out of order: that is
    a verification reason (``incomplete_chain``), not this finding. A certificate sent twice
    (servers given the leaf both as certificate and in the chain file) is skipped: clients
    ignore the copy, and path building is unaffected.
    """
    chain = list({f.der_sha256: f for f in chain}.values())
    where = {f.subject: i for i, f in reversed(list(enumerate(chain))) if f.subject}
    for i, f in enumerate(chain[:-1]):
        if f.self_signed or not f.issuer:
            continue
        at = where.get(f.issuer)
        if at is not None and at != i + 1 and chain[i + 1].subject != f.issuer:
            return f"[{i}] is issued by [{at}], not by the certificate after it"
    return ""


def verdict_findings(verdict: Verdict | None, policy: Policy) -> list[Finding]:
    if verdict is None:
        return []
    out = []
    if policy.require_hostname_match and not verdict.hostname_match:
        out.append(
            _finding(Rule.HOSTNAME_MISMATCH, "critical", "certificate does not cover the name")
        )
    trust = [
        e
        for e in verdict.errors
        if e
        not in (
            VerifyFailure.EXPIRED,
            VerifyFailure.NOT_YET_VALID,
            VerifyFailure.HOSTNAME_MISMATCH,
            # their own findings (intermediate_expired, cert_revoked)
            VerifyFailure.INTERMEDIATE_EXPIRED,
            VerifyFailure.REVOKED,
        )
    ]
    if VerifyFailure.REVOKED in verdict.errors:
        out.append(_finding(Rule.CERT_REVOKED, "critical", "OCSP or CRL says revoked"))
    if policy.require_trusted_chain and trust:
        out.append(_finding(Rule.CHAIN_UNTRUSTED, "critical", ", ".join(trust)))
    return out


# --- private keys ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyFacts:
    """What policy needs to know about one stored private key (public facts only)."""

    algorithm: str  # "" when the key is encrypted and no password opens it
    bits: int | None
    encrypted: bool
    has_certificate: bool  # a certificate in the store holds its public key
    source_kind: str


def private_key_findings(key: KeyFacts, policy: Policy) -> list[Finding]:
    """``private_key_unencrypted`` outside the source kinds where plain keys are expected
    (``policy.allow_unencrypted_private_keys``), ``private_key_weak`` below the certificate key
    minimums, ``private_key_orphaned`` when no certificate uses it. A key whose public half is
    unknown (encrypted, no password) is judged on nothing but its encryption."""
    out: list[Finding] = []
    if not key.encrypted and key.source_kind not in policy.allow_unencrypted_private_keys:
        out.append(
            _finding(
                Rule.PRIVATE_KEY_UNENCRYPTED,
                "warning",
                f"{key.algorithm or 'private'} key stored without a password",
            )
        )
    bits = key.bits or 0
    weak = ""
    if key.algorithm == "RSA" and bits < policy.min_rsa_bits:
        weak = f"RSA {bits} bits < {policy.min_rsa_bits}"
    elif key.algorithm == "EC" and bits < policy.min_ec_bits:
        weak = f"EC {bits} bits < {policy.min_ec_bits}"
    elif key.algorithm == "DSA":
        weak = "DSA keys are not allowed"
    if weak:
        critical = key.algorithm in ("RSA", "DSA") and bits <= 1024
        out.append(_finding(Rule.PRIVATE_KEY_WEAK, "critical" if critical else "warning", weak))
    if key.algorithm and not key.has_certificate:
        out.append(
            _finding(Rule.PRIVATE_KEY_ORPHANED, "info", "no certificate in the store uses this key")
        )
    return out


# --- protocols and suites ------------------------------------------------------------------------


def posture_findings(scan: PostureScan | None, policy: Policy) -> list[Finding]:
    if scan is None:
        return []
    out: list[Finding] = []
    floor = _PROTOCOL_RANK[policy.min_protocol]
    old = [p for p in scan.accepted_protocols if _PROTOCOL_RANK[p] < floor]
    if old:
        severity = "critical" if any(p in ("SSLv2", "SSLv3") for p in old) else "warning"
        out.append(_finding(Rule.PROTOCOL_DEPRECATED, severity, "accepts " + ", ".join(old)))
    insecure: list[str] = []
    weak: list[str] = []
    other: list[str] = []
    for protocol, suite in scan.all_suites():
        label = f"{protocol} {suite.name}"
        if suite.cls is SuiteClass.INSECURE:
            insecure.append(label)
        elif policy.allowed_ciphers:
            if suite.name not in policy.allowed_ciphers:
                (weak if suite.cls is SuiteClass.WEAK else other).append(label)
        elif suite.cls not in policy.allowed_classes:
            (weak if suite.cls is SuiteClass.WEAK else other).append(label)
    if insecure:
        out.append(_finding(Rule.CIPHER_INSECURE, "critical", "; ".join(insecure)))
    if weak:
        out.append(_finding(Rule.CIPHER_WEAK, "warning", "; ".join(weak)))
    if other:
        out.append(_finding(Rule.CIPHER_NOT_ALLOWED, "info", "; ".join(other)))
    out.extend(dh_findings(scan))
    return out


#: DHE groups below these sizes: broken (Logjam-class precomputation) / weak.
CRITICAL_DH_BITS = 1024
MIN_DH_BITS = 2048


def dh_findings(scan: PostureScan) -> list[Finding]:
    """``dh_group_too_small`` and ``dh_group_insecure`` from the groups behind DHE suites."""
    out: list[Finding] = []
    small = [g for g in scan.dhe_groups if g.bits < MIN_DH_BITS]
    if small:
        severity = "critical" if any(g.bits < CRITICAL_DH_BITS for g in small) else "warning"
        out.append(_finding(Rule.DH_GROUP_TOO_SMALL, severity, _dh_detail(small)))
    unsafe = [g for g in scan.dhe_groups if g.problem_severity]
    if unsafe:
        severity = (
            "critical" if any(g.problem_severity == "critical" for g in unsafe) else "warning"
        )
        out.append(_finding(Rule.DH_GROUP_INSECURE, severity, _dh_detail(unsafe)))
    return out


def _dh_detail(groups: Sequence[DHEGroup]) -> str:
    seen: dict[str, int] = {}
    for g in groups:
        key = f"{g.bits}-bit {g.name}" + (f" ({g.problem})" if g.problem else "")
        seen[key] = seen.get(key, 0) + 1
    return "; ".join(f"{k} with {n} DHE suite{'s' if n > 1 else ''}" for k, n in seen.items())


# --- exceptions ----------------------------------------------------------------------------------


def apply_exceptions(
    findings: list[Finding], subject: tuple[str, str], policy: Policy, today: date
) -> list[Finding]:
    """``subject`` is (target or source name, location)."""
    # Expired exceptions waive nothing and are reported themselves, so a forgotten waiver
    # cannot hide a problem for ever.
    out: list[Finding] = []
    for f in findings:
        waiver = next(
            (e for e in policy.exceptions if e.covers(subject, f.rule) and e.expires >= today), None
        )
        out.append(Finding(f.rule, f.severity, f.detail, waiver) if waiver else f)
    for e in policy.exceptions:
        if e.matches_subject(subject) and e.expires < today:
            out.append(
                _finding(
                    Rule.EXCEPTION_EXPIRED,
                    "warning",
                    f"exception for {e.rule} owned by {e.owner} expired {e.expires.isoformat()}",
                )
            )
    return out


# --- grades (SSL Labs rating guide 2009r) -----------------------------------------------------

_PROTOCOL_SCORE = {
    "SSLv2": 0,
    "SSLv3": 80,
    "TLSv1.0": 90,
    "TLSv1.1": 95,
    "TLSv1.2": 100,
    "TLSv1.3": 100,
}
_GROUP_STRENGTH = {  # RSA-equivalent bits, as SSL Labs scores key exchange
    "x25519": 3072,
    "secp256r1": 3072,
    "x448": 7680,
    "secp384r1": 7680,
    "secp521r1": 15360,
    "ffdhe2048": 2048,
    "ffdhe3072": 3072,
    "ffdhe4096": 4096,
    "ffdhe6144": 6144,
    "ffdhe8192": 8192,
    "x25519mlkem768": 3072,
}
_GRADES = ("A", "B", "C", "D", "E", "F")


def _key_strength(f: CertFacts) -> int:
    if f.key_algorithm == "RSA" or f.key_algorithm == "DSA":
        return f.key_bits
    if f.key_algorithm in ("EC", "Ed25519", "Ed448"):
        return {256: 3072, 384: 7680, 521: 15360, 456: 7680}.get(f.key_bits, f.key_bits * 12)
    return f.key_bits


def _kex_score(bits: int) -> int:
    if bits <= 0:
        return 0
    if bits < 512:
        return 20
    if bits < 1024:
        return 40
    if bits < 2048:
        return 80
    if bits < 4096:
        return 90
    return 100


def _cipher_score(bits: int) -> int:
    if bits <= 0:
        return 0
    if bits < 128:
        return 20
    if bits < 256:
        return 80
    return 100


@dataclass(frozen=True, slots=True)
class Grade:
    grade: str  # A…F, or T (trust) / M (name mismatch) which SSL Labs shows in place of a letter
    score: int
    grade_if_trusted: str
    caps: tuple[str, ...]


def _cap(current: str, to: str) -> str:
    return to if _GRADES.index(to) > _GRADES.index(current) else current


def grade(scan: PostureScan, chain: Sequence[CertFacts], verdict: Verdict | None) -> Grade | None:
    """The SSL Labs grade for an enumerated endpoint; None when nothing was accepted."""
    protocols = scan.accepted_protocols
    suites: list[tuple[str, CipherSuite]] = list(scan.all_suites())
    if not protocols:
        return None
    p_scores = [_PROTOCOL_SCORE[p] for p in protocols]
    protocol_score = (max(p_scores) + min(p_scores)) / 2
    cert_bits = _key_strength(chain[0]) if chain else 0
    group_bits = [_GROUP_STRENGTH.get(g.lower(), 2048) for g in scan.groups]
    group_bits += [g.bits for g in scan.dhe_groups]
    kex_bits = min([cert_bits, *group_bits]) if cert_bits else min(group_bits, default=0)
    anon = any(s.auth in ("NULL", "anon", "ANON") or "anon" in s.name for _, s in suites)
    kex_score = 0 if anon else _kex_score(kex_bits)
    c_scores = [_cipher_score(s.bits) for _, s in suites] or [0]
    cipher_score = (max(c_scores) + min(c_scores)) / 2
    score = round(0.3 * protocol_score + 0.3 * kex_score + 0.4 * cipher_score)
    letter = "F"
    for threshold, g in ((80, "A"), (65, "B"), (50, "C"), (35, "D"), (20, "E")):
        if score >= threshold:
            letter = g
            break
    caps: list[str] = []
    for to, why in _grade_caps(scan, chain, suites, anon):
        caps.append(f"{why} (cap {to})")
        letter = _cap(letter, to)
    if_trusted = letter
    shown = letter
    if verdict is not None and not (verdict.chain_trusted and verdict.valid_now):
        shown = "T"
        caps.append("certificate not trusted or not valid (T)")
    elif verdict is not None and not verdict.hostname_match:
        shown = "M"
        caps.append("certificate name mismatch (M)")
    return Grade(grade=shown, score=score, grade_if_trusted=if_trusted, caps=tuple(caps))


def _grade_caps(
    scan: PostureScan,
    chain: Sequence[CertFacts],
    suites: Sequence[tuple[str, CipherSuite]],
    anon: bool,
) -> list[tuple[str, str]]:
    """(grade it caps to, why) for each SSL Labs cap that applies, in the guide's order."""
    return _f_caps(scan, chain, suites, anon) + _b_c_caps(scan, chain, suites)


def _f_caps(
    scan: PostureScan,
    chain: Sequence[CertFacts],
    suites: Sequence[tuple[str, CipherSuite]],
    anon: bool,
) -> list[tuple[str, str]]:
    """The caps to F: anything that lets a passive attacker read the traffic."""
    names = [s.name for _, s in suites]
    checks = (
        ("SSLv2" in scan.accepted_protocols, "SSLv2 accepted"),
        (any("EXPORT" in n for n in names), "export cipher suites accepted"),
        (anon, "anonymous cipher suites accepted"),
        (any(s.encryption.upper() == "NULL" for _, s in suites), "NULL encryption accepted"),
        (
            bool(chain)
            and chain[0].key_algorithm in ("RSA", "DSA")
            and 0 < chain[0].key_bits < 1024,
            "certificate key below 1024 bits",
        ),
        (
            any(g.bits < CRITICAL_DH_BITS for g in scan.dhe_groups),
            "DH parameters below 1024 bits (Logjam)",
        ),
        (
            any(g.problem_severity == "critical" for g in scan.dhe_groups),
            "insecure DH parameters",
        ),
    )
    return [("F", why) for applies, why in checks if applies]


def _b_c_caps(
    scan: PostureScan,
    chain: Sequence[CertFacts],
    suites: Sequence[tuple[str, CipherSuite]],
) -> list[tuple[str, str]]:
    """The caps to C and B: weaknesses that need an active or a well-resourced attacker."""
    out: list[tuple[str, str]] = []
    protocols = scan.accepted_protocols

    def cap(to: str, why: str) -> None:
        out.append((to, why))

    modern = [p for p in protocols if p in ("TLSv1.1", "TLSv1.2", "TLSv1.3")]
    if "SSLv3" in protocols:
        cap("C", "SSLv3 accepted (POODLE)")
    if "TLSv1.2" not in protocols and "TLSv1.3" not in protocols:
        cap("C", "neither TLS 1.2 nor TLS 1.3 supported")
    rc4 = [p for p, s in suites if "RC4" in s.encryption.upper()]
    if rc4:
        cap("C" if any(p in modern for p in rc4) else "B", "RC4 accepted")
    small_block = [p for p, s in suites if _is_64bit_block(s)]
    if any(p in modern for p in small_block):
        cap("C", "64-bit block cipher with TLS 1.1 or later (SWEET32)")
    if "TLSv1.0" in protocols or "TLSv1.1" in protocols:
        cap("B", "TLS 1.0 or 1.1 accepted")
    if suites and not any(s.forward_secrecy for _, s in suites):
        cap("B", "no forward secrecy")
    if suites and not any(s.aead for _, s in suites):
        cap("B", "no AEAD cipher suite")
    if chain and chain[0].key_algorithm == "RSA" and 1024 <= chain[0].key_bits < 2048:
        cap("B", "certificate key below 2048 bits")
    if any(g.bits < MIN_DH_BITS for g in scan.dhe_groups):
        cap("B", "DH parameters below 2048 bits")
    return out


def _is_64bit_block(s: CipherSuite) -> bool:
    enc = s.encryption.upper()
    return any(k in enc for k in ("3DES", "DES_EDE", "IDEA", "RC2", "28147", "MAGMA"))


# --- Mozilla server-side TLS profiles (version 5.7) ---------------------------------------------

_TLS13_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)
_INTERMEDIATE_TLS12 = frozenset(
    {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    }
)


@dataclass(frozen=True)
class Profile:
    name: str
    protocols: frozenset[str]
    suites: frozenset[str]
    groups: frozenset[str]
    key_types: frozenset[str]
    min_rsa_bits: int
    max_lifetime_days: int


PROFILES = (
    Profile(
        "modern",
        frozenset({"TLSv1.3"}),
        _TLS13_SUITES,
        frozenset({"x25519", "secp256r1", "secp384r1"}),
        frozenset({"EC"}),
        0,
        90,
    ),
    Profile(
        "intermediate",
        frozenset({"TLSv1.2", "TLSv1.3"}),
        _TLS13_SUITES | _INTERMEDIATE_TLS12,
        frozenset({"x25519", "secp256r1", "secp384r1", "ffdhe2048", "ffdhe3072", "ffdhe4096"}),
        frozenset({"EC", "RSA"}),
        2048,
        366,
    ),
)


def mozilla_conformance(
    scan: PostureScan, chain: Sequence[CertFacts]
) -> dict[str, tuple[bool, tuple[str, ...]]]:
    """profile → (conformant, reasons it is not)."""
    out: dict[str, tuple[bool, tuple[str, ...]]] = {}
    for prof in PROFILES:
        why: list[str] = []
        accepted = set(scan.accepted_protocols)
        if not accepted & prof.protocols:
            why.append("supports none of " + ", ".join(sorted(prof.protocols)))
        extra = sorted(accepted - prof.protocols, key=PROTOCOLS.index)
        if extra:
            why.append("accepts " + ", ".join(extra))
        bad = sorted({s.name for _, s in scan.all_suites() if s.name not in prof.suites})
        if bad:
            why.append(f"{len(bad)} cipher suites outside the profile")
        # Extra (stronger) groups do no harm; a server must offer at least one profile group.
        groups = {g.lower() for g in scan.groups}
        if groups and not groups & prof.groups:
            why.append("supports none of the groups " + ", ".join(sorted(prof.groups)))
        if chain:
            leaf = chain[0]
            if leaf.key_algorithm not in prof.key_types:
                why.append(f"{leaf.key_algorithm} certificate")
            elif leaf.key_algorithm == "RSA" and leaf.key_bits < prof.min_rsa_bits:
                why.append(f"RSA key of {leaf.key_bits} bits")
            if leaf.signature_hash not in ("sha256", "sha384", "sha512", ""):
                why.append(f"certificate signed with {leaf.signature_hash}")
            life = leaf.validity_seconds
            if life is not None and life > prof.max_lifetime_days * 86400 + 86400:
                why.append(f"certificate valid for {life / 86400:.0f} days")
        if not scan.complete:
            why.append("scan incomplete")
        out[prof.name] = (not why, tuple(why))
    return out


def today(now: datetime) -> date:
    return now.astimezone(UTC).date()


# --- putting it together -----------------------------------------------------------------------


#: Equal endpoint assessments as one object: targets with the same posture, chain and policy
#: read the same. A table of its own, so that a fleet whose targets each read differently
#: cannot push the shared DER and verdicts out of :data:`certs.shared`.
_assessments = Interner(8192)


@dataclass(frozen=True, slots=True)
class Assessment:
    """Everything policy says about one TLS target or one stored-certificate location."""

    findings: tuple[Finding, ...]
    grade: Grade | None = None
    mozilla: tuple[tuple[str, bool, tuple[str, ...]], ...] = ()

    @property
    def active(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.active)


def findings_json(a: Assessment) -> dict[str, list[dict[str, str]]]:
    """Active findings and waived ones, as ``certscope scan --format json`` prints them."""
    return {
        "findings": [
            {"rule": str(f.rule), "severity": f.severity, "control": f.control, "detail": f.detail}
            for f in a.active
        ],
        "waived": [
            {
                "rule": str(f.rule),
                "owner": f.waived_by.owner,
                "expires": f.waived_by.expires.isoformat(),
            }
            for f in a.findings
            if f.waived_by is not None
        ],
    }


def assess_endpoint(
    subject: tuple[str, str],
    chain: Sequence[CertFacts],
    verdict: Verdict | None,
    scan: PostureScan | None,
    policy: Policy,
    now: datetime,
    served_mismatch: str | None = None,
    stapled: bool | None = None,
) -> Assessment:
    """Findings, grade and Mozilla conformance for a TLS endpoint.

    ``served_mismatch`` is the detail when the endpoint serves something other than the newest
    certificate in its store (see :mod:`certscope.matching`). ``stapled`` says whether the
    server stapled an OCSP response (None: not known).

    The grade and conformance need an enumeration; before the first one completes they are
    absent rather than guessed.
    """
    findings = [
        *posture_findings(scan, policy),
        *certificate_findings(chain, policy, now),
        *verdict_findings(verdict, policy),
    ]
    if served_mismatch is not None:
        findings.append(_finding(Rule.SERVED_NOT_STORED, "warning", served_mismatch))
    if verdict is not None and verdict.public_trust and chain and not chain[0].sct_log_ids:
        # Chrome and Safari require SCTs for publicly trusted certificates; only embedded
        # ones are seen here (SCTs in the TLS extension or a staple are not read).
        detail = "publicly trusted leaf without embedded SCTs (Certificate Transparency)"
        findings.append(_finding(Rule.SCT_MISSING, "warning", detail))
    if stapled is False and chain and chain[0].must_staple:
        # RFC 7633: clients that honour must-staple refuse the connection without a staple.
        detail = "certificate requires OCSP stapling (TLS feature status_request); none stapled"
        findings.append(_finding(Rule.OCSP_MUST_STAPLE_MISSING, "critical", detail))
    findings = apply_exceptions(findings, subject, policy, today(now))
    g = grade(scan, chain, verdict) if scan is not None else None
    moz = (
        tuple((name, ok, why) for name, (ok, why) in mozilla_conformance(scan, chain).items())
        if scan is not None
        else ()
    )
    # Targets with the same posture get equal verdicts: they share one copy of each part, and
    # of the whole.
    return _assessments(
        Assessment(
            findings=shared(tuple(findings)),
            grade=None if g is None else shared(g),
            mozilla=shared(moz),
        )
    )


def assess_stored(
    subject: tuple[str, str],
    certs: Sequence[CertFacts],
    policy: Policy,
    now: datetime,
    key_mismatch: Sequence[int] = (),
    keys: Sequence[KeyFacts] = (),
    revoked: Sequence[int] = (),
) -> Assessment:
    """Findings for the certificates and private keys at one stored location, each judged on
    its own.

    ``key_mismatch`` lists positions whose private key, stored beside them, does not match;
    ``revoked`` the positions their CA has revoked (OCSP, CRL or the store itself says so).
    """
    findings: list[Finding] = []
    for key in keys:
        findings.extend(private_key_findings(key, policy))
    for facts in certs:
        findings.extend(certificate_findings([facts], policy, now, is_store=True))
    if key_mismatch:
        where = ", ".join(f"[{p}]" for p in key_mismatch)
        findings.append(
            _finding(Rule.PRIVATE_KEY_MISMATCH, "critical", f"private key does not match {where}")
        )
    if revoked:
        where = ", ".join(f"[{p}]" for p in revoked)
        findings.append(_finding(Rule.CERT_REVOKED, "critical", f"revoked by its CA: {where}"))
    merged: dict[Rule, Finding] = {}
    for f in findings:  # one finding per rule and location, details joined
        if f.rule in merged:
            old = merged[f.rule]
            worst = "critical" if "critical" in (old.severity, f.severity) else old.severity
            merged[f.rule] = Finding(f.rule, worst, old.detail + "; " + f.detail)
        else:
            merged[f.rule] = f
    return Assessment(
        findings=tuple(apply_exceptions(list(merged.values()), subject, policy, today(now)))
    )
