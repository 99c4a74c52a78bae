"""The ``targets:`` entries and the ``probe:`` section (declared) → model types."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator

from ..net import PortError, is_hostname, is_ip, join_address, split_address
from ..tls.options import TLSOptions
from .checker import Checker, join
from .fields import Section, duration, number, problem, string_list, validate
from .keys import TARGET_KEYS, TLS_ONLY_KEYS
from .model import (
    DEFAULT_PROBE_CONCURRENCY,
    MIN_ENUMERATE_INTERVAL,
    MIN_INTERVAL,
    MIN_TIMEOUT,
    TARGET_PROTOCOLS,
    ProbeSettings,
    Target,
)
from .schema_tls import TLSModel, tls_options

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TargetDefaults:
    tls: TLSOptions
    interval: float
    labels: dict[str, str]
    enumerate: bool
    enumerate_interval: float


def build_target(c: Checker, raw: object, loc: str, td: TargetDefaults) -> Target | None:
    defaults, interval, labels = td.tls, td.interval, td.labels
    d = c.mapping(raw, loc, TARGET_KEYS)
    if not isinstance(raw, dict):
        return None
    host: str | None = None
    port = 0
    address = c.string(d, "address", loc)
    if address is not None:
        if "host" in d or "port" in d:
            c.add(loc, "give either address or host and port, not both")
        try:
            host, port = split_address(address)
        except PortError as exc:
            c.add(join(loc, "port"), str(exc))
        except ValueError as exc:
            c.add(join(loc, "address"), str(exc))
    elif "host" in d or "port" in d:
        host = c.string(d, "host", loc, required=True)
        p = d.get("port")
        if isinstance(p, bool) or not isinstance(p, int):
            c.add(
                join(loc, "port"),
                "is required and must be a number" if p is None else "must be a number",
            )
        elif not 1 <= p <= 65535:
            c.add(join(loc, "port"), f"must be 1-65535, got {p}")
        else:
            port = p
        if host is not None and not is_ip(host) and not is_hostname(host):
            c.add(join(loc, "host"), f"{host!r} is not a valid host name")
            host = None
    else:
        c.add(join(loc, "address"), "is required (host:port)")
    tls = tls_options(c, d, loc, defaults)
    own = c.labels(d.get("labels"), join(loc, "labels"))
    name = c.string(d, "name", loc)
    t_interval = c.duration(d, "interval", loc, interval, MIN_INTERVAL)
    enumerate_ = c.boolean(d, "enumerate", loc, td.enumerate)
    expects = None
    if "expects" in d:
        eloc = join(loc, "expects")
        ed = c.mapping(d["expects"], eloc, ("source", "location"))
        esrc = c.string(ed, "source", eloc, required=True)
        if esrc:
            expects = (esrc, c.string(ed, "location", eloc) or "*")
    e_interval = c.duration(
        d, "enumerate_interval", loc, td.enumerate_interval, MIN_ENUMERATE_INTERVAL
    )
    protocol = _target_protocol(c, d, loc)
    if host is None or not port:
        return None
    if tls.timeout >= t_interval:
        c.add(join(loc, "timeout"), "must be shorter than the interval")
    return Target(
        name=name or join_address(host, port),
        host=host,
        port=port,
        tls=tls,
        interval=t_interval,
        labels=tuple(sorted({**labels, **own}.items())),
        enumerate=enumerate_ and protocol == "tls",  # an SSH probe is its own posture scan
        enumerate_interval=e_interval,
        expects=expects,
        protocol=protocol,
    )


def _pattern(pat: str) -> str:
    if ":" not in pat:
        raise problem("patterns are host:port, e.g. '*.example.com:443'")
    return pat


def _network(cidr: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(cidr.strip())
    except ValueError as exc:
        raise problem(f"is not a network such as 10.0.0.0/8: {exc}") from None


def _modules(v: object) -> object:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise problem("must be a mapping of module names to settings")
    # A module left empty (``mail:``) is the defaults; its name is text whatever YAML made it.
    return {str(k): {} if m is None else m for k, m in v.items()}


class ProbeModel(Section):
    """``probe:``: what ``/probe`` may reach, and its modules (named TLS option sets)."""

    allowed_targets: Annotated[
        tuple[Annotated[str, AfterValidator(_pattern)], ...], string_list()
    ] = ()
    allowed_networks: Annotated[
        tuple[Annotated[IPNetwork, PlainValidator(_network)], ...], string_list()
    ] = ()
    timeout: Annotated[float | None, duration(MIN_TIMEOUT)] = None
    modules: Annotated[dict[str, TLSModel], BeforeValidator(_modules)] = Field(default_factory=dict)
    max_concurrent: Annotated[float | None, number(1, 10000)] = None

    def build(self, defaults: TLSOptions) -> ProbeSettings:
        base = TLSOptions(
            alpn=defaults.alpn,
            ca_file=defaults.ca_file,
            timeout=self.timeout or defaults.timeout,
            revocation=defaults.revocation,
        )
        return ProbeSettings(
            allowed_targets=self.allowed_targets,
            allowed_networks=self.allowed_networks,
            max_concurrent=int(self.max_concurrent or DEFAULT_PROBE_CONCURRENCY),
            modules={name: m.build(base) for name, m in self.modules.items()},
            default=base,
        )


def build_probe(c: Checker, raw: object, defaults: TLSOptions) -> ProbeSettings:
    """The ``probe:`` section; its problems are recorded on ``c``."""
    return validate(c, ProbeModel, raw, "probe").build(defaults)


def _target_protocol(c: Checker, d: Mapping[str, Any], loc: str) -> str:
    protocol = c.string(d, "protocol", loc) or "tls"
    if protocol not in TARGET_PROTOCOLS:
        c.add(join(loc, "protocol"), f"must be one of {', '.join(TARGET_PROTOCOLS)}")
        return "tls"
    if protocol == "ssh":
        for key in TLS_ONLY_KEYS:
            if key in d:
                c.add(join(loc, key), "applies to TLS targets only, not to protocol: ssh")
    return protocol
