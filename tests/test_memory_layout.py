"""What each TLS target holds at fleet scale: records without instance dicts, shared label
sets, verdicts and phase names, packed phase timings (issue #18, memory per target)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import UTC, datetime

import pytest

from certscope.collector import Exposition, render_once
from certscope.config import Target, TLSOptions, parse_config
from certscope.policy import Assessment, assess_endpoint
from certscope.posture import DHEGroup, PostureScan
from certscope.results import AssessedLocation, JobKey, JobKind, ProbeResult
from certscope.revocation import Revocation
from certscope.scheduler import Scheduler, _held, _Job
from certscope.snapshot import State
from certscope.tls.handshake import Negotiated, Outcome, Phases
from certscope.verify import Verdict
from helpers.clock import FakeClock, settle
from helpers.results import probe_result

_CONFIG = """
defaults: {interval: 1h, labels: {environment: production}}
targets:
  - {address: a.example:443, labels: {team: web}}
  - {address: b.example:443, labels: {team: web}}
  - {address: c.example:443, labels: {team: db}}
"""


def test_per_target_records_have_no_instance_dict() -> None:
    """Each of these exists once or more per target: slots, not a dict per instance."""
    target = parse_config(_CONFIG, "t").targets[0]
    records = (
        target,
        target.tls,
        Outcome(negotiated=Negotiated("TLSv1.3", "TLS_AES_128_GCM_SHA256")),
        Negotiated("TLSv1.3", "TLS_AES_128_GCM_SHA256"),
        Outcome().phases,
        PostureScan(protocols=()),
        DHEGroup("TLSv1.2", 0x009E, 2048, "ffdhe2048"),
        probe_result(),
        AssessedLocation("tls", "a", "a:443", (), Assessment(findings=())),
    )
    assert [type(r).__name__ for r in records if hasattr(r, "__dict__")] == []


def test_targets_share_equal_label_sets_and_make_their_address_once() -> None:
    a, b, c = parse_config(_CONFIG, "t").targets
    assert a.labels == b.labels and a.labels is b.labels
    assert c.labels != a.labels
    assert a.address == "a.example:443" and a.address is a.address
    moved = dataclasses.replace(a, port=8443)
    assert moved.address == "a.example:8443" and moved == dataclasses.replace(moved)
    assert Target("v6", "::1", 443, TLSOptions()).address == "[::1]:443"


def test_phase_timings_are_packed_and_give_back_their_pairs() -> None:
    pairs = (("resolve", 1e-05), ("connect", 0.000123456789), ("handshake", 0.1 + 0.2))
    first, second = Outcome(phases=pairs), Outcome(phases=tuple(reversed(pairs))[::-1])
    assert isinstance(first.phases, Phases)
    assert list(first.phases) == list(pairs)  # the same floats, bit for bit
    assert len(first.phases) == 3 and first == second
    assert isinstance(second.phases, Phases)
    assert first.phases.names is second.phases.names  # one tuple of names for every probe
    assert len(first.phases.seconds) == 8 * len(pairs)
    assert dataclasses.replace(first, error=None).phases == first.phases
    assert list(Outcome().phases) == []


def test_probe_results_share_equal_verdicts() -> None:
    results = [
        dataclasses.replace(probe_result(f"t{i}"), verdict=Verdict(True, True, True, ()))
        for i in range(3)
    ]
    assert results[0].verdict is results[1].verdict is results[2].verdict
    other = dataclasses.replace(results[0], verdict=Verdict(False, True, True, ()))
    assert other.verdict is not results[0].verdict


@pytest.mark.parametrize("seed", [1, 2])
def test_the_heap_holds_jobs_in_due_then_push_order(seed: int) -> None:
    """No (due, seq, job) tuple per queued job: the heap holds the jobs, ordered by due time
    and, for the same due time, by the order they were pushed (configuration order)."""
    config = parse_config(_CONFIG, "t")
    sched = Scheduler(State(config), rng=random.Random(seed), clock=FakeClock())
    assert sched._heap and all(isinstance(job, _Job) for job in sched._heap)
    jobs = list(sched._all_jobs())
    assert [j.name for j in sorted(sched._heap)] == [j.name for j in jobs]
    assert sorted(sched._heap, key=lambda j: (j.due, j.seq)) == sorted(sched._heap)


def test_a_target_s_assessment_is_kept_as_it_is_under_its_name() -> None:
    """No key object and no one-element tuple per target: the state keeps a target's one
    assessment under the target's own name string (the key of its probe job too), and its
    posture scan only there."""
    config = parse_config(_CONFIG, "t")
    state = State(config)
    sched = Scheduler(state, rng=random.Random(1), clock=FakeClock())
    target = config.targets[0]
    state.put_probe(probe_result(target.name))
    scan = PostureScan(protocols=(("TLSv1.3", True),), timestamp=5.0)
    sched._assess_target(target, scan)
    snap = state.snapshot()
    ((stored, held),) = snap.assessments.items()
    assert stored is target.name and sched._jobs[target.name].key is target.name
    assert isinstance(held, AssessedLocation) and held.posture is scan
    assert not hasattr(snap, "postures") and state.posture(target.name) is scan
    assert snap.assessed() == [held]
    sched._assess_target(target)  # a probe's assessment judges the scan held
    assert state.assessed(target.name) is not held and state.posture(target.name) is scan


async def test_stored_results_drop_the_staple_the_probe_already_judged() -> None:
    """The stapled OCSP response is judged by the probe (its revocation); the state keeps the
    result without it, and the exposition reads the same."""
    config = parse_config(_CONFIG, "t")
    state = State(config)
    staple = bytes(range(256)) * 6
    stapled = dataclasses.replace(
        probe_result(config.targets[0].name),
        outcome=Outcome(chain=(b"x",), ocsp_response=staple),
        revocation=Revocation(stapled=True),
    )

    async def prober(target: Target, last_success: float | None) -> ProbeResult:
        return stapled if target.name == stapled.name else probe_result(target.name)

    clock = FakeClock()
    sched = Scheduler(state, prober=prober, rng=random.Random(1), clock=clock)
    task = asyncio.create_task(sched.run())
    try:
        await settle()
        held = state.snapshot().probes[stapled.name]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert held.outcome.ocsp_response is None and held.revocation == stapled.revocation
    assert dataclasses.replace(held, outcome=stapled.outcome) == stapled
    assert render_once([held]) == render_once([stapled])


def test_a_job_keeps_its_state_in_one_int_and_reads_its_interval() -> None:
    """Two jobs per target: their five states are bits of one int, and the interval is read
    from the target or source (a changed one makes a new job)."""
    config = parse_config(_CONFIG + "sources:\n  - {name: f, kind: files, paths: [/x.pem]}\n", "t")
    sched = Scheduler(State(config), rng=random.Random(1), clock=FakeClock())
    assert set(_Job.__slots__) == {"key", "target", "flags", "due", "seq", "scan"}
    intervals = {j.name: j.interval for j in sched._all_jobs()}
    assert intervals["probe:a.example:443"] == 3600.0
    assert intervals["enumeration:a.example:443"] == config.targets[0].enumerate_interval
    assert intervals["source:f"] == config.sources[0].interval
    job = sched._jobs["a.example:443"]
    assert job.queued and not job.running and not job.done_once and not job.watching
    job.running, job.queued = True, False
    assert job.running and not job.queued and job.flags == 1


def test_a_target_s_enumeration_job_hangs_off_its_probe_job() -> None:
    """No key or table slot of its own: the enumeration job shares its probe job's key (the
    target's name), and only probe and source jobs are in the table (nor do targets' jobs carry a source's
    reader and configuration slots)."""
    config = parse_config(_CONFIG + "sources:\n  - {name: f, kind: files, paths: [/x.pem]}\n", "t")
    sched = Scheduler(State(config), rng=random.Random(1), clock=FakeClock())
    assert set(sched._jobs) == {*(t.name for t in config.targets), JobKey(JobKind.SOURCE, "f")}
    for target in config.targets:
        probe_job = sched._jobs[target.name]
        assert probe_job.scan is not None and probe_job.scan.key is probe_job.key
        assert probe_job.scan.kind is JobKind.ENUMERATION and probe_job.kind is JobKind.PROBE
        assert not hasattr(probe_job, "reader") and not hasattr(probe_job.scan, "source")
    assert sched.jobs == 2 * len(config.targets) + 1
    # A reload that keeps a target keeps both its jobs; a changed target gets new ones.
    kept = sched._jobs["a.example:443"]
    changed = sched._jobs["b.example:443"]
    assert kept.scan is not None and changed.scan is not None
    targets = (config.targets[0], dataclasses.replace(config.targets[1], interval=60.0))
    sched.apply(dataclasses.replace(config, targets=targets))
    assert sched._jobs[kept.key] is kept and sched._current(kept) and sched._current(kept.scan)
    assert not sched._current(changed) and not sched._current(changed.scan)
    assert "c.example:443" not in sched._jobs


_SCAN = PostureScan(protocols=(("TLSv1.3", True),), timestamp=1_000.5, duration=2.25)


def test_a_result_holds_its_rendering_in_slots_not_a_tuple() -> None:
    """The identity, the shared layout and the own values are three slots of the result: an
    entry tuple held per result was 64 bytes more for each of a target's two."""
    result = probe_result("svc", labels=(("team", "a"),))
    assessed = AssessedLocation(
        "tls", "svc", "svc:443", (("team", "a"),), Assessment(()), posture=_SCAN
    )
    exposition = Exposition()
    exposition.prepare([result, assessed], ())
    for held in (result, assessed):
        assert isinstance(held.rendered, tuple) and len(held.rendered) == 4  # the layout
        identity = b'source_kind="tls",source="svc",location="svc:443",team="a"'
        assert held.rendered_identity == identity
        assert held.rendered_values and b"\x01" not in held.rendered_values
    assert result.rendered_identity is assessed.rendered_identity
    assert exposition.render([result, assessed]) == render_once([result, assessed])
    # Not part of the value: a replaced result is rendered again, and compares equal.
    again = dataclasses.replace(result)
    assert again.rendered is None and again.rendered_values == b"" and again == result


