"""The latest state of all work, handed to exposition as an immutable snapshot.

Work writes results into :class:`State`; readers take :meth:`State.snapshot`, a frozen view
that is rebuilt only after something changed. Everything runs on one event loop, so a
snapshot is always consistent: no result is half written while a scrape reads it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
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


class State:
    def __init__(self, config: Config) -> None:
        self.config = config
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

    def put_probe(self, result: ProbeResult) -> None:
        self._probes[result.name] = result
        self._changed()

    def put_ssh(self, result: SSHProbeResult) -> None:
        self._ssh[result.name] = result
        self._changed()

    def previous_ssh(self, name: str) -> SSHProbeResult | None:
        return self._ssh.get(name)

    def put_source(self, result: SourceResult) -> None:
        self._sources[result.name] = result
        self._changed()

    def put_posture(self, name: str, scan: PostureScan) -> None:
        self._postures[name] = scan
        self._changed()

    def posture(self, name: str) -> PostureScan | None:
        return self._postures.get(name)

    def put_assessments(self, key: JobKey, items: tuple[AssessedLocation, ...]) -> None:
        """Replace the assessments of one target (``JobKind.PROBE``) or source."""
        self._assessments[key] = items
        self._changed()

    def previous_probe(self, name: str) -> ProbeResult | None:
        return self._probes.get(name)

    def previous_source(self, name: str) -> SourceResult | None:
        return self._sources.get(name)

    def forget_probe(self, name: str) -> None:
        self._probes.pop(name, None)
        self._ssh.pop(name, None)
        self._postures.pop(name, None)
        self._assessments.pop(JobKey(JobKind.PROBE, name), None)
        self._changed()

    def forget_source(self, name: str) -> None:
        self._sources.pop(name, None)
        self._assessments.pop(JobKey(JobKind.SOURCE, name), None)
        self._changed()

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
