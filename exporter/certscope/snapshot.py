"""The latest state of all work, handed to exposition as an immutable snapshot.

Work writes results into :class:`State`; readers take :meth:`State.snapshot`, a frozen view
that is rebuilt only after something changed. Everything runs on one event loop, so a
snapshot is always consistent: no result is half written while a scrape reads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from .config import Config
from .posture import PostureScan
from .results import (
    AssessedLocation,
    JobKey,
    JobKind,
    ProbeResult,
    SourceResult,
    SSHProbeResult,
)

#: What the state keeps of one target's or source's assessment: a target's one assessment
#: as it is (at fleet scale a one-element tuple per target was 48 bytes more), a source's
#: assessed locations as a tuple.
Assessed = AssessedLocation | tuple[AssessedLocation, ...]


@dataclass(frozen=True)
class Snapshot:
    config: Config
    probes: Mapping[str, ProbeResult]
    sources: Mapping[str, SourceResult]
    # A target's assessment under its name, a source's under its ``JobKey`` (one table, in
    # the order they were first stored; a name is never equal to a key).
    assessments: Mapping[str | JobKey, Assessed]
    generation: int
    config_loaded_at: float
    first_round_done: bool = False
    reload_ok: bool = True
    reload_errors: tuple[str, ...] = field(default=())
    ssh: Mapping[str, SSHProbeResult] = field(default_factory=lambda: MappingProxyType({}))

    def assessed(self) -> list[AssessedLocation]:
        """Every assessed location: each target's and each source's, in the table's order."""
        out: list[AssessedLocation] = []
        for held in self.assessments.values():
            if isinstance(held, AssessedLocation):
                out.append(held)
            else:
                out.extend(held)
        return out


Stored = ProbeResult | SSHProbeResult | SourceResult | AssessedLocation

#: Told of every result stored and of every result it replaces or removes (the exposition
#: renders the new ones then, so a scrape only gathers rendered lines however many results
#: changed since the last one; a result holds its rendering, which goes with it).
Prepare = Callable[[Sequence[Stored], Sequence[Stored]], None]


class State:
    def __init__(self, config: Config, prepare: Prepare | None = None) -> None:
        self.config = config
        self._prepare = prepare
        self._probes: dict[str, ProbeResult] = {}
        self._sources: dict[str, SourceResult] = {}
        self._assessments: dict[str | JobKey, Assessed] = {}
        self._ssh: dict[str, SSHProbeResult] = {}
        self._generation = 0
        self._cached: Snapshot | None = None
        self.config_loaded_at = time.time()
        self.reload_ok = True
        self.reload_errors: tuple[str, ...] = ()
        self.first_round_done = False

    def _changed(self) -> None:
        self._generation += 1
        self._cached = None

    def _stored(self, stored: Sequence[Stored], dropped: Sequence[Stored | None]) -> None:
        # Called after the state changed: a failure to render loses no result (the scrape
        # renders it again and the scheduler's boundary logs the error).
        if self._prepare is not None:
            # By identity, in linear time: a source's assessments can be tens of thousands.
            kept = {id(s) for s in stored}
            gone = [d for d in dropped if d is not None and id(d) not in kept]
            self._prepare(stored, gone)

    def put_probe(self, result: ProbeResult) -> None:
        old = self._probes.get(result.name)
        self._probes[result.name] = result
        self._changed()
        self._stored((result,), (old,))

    def put_ssh(self, result: SSHProbeResult) -> None:
        old = self._ssh.get(result.name)
        self._ssh[result.name] = result
        self._changed()
        self._stored((result,), (old,))

    def previous_ssh(self, name: str) -> SSHProbeResult | None:
        return self._ssh.get(name)

    def put_source(self, result: SourceResult) -> None:
        old = self._sources.get(result.name)
        self._sources[result.name] = result
        self._changed()
        self._stored((result,), (old,))

    def assessed(self, name: str) -> AssessedLocation | None:
        """The target's current assessment, which holds its newest posture scan."""
        held = self._assessments.get(name)
        return held if isinstance(held, AssessedLocation) else None

    def posture(self, name: str) -> PostureScan | None:
        held = self.assessed(name)
        return None if held is None else held.posture

    def put_assessment(self, name: str, item: AssessedLocation) -> None:
        """Replace the assessment of one target (its probe and its posture scan judged
        together; the assessment holds the scan)."""
        old = self._assessments.get(name)
        self._assessments[name] = item
        self._changed()
        self._stored((item,), (old,) if isinstance(old, AssessedLocation) else ())

    def put_assessments(self, key: JobKey, items: tuple[AssessedLocation, ...]) -> None:
        """Replace the assessments of one source (``JobKind.SOURCE``)."""
        old = self._assessments.get(key, ())
        self._assessments[key] = items
        self._changed()
        self._stored(items, old if isinstance(old, tuple) else (old,))

    def previous_probe(self, name: str) -> ProbeResult | None:
        return self._probes.get(name)

    def previous_source(self, name: str) -> SourceResult | None:
        return self._sources.get(name)

    def forget_probe(self, name: str) -> None:
        probe, ssh = self._probes.pop(name, None), self._ssh.pop(name, None)
        assessed = self._assessments.pop(name, None)
        self._changed()
        self._stored((), (probe, ssh, assessed if isinstance(assessed, AssessedLocation) else None))

    def forget_source(self, name: str) -> None:
        source = self._sources.pop(name, None)
        assessed = self._assessments.pop(JobKey(JobKind.SOURCE, name), ())
        self._changed()
        self._stored((), (source, *(assessed if isinstance(assessed, tuple) else ())))

    def set_config(self, config: Config) -> None:
        self.config = config
        self.config_loaded_at = time.time()
        self.reload_ok = True
        self.reload_errors = ()
        self._changed()

    def reload_failed(self, errors: tuple[str, ...]) -> None:
        self.reload_ok = False
        self.reload_errors = errors
        self._changed()

    def mark_first_round_done(self) -> None:
        if not self.first_round_done:
            self.first_round_done = True
            self._changed()

    def snapshot(self) -> Snapshot:
        if self._cached is None:
            self._cached = Snapshot(
                config=self.config,
                probes=MappingProxyType(dict(self._probes)),
                sources=MappingProxyType(dict(self._sources)),
                assessments=MappingProxyType(dict(self._assessments)),
                generation=self._generation,
                config_loaded_at=self.config_loaded_at,
                first_round_done=self.first_round_done,
                reload_ok=self.reload_ok,
                reload_errors=self.reload_errors,
                ssh=MappingProxyType(dict(self._ssh)),
            )
        return self._cached