def test_targets_that_read_the_same_share_one_assessment() -> None:
    """Equal endpoint assessments (the same posture, chain and policy) are one object; a
    different posture reads differently and gets its own."""
    policy = parse_config(_CONFIG, "t").policy
    now = datetime(2026, 12, 1, tzinfo=UTC)
    verdict = Verdict(True, True, True, ())
    weak = PostureScan(protocols=(("TLSv1.0", True), ("TLSv1.2", True), ("TLSv1.3", True)))
    strong = PostureScan(protocols=(("TLSv1.0", False), ("TLSv1.2", True), ("TLSv1.3", True)))
    first, second, other = (
        assess_endpoint((name, f"{name}:443"), (), verdict, dataclasses.replace(scan), policy, now)
        for name, scan in (("a", weak), ("b", weak), ("c", strong))
    )
    assert first == second and first is second
    assert other != first and other is not first


def test_targets_share_an_address_and_a_default_name_is_the_address() -> None:
    """Names on one virtual-hosting address share its string, and a target named by its
    address (the default) holds one string for both."""
    config = parse_config(
        """
targets:
  - {address: 10.0.0.1:443, name: one, sni: one.example}
  - {address: 10.0.0.1:443, name: two, sni: two.example}
  - {address: 10.0.0.2:443}
""",
        "t",
    )
    one, two, unnamed = config.targets
    assert one.address == two.address == "10.0.0.1:443" and one.address is two.address
    assert unnamed.name == unnamed.address == "10.0.0.2:443" and unnamed.address is unnamed.name


