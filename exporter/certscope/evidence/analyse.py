"""Pure analysis: fetched series → gaps, inventory, renewals, alert episodes, findings, controls.

No I/O: :func:`analyse` takes the matrices that :mod:`.query` fetched (one per query of
:func:`.query.plan`) and returns an :class:`Evidence`, which :mod:`.report` writes out.

Timing precision. Step ``k`` is evaluated at ``t = time(k)`` over the window
``(t - window, t]``, and windows overlap when the window is longer than the step. So:

- something first *present* at step ``k`` started in ``(t - step, t]``: reported at ``t``;
- something last present at step ``k`` had its last sample in ``(t - window, t - window +
  step]``: reported ending at ``t - window + step``;
- a run of steps ``k1 … k2`` with *no* sample is a silence that certainly covers
  ``(time(k1) - window, time(k2)]``: gaps are reported as that interval, which is never longer
  than the real silence (the real one may start and end up to one step later/earlier).

Missing data is never a pass: a control whose checks found no data is ``insufficient_data``,
and every step without data is part of a reported gap.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import gaps as gapmod
from . import verdict
from .endpoints import Endpoint
from .model import Grid, Matrix, Run, value_at
from .verdict import FAIL, INSUFFICIENT, NOT_APPLICABLE, PASS, PASS_WITH_GAPS

__all__ = ["FAIL", "INSUFFICIENT", "NOT_APPLICABLE", "PASS", "PASS_WITH_GAPS"]

#: Labels of ``certscope_cert_info`` that describe the certificate rather than its slot.
INFO_LABELS = (
    "serial",
    "fingerprint_sha256",
    "subject",
    "issuer",
    "sans",
    "key_algorithm",
    "key_bits",
    "key_curve",
    "public_key_sha256",
    "signature_algorithm",
    "signature_hash",
    "is_ca",
    "self_signed",
)
#: A renewal keeps these (docs/metrics.md: a slot, plus the subject; the issuer may change).
SLOT_LABELS = ("source_kind", "source", "location", "chain_position", "subject_cn")
#: Labels that identify a finding rather than the location it is about.
FINDING_LABELS = ("rule", "severity", "control", "exception_owner")
#: Labels of an ALERTS series that are not the alert's own labels.
ALERT_META = ("__name__", "alertname", "alertstate")

# Gap kinds (stable strings: they appear in coverage.csv and summary.json).
NO_DATA = "no_data"  # no scrape of the exporter job recorded at all
EXPORTER_DOWN = "exporter_down"  # scrapes recorded, none succeeded (up == 0)
NOT_MONITORED = "not_monitored"  # the target's series were not reported
PROBE_STALLED = "probe_stalled"  # the last probe is older than --probe-stale-after
PROBE_FAILING = "probe_failing"  # probes ran and failed
SOURCE_FAILING = "source_failing"  # the store could not be read

COVERED = 255  # state code of a covered step; others index _KINDS
_EXPORTER_KINDS = {0: NO_DATA, 1: EXPORTER_DOWN}
_TARGET_KINDS = {0: NOT_MONITORED, 1: PROBE_STALLED, 2: PROBE_FAILING, 3: SOURCE_FAILING}

#: The SOC 2 common criteria the report covers, with what certscope evidences for each.
CONTROL_TITLES = {
    "CC6.1": "Logical access security over cryptographic keys and certificates",
    "CC6.6": "Protection of endpoints reachable across the system boundary",
    "CC6.7": "Protection of information in transmission",
    "CC7.1": "Detection of configuration changes and drift",
    "CC7.2": "Monitoring of system components",
}
#: Policy rules per control and check (docs/policy.md). A finding's own ``control`` label
#: decides its control; rules not listed here land in that control's "other rules" check.
RULE_CHECKS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "key_signature_lifetime": (
        "CC6.1",
        "Keys, signature hashes and lifetimes meet the policy",
        (
            "key_too_small",
            "signature_hash_forbidden",
            "cert_lifetime_too_long",
            "private_key_mismatch",
        ),
    ),
    "endpoint_trust": (
        "CC6.6",
        "Endpoints present chains that build to a trusted root and match their names",
        ("hostname_mismatch", "chain_untrusted"),
    ),
    "certificate_validity": (
        "CC6.7",
        "No expired or not-yet-valid certificate in use",
        ("cert_expired", "cert_not_yet_valid"),
    ),
    "protocols_and_ciphers": (
        "CC6.7",
        "Endpoints accept no deprecated protocol and no disallowed cipher suite",
        ("protocol_deprecated", "cipher_insecure", "cipher_weak", "cipher_not_allowed"),
    ),
    "served_matches_stored": (
        "CC7.1",
        "Endpoints serve the newest certificate held in their store",
        ("served_not_stored",),
    ),
    "policy_exceptions": (
        "CC7.1",
        "Policy exceptions are owned and current; none lapsed unnoticed",
        ("exception_expired",),
    ),
}


@dataclass(frozen=True)
class Params:
    """How the data was fetched: what the analysis needs to turn steps into times."""

    grid: Grid
    window: float  # look-back of exporter series evaluations
    alert_window: float  # look-back of ALERTS evaluations
    scrape_interval: float
    stale_after: float
    job_regex: str
    min_observed: float = verdict.MIN_OBSERVED
    insufficient_below: float = verdict.INSUFFICIENT_BELOW


@dataclass(frozen=True)
class ScrapeData:
    """What the gap detection fetched (:mod:`.gaps`): counts per window and raw drill-downs."""

    successes: Matrix = field(default_factory=Matrix)
    counts: Matrix = field(default_factory=Matrix)
    raw: Mapping[tuple[str, str], Sequence[tuple[float, float]]] = field(default_factory=dict)
    drilled: frozenset[int] = frozenset()
    #: parts of the period a query could not fetch after its retries: (name, start, end)
    failed: tuple[tuple[str, float, float], ...] = ()


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """An interval without evidence: no successful scrape, or a target not probed."""

    scope: str  # "exporter" or "target"
    subject: Mapping[str, str]  # job/instance, or source_kind/source/location
    kind: str  # NO_DATA, EXPORTER_DOWN, … ("a+b" when kinds follow each other)
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class Coverage:
    """Coverage of the exporter job, one of its instances, or a target or store.

    One definition everywhere: ``1 - seconds inside a gap / judged seconds``. The job and its
    instances are judged over the whole requested period; a target from its first to its last
    appearance (widened over exporter gaps at the edges).
    """

    scope: str  # "exporter" or "target"
    subject: Mapping[str, str]
    judged_from: float
    judged_to: float
    first_seen: float | None
    last_seen: float | None
    gaps: tuple[Gap, ...]

    @property
    def seconds(self) -> float:
        return max(0.0, self.judged_to - self.judged_from)

    @property
    def gap_seconds(self) -> float:
        return sum(g.seconds for g in self.gaps)

    @property
    def ratio(self) -> float:
        return max(0.0, 1.0 - self.gap_seconds / self.seconds) if self.seconds else 0.0

    @property
    def observed(self) -> bool:
        return self.first_seen is not None


@dataclass(frozen=True)
class Certificate:
    """One certificate seen in one slot (a distinct ``certscope_cert_info`` series)."""

    labels: Mapping[str, str]  # slot and configured labels
    facts: Mapping[str, str]  # INFO_LABELS values
    not_before: float | None
    not_after: float | None
    runs: tuple[Run, ...]
    first_seen: float
    last_seen: float
    present_at_start: bool
    present_at_end: bool

    @property
    def slot(self) -> tuple[str, ...]:
        return tuple(self.labels.get(name, "") for name in SLOT_LABELS)

    @property
    def first_step(self) -> int:
        return self.runs[0].first

    def present(self, k: int) -> bool:
        return value_at(list(self.runs), k) is not None


@dataclass(frozen=True)
class Renewal:
    """A slot whose certificate was replaced during the period."""

    kind: str  # "renewal" (notAfter increased), "replacement" (decreased), "reissue" (same)
    at: float  # when the new certificate was first seen
    old: Certificate
    new: Certificate
    days_before_expiry: float | None  # old notAfter - at, in days (negative: after expiry)
    key_changed: str  # "yes", "no" or "unknown"
    key_basis: str  # why

    @property
    def slot(self) -> Mapping[str, str]:
        return {name: self.new.labels.get(name, "") for name in SLOT_LABELS}


@dataclass(frozen=True)
class AlertEpisode:
    """One firing of one alert series."""

    name: str
    labels: Mapping[str, str]  # the alert's labels without alertname/alertstate
    fired_at: float
    resolved_at: float | None  # None: still firing at the end of the period
    fired_before_start: bool
    end_of_period: float
    #: "fired", "before_period" or "interrupted" (first seen right after a monitoring gap)
    start_state: str = "fired"
    #: "resolved", "still_firing" or "interrupted" (last seen right before a monitoring gap)
    end_state: str = "resolved"
    #: monitoring gaps inside the episode (the alert was seen on both sides of them)
    gaps_inside: int = 0

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def control(self) -> str:
        return self.labels.get("soc2_control", "")

    @property
    def seconds(self) -> float:
        end = self.resolved_at if self.resolved_at is not None else self.end_of_period
        return max(0.0, end - self.fired_at)


@dataclass(frozen=True)
class Finding:
    """One policy finding series over the period (active or waived)."""

    rule: str
    severity: str
    control: str
    status: str  # "violation" or "waived"
    labels: Mapping[str, str]  # identity and configured labels
    exception_owner: str
    first_seen: float
    last_seen: float
    active_at_end: bool
    episodes: int
    seconds: float


@dataclass(frozen=True)
class PolicyException:
    """A configured policy exception seen during the period."""

    target: str
    location: str
    rule: str
    owner: str
    expires: float
    first_seen: float
    last_seen: float
    status: str  # "open" (live at the end), "expired", "removed" (gone from the config)


@dataclass(frozen=True)
class Check:
    """One thing verified for a control, with its result over the period."""

    id: str
    title: str
    result: str
    detail: str
    counts: Mapping[str, int | float]


@dataclass(frozen=True)
class ControlResult:
    control: str
    title: str
    result: str
    observed_ratio: float  # share of the period with a verdict and no monitoring gap
    checks: tuple[Check, ...]
    detail: str = ""


@dataclass(frozen=True)
class Timeline:
    """Per-step counts for the charts (arrays of ``grid.count`` values)."""

    exporter: bytes  # COVERED, or the gap kind code
    targets_ok: array[int]
    targets_total: array[int]
    certificates: array[int]
    findings: Mapping[str, array[int]]  # control → active findings per step
    alerts: array[int]


@dataclass(frozen=True)
class Evidence:
    params: Params
    exporter: tuple[Coverage, ...]  # the aggregate first, then one per instance
    targets: tuple[Coverage, ...]
    certificates: tuple[Certificate, ...]
    renewals: tuple[Renewal, ...]
    alerts: tuple[AlertEpisode, ...]
    findings: tuple[Finding, ...]
    exceptions: tuple[PolicyException, ...]
    controls: tuple[ControlResult, ...]
    timeline: Timeline
    notes: tuple[str, ...] = field(default=())
    endpoints: tuple[Endpoint, ...] = field(default=())

    @property
    def gaps(self) -> list[Gap]:
        """Every monitoring gap: the exporter job's, then each target's."""
        out = list(self.exporter[0].gaps) if self.exporter else []
        for cov in self.targets:
            out.extend(cov.gaps)
        return out


# --- helpers ------------------------------------------------------------------------------------


def _present_span(p: Params, first: int, last: int, window: float) -> tuple[float, float]:
    """Start and end of something present at steps ``first … last`` (see module docstring)."""
    g = p.grid
    start = g.start if first == 0 else g.time(first)
    end = g.end if last == g.count - 1 else g.time(last) - window + g.step
    return start, max(start, end)


def _gap_span(p: Params, first: int, last: int) -> tuple[float, float]:
    g = p.grid
    start = max(g.start, g.time(first) - p.window)
    return start, g.time(last)


def _fill(states: bytearray, runs: Iterable[Run], code: int) -> None:
    for r in runs:
        states[r.first : r.last + 1] = bytes([code]) * r.length


_NOT_COVERED = re.compile(rb"[^\xff]+")  # runs of steps whose state is not COVERED (255)


def _state_gaps(
    p: Params,
    states: bytearray | bytes,
    lo: int,
    hi: int,
    kinds: Mapping[int, str],
    scope: str,
    subject: Mapping[str, str],
) -> tuple[Gap, ...]:
    """Runs of non-covered steps in ``lo … hi`` as gaps (kinds joined by ``+``, in order)."""
    out = []
    for m in _NOT_COVERED.finditer(states, lo, hi + 1):
        run = m.group()
        codes = sorted(set(run), key=run.index)
        start, end = _gap_span(p, m.start(), m.end() - 1)
        out.append(Gap(scope, dict(subject), "+".join(kinds[c] for c in codes), start, end))
    return tuple(out)


def _lifetime(runs: Iterable[Run]) -> tuple[int, int] | None:
    firsts = [r.first for r in runs]
    if not firsts:
        return None
    return min(firsts), max(r.last for r in runs)


def _pick(labels: Mapping[str, str], names: Sequence[str]) -> dict[str, str]:
    return {n: labels.get(n, "") for n in names}


def _without(labels: Mapping[str, str], names: Sequence[str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k not in names}


# --- coverage -------------------------------------------------------------------------------


def exporter_states(p: Params, up: Matrix) -> bytes:
    """Per step: COVERED when any instance of the job was scraped, else the gap kind code."""
    states = bytearray(p.grid.count)  # 0: no scrape recorded
    for _, runs in up.items():
        _fill(states, (r for r in runs if r.value < 1), 1)
    for _, runs in up.items():
        _fill(states, (r for r in runs if r.value >= 1), COVERED)
    return bytes(states)


def _to_gap(iv: gapmod.Interval, scope: str, subject: Mapping[str, str]) -> Gap:
    return Gap(scope, dict(subject), iv.kind, iv.start, iv.end)


def _to_interval(g: Gap) -> gapmod.Interval:
    return gapmod.Interval(g.start, g.end, frozenset(g.kind.split("+")))


def exporter_coverage(p: Params, scrapes: ScrapeData) -> tuple[Coverage, ...]:
    """The job as a whole (monitored while any instance is), then each instance.

    Gaps come from :mod:`.gaps` (raw scrapes counted per window, drilled down where short),
    so they do not depend on the step. Parts of the period a query could not fetch are gaps
    of kind ``query_failed``: the data is missing, so the time is not monitored.
    """
    g = p.grid
    per_instance: list[Coverage] = []
    instance_gaps: list[list[gapmod.Interval]] = []
    counts = {gapmod.instance_of(labels): runs for labels, runs in scrapes.counts.items()}
    for labels, runs in sorted(scrapes.successes.items(), key=lambda i: sorted(i[0].items())):
        key = gapmod.instance_of(labels)
        ivs = gapmod.instance_gaps(
            g,
            p.scrape_interval,
            runs,
            counts.get(key, []),
            scrapes.raw.get(key, ()),
            set(scrapes.drilled),
        )
        instance_gaps.append(ivs)
        subject = {"job": key[0], "instance": key[1]}
        seen = _seen(g, ivs)
        per_instance.append(
            Coverage(
                "exporter",
                subject,
                g.start,
                g.end,
                *seen,
                tuple(_to_gap(iv, "exporter", subject) for iv in ivs),
            )
        )
    failed = [gapmod.Interval(a, b, frozenset({gapmod.QUERY_FAILED})) for _, a, b in scrapes.failed]
    job_ivs = gapmod.union(
        gapmod.clip([*gapmod.intersect(instance_gaps, g), *failed], g.start, g.end)
    )
    job_subject = {"job": p.job_regex, "instance": "*"}
    job = Coverage(
        "exporter",
        job_subject,
        g.start,
        g.end,
        *(_seen(g, job_ivs) if per_instance else (None, None)),
        tuple(_to_gap(iv, "exporter", job_subject) for iv in job_ivs),
    )
    return (job, *per_instance)


def _seen(g: Grid, ivs: Sequence[gapmod.Interval]) -> tuple[float | None, float | None]:
    """First and last monitored moment of the period, None when it was never monitored."""
    first, last = g.start, g.end
    ivs = sorted(ivs, key=lambda iv: iv.start)
    if ivs and ivs[0].start <= g.start:
        first = ivs[0].end
    if ivs and ivs[-1].end >= g.end:
        last = ivs[-1].start
    if first >= last and ivs:
        return None, None
    return first, last


def target_coverage(
    p: Params,
    job_states: bytes,
    probe: Matrix,
    stale: Matrix,
    sources: Matrix,
    job_gaps: Sequence[Gap] = (),
) -> tuple[tuple[Coverage, ...], array[int], array[int]]:
    """Each TLS target (probes) and each store (refreshes): steps with fresh, good data.

    Also returns, per step, how many targets were covered and how many were accounted for
    (for the coverage chart).
    """
    g = p.grid
    targets: dict[tuple[str, str, str], bytearray] = {}
    present: dict[tuple[str, str, str], list[Run]] = {}

    def states_for(key: tuple[str, str, str]) -> bytearray:
        if key not in targets:
            targets[key] = bytearray(g.count)  # 0: not monitored
            present[key] = []
        return targets[key]

    def target_key(labels: Mapping[str, str]) -> tuple[str, str, str]:
        return (labels.get("source_kind", ""), labels.get("source", ""), labels.get("location", ""))

    for labels, runs in probe.items():
        states = states_for(target_key(labels))
        _fill(states, (r for r in runs if r.value < 1), 2)
        _fill(states, (r for r in runs if r.value >= 1), COVERED)
        present[target_key(labels)].extend(runs)
    for labels, runs in stale.items():  # after probe_success: a stale probe is not covered
        states = states_for(target_key(labels))
        _fill(states, runs, 1)
        present[target_key(labels)].extend(runs)
    for labels, runs in sources.items():
        key = (labels.get("source_kind", ""), labels.get("source", ""), "")
        states = states_for(key)
        _fill(states, (r for r in runs if r.value < 1), 3)
        _fill(states, (r for r in runs if r.value >= 1), COVERED)
        present[key].extend(runs)

    ok_diff = array("i", bytes(4 * (g.count + 1)))
    total_diff = array("i", bytes(4 * (g.count + 1)))
    out = []
    for key in sorted(targets):
        states = targets[key]
        life = _lifetime(present[key])
        if life is None:
            continue
        seen_lo, seen_hi = life
        lo, hi = life
        # A target missing at the edges of the period while the exporter itself was not
        # scraped was not "added" or "removed": it was not monitored.
        while lo > 0 and job_states[lo - 1] != COVERED:
            lo -= 1
        while hi < g.count - 1 and job_states[hi + 1] != COVERED:
            hi += 1
        subject = dict(zip(("source_kind", "source", "location"), key, strict=True))
        first_seen, last_seen = _present_span(p, seen_lo, seen_hi, p.window)
        judged = (g.start if lo == 0 else g.time(lo) - g.step, g.time(hi))
        # the exporter's own gaps (found at any scale) leave the target unmonitored too
        own = [_to_interval(x) for x in _state_gaps(p, states, lo, hi, _TARGET_KINDS, "", {})]
        exporter = [gapmod.Interval(x.start, x.end, frozenset({NOT_MONITORED})) for x in job_gaps]
        merged = gapmod.union(gapmod.clip([*own, *exporter], *judged))
        out.append(
            Coverage(
                "target",
                subject,
                *judged,
                first_seen,
                last_seen,
                tuple(_to_gap(iv, "target", subject) for iv in merged),
            )
        )
        total_diff[lo] += 1
        total_diff[hi + 1] -= 1
        k = lo
        while k <= hi:  # add the covered stretches
            start = states.find(bytes([COVERED]), k, hi + 1)
            if start < 0:
                break
            end = start
            while end + 1 <= hi and states[end + 1] == COVERED:
                end += 1
            ok_diff[start] += 1
            ok_diff[end + 1] -= 1
            k = end + 1
    return tuple(out), _prefix(ok_diff, g.count), _prefix(total_diff, g.count)


def _prefix(diff: array[int], n: int) -> array[int]:
    out = array("i", bytes(4 * n))
    running = 0
    for k in range(n):
        running += diff[k]
        out[k] = running
    return out


def _count_runs(n: int, series: Iterable[list[Run]]) -> array[int]:
    """Per step: how many of the series are present."""
    diff = array("i", bytes(4 * (n + 1)))
    for runs in series:
        for r in runs:
            diff[r.first] += 1
            diff[r.last + 1] -= 1
    return _prefix(diff, n)


# --- certificates ---------------------------------------------------------------------------


def inventory(
    p: Params, info: Matrix, not_after: Matrix, not_before: Matrix
) -> tuple[Certificate, ...]:
    """Every certificate seen, with its validity from the notAfter/notBefore series."""
    g = p.grid
    after_by_slot = {tuple(sorted(labels.items())): runs for labels, runs in not_after.items()}
    before_by_slot = {tuple(sorted(labels.items())): runs for labels, runs in not_before.items()}
    out = []
    for labels, runs in info.items():
        if not runs:
            continue
        slot_labels = _without(labels, INFO_LABELS)
        key = tuple(sorted(slot_labels.items()))
        lo, hi = runs[0].first, runs[-1].last
        first_seen, last_seen = _present_span(p, lo, hi, p.window)
        out.append(
            Certificate(
                labels=slot_labels,
                facts=_pick(labels, INFO_LABELS),
                not_before=_value_during(before_by_slot.get(key), runs),
                not_after=_value_during(after_by_slot.get(key), runs),
                runs=tuple(runs),
                first_seen=first_seen,
                last_seen=last_seen,
                present_at_start=lo == 0,
                present_at_end=hi == g.count - 1,
            )
        )
    out.sort(key=lambda c: (c.slot, c.first_step))
    return tuple(out)


def _value_during(series: list[Run] | None, presence: Sequence[Run]) -> float | None:
    """The value of a slot series when a certificate appeared (its first present step).

    The first step, not the last: with overlapping windows the old certificate's info series
    lingers a window after a renewal, when the slot's notAfter already shows the new value.
    """
    if not series:
        return None
    for r in presence:
        for k in (r.first, r.last):
            v = value_at(series, k)
            if v is not None:
                return v
        for s in series:  # any value while present
            if s.first <= r.last and s.last >= r.first:
                return s.value
    return None


def renewals(certs: Sequence[Certificate]) -> tuple[Renewal, ...]:
    """Slots whose certificate changed during the period (same slot labels, new serial)."""
    by_slot: dict[tuple[str, ...], list[Certificate]] = {}
    for c in certs:
        by_slot.setdefault(c.slot, []).append(c)
    out = []
    for slot_certs in by_slot.values():
        slot_certs.sort(key=lambda c: c.first_step)
        for i, new in enumerate(slot_certs):
            if new.present_at_start or i == 0:
                continue
            k = new.first_step - 1
            before = [c for c in slot_certs[:i] if c.first_step <= k]
            current = [c for c in before if c.present(k)]
            old = (current or before)[-1] if (current or before) else None
            if old is None or old.facts.get("fingerprint_sha256") == new.facts.get(
                "fingerprint_sha256"
            ):
                continue
            out.append(_renewal(old, new))
    out.sort(key=lambda r: r.at)
    return tuple(out)


def _renewal(old: Certificate, new: Certificate) -> Renewal:
    at = new.first_seen
    if old.not_after is None or new.not_after is None or new.not_after > old.not_after:
        kind = "renewal"
    elif new.not_after < old.not_after:
        kind = "replacement"
    else:
        kind = "reissue"
    days = (old.not_after - at) / 86400 if old.not_after is not None else None
    key_old = tuple(old.facts.get(n, "") for n in ("key_algorithm", "key_bits", "key_curve"))
    key_new = tuple(new.facts.get(n, "") for n in ("key_algorithm", "key_bits", "key_curve"))
    spki_old, spki_new = (
        old.facts.get("public_key_sha256", ""),
        new.facts.get("public_key_sha256", ""),
    )
    if spki_old and spki_new:
        # The SHA-256 of each certificate's SubjectPublicKeyInfo settles it either way.
        changed = "yes" if spki_old != spki_new else "no"
        basis = (
            f"public key {'changed' if changed == 'yes' else 'reused'}: "
            f"{spki_old[:16]}… → {spki_new[:16]}… (certscope_cert_info public_key_sha256)"
        )
    elif key_old != key_new:
        changed = "yes"
        basis = (
            f"key type differs: {_key_text(key_old)} → {_key_text(key_new)} "
            "(certscope_cert_info key_algorithm/key_bits/key_curve)"
        )
    else:
        changed = "unknown"
        basis = (
            f"same key type ({_key_text(key_new)}); certscope exports no public-key "
            "fingerprint (docs/metrics.md), so a new key of the same type cannot be told "
            "from a reused one"
        )
    return Renewal(kind, at, old, new, days, changed, basis)


def _key_text(key: tuple[str, ...]) -> str:
    return " ".join(part for part in key if part) or "unknown"


# --- alerts, findings, exceptions -------------------------------------------------------------


def _near_gap(t: float, gaps: Sequence[Gap], before: float, after: float) -> bool:
    """Whether ``t`` lies in a gap widened by ``before`` / ``after`` seconds."""
    return any(g.start - before <= t <= g.end + after for g in gaps)


def alert_episodes(
    p: Params, alerts: Matrix, job_gaps: Sequence[Gap] = ()
) -> tuple[AlertEpisode, ...]:
    """Firing episodes; an end or start at a monitoring gap is ``interrupted``, not resolved.

    When Prometheus (or the exporter) was not running, ``ALERTS`` has no sample: the alert
    looks resolved and fired again. Two runs of the same alert separated only by a gap are one
    episode that spans the gap (``gaps_inside``); a run that ends into a gap, or starts out of
    one, has that end marked ``interrupted``.
    """
    g = p.grid
    slack = p.alert_window + g.step
    out = []
    for labels, runs in alerts.items():
        name = labels.get("alertname", "")
        own = _without(labels, ALERT_META)
        spans = []
        for r in runs:
            start, end = _present_span(p, r.first, r.last, p.alert_window)
            spans.append([start, end, r.first == 0, r.last == g.count - 1, 0])
        merged: list[list[Any]] = []
        for span in spans:
            if merged:
                prev = merged[-1]
                ends_in_gap = _near_gap(prev[1], job_gaps, slack, slack)
                starts_in_gap = _near_gap(span[0], job_gaps, slack, slack)
                if ends_in_gap and starts_in_gap:
                    prev[1], prev[3], prev[4] = span[1], span[3], prev[4] + 1
                    continue
            merged.append(span)
        for start, end, before, still, inside in merged:
            if before:
                start_state = "before_period"
            elif _near_gap(start, job_gaps, slack, slack):
                start_state = "interrupted"
            else:
                start_state = "fired"
            if still:
                end_state = "still_firing"
            elif _near_gap(end, job_gaps, slack, slack):
                end_state = "interrupted"
            else:
                end_state = "resolved"
            out.append(
                AlertEpisode(
                    name=name,
                    labels=own,
                    fired_at=start,
                    resolved_at=None if still else end,
                    fired_before_start=before,
                    end_of_period=g.end,
                    start_state=start_state,
                    end_state=end_state,
                    gaps_inside=inside,
                )
            )
    out.sort(key=lambda a: (a.fired_at, a.name, sorted(a.labels.items())))
    return tuple(out)


def findings(p: Params, violations: Matrix, waived: Matrix) -> tuple[Finding, ...]:
    g = p.grid
    out = []
    for status, matrix in (("violation", violations), ("waived", waived)):
        for labels, runs in matrix.items():
            if not runs:
                continue
            first_seen, _ = _present_span(p, runs[0].first, runs[0].last, p.window)
            _, last_seen = _present_span(p, runs[-1].first, runs[-1].last, p.window)
            seconds = 0.0
            for r in runs:
                a, b = _present_span(p, r.first, r.last, p.window)
                seconds += b - a
            out.append(
                Finding(
                    rule=labels.get("rule", ""),
                    severity=labels.get("severity", ""),
                    control=labels.get("control", ""),
                    status=status,
                    labels=_without(labels, FINDING_LABELS),
                    exception_owner=labels.get("exception_owner", ""),
                    first_seen=first_seen,
                    last_seen=last_seen,
                    active_at_end=runs[-1].last == g.count - 1,
                    episodes=len(runs),
                    seconds=seconds,
                )
            )
    out.sort(key=lambda f: (f.control, f.rule, f.status, sorted(f.labels.items())))
    return tuple(out)


def exceptions(p: Params, expiry: Matrix) -> tuple[PolicyException, ...]:
    g = p.grid
    out = []
    for labels, runs in expiry.items():
        if not runs:
            continue
        first_seen, last_seen = _present_span(p, runs[0].first, runs[-1].last, p.window)
        expires = runs[-1].value
        at_end = runs[-1].last == g.count - 1
        if expires <= g.end:
            status = "expired"
        elif at_end:
            status = "open"
        else:
            status = "removed"
        out.append(
            PolicyException(
                target=labels.get("target", ""),
                location=labels.get("location", ""),
                rule=labels.get("rule", ""),
                # docs/metrics.md names the label exception_owner; exporters up to 0.1.0
                # export it as owner.
                owner=labels.get("exception_owner") or labels.get("owner", ""),
                expires=expires,
                first_seen=first_seen,
                last_seen=last_seen,
                status=status,
            )
        )
    out.sort(key=lambda e: (e.status != "open", e.expires, e.target, e.rule))
    return tuple(out)


# --- controls -----------------------------------------------------------------------------------


def _steps_present(count: int, matrices: Iterable[Matrix]) -> bytearray:
    marks = bytearray(count)
    for m in matrices:
        for _, runs in m.items():
            _fill(marks, runs, 1)
    return marks


def _rule_check(
    check_id: str,
    rules: Sequence[str],
    title: str,
    control_findings: Sequence[Finding],
    has_data: bool,
    no_data: str,
    extra_counts: Mapping[str, int | float] | None = None,
) -> Check:
    mine = [f for f in control_findings if f.rule in rules]
    violations = [f for f in mine if f.status == "violation"]
    waived = [f for f in mine if f.status == "waived"]
    counts: dict[str, int | float] = {
        "violations": len(violations),
        "violation_locations": len({tuple(sorted(f.labels.items())) for f in violations}),
        "waived": len(waived),
        **(extra_counts or {}),
    }
    rule_list = ", ".join(rules)
    if violations:
        names = sorted({f.rule for f in violations})
        detail = (
            f"{len(violations)} finding(s) of {', '.join(names)} during the period "
            f"(rules checked: {rule_list})"
        )
        return Check(check_id, title, FAIL, detail, counts)
    if not has_data:
        return Check(check_id, title, INSUFFICIENT, no_data, counts)
    detail = f"no active finding of {rule_list}"
    if waived:
        detail += f"; {len(waived)} finding(s) waived by a policy exception"
    return Check(check_id, title, PASS, detail, counts)


def controls(
    p: Params,
    data: Mapping[str, Matrix],
    exporter: Sequence[Coverage],
    targets: Sequence[Coverage],
    certs: Sequence[Certificate],
    renewal_list: Sequence[Renewal],
    alerts: Sequence[AlertEpisode],
    finding_list: Sequence[Finding],
    exception_list: Sequence[PolicyException],
) -> tuple[ControlResult, ...]:
    n = p.grid.count
    cert_steps = _steps_present(n, [data["cert_info"]])
    cert_ratio = cert_steps.count(1) / n
    verified_steps = _steps_present(n, [data["verified_endpoints"]])
    enumerated = _steps_present(n, [data["enumerated_endpoints"]]).count(1)
    served = _steps_present(n, [data["served_stored_endpoints"]]).count(1)
    job = exporter[0]
    exporter_ratio = job.ratio
    has_certs = bool(certs)
    tls_targets = [t for t in targets if t.subject.get("source_kind") == "tls"]
    has_tls = bool(tls_targets) or verified_steps.count(1) > 0
    no_certs = "no certificate series (certscope_cert_info) in the period: nothing was inventoried"

    def alerts_named(*names: str) -> list[AlertEpisode]:
        return [a for a in alerts if a.name in names]

    by_control: dict[str, list[Finding]] = {}
    for f in finding_list:
        by_control.setdefault(f.control, []).append(f)
    checks: dict[str, list[Check]] = {c: [] for c in CONTROL_TITLES}

    # CC6.1 ------------------------------------------------------------------------------
    slots = {c.slot[:4] for c in certs}
    checks["CC6.1"].append(
        Check(
            "certificates_inventoried",
            "Certificates at every monitored location are inventoried",
            PASS if has_certs else INSUFFICIENT,
            (
                f"{len(certs)} certificate(s) in {len(slots)} slot(s) seen "
                f"during {cert_ratio:.1%} of the period"
                if has_certs
                else no_certs
            ),
            {"certificates": len(certs), "slots": len(slots)},
        )
    )
    stalled = alerts_named("CertscopeCertificateRenewalStalled")
    expiring = alerts_named("CertscopeCertificateExpiring")
    renewed = [r for r in renewal_list if r.kind == "renewal"]
    renewal_counts = {
        "renewals": len(renewed),
        "expiring_alerts": len(expiring),
        "renewal_stalled_alerts": len(stalled),
    }
    if stalled:
        result, detail = FAIL, f"{len(stalled)} stalled automated renewal(s) alerted"
    elif has_certs:
        result = PASS
        detail = (
            f"{len(renewed)} renewal(s); {len(expiring)} expiry-window alert(s); "
            "no automated renewal stalled"
        )
    else:
        result, detail = INSUFFICIENT, no_certs
    checks["CC6.1"].append(
        Check(
            "renewal_before_expiry",
            "Certificates are renewed before they expire; automated renewal does not stall",
            result,
            detail,
            renewal_counts,
        )
    )

    # Rule checks of CC6.1, CC6.6, CC6.7, CC7.1 ------------------------------------------
    for check_id, (control, title, rules) in RULE_CHECKS.items():
        cf = by_control.get(control, [])
        if check_id == "endpoint_trust":
            has = verified_steps.count(1) > 0
            why = (
                "no TLS endpoint was verified in the period (certscope_cert_verified absent)"
                if not has_tls
                else "TLS targets were probed but no verification result "
                "(certscope_cert_verified) was reported"
            )
        elif check_id == "protocols_and_ciphers":
            if not has_tls and not any(f.rule in rules for f in cf):
                checks[control].append(
                    Check(check_id, title, NOT_APPLICABLE, "no TLS endpoint in the period", {})
                )
                continue
            has = enumerated > 0
            why = (
                "no protocol/cipher enumeration in the period "
                "(certscope_tls_protocol_supported absent: enumeration disabled or never run)"
            )
        elif check_id == "served_matches_stored":
            if served == 0 and not any(f.rule in rules for f in cf):
                checks[control].append(
                    Check(
                        check_id,
                        title,
                        NOT_APPLICABLE,
                        "no endpoint was matched with a stored certificate",
                        {},
                    )
                )
                continue
            has, why = True, ""
        elif check_id == "policy_exceptions":
            lapsed = alerts_named("CertscopePolicyExceptionExpired")
            open_ = [e for e in exception_list if e.status == "open"]
            extra = {
                "open_exceptions": len(open_),
                "expired_exceptions": len([e for e in exception_list if e.status == "expired"]),
                "exception_expired_alerts": len(lapsed),
            }
            check = _rule_check(
                check_id,
                rules,
                title,
                cf,
                job.observed,
                "the exporter was never scraped in the period",
                extra,
            )
            if check.result == PASS and lapsed:
                check = Check(
                    check_id,
                    title,
                    FAIL,
                    f"{len(lapsed)} policy exception(s) lapsed (CertscopePolicyExceptionExpired)",
                    extra,
                )
            elif check.result == PASS:
                check = Check(
                    check_id,
                    title,
                    PASS,
                    check.detail + f"; {len(open_)} exception(s) open at the end of the period",
                    extra,
                )
            checks[control].append(check)
            continue
        else:
            has, why = has_certs, no_certs
        checks[control].append(_rule_check(check_id, rules, title, cf, has, why))

    known = {r for _, _, rules in RULE_CHECKS.values() for r in rules}
    for control, cf in sorted(by_control.items()):
        other = [f for f in cf if f.rule not in known]
        if other:
            rules = tuple(sorted({f.rule for f in other}))
            checks.setdefault(control, []).append(
                _rule_check(
                    "other_policy_rules", rules, "Other policy rules", other, True, "", None
                )
            )

    # CC7.2 --------------------------------------------------------------------------------
    gaps = job.gaps
    if not job.observed:
        result = INSUFFICIENT
        detail = f"no successful scrape of a job matching {p.job_regex!r} in the period"
    elif gaps:
        result = PASS_WITH_GAPS if job.ratio >= p.insufficient_below else INSUFFICIENT
        detail = (
            f"{len(gaps)} monitoring gap(s), {sum(g.seconds for g in gaps):.0f} s in total; "
            f"the exporter was monitored during {job.ratio:.2%} of the period"
        )
    else:
        result = PASS
        detail = "the exporter was scraped throughout the period"
    checks["CC7.2"].append(
        Check(
            "exporter_scraped",
            "Prometheus scraped the certscope exporter throughout the period (up)",
            result,
            detail,
            {
                "instances": len(exporter) - 1,
                "gaps": len(gaps),
                "gap_seconds": round(sum(g.seconds for g in gaps), 3),
                "coverage_ratio": round(job.ratio, 6),
            },
        )
    )
    target_gaps = [g for t in targets for g in t.gaps]
    monitoring_alerts = [a for a in alerts if a.control == "CC7.2"]
    if not targets:
        result = INSUFFICIENT
        detail = "no probe or store refresh was reported in the period"
    elif target_gaps:
        kinds = sorted({k for g in target_gaps for k in g.kind.split("+")})
        # a probe or store that ran and failed is a failure; time not monitored is a gap
        result = FAIL if set(kinds) - {NOT_MONITORED} else PASS_WITH_GAPS
        detail = (
            f"{len(target_gaps)} gap(s) across "
            f"{len({tuple(g.subject.items()) for g in target_gaps})} target(s): " + ", ".join(kinds)
        )
    else:
        result = PASS
        detail = f"all {len(targets)} target(s) and store(s) probed and read without a gap"
    checks["CC7.2"].append(
        Check(
            "targets_probed",
            "Every TLS target was probed and every store read, successfully and on time",
            result,
            detail,
            {
                "targets": len(targets),
                "gaps": len(target_gaps),
                "monitoring_alerts": len(monitoring_alerts),
            },
        )
    )

    out = []
    for control, cs in checks.items():
        runs = [r for _, rs in data.get(f"verdict:{control}", Matrix()).items() for r in rs]
        period = verdict.over_period(
            runs,
            n,
            exporter_ratio,
            [c.result for c in cs],
            p.min_observed,
            p.insufficient_below,
        )
        out.append(
            ControlResult(
                control,
                CONTROL_TITLES.get(control, "Other control"),
                period.result,
                round(period.observed_ratio, 6),
                tuple(cs),
                period.detail,
            )
        )
    return tuple(out)


# --- everything -----------------------------------------------------------------------------


def timeline(
    p: Params,
    job_states: bytes,
    targets_ok: array[int],
    targets_total: array[int],
    data: Mapping[str, Matrix],
) -> Timeline:
    n = p.grid.count
    by_control: dict[str, list[list[Run]]] = {}
    for labels, runs in data["violations"].items():
        by_control.setdefault(labels.get("control", "?"), []).append(runs)
    return Timeline(
        exporter=job_states,
        targets_ok=targets_ok,
        targets_total=targets_total,
        certificates=_count_runs(n, (runs for _, runs in data["cert_info"].items())),
        findings={c: _count_runs(n, series) for c, series in sorted(by_control.items())},
        alerts=_count_runs(n, (runs for _, runs in data["alerts"].items())),
    )


def analyse(p: Params, data: Mapping[str, Matrix], scrapes: ScrapeData | None = None) -> Evidence:
    """Everything the report shows, from the matrices of :func:`.query.plan`'s queries and
    the scrape counts of :mod:`.gaps`."""
    job_states = exporter_states(p, data["exporter_up"])
    exporter = exporter_coverage(p, scrapes or ScrapeData())
    targets, targets_ok, targets_total = target_coverage(
        p,
        job_states,
        data["probe_success"],
        data["probe_stale"],
        data["source_up"],
        exporter[0].gaps,
    )
    certs = inventory(p, data["cert_info"], data["cert_not_after"], data["cert_not_before"])
    renewal_list = renewals(certs)
    alert_list = alert_episodes(p, data["alerts"], exporter[0].gaps)
    finding_list = findings(p, data["violations"], data["waived"])
    exception_list = exceptions(p, data["exceptions"])
    control_list = controls(
        p,
        data,
        exporter,
        targets,
        certs,
        renewal_list,
        alert_list,
        finding_list,
        exception_list,
    )
    notes = []
    if not exporter[0].observed:
        notes.append(
            f"No scrape of a job matching {p.job_regex!r} was found in the period: check "
            "--job, and that this Prometheus keeps the raw certscope series and up for the "
            "whole period (see docs/evidence.md, Retention)."
        )
    return Evidence(
        params=p,
        exporter=exporter,
        targets=targets,
        certificates=certs,
        renewals=renewal_list,
        alerts=alert_list,
        findings=finding_list,
        exceptions=exception_list,
        controls=control_list,
        timeline=timeline(p, job_states, targets_ok, targets_total, data),
        notes=tuple(notes),
    )
