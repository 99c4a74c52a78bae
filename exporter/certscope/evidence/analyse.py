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
from typing import Any

from . import controls, credentials
from . import gaps as gapmod
from .facts import (
    _TARGET_KINDS,
    ALERT_META,
    COVERED,
    FINDING_LABELS,
    INFO_LABELS,
    NO_DATA,
    NOT_MONITORED,
    AlertEpisode,
    Certificate,
    Coverage,
    Evidence,
    FindingSeries,
    Gap,
    Params,
    Renewal,
    ScrapeData,
    Timeline,
    WaiverRecord,
)
from .model import Grid, Matrix, Run, value_at
from .verdict import FAIL, INSUFFICIENT, NOT_APPLICABLE, PASS, PASS_WITH_GAPS

__all__ = ["FAIL", "INSUFFICIENT", "NOT_APPLICABLE", "PASS", "PASS_WITH_GAPS"]

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
    targets, present = _target_states(g, probe, stale, sources)
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
        _add_covered(ok_diff, states, lo, hi)
    return tuple(out), _prefix(ok_diff, g.count), _prefix(total_diff, g.count)


TargetKey = tuple[str, str, str]  # source_kind, source, location ("" for a store)


def _target_states(
    g: Grid, probe: Matrix, stale: Matrix, sources: Matrix
) -> tuple[dict[TargetKey, bytearray], dict[TargetKey, list[Run]]]:
    """Per target and store: the state of each step, and the runs where it was reported."""
    targets: dict[TargetKey, bytearray] = {}
    present: dict[TargetKey, list[Run]] = {}

    def states_for(key: TargetKey, runs: list[Run]) -> bytearray:
        if key not in targets:
            targets[key] = bytearray(g.count)  # 0: not monitored
            present[key] = []
        present[key].extend(runs)
        return targets[key]

    def target_key(labels: Mapping[str, str]) -> TargetKey:
        return (labels.get("source_kind", ""), labels.get("source", ""), labels.get("location", ""))

    for labels, runs in probe.items():
        states = states_for(target_key(labels), runs)
        _fill(states, (r for r in runs if r.value < 1), 2)
        _fill(states, (r for r in runs if r.value >= 1), COVERED)
    for labels, runs in stale.items():  # after probe_success: a stale probe is not covered
        _fill(states_for(target_key(labels), runs), runs, 1)
    for labels, runs in sources.items():
        key = (labels.get("source_kind", ""), labels.get("source", ""), "")
        states = states_for(key, runs)
        _fill(states, (r for r in runs if r.value < 1), 3)
        _fill(states, (r for r in runs if r.value >= 1), COVERED)
    return targets, present


def _add_covered(ok_diff: array[int], states: bytearray, lo: int, hi: int) -> None:
    """Count the covered stretches of ``lo … hi`` into the per-step difference array."""
    k = lo
    while k <= hi:
        start = states.find(bytes([COVERED]), k, hi + 1)
        if start < 0:
            break
        end = start
        while end + 1 <= hi and states[end + 1] == COVERED:
            end += 1
        ok_diff[start] += 1
        ok_diff[end + 1] -= 1
        k = end + 1


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


def _bridged(end: float, start: float, gaps: Sequence[Gap], slack: float) -> bool:
    """Whether the silence from ``end`` to ``start`` lies within one gap (widened by
    ``slack``): the series was not absent, it was not observed."""
    return any(x.start - slack <= end and start <= x.end + slack for x in gaps)


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
    # Prometheus kept evaluating rules while only the exporter was down: not an interruption
    job_gaps = [x for x in job_gaps if {NO_DATA, gapmod.QUERY_FAILED} & set(x.kind.split("+"))]
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


def findings(
    p: Params, violations: Matrix, waived: Matrix, job_gaps: Sequence[Gap] = ()
) -> tuple[FindingSeries, ...]:
    """Each finding series; its runs split only by a gap of the exporter job (any kind: the
    series is absent while the exporter is not scraped) are one episode, not two."""
    g = p.grid
    slack = p.window + g.step
    out = []
    for status, matrix in (("violation", violations), ("waived", waived)):
        for labels, runs in matrix.items():
            if not runs:
                continue
            first_seen, _ = _present_span(p, runs[0].first, runs[0].last, p.window)
            _, last_seen = _present_span(p, runs[-1].first, runs[-1].last, p.window)
            seconds = 0.0
            inside = 0
            previous_end: float | None = None
            for r in runs:
                a, b = _present_span(p, r.first, r.last, p.window)
                seconds += b - a
                if previous_end is not None and _bridged(previous_end, a, job_gaps, slack):
                    inside += 1
                previous_end = b
            out.append(
                FindingSeries(
                    rule=labels.get("rule", ""),
                    severity=labels.get("severity", ""),
                    control=labels.get("control", ""),
                    status=status,
                    labels=_without(labels, FINDING_LABELS),
                    exception_owner=labels.get("exception_owner", ""),
                    first_seen=first_seen,
                    last_seen=last_seen,
                    active_at_end=runs[-1].last == g.count - 1,
                    episodes=len(runs) - inside,
                    seconds=seconds,
                    gaps_inside=inside,
                )
            )
    out.sort(key=lambda f: (f.control, f.rule, f.status, sorted(f.labels.items())))
    return tuple(out)


def exceptions(p: Params, expiry: Matrix) -> tuple[WaiverRecord, ...]:
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
            WaiverRecord(
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
    finding_list = findings(p, data["violations"], data["waived"], exporter[0].gaps)
    exception_list = exceptions(p, data["exceptions"])
    control_list = controls.evaluate(
        controls.Context(
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
        credentials=credentials.build(p.grid, p.window, data),
    )