def test_targets_with_the_same_tls_options_share_them() -> None:
    a, b, c = parse_config(_CONFIG, "t").targets
    assert a.tls == b.tls == c.tls and a.tls is b.tls is c.tls
    own = parse_config("targets:\n  - {address: a.example:443, sni: other.example}\n", "t")
    assert own.targets[0].tls.sni == "other.example" and own.targets[0].tls is not a.tls


def test_a_result_holds_its_phase_timings_packed_beside_its_outcome() -> None:
    """The timings are the result's own: one plain bytes object (the seconds, then two bytes
    naming the phases), moved out of the outcome, which is then the same for every target
    behind one endpoint."""
    pairs = (("resolve", 1e-05), ("connect", 0.000123456789), ("handshake", 0.1 + 0.2))
    result = dataclasses.replace(probe_result("svc"), outcome=Outcome(phases=pairs))
    assert type(result.packed_phases) is bytes and len(result.packed_phases) == 8 * 3 + 2
    assert result.phases == pairs  # the same floats, bit for bit
    assert len(result.outcome.phases) == 0 and result.outcome == Outcome()
    kept = dataclasses.replace(result, timestamp=2.0)
    assert kept.phases == pairs and kept.packed_phases is result.packed_phases
    assert 'phase="handshake"} 0.30000000000000004\n' in render_once([result])
    assert probe_result("bare").phases == ()


