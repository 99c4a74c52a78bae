"""Background refresh of every target and source on its own interval.

One loop keeps a heap of due times; a due job becomes a task once it holds a slot of one
global semaphore (the concurrency limit), so however many jobs are due at once, at most that
many tasks exist (ten thousand waiting tasks were megabytes held for nothing). Jitter spreads jobs so that a thousand targets with the same
interval do not all fire in the same second. Scrapes never wait on this: they read the last
snapshot. Every outcome, including an unexpected exception, becomes a result.

Time comes from a ``Clock`` (monotonic seconds for due times, the wall clock for policy
judgements, and sleeping), so tests drive the scheduler on a fake one without waiting.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from .certs import CertFacts, Interner
from .config import Config, Source, SSHKeysSource, Target
from .keypolicy import assess_cloud
from .matching import StoreIndex, build_index, compare
from .policy import assess_endpoint, assess_stored
from .posture import PostureScan
from .probe import probe
from .results import (
    AssessedLocation,
    JobKey,
    JobKind,
    Labels,
    ProbeResult,
    SourceResult,
    SSHProbeResult,
)
from .selfmetrics import SelfMetrics
from .snapshot import State
from .sources import SourceReader, reader_for
from .sources.base import WatchingReader, log_new_errors
from .sources.keys import private_keys_by_location
from .ssh.probe import probe_target

log = logging.getLogger(__name__)

#: Seconds between re-assessments of every target after stored certificates change.
_REASSESS_EVERY = 2.0

Prober = Callable[[Target, float | None], Awaitable[ProbeResult]]
Enumerator = Callable[[Target], Awaitable[PostureScan]]
SSHProber = Callable[[Target, float | None], Awaitable[SSHProbeResult]]


class Clock(Protocol):
    """The scheduler's time: due times on ``monotonic``, policy judgements at ``wall``."""

    def monotonic(self) -> float: ...

    def wall(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The process's clocks and asyncio's sleep."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def enumerate_target(target: Target) -> PostureScan:
    from .tls.enumerate import enumerate_posture

    return await enumerate_posture(
        target.host,
        target.port,
        target.server_name,
        starttls=target.tls.starttls,
        timeout=min(target.tls.timeout, 5.0),
    )


_RUNNING, _QUEUED, _DONE_ONCE, _WATCHING, _SCAN = 1, 2, 4, 8, 16


class _Flag:
    """One bit of a job's ``flags``, read and set as a bool."""

    def __init__(self, bit: int) -> None:
        self.bit = bit

    def __get__(self, job: _Job, owner: type | None = None) -> bool:
        return bool(job.flags & self.bit)

    def __set__(self, job: _Job, on: bool) -> None:
        job.flags = job.flags | self.bit if on else job.flags & ~self.bit


@dataclass(slots=True, eq=False)
class _Job:
    """A target's probe or enumeration, or (:class:`_SourceJob`) a source's refresh.

    The jobs table holds probe jobs under their target's name (the target's string: no key
    object per target) and source jobs under their ``JobKey``, as the state keeps their
    assessments. A target's enumeration job hangs off its probe job (``scan``) and shares its
    key, marked by a flag: at fleet scale each target has both, and a key and a table slot
    of their own were 100 bytes a target.
    """

    key: str | JobKey
    target: Target | None = None
    # running, queued, done once, watching (a streaming source, decided once: the Protocol
    # check is slow), enumeration: bits of one int, as two jobs per target are held.
    flags: int = 0
    # Its place in the heap while queued (a job is queued at most once): when it is due, and
    # the push's number, so that jobs due at the same time run in the order they were pushed.
    due: float = 0.0
    seq: int = 0
    scan: _Job | None = None  # a probe job's enumeration job, if the target enumerates

    @property
    def kind(self) -> JobKind:
        if self.flags & _SCAN:
            return JobKind.ENUMERATION
        return JobKind.PROBE if isinstance(self.key, str) else self.key.kind

    @property
    def name(self) -> str:
        """What the job's task and log lines are called (``probe:web``, ``enumeration:web``)."""
        return f"{self.kind}:{self.key if isinstance(self.key, str) else self.key.name}"

    @property
    def interval(self) -> float:
        if self.target is None:
            assert isinstance(self, _SourceJob)
            assert self.source is not None
            return self.source.interval
        if self.flags & _SCAN:
            return self.target.enumerate_interval
        return self.target.interval

    running = _Flag(_RUNNING)
    queued = _Flag(_QUEUED)
    done_once = _Flag(_DONE_ONCE)
    watching = _Flag(_WATCHING)

    def __lt__(self, other: _Job) -> bool:
        # The heap holds jobs themselves: a (due, seq, job) tuple per queued job was 100 bytes.
        if self.due != other.due:
            return self.due < other.due
        return self.seq < other.seq


@dataclass(slots=True, eq=False)
class _SourceJob(_Job):
    """A source's job: its reader and configuration (targets' jobs do without the slots)."""

    reader: SourceReader | None = None
    source: Source | None = None


def _account(result: SourceResult, previous: SourceResult | None, source: Source) -> SourceResult:
    """Carry the error counters forward and decide staleness (a failing source keeps its last
    good certificates; after ``stale_after`` it says so instead of pretending they are fresh)."""
    counts = dict(previous.errors_total) if previous else {}
    if not result.up:
        reason = result.error_reason or "error"
        counts[reason] = counts.get(reason, 0) + 1
    stale = False
    if not result.up and source.stale_after is not None:
        since = result.last_success if result.last_success is not None else None
        stale = since is None or result.timestamp - since > source.stale_after
    return replace(result, errors_total=tuple(sorted(counts.items())), stale=stale)


#: Equal probe outcomes of stored results as one object. Without its phase timings (the
#: result's own) an outcome reads the same for every target behind one endpoint (its chain,
#: negotiated parameters, peer address) and from one probe of a target to the next. A table
#: of its own, so that outcomes distinct per target cannot push out what others share.
_outcomes = Interner(8192)


def _held(result: ProbeResult) -> ProbeResult:
    """The result as the state keeps it: its outcome one object with equal ones, and without
    the stapled OCSP response, which the probe has already judged (``result.revocation``) and
    nothing reads again; a kilobyte or two per target of a fleet that staples."""
    outcome = result.outcome
    if outcome.ocsp_response is not None:
        outcome = replace(outcome, ocsp_response=None)
    outcome = _outcomes(outcome)
    return result if outcome is result.outcome else replace(result, outcome=outcome)


class Scheduler:
    def __init__(
        self,
        state: State,
        metrics: SelfMetrics | None = None,
        prober: Prober = probe,
        rng: random.Random | None = None,
        enumerator: Enumerator = enumerate_target,
        ssh_prober: SSHProber = probe_target,
        clock: Clock | None = None,
    ) -> None:
        self.state = state
        self.metrics = metrics or SelfMetrics()
        self.prober = prober
        self.ssh_prober = ssh_prober
        self.enumerator = enumerator
        self.rng = rng or random.Random()
        self.clock: Clock = clock or SystemClock()
        self._jobs: dict[str | JobKey, _Job] = {}
        # Ordered by due time, then push order (``_Job.__lt__``). A job removed or replaced by
        # a reload stays here until it is due, and is then skipped.
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._concurrency = state.config.concurrency
        self._sem = asyncio.Semaphore(self._concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._config = state.config
        # When the last complete enumeration of a target no longer assessed (changed or
        # removed by a reload) finished, by name: a target with that name reports it until it
        # completes one of its own. A current target's is in its assessment.
        self._scan_success: dict[str, float] = {}
        self._index: StoreIndex | None = None
        self._reassess_pending = False
        self.apply(state.config)

    # -- configuration ---------------------------------------------------------------------

    def apply(self, config: Config) -> None:
        """Reconcile jobs with ``config``: new and changed ones run now, removed ones go."""
        # Against the config this scheduler last applied: the state may already hold the new one.
        policy_changed = config.policy != self._config.policy
        wanted: dict[str | JobKey, _Job] = {}
        for t in config.targets:
            self._want_target(t, wanted)
        for s in config.sources:
            self._want_source(s, wanted)
        for key in self._jobs.keys() - wanted.keys():
            if isinstance(key, str):
                self._forget_target(key)
            else:
                self.state.forget_source(key.name)
        self._jobs = wanted
        self._config = config
        if policy_changed:
            self._reassess_all()
        if config.concurrency != self._concurrency:
            # Jobs holding the old semaphore finish on it; new ones queue on the new limit.
            self._concurrency = config.concurrency
            self._sem = asyncio.Semaphore(config.concurrency)
        for job in self._all_jobs():
            if not job.queued and not job.running:
                self._push(self.clock.monotonic(), job)
        self.metrics.targets.set(len(config.targets))
        self.metrics.sources.set(len(config.sources))
        self._check_first_round()
        self._wake.set()

    def _want_target(self, t: Target, wanted: dict[str | JobKey, _Job]) -> None:
        """The probe job of ``t`` and, if it enumerates, its enumeration job: kept as they are
        when the target did not change, else new (and a changed target's series go at once)."""
        old = self._jobs.get(t.name)
        if old is not None and old.target == t:
            wanted[t.name] = old  # its enumeration job with it: ``enumerate`` is part of ``t``
            return
        if old is not None:
            self._forget_target(t.name)  # labels or address changed: series go
        job = wanted[t.name] = _Job(t.name, target=t)
        if t.enumerate:
            job.scan = _Job(t.name, target=t, flags=_SCAN)

    def _want_source(self, s: Source, wanted: dict[str | JobKey, _Job]) -> None:
        key = JobKey(JobKind.SOURCE, s.name)
        old = self._jobs.get(key)
        if isinstance(old, _SourceJob) and old.source == s:
            wanted[key] = old
            return
        if old is not None:
            self.state.forget_source(s.name)
        reader = reader_for(s)
        watching = isinstance(reader, WatchingReader)
        wanted[key] = _SourceJob(key, reader=reader, source=s, flags=_WATCHING if watching else 0)

    def _current(self, job: _Job) -> bool:
        """Whether ``job`` is still wanted (a reload removes or replaces jobs, whose tasks
        then finish without storing anything)."""
        held = self._jobs.get(job.key)
        if held is None or not job.flags & _SCAN:
            return held is job
        return held.scan is job

    def _all_jobs(self) -> Iterator[_Job]:
        for job in self._jobs.values():
            yield job
            if job.scan is not None:
                yield job.scan

    def _push(self, due: float, job: _Job) -> None:
        job.queued = True
        job.due = due
        job.seq = next(self._seq)
        heapq.heappush(self._heap, job)

    def _next_due(self, job: _Job, started: float) -> float:
        spread = job.interval * self.state.config.jitter
        return started + job.interval + self.rng.uniform(-spread / 2, spread / 2)

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                now = self.clock.monotonic()
                while self._heap and self._heap[0].due <= now:
                    await self._start(heapq.heappop(self._heap))
                await self._wait(max(0.0, self._heap[0].due - now) if self._heap else None)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _start(self, job: _Job) -> None:
        """Run ``job`` as a task once it holds a slot (a watch holds none: it mostly waits)."""
        if not self._current(job):
            return  # removed or replaced by a reload
        sem = None
        if not job.watching:
            sem = self._sem  # a reload may replace it: the job releases the one it took
            await sem.acquire()  # at once while a slot is free
            if not self._current(job):  # removed while waiting for a slot
                sem.release()
                return
        job.queued = False
        job.running = True
        task = asyncio.create_task(self._run_job(job, sem), name=job.name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wait(self, seconds: float | None) -> None:
        """Until a job is pushed or changed (``_wake``) or ``seconds`` pass on the clock."""
        if seconds is None:
            await self._wake.wait()
            return
        waiters = {
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self.clock.sleep(seconds)),
        }
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _run_job(self, job: _Job, sem: asyncio.Semaphore | None) -> None:
        started = self.clock.monotonic()
        try:
            if sem is None:
                await self._run_watch(job)
                started = self.clock.monotonic()  # a watch that ended restarts an interval later
            else:
                self.metrics.in_flight.inc()
                try:
                    await self._work(job)
                finally:
                    self.metrics.in_flight.dec()
        except asyncio.CancelledError:
            raise
        except Exception:  # the scheduler boundary: one broken job must not stop the others
            log.exception("job %s failed", job.name)
        finally:
            if sem is not None:
                sem.release()
            job.running = False
            job.done_once = True
            if self._current(job) and not job.queued:
                self._push(self._next_due(job, started), job)
                self._wake.set()
            self._check_first_round()

    async def _run_watch(self, job: _Job) -> None:
        """A streaming source: one long task, outside the concurrency limit (it mostly waits)."""
        assert isinstance(job, _SourceJob)
        reader, source = job.reader, job.source
        assert isinstance(reader, WatchingReader)
        assert source is not None

        def publish(result: SourceResult) -> None:
            if not self._current(job):
                return  # removed by a reload while the event was in flight
            previous = self.state.previous_source(source.name)
            result = _account(result, previous, source)
            log_new_errors(result, previous)
            self.state.put_source(result)
            self._assess_source(source, result)
            self._stores_changed()
            if not job.done_once:
                job.done_once = True
                self._check_first_round()

        await reader.watch(publish)

    async def _work(self, job: _Job) -> None:
        t0 = time.perf_counter()
        if job.target is not None and job.flags & _SCAN:
            scan = await self.enumerator(job.target)
            self.metrics.refresh.labels("enumeration").observe(time.perf_counter() - t0)
            if self._current(job):  # not removed by a reload while running
                self._assess_target(job.target, scan)
        elif job.target is not None and job.target.protocol == "ssh":
            await self._work_ssh(job, job.target, t0)
        elif job.target is not None:
            prev = self.state.previous_probe(job.target.name)
            result = await self.prober(job.target, prev.last_success if prev else None)
            self.metrics.runs.labels("success" if result.success else "failure").inc()
            self.metrics.refresh.labels("probe").observe(time.perf_counter() - t0)
            if self._current(job):
                self.state.put_probe(_held(result))
                self._assess_target(job.target)
        elif isinstance(job, _SourceJob) and job.reader is not None and job.source is not None:
            prev_s = self.state.previous_source(job.reader.name)
            sresult = _account(await job.reader.refresh(prev_s), prev_s, job.source)
            self.metrics.refresh.labels("source").observe(time.perf_counter() - t0)
            if self._current(job):
                log_new_errors(sresult, prev_s)
                self.state.put_source(sresult)
                self._assess_source(job.source, sresult)
                self._stores_changed()

    async def _work_ssh(self, job: _Job, target: Target, t0: float) -> None:
        prev = self.state.previous_ssh(target.name)
        result = await self.ssh_prober(target, prev.last_success if prev else None)
        self.metrics.runs.labels("success" if result.success else "failure").inc()
        self.metrics.refresh.labels("probe").observe(time.perf_counter() - t0)
        if self._current(job):
            self.state.put_ssh(result)
            self._assess_ssh(target, result)

    # -- policy ----------------------------------------------------------------------------

    def _assess_ssh(self, t: Target, result: SSHProbeResult) -> None:
        from .ssh.policy import assess_server

        assessment = assess_server(
            (t.name, t.address), result.scan, self._config.policy, self.clock.wall()
        )
        located = AssessedLocation("ssh", t.name, t.address, t.labels, assessment)
        self.state.put_assessment(t.name, located)

    def _assess_target(self, t: Target, scan: PostureScan | None = None) -> None:
        """Judge ``t``'s newest probe result with ``scan``, else with the posture scan its
        current assessment holds (the state keeps a target's scan there, nowhere else)."""
        if t.protocol == "ssh":
            ssh_result = self.state.previous_ssh(t.name)
            if ssh_result is not None:
                self._assess_ssh(t, ssh_result)
            return
        probe_result = self.state.previous_probe(t.name)
        scan_success = self._last_scan_success(t.name, scan)  # before the scan is stored
        if scan is None:
            scan = self.state.posture(t.name)
        if probe_result is None and scan is None:
            return
        comparison = None
        if probe_result is not None and probe_result.facts:
            comparison = compare(t, probe_result.facts[0], self._store_index())
        assessment = assess_endpoint(
            (t.name, t.address),
            probe_result.facts if probe_result else (),
            probe_result.verdict if probe_result else None,
            scan,
            self._config.policy,
            self.clock.wall(),
            None if comparison is None or comparison.matches else comparison.detail,
            stapled=probe_result.revocation.stapled
            if probe_result is not None and probe_result.revocation is not None
            else None,
        )
        located = AssessedLocation(
            source_kind="tls",
            source=t.name,
            location=t.address,
            labels=t.labels,
            assessment=assessment,
            posture=scan,
            scan_interval=t.enumerate_interval if t.enumerate else None,
            scan_last_success=scan_success,
            served_matches_stored=None if comparison is None else comparison.matches,
            expected_location=""
            if comparison is None
            else f"{comparison.expected.source}:{comparison.expected.cert.location}",
        )
        self.state.put_assessment(t.name, located)
        self._scan_success.pop(t.name, None)  # its assessment holds it now

    def _last_scan_success(self, name: str, scan: PostureScan | None) -> float | None:
        """When ``name``'s last complete enumeration finished: ``scan``'s time if it is one,
        else as its assessment says, else as a target of that name said before a reload
        changed or removed it (kept here, in a table of such targets only)."""
        if scan is not None and scan.complete:
            return scan.timestamp
        held = self.state.assessed(name)
        if held is not None:
            return held.scan_last_success
        return self._scan_success.get(name)

    def _forget_target(self, name: str) -> None:
        """Drop a changed or removed target's series, keeping when it last completed an
        enumeration (reported again by a target of that name, as before the reload)."""
        held = self.state.assessed(name)
        if held is not None and held.scan_last_success is not None:
            self._scan_success[name] = held.scan_last_success
        self.state.forget_probe(name)

    def _assess_source(self, source: Source, result: SourceResult) -> None:
        now = self.clock.wall()
        by_location: dict[str, list[CertFacts]] = {}
        item_labels: dict[str, Labels] = {}
        item_kinds: dict[str, str] = {}  # a store within the source (aws_acm), else its kind
        mismatched: dict[str, list[int]] = {}
        revoked: dict[str, list[int]] = {}
        for c in sorted(result.certs, key=lambda c: (c.location, c.position)):
            by_location.setdefault(c.location, []).append(c.facts)
            item_labels.setdefault(c.location, c.labels)
            item_kinds.setdefault(c.location, c.source_kind or result.kind)
            if c.key_matches is False:
                mismatched.setdefault(c.location, []).append(c.position)
            if c.revoked:
                revoked.setdefault(c.location, []).append(c.position)
        keys = private_keys_by_location(result)
        items = []
        for location in sorted(by_location.keys() | keys.keys()):
            item_labels.setdefault(location, ())
            a = assess_stored(
                (source.name, location),
                by_location.get(location, ()),
                self._config.policy,
                now,
                mismatched.get(location, ()),
                keys.get(location, ()),
                revoked.get(location, ()),
            )
            if a.findings:
                # The item's own labels (owner annotation, cert-manager) win, as on its series.
                labels = tuple({**dict(source.labels), **dict(item_labels[location])}.items())
                kind = item_kinds.get(location, result.kind)
                items.append(AssessedLocation(kind, source.name, location, labels, a))
        items.extend(self._assess_keys(source, result, now))
        items += assess_cloud(result, source.labels, self._config.policy, now)
        self.state.put_assessments(JobKey(JobKind.SOURCE, source.name), tuple(items))

    def _assess_keys(
        self, source: Source, result: SourceResult, now: datetime
    ) -> list[AssessedLocation]:
        if not isinstance(source, SSHKeysSource):
            return []
        from .ssh.policy import assess_keys

        judged = assess_keys(
            source.name, result.keys, self._config.policy, now, source.people is not None
        )
        return [
            AssessedLocation(
                result.kind,
                source.name,
                key.location,
                tuple({**dict(source.labels), **dict(key.labels)}.items()),
                a,
            )
            for key, a in judged
        ]

    def _store_index(self) -> StoreIndex:
        if self._index is None:
            self._index = build_index(self.state.snapshot().sources.values())
        return self._index

    def _stores_changed(self) -> None:
        """Stored certificates changed: served-versus-stored verdicts must be redone.

        Every target is re-assessed, at most once per ``_REASSESS_EVERY`` seconds, so a
        Kubernetes watch publishing often cannot make the exporter spin.
        """
        old = self._index
        self._index = None
        if old is not None and old.fingerprints == self._store_index().fingerprints:
            return
        if self._reassess_pending or not self._config.targets:
            return
        self._reassess_pending = True

        async def later() -> None:
            await self.clock.sleep(_REASSESS_EVERY)
            self._reassess_pending = False
            for job in self._jobs.values():
                if job.target is not None:  # a probe job (the table holds no enumeration)
                    self._assess_target(job.target)

        # Kept with the job tasks, so that stopping the scheduler cancels it too.
        task = asyncio.create_task(later(), name="reassess")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reassess_all(self) -> None:
        for job in self._jobs.values():
            if job.target is not None:  # a probe job (the table holds no enumeration)
                self._assess_target(job.target)
            elif isinstance(job, _SourceJob) and job.source is not None:
                prev = self.state.previous_source(job.source.name)
                if prev is not None:
                    self._assess_source(job.source, prev)

    def _check_first_round(self) -> None:
        # Readiness waits for probes and sources, not for enumerations, which take longer and
        # only add posture detail: the table holds no enumeration job.
        if not self.state.first_round_done and all(j.done_once for j in self._jobs.values()):
            self.state.mark_first_round_done()

    @property
    def jobs(self) -> int:
        return sum(1 for _ in self._all_jobs())
