"""The ``targets:`` entries and the ``probe:`` section (declared) → model types."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator
from pydantic_core import PydanticCustomError

from ..net import PortError, is_hostname, is_ip, join_address, split_address
from ..tls.options import TLSOptions
from .checker import Checker, join, type_name
from .fields import (
    Flag,
    Labels,
    RequiredText,
    Section,
    Text,
    duration,
    number,
    one_of,
    problem,
    required_text,
    string_list,
    text,
    validate,
)
from .model import (
    DEFAULT_PROBE_CONCURRENCY,
    MIN_ENUMERATE_INTERVAL,
    MIN_INTERVAL,
    MIN_TIMEOUT,
    TARGET_PROTOCOLS,
    ProbeSettings,
    Target,
)
from .schema_tls import TLSModel

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The keys an SSH target must not set: they speak of TLS.
TLS_ONLY_KEYS = ("sni", "starttls", "alpn", "ca_file", "client_cert", "client_key", "expects")


@dataclass(frozen=True)
class TargetDefaults:
    tls: TLSOptions
    interval: float
    labels: dict[str, str]
    enumerate: bool
    enumerate_interval: float


def _endpoint(d: Mapping[str, Any], loc: str) -> tuple[str | None, int, list[tuple[str, str]]]:
    """``address``, or ``host`` and ``port``: the host, the port (0: none) and the problems."""
    out: list[tuple[str, str]] = []
    host: str | None = None
    port = 0
    try:
        address = text(d.get("address"))
    except PydanticCustomError as exc:
        out.append((join(loc, "address"), exc.message()))
        address = None
    if address is not None:
        if "host" in d or "port" in d:
            out.append((loc, "give either address or host and port, not both"))
        try:
            host, port = split_address(address)
        except PortError as exc:
            out.append((join(loc, "port"), str(exc)))
        except ValueError as exc:
            out.append((join(loc, "address"), str(exc)))
    elif "host" in d or "port" in d:
        try:
            host = required_text(d.get("host"))
        except PydanticCustomError as exc:
            out.append((join(loc, "host"), exc.message()))
        p = d.get("port")
        if isinstance(p, bool) or not isinstance(p, int):
            why = "is required and must be a number" if p is None else "must be a number"
            out.append((join(loc, "port"), why))
        elif not 1 <= p <= 65535:
            out.append((join(loc, "port"), f"must be 1-65535, got {p}"))
        else:
            port = p
        if host is not None and not is_ip(host) and not is_hostname(host):
            out.append((join(loc, "host"), f"{host!r} is not a valid host name"))
            host = None
    else:
        out.append((join(loc, "address"), "is required (host:port)"))
    return host, port, out


def _expects(v: object) -> object:
    return {} if v is None else v


class _Endpoint(Section):
    # Read together by _endpoint (either an address or a host and a port); declared here so
    # that they are known keys, and first, so that their problems are listed first.
    address: Any = None
    host: Any = None
    port: Any = None


class ExpectsModel(Section):
    """A target's ``expects:``: the source whose store should hold the certificate it serves."""

    source: RequiredText
    location: Text = None


class TargetModel(TLSModel, _Endpoint):
    """One ``targets:`` entry: an endpoint, its TLS options (:class:`TLSModel`) and schedule."""

    labels: Labels = Field(default_factory=dict)
    name: Text = None
    interval: Annotated[float | None, duration(MIN_INTERVAL)] = None
    enumerate: Flag = None
    expects: Annotated[ExpectsModel | None, BeforeValidator(_expects)] = None
    enumerate_interval: Annotated[float | None, duration(MIN_ENUMERATE_INTERVAL)] = None
    protocol: Annotated[
        str | None, one_of(TARGET_PROTOCOLS, f"must be one of {', '.join(TARGET_PROTOCOLS)}")
    ] = None


def build_target(c: Checker, raw: object, loc: str, td: TargetDefaults) -> Target | None:
    """One target; None when it names no usable endpoint (its problems are recorded)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        c.add(loc, f"must be a mapping, got {type_name(raw)}")
        return None
    host, port, first = _endpoint(raw, loc)
    unknown = any(k not in TargetModel.model_fields for k in raw)
    clean = not first and not unknown
    m = validate(c, TargetModel, raw, loc, first, clean=clean)
    protocol = m.protocol or "tls"
    if protocol == "ssh":
        for key in TLS_ONLY_KEYS:
            if key in raw:
                c.add(join(loc, key), "applies to TLS targets only, not to protocol: ssh")
    if host is None or not port:
        return None
    tls = m.build(td.tls)
    interval = m.interval or td.interval
    if tls.timeout >= interval:
        c.add(join(loc, "timeout"), "must be shorter than the interval")
    enumerate_ = td.enumerate if m.enumerate is None else m.enumerate
    return Target(
        name=m.name or join_address(host, port),
        host=host,
        port=port,
        tls=tls,
        interval=interval,
        labels=tuple(sorted({**td.labels, **m.labels}.items())),
        enumerate=enumerate_ and protocol == "tls",  # an SSH probe is its own posture scan
        enumerate_interval=m.enumerate_interval or td.enumerate_interval,
        expects=(m.expects.source, m.expects.location or "*") if m.expects else None,
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
