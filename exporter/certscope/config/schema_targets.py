"""The ``targets:`` entries, their TLS options and the ``probe:`` section → model types."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..net import PortError, is_hostname, is_ip, join_address, split_address
from ..tls.options import MAX_HANDSHAKE_BYTES_RANGE, RevocationOptions, TLSOptions
from .checker import Checker, join
from .keys import PROBE_KEYS, TARGET_KEYS, TLS_KEYS, TLS_ONLY_KEYS
from .model import (
    DEFAULT_PROBE_CONCURRENCY,
    MIN_ENUMERATE_INTERVAL,
    MIN_INTERVAL,
    MIN_TIMEOUT,
    STARTTLS_PROTOCOLS,
    TARGET_PROTOCOLS,
    ProbeSettings,
    Target,
)


def _tls_options(c: Checker, d: Mapping[str, Any], loc: str, base: TLSOptions) -> TLSOptions:
    sni = c.string(d, "sni", loc)
    if sni is not None and not is_hostname(sni):
        c.add(join(loc, "sni"), f"{sni!r} is not a valid host name")
    starttls = c.string(d, "starttls", loc)
    if starttls is not None and starttls not in STARTTLS_PROTOCOLS:
        c.add(join(loc, "starttls"), f"must be one of {', '.join(STARTTLS_PROTOCOLS)}")
        starttls = None
    alpn = c.strings(d, "alpn", loc) if "alpn" in d else base.alpn
    ca_file = c.readable_file(c.string(d, "ca_file", loc), join(loc, "ca_file"), pem_certs=True)
    cert = c.readable_file(c.string(d, "client_cert", loc), join(loc, "client_cert"))
    key = c.readable_file(c.string(d, "client_key", loc), join(loc, "client_key"))
    if (cert is None) != (key is None) and not c.problems_at(loc):
        c.add(loc, "client_cert and client_key must be given together")
    return TLSOptions(
        sni=sni,
        starttls=starttls,
        alpn=alpn,
        ca_file=ca_file if "ca_file" in d else base.ca_file,
        client_cert=cert,
        client_key=key,
        timeout=c.duration(d, "timeout", loc, base.timeout, MIN_TIMEOUT),
        max_handshake_bytes=max_handshake_bytes(c, d, loc, base.max_handshake_bytes),
        revocation=revocation_options(c, d, loc, base.revocation),
    )


def revocation_options(
    c: Checker, d: Mapping[str, Any], loc: str, base: RevocationOptions
) -> RevocationOptions:
    """``revocation: false`` (no fetching), or a mapping of the RevocationOptions fields."""
    if "revocation" not in d:
        return base
    raw, rloc = d["revocation"], join(loc, "revocation")
    if isinstance(raw, bool):
        return RevocationOptions(ocsp=raw, crl=raw, timeout=base.timeout)
    rd = c.mapping(raw, rloc, ("ocsp", "crl", "timeout", "max_crl_bytes"))
    return RevocationOptions(
        ocsp=c.boolean(rd, "ocsp", rloc, base.ocsp),
        crl=c.boolean(rd, "crl", rloc, base.crl),
        timeout=c.duration(rd, "timeout", rloc, base.timeout, MIN_TIMEOUT),
        max_crl_bytes=int(c.number(rd, "max_crl_bytes", rloc, base.max_crl_bytes, 1024, 2**30)),
    )


def max_handshake_bytes(c: Checker, d: Mapping[str, Any], loc: str, default: int) -> int:
    low, high = MAX_HANDSHAKE_BYTES_RANGE
    return int(c.number(d, "max_handshake_bytes", loc, default, low, high))


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
    tls = _tls_options(c, d, loc, defaults)
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


def build_probe(c: Checker, raw: object, defaults: TLSOptions) -> ProbeSettings:
    d = c.mapping(raw, "probe", PROBE_KEYS)
    patterns = c.strings(d, "allowed_targets", "probe")
    for i, pat in enumerate(patterns):
        if ":" not in pat:
            c.add(f"probe.allowed_targets[{i}]", "patterns are host:port, e.g. '*.example.com:443'")
    networks = []
    for i, cidr in enumerate(c.strings(d, "allowed_networks", "probe")):
        try:
            networks.append(ipaddress.ip_network(cidr.strip()))
        except ValueError as exc:
            c.add(f"probe.allowed_networks[{i}]", f"is not a network such as 10.0.0.0/8: {exc}")
    base = TLSOptions(
        alpn=defaults.alpn,
        ca_file=defaults.ca_file,
        timeout=c.duration(d, "timeout", "probe", defaults.timeout, MIN_TIMEOUT),
        revocation=defaults.revocation,
    )
    modules: dict[str, TLSOptions] = {}
    raw_modules = d.get("modules") or {}
    if not isinstance(raw_modules, dict):
        c.add("probe.modules", "must be a mapping of module names to settings")
        raw_modules = {}
    for mname, mraw in raw_modules.items():
        mloc = f"probe.modules.{mname}"
        md = c.mapping(mraw, mloc, TLS_KEYS)
        modules[str(mname)] = _tls_options(c, md, mloc, base)
    return ProbeSettings(
        allowed_targets=patterns,
        allowed_networks=tuple(networks),
        max_concurrent=int(
            c.number(d, "max_concurrent", "probe", DEFAULT_PROBE_CONCURRENCY, 1, 10000)
        ),
        modules=modules,
        default=base,
    )


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