def test_stored_results_share_equal_outcomes() -> None:
    """Targets behind one endpoint read the same outcome (without the timings): the state
    keeps one object for them all; a different peer keeps its own."""
    timings = (("resolve", 0.001), ("connect", 0.002))
    outcomes = [
        Outcome(
            chain=(bytes(range(200)),),
            negotiated=Negotiated("TLSv1.3", "TLS_AES_128_GCM_SHA256", "x25519"),
            peer_address="10.0.0.1" if i < 3 else "10.0.0.2",
            phases=tuple((name, seconds * (i + 1)) for name, seconds in timings),
        )
        for i in range(4)
    ]
    held = [
        _held(dataclasses.replace(probe_result(f"t{i}"), outcome=outcome))
        for i, outcome in enumerate(outcomes)
    ]
    assert held[0].outcome is held[1].outcome is held[2].outcome
    assert held[3].outcome is not held[0].outcome and held[3].outcome.peer_address == "10.0.0.2"
    assert [h.phases[1][1] for h in held] == [0.002, 0.004, 0.006, 0.008]


def test_when_a_scan_last_completed_is_held_by_the_assessment() -> None:
    """No table entry per target for the last complete enumeration: the assessment holds it
    (an incomplete scan keeps it); only a target changed or removed by a reload leaves it in
    the scheduler's table, for a target of that name to report until it completes its own."""
    config = parse_config(_CONFIG, "t")
    state = State(config)
    sched = Scheduler(state, rng=random.Random(1), clock=FakeClock())
    a, b, c = config.targets
    for target in (a, b, c):
        state.put_probe(probe_result(target.name))
        sched._assess_target(target, PostureScan(protocols=(), timestamp=10.0))
    sched._assess_target(a, PostureScan(protocols=(), timestamp=20.0, complete=False))
    sched._assess_target(a)
    held = state.assessed(a.name)
    assert held is not None and held.scan_last_success == 10.0 and sched._scan_success == {}
    # b changed (its labels), c removed: their series go, when they last completed stays.
    changed = dataclasses.replace(b, labels=(("team", "other"),))
    sched.apply(dataclasses.replace(config, targets=(a, changed)))
    assert state.assessed(changed.name) is None and sched._scan_success == {
        b.name: 10.0,
        c.name: 10.0,
    }
    state.put_probe(probe_result(changed.name))
    sched._assess_target(changed)
    again = state.assessed(changed.name)
    assert again is not None and again.scan_last_success == 10.0
    assert sched._scan_success == {c.name: 10.0}
    sched.apply(config)  # c is back: it reports its old success until it completes a scan
    state.put_probe(probe_result(c.name))
    sched._assess_target(c)
    back = state.assessed(c.name)
    assert back is not None and back.scan_last_success == 10.0
    sched._assess_target(c, PostureScan(protocols=(), timestamp=30.0))
    newest = state.assessed(c.name)
    assert newest is not None and newest.scan_last_success == 30.0
