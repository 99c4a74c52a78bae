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


@dataclass(frozen=True)
class Snapshot:
    config: Config
    probes: Mapping[str, ProbeResult]
    sources: Mapping[str, SourceResult]
    postures: Mapping[str, PostureScan]
    assessments: Mapping[JobKey, tuple[AssessedLocation, ...]]  # by the job that made them
    generation: int
    config_loaded_at: float
    first_round_done: bool = False
    reload_ok: bool = True
    reload_errors: tuple[str, ...] = field(default=())
    ssh: Mapping[str, SSHProbeResult] = field(default_factory=lambda: MappingProxyType({}))


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
        self._postures: dict[str, PostureScan] = {}
        self._assessments: dict[JobKey, tuple[AssessedLocation, ...]] = {}
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

    def put_posture(self, name: str, scan: PostureScan) -> None:
        self._postures[name] = scan
        self._changed()

    def posture(self, name: str) -> PostureScan | None:
        return self._postures.get(name)

    def put_assessments(self, key: JobKey, items: tuple[AssessedLocation, ...]) -> None:
        """Replace the assessments of one target (``JobKind.PROBE``) or source."""
        old = self._assessments.get(key, ())
        self._assessments[key] = items
        self._changed()
        self._stored(items, old)

    def previous_probe(self, name: str) -> ProbeResult | None:
        return self._probes.get(name)

    def previous_source(self, name: str) -> SourceResult | None:
        return self._sources.get(name)

    def forget_probe(self, name: str) -> None:
        probe, ssh = self._probes.pop(name, None), self._ssh.pop(name, None)
        self._postures.pop(name, None)
        assessed = self._assessments.pop(JobKey(JobKind.PROBE, name), ())
        self._changed()
        self._stored((), (probe, ssh, *assessed))

    def forget_source(self, name: str) -> None:
        source = self._sources.pop(name, None)
        assessed = self._assessments.pop(JobKey(JobKind.SOURCE, name), ())
        self._changed()
        self._stored((), (source, *assessed))

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
                postures=MappingProxyType(dict(self._postures)),
                assessments=MappingProxyType(dict(self._assessments)),
                generation=self._generation,
                config_loaded_at=self.config_loaded_at,
                first_round_done=self.first_round_done,
                reload_ok=self.reload_ok,
                reload_errors=self.reload_errors,
                ssh=MappingProxyType(dict(self._ssh)),
            )
        return self._cached
