"""An already-parsed YAML document → a validated :class:`~.model.Config`.

Every problem is collected with its location before one :class:`~certscope.errors.ConfigError`
is raised (see :mod:`.checker`); the sections are read by :mod:`.schema_targets`,
:mod:`.schema_sources` and :mod:`.schema_policy`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..errors import ConfigError
from ..tls.options import (
    DEFAULT_MAX_HANDSHAKE_BYTES,
    DEFAULT_TIMEOUT,
    RevocationOptions,
    TLSOptions,
)
from .checker import Checker, join, type_name
from .fields import Flag, Labels, Section, Texts, duration, number, validate
from .model import (
    DEFAULT_CONCURRENCY,
    DEFAULT_ENUMERATE_INTERVAL,
    DEFAULT_INTERVAL,
    DEFAULT_JITTER,
    MIN_ENUMERATE_INTERVAL,
    MIN_INTERVAL,
    MIN_TIMEOUT,
    Config,
    Source,
    Target,
)
from .schema_policy import build_policy
from .schema_sources import build_source
from .schema_targets import TargetDefaults, build_probe, build_target
from .schema_tls import HandshakeBytes, Revocation, readable

#: The sections of the document.
TOP_KEYS = ("defaults", "targets", "sources", "probe", "scheduler", "policy")


def build_config(raw: object, origin: str) -> Config:
    """Validate an already-parsed YAML document. Raises ConfigError listing every problem."""
    c = Checker()
    top = c.mapping({} if raw is None else raw, "", TOP_KEYS)
    tdefaults = validate(c, DefaultsModel, top.get("defaults"), "defaults").build()
    scheduler = validate(c, SchedulerModel, top.get("scheduler"), "scheduler")
    targets = _targets(c, top.get("targets"), tdefaults)
    sources = _sources(c, top.get("sources"), tdefaults)
    probe = build_probe(c, top.get("probe"), tdefaults.tls)
    policy = build_policy(c, top.get("policy"))
    source_names = {s.name for s in sources}
    for tloc, t in targets:
        if t.expects is not None and t.expects[0] not in source_names:
            c.add(f"{tloc}.expects.source", f"no source named {t.expects[0]!r}")
    if c.problems:
        raise ConfigError(c.listed(), origin)
    return Config(
        targets=tuple(t for _, t in targets),
        sources=tuple(sources),
        probe=probe,
        policy=policy,
        concurrency=int(scheduler.concurrency),
        jitter=scheduler.jitter,
        origin=origin,
    )


class DefaultsModel(Section):
    """``defaults:``: what every target (and a source's interval and labels) starts from."""

    interval: Annotated[float, duration(MIN_INTERVAL)] = DEFAULT_INTERVAL
    timeout: Annotated[float, duration(MIN_TIMEOUT)] = DEFAULT_TIMEOUT
    ca_file: Annotated[str | None, readable(pem_certs=True)] = None
    labels: Labels = Field(default_factory=dict)
    alpn: Texts = ()
    max_handshake_bytes: HandshakeBytes = None
    revocation: Revocation = None
    enumerate: Flag = None
    enumerate_interval: Annotated[float, duration(MIN_ENUMERATE_INTERVAL)] = (
        DEFAULT_ENUMERATE_INTERVAL
    )

    def build(self) -> TargetDefaults:
        tls = TLSOptions(
            ca_file=self.ca_file,
            timeout=self.timeout,
            alpn=self.alpn,
            max_handshake_bytes=int(self.max_handshake_bytes or DEFAULT_MAX_HANDSHAKE_BYTES),
            revocation=self.revocation.build(RevocationOptions())
            if self.revocation
            else RevocationOptions(),
        )
        return TargetDefaults(
            tls=tls,
            interval=self.interval,
            labels=dict(self.labels),
            enumerate=self.enumerate is not False,
            enumerate_interval=self.enumerate_interval,
        )


class SchedulerModel(Section):
    """``scheduler:``: how many checks run at once, and how they are spread."""

    concurrency: Annotated[float, number(1, 10000)] = DEFAULT_CONCURRENCY
    jitter: Annotated[float, number(0, 1)] = DEFAULT_JITTER


def _entries(c: Checker, raw: object, loc: str) -> list[object]:
    items = raw or []
    if not isinstance(items, list):
        c.add(loc, f"must be a list, got {type_name(items)}")
        return []
    return items


def _targets(c: Checker, raw: object, td: TargetDefaults) -> list[tuple[str, Target]]:
    """Each valid target with its location; names are unique."""
    out: list[tuple[str, Target]] = []
    seen: dict[str, str] = {}
    for i, rt in enumerate(_entries(c, raw, "targets")):
        loc = f"targets[{i}]"
        t = build_target(c, rt, loc, td)
        if t is None:
            continue
        where = join(loc, "name") if isinstance(rt, dict) and "name" in rt else join(loc, "address")
        if t.name in seen:
            c.add(where, f"duplicate target name {t.name!r} (first at {seen[t.name]})")
            continue
        seen[t.name] = loc
        out.append((loc, t))
    return out


def _sources(c: Checker, raw: object, td: TargetDefaults) -> list[Source]:
    """Each valid source; names are unique."""
    out: list[Source] = []
    seen: dict[str, str] = {}
    for i, rs in enumerate(_entries(c, raw, "sources")):
        loc = f"sources[{i}]"
        s = build_source(c, rs, loc, td.interval, td.labels)
        if s is None:
            continue
        if s.name in seen:
            c.add(join(loc, "name"), f"duplicate source name {s.name!r} (first at {seen[s.name]})")
            continue
        seen[s.name] = loc
        out.append(s)
    return out
