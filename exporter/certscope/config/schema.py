"""An already-parsed YAML document → a validated :class:`~.model.Config`.

Every problem is collected with its location before one :class:`~certscope.errors.ConfigError`
is raised (see :mod:`.checker`); the sections are read by :mod:`.schema_targets`,
:mod:`.schema_sources` and :mod:`.schema_policy`.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..tls.options import (
    DEFAULT_MAX_HANDSHAKE_BYTES,
    DEFAULT_TIMEOUT,
    RevocationOptions,
    TLSOptions,
)
from .checker import Checker, join, type_name
from .keys import DEFAULT_KEYS, TOP_KEYS
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
from .schema_targets import (
    TargetDefaults,
    build_probe,
    build_target,
    max_handshake_bytes,
    revocation_options,
)


def build_config(raw: object, origin: str) -> Config:
    """Validate an already-parsed YAML document. Raises ConfigError listing every problem."""
    c = Checker()
    top = c.mapping({} if raw is None else raw, "", TOP_KEYS)
    tdefaults = _target_defaults(c, top.get("defaults"))
    sd = c.mapping(top.get("scheduler"), "scheduler", ("concurrency", "jitter"))
    concurrency = int(c.number(sd, "concurrency", "scheduler", DEFAULT_CONCURRENCY, 1, 10000))
    jitter = c.number(sd, "jitter", "scheduler", DEFAULT_JITTER, 0, 1)
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
        concurrency=concurrency,
        jitter=jitter,
        origin=origin,
    )


def _target_defaults(c: Checker, raw: object) -> TargetDefaults:
    """The ``defaults:`` section: what every target (and source interval) starts from."""
    dd = c.mapping(raw, "defaults", DEFAULT_KEYS)
    # Problems are listed in the order the keys are read here.
    interval = c.duration(dd, "interval", "defaults", DEFAULT_INTERVAL, MIN_INTERVAL)
    timeout = c.duration(dd, "timeout", "defaults", DEFAULT_TIMEOUT, MIN_TIMEOUT)
    ca_file = c.readable_file(c.string(dd, "ca_file", "defaults"), "defaults.ca_file", True)
    labels = c.labels(dd.get("labels"), "defaults.labels")
    tls = TLSOptions(
        ca_file=ca_file,
        timeout=timeout,
        alpn=c.strings(dd, "alpn", "defaults"),
        max_handshake_bytes=max_handshake_bytes(c, dd, "defaults", DEFAULT_MAX_HANDSHAKE_BYTES),
        revocation=revocation_options(c, dd, "defaults", RevocationOptions()),
    )
    return TargetDefaults(
        tls=tls,
        interval=interval,
        labels=labels,
        enumerate=c.boolean(dd, "enumerate", "defaults", True),
        enumerate_interval=c.duration(
            dd, "enumerate_interval", "defaults", DEFAULT_ENUMERATE_INTERVAL, MIN_ENUMERATE_INTERVAL
        ),
    )


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
