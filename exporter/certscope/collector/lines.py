"""Sample lines: label escaping, value formatting, and the certificate lines every kind of result shares."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..certs import CertFacts
from ..revocation import Revocation
from .families import FAMILY_NAMES

_MAX_LABEL_VALUE = 1024


def escape(value: str) -> str:
    if len(value) > _MAX_LABEL_VALUE:
        value = value[: _MAX_LABEL_VALUE - 1] + "…"
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value  # the common case: nothing to escape, no copies


def _inner(pairs: Iterable[tuple[str, str]]) -> str:
    """Label pairs rendered and escaped, without the braces: a prefix many lines share."""
    return ",".join(f'{k}="{escape(v)}"' for k, v in pairs)


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return "{" + _inner(pairs) + "}"


def _num(v: float) -> str:
    if v.__class__ is float:  # most values: timestamps and durations
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


Fragments = dict[str, list[str]]


def _line(out: Fragments, family: str, inner: str, value: float | str) -> None:
    """One sample line; ``inner`` is already escaped (see :func:`_inner`), a str value is
    already formatted."""
    assert family in FAMILY_NAMES, family
    text = value if isinstance(value, str) else _num(value)
    out.setdefault(family, []).append(f"{family}{{{inner}}} {text}\n")


def _add(out: Fragments, family: str, labels: Sequence[tuple[str, str]], value: float) -> None:
    _line(out, family, _inner(labels), value)


@lru_cache(maxsize=1024)
def _term(name: str, value: str) -> str:
    """One pair from a small vocabulary (phases, reasons, versions, suites), escaped once."""
    return f'{name}="{escape(value)}"'


@dataclass(frozen=True, slots=True)
class _CertText:
    """A certificate's own label text and values, escaped and formatted once per certificate
    (an intermediate is shared by every target behind it)."""

    names: str  # subject_cn, issuer_cn
    info: str  # the rest of certscope_cert_info's labels
    not_after: str | None
    not_before: str | None
    sct_count: str
    sct_logs: tuple[str, ...]  # log_id="…", once per log


#: id(facts) -> (facts, text). The facts are held so that an id is never reused while its
#: entry lives; the whole table is dropped when full, which bounds it.
_CERT_TEXT: dict[int, tuple[CertFacts, _CertText]] = {}
_CERT_TEXT_MAX = 4096


def _cert_text(facts: CertFacts) -> _CertText:
    hit = _CERT_TEXT.get(id(facts))
    if hit is not None and hit[0] is facts:
        return hit[1]
    text = _CertText(
        names=_inner((("subject_cn", facts.subject_cn), ("issuer_cn", facts.issuer_cn))),
        info=_inner(
            (
                ("serial", facts.serial),
                ("fingerprint_sha256", facts.fingerprint_sha256),
                ("subject", facts.subject),
                ("issuer", facts.issuer),
                ("sans", ",".join(facts.sans)),
                ("key_algorithm", facts.key_algorithm),
                ("key_bits", str(facts.key_bits)),
                ("key_curve", facts.key_curve),
                ("public_key_sha256", facts.public_key_sha256),
                ("signature_algorithm", facts.signature_algorithm),
                ("signature_hash", facts.signature_hash),
                ("is_ca", "true" if facts.is_ca else "false"),
                ("self_signed", "true" if facts.self_signed else "false"),
            )
        ),
        not_after=None if facts.not_after is None else _num(facts.not_after.timestamp()),
        not_before=None if facts.not_before is None else _num(facts.not_before.timestamp()),
        sct_count=_num(len(facts.sct_log_ids)),
        sct_logs=tuple(_inner((("log_id", i),)) for i in dict.fromkeys(facts.sct_log_ids)),
    )
    if len(_CERT_TEXT) >= _CERT_TEXT_MAX:
        _CERT_TEXT.clear()
    _CERT_TEXT[id(facts)] = (facts, text)
    return text


def _cert_lines(
    out: Fragments, base: str, position: int, facts: CertFacts, revoked: bool = False
) -> None:
    """``base``: the slot's location labels, escaped (:func:`_inner`)."""
    text = _cert_text(facts)
    slot = f'{base},chain_position="{position}",{text.names}'
    if text.not_after is not None:
        _line(out, "certscope_cert_not_after_timestamp_seconds", slot, text.not_after)
    if text.not_before is not None:
        _line(out, "certscope_cert_not_before_timestamp_seconds", slot, text.not_before)
    _line(out, "certscope_cert_info", f"{slot},{text.info}", "1")
    if not facts.is_ca:
        _line(out, "certscope_cert_sct_count", slot, text.sct_count)
        for log_id in text.sct_logs:
            _line(out, "certscope_cert_sct_info", f"{slot},{log_id}", "1")
    if revoked:
        _line(out, "certscope_cert_revoked", slot, "1")


def _revocation_status_lines(out: Fragments, slot: str, rev: Revocation) -> None:
    """One series per method checked. A stored leaf's ``slot`` (escaped) also names its place
    in the file or bundle (a bundle may hold several leaves); stapling is for servers only."""
    for check in rev.checks:
        labels = f"{slot},{_term('method', check.method)},{_term('status', check.status)}"
        _line(out, "certscope_cert_revocation_status", labels, 1)
