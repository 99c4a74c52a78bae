"""Command-line entry points: ``serve``, ``check-config`` and ``scan``.

Exit codes: 0 success; 1 a config error, or (``scan``) a target that could not be probed;
2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from . import __version__
from .config import (
    DEFAULT_TIMEOUT,
    STARTTLS_PROTOCOLS,
    Config,
    Policy,
    Target,
    TLSOptions,
    default_config,
    load_config,
    parse_duration,
)
from .errors import ConfigError, UsageError
from .evidence import cli as evidence_cli
from .net import split_address
from .policy import Assessment, assess_endpoint, findings_json
from .posture import PostureScan
from .probe import probe
from .results import ProbeResult, SourceResult, SSHProbeResult
from .scheduler import enumerate_target
from .sharding import Shard, apply_shard, parse_shard
from .tls.suites import PROTOCOLS
from .web.guard import HEADER_TIMEOUT, QuietBadRequests
from .web.webconfig import Guard, RotatingContext, WebConfig, load_web_config

DEFAULT_LISTEN = "0.0.0.0:9793"
log = logging.getLogger("certscope")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="certscope",
        description="Prometheus exporter for TLS endpoints and certificate stores.",
    )
    p.add_argument("--version", action="version", version=f"certscope {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the exporter")
    s.add_argument("--config.file", dest="config_file", help="YAML config (default: embedded)")
    s.add_argument("--web.listen-address", dest="listen", default=DEFAULT_LISTEN, help="HOST:PORT")
    s.add_argument(
        "--shard",
        default=os.environ.get("CERTSCOPE_SHARD"),
        help="INDEX/COUNT (or auto/COUNT, the index from the host name's trailing number): "
        "serve only this shard's targets and Secrets (default: $CERTSCOPE_SHARD, else all)",
    )
    s.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="enable POST /-/reload (off by default, as in Prometheus); SIGHUP always reloads",
    )
    s.add_argument(
        "--web.config.file",
        dest="web_config_file",
        help="exporter-toolkit web config: TLS, client certificates, basic auth, headers",
    )
    s.add_argument(
        "--web.read-header-timeout",
        dest="read_header_timeout",
        default=f"{int(HEADER_TIMEOUT)}s",
        help="close a connection whose request headers are not complete in this time, and "
        "idle keep-alive connections after it (default: %(default)s)",
    )
    s.add_argument(
        "--log.level",
        dest="log_level",
        default="info",
        choices=["debug", "info", "warning", "error"],
    )

    c = sub.add_parser("check-config", help="validate a config file and exit")
    c.add_argument("file")

    sc = sub.add_parser("scan", help="probe endpoints once and print what they present")
    sc.add_argument(
        "targets",
        nargs="+",
        metavar="TARGET",
        help="host[:port] (443 by default), or ssh://host[:port] for an SSH server (22)",
    )
    sc.add_argument("--format", choices=["table", "json"], default="table")
    sc.add_argument("--sni", help="server name to send (default: the host)")
    sc.add_argument("--ca-file", help="CA bundle to verify against (default: system store)")
    sc.add_argument("--starttls", choices=STARTTLS_PROTOCOLS)
    sc.add_argument("--alpn", action="append", default=[], help="ALPN protocol (repeatable)")
    sc.add_argument("--client-cert", help="client certificate (PEM) for mTLS")
    sc.add_argument("--client-key", help="client private key (PEM) for mTLS")
    sc.add_argument("--timeout", default=f"{int(DEFAULT_TIMEOUT)}s", help="per-target timeout")
    sc.add_argument(
        "--enumerate",
        action="store_true",
        help="also enumerate accepted protocols, cipher suites and groups, grade and findings",
    )
    sc.add_argument("--config.file", dest="config_file", help="take the policy from this config")
    inv = sub.add_parser("inventory", help="probe and read every store once; print the inventory")
    inv.add_argument("--config.file", dest="config_file", help="YAML config (default: embedded)")
    inv.add_argument("--format", choices=["csv", "json"], default="csv")
    inv.add_argument(
        "--accept-item-errors",
        action="store_true",
        help="exit 0 even when items (files, entries, Secrets) could not be read",
    )
    evidence_cli.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "evidence":
            return evidence_cli.run(args)
        if args.command == "check-config":
            return cmd_check_config(args.file)
        if args.command == "scan":
            return cmd_scan(args)
        if args.command == "inventory":
            return cmd_inventory(args)
        return cmd_serve(args)
    except UsageError as exc:
        print(f"certscope: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"certscope: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def cmd_check_config(path: str) -> int:
    config = load_config(path)
    print(f"{path}: OK ({len(config.targets)} targets, {len(config.sources)} sources)")
    return 0


def _loader(path: str | None, shard: Shard | None = None) -> Config:
    config = load_config(path) if path else default_config()
    return apply_shard(config, shard)


def cmd_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)r",
    )
    logging.getLogger("aiohttp.server").addFilter(QuietBadRequests())
    shard = parse_shard(args.shard, socket.gethostname()) if args.shard else None
    config = _loader(args.config_file, shard)
    try:
        host, port = split_address(args.listen)
    except ValueError as exc:
        raise UsageError(f"--web.listen-address {args.listen!r}: {exc}") from None
    try:
        header_timeout = parse_duration(args.read_header_timeout)
    except ValueError as exc:
        raise UsageError(f"--web.read-header-timeout: {exc}") from None
    from .app import make_app, reload_config

    web_config = load_web_config(args.web_config_file) if args.web_config_file else WebConfig()
    guard = Guard(web_config)
    app = make_app(
        config,
        lambda: _loader(args.config_file, shard),
        lifecycle=args.enable_lifecycle,
        middlewares=(guard.middleware,),
    )
    app.on_response_prepare.append(guard.add_headers)

    async def _on_startup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: reload_config(app))

    app.on_startup.append(_on_startup)
    log.info(
        "starting certscope %s on %s%s with %s (%d targets, %d sources%s)",
        __version__,
        args.listen,
        " (TLS)" if web_config.tls else "",
        config.origin,
        len(config.targets),
        len(config.sources),
        f", shard {shard[0]}/{shard[1]}" if shard else "",
    )
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        access_log=None,
        ssl_context=RotatingContext(web_config.tls).listening if web_config.tls else None,
        # aiohttp closes a connection without a complete request after this many seconds
        # (from its start or the last response): the deadline for slow request headers.
        keepalive_timeout=header_timeout,
    )
    return 0


def cmd_inventory(args: argparse.Namespace) -> int:
    from . import inventory
    from .sources import reader_for

    config = _loader(args.config_file)

    from .ssh.probe import probe_target

    async def collect() -> tuple[list[ProbeResult], list[SSHProbeResult], list[SourceResult]]:
        sem = asyncio.Semaphore(config.concurrency)

        async def one(t: Target) -> ProbeResult:
            async with sem:
                return await probe(t)

        async def one_ssh(t: Target) -> SSHProbeResult:
            async with sem:
                return await probe_target(t)

        tls = [t for t in config.targets if t.protocol == "tls"]
        ssh = [t for t in config.targets if t.protocol == "ssh"]
        probes = await asyncio.gather(*(one(t) for t in tls))
        ssh_probes = await asyncio.gather(*(one_ssh(t) for t in ssh))
        stores = await asyncio.gather(*(reader_for(s).refresh(None) for s in config.sources))
        return list(probes), list(ssh_probes), list(stores)

    probes, ssh_probes, stores = asyncio.run(collect())
    for s in stores:
        if not s.up:
            print(f"certscope: source {s.name}: {s.error}", file=sys.stderr)
    item_errors = _print_item_errors(stores)
    items = inventory.rows(probes, stores, datetime.now(UTC), ssh_probes)
    if args.format == "json":
        print(json.dumps(list(items), indent=2))
    else:
        sys.stdout.write(inventory.to_csv(items))
    if not all(s.up for s in stores):
        return 1
    return 1 if item_errors and not args.accept_item_errors else 0


def _print_item_errors(stores: Sequence[SourceResult]) -> int:
    """Every item a source could not read, one line each on stderr; how many."""
    count = 0
    for s in stores:
        for e in sorted(set(s.errors), key=lambda e: (e.location, e.reason)):
            print(
                f"certscope: source {s.name}: {e.location}: {e.reason}: {e.message}",
                file=sys.stderr,
            )
            count += 1
    return count


def parse_scan_target(text: str) -> tuple[str, int]:
    text = text.strip()
    if "://" in text:
        parts = urlsplit(text)
        if not parts.hostname:
            raise UsageError(f"cannot read a host name from {text!r}")
        return parts.hostname, parts.port or 443
    try:
        return split_address(text)
    except ValueError:
        pass
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return split_address(f"[{text}]:443" if ":" in text else f"{text}:443")
    except ValueError as exc:
        raise UsageError(f"bad target {text!r}: {exc}") from None


def cmd_scan(args: argparse.Namespace) -> int:
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        raise UsageError(f"--timeout: {exc}") from None
    ssh_targets = [t for t in args.targets if t.strip().lower().startswith("ssh://")]
    if ssh_targets:
        return _cmd_scan_ssh(args, ssh_targets, timeout)
    if bool(args.client_cert) != bool(args.client_key):
        raise UsageError("--client-cert and --client-key go together")
    for flag, path in (
        ("--ca-file", args.ca_file),
        ("--client-cert", args.client_cert),
        ("--client-key", args.client_key),
    ):
        if path and not os.access(path, os.R_OK):
            raise UsageError(f"{flag}: cannot read {path}")
    tls = TLSOptions(
        sni=args.sni,
        starttls=args.starttls,
        alpn=tuple(args.alpn),
        ca_file=args.ca_file,
        client_cert=args.client_cert,
        client_key=args.client_key,
        timeout=timeout,
    )
    targets = []
    for raw in args.targets:
        host, port = parse_scan_target(raw)
        targets.append(Target(name=raw, host=host, port=port, tls=tls, interval=timeout * 2))
    policy = load_config(args.config_file).policy if args.config_file else Policy()
    results = asyncio.run(_scan_all(targets, args.enumerate))
    now = datetime.now(UTC)
    assessed = [
        (r, scan, _assess(t, r, scan, policy, now))
        for t, (r, scan) in zip(targets, results, strict=True)
    ]
    if args.format == "json":
        out = []
        for r, scan, a in assessed:
            obj = scan_json(r, now)
            if args.enumerate:
                obj["posture"] = posture_json(scan, a)
            out.append(obj)
        print(json.dumps(out, indent=2))
    else:
        print(
            scan_table([(r, scan if args.enumerate else None, a) for r, scan, a in assessed], now)
        )
    return 0 if all(r.success for r, _ in results) else 1


def _assess(
    t: Target, r: ProbeResult, scan: PostureScan | None, policy: Policy, now: datetime
) -> Assessment:
    stapled = r.revocation.stapled if r.revocation is not None else None
    return assess_endpoint(
        (t.name, t.address), r.facts, r.verdict, scan, policy, now, stapled=stapled
    )


def _cmd_scan_ssh(args: argparse.Namespace, ssh_targets: list[str], timeout: float) -> int:
    from .ssh import report

    if len(ssh_targets) != len(args.targets):
        raise UsageError("scan ssh:// targets and TLS targets in separate runs")
    policy = load_config(args.config_file).policy if args.config_file else Policy()
    results = report.scan_ssh(ssh_targets, timeout, policy)
    if args.format == "json":
        print(json.dumps([report.ssh_json(r, a) for r, a in results], indent=2))
    else:
        print(report.ssh_table(results), end="")
    return 0 if all(r.success for r, _ in results) else 1


async def _scan_all(
    targets: list[Target], enumerate_too: bool
) -> list[tuple[ProbeResult, PostureScan | None]]:
    sem = asyncio.Semaphore(32)

    async def one(t: Target) -> tuple[ProbeResult, PostureScan | None]:
        async with sem:
            if not enumerate_too:
                return await probe(t), None
            # The certificate needs one full handshake; the enumeration only hellos. Both run
            # at once so the wall time is the longer of the two.
            result, scan = await asyncio.gather(probe(t), enumerate_target(t))
            return result, scan

    return list(await asyncio.gather(*(one(t) for t in targets)))


def posture_json(scan: PostureScan | None, a: Assessment) -> dict[str, Any] | None:
    if scan is None:
        return None
    return {
        "complete": scan.complete,
        "error": scan.error or None,
        "protocols": {p: scan.supported(p) for p in PROTOCOLS},
        "cipher_suites": {
            p: [
                {"code": s.code_hex, "name": s.name, "class": str(s.cls)}
                for s in scan.suites_for(p)
            ]
            for p, _ in scan.suites
        },
        "server_cipher_order": any(enforced for _, enforced in scan.server_order),
        "server_cipher_order_by_protocol": dict(scan.server_order),
        "groups": list(scan.groups),
        "dhe_groups": [
            {
                "protocol": g.protocol,
                "cipher": g.suite_name,
                "group": g.name,
                "bits": g.bits,
                "problem": g.problem or None,
            }
            for g in scan.dhe_groups
        ],
        "grade": a.grade.grade if a.grade else None,
        "grade_if_trusted": a.grade.grade_if_trusted if a.grade else None,
        "score": a.grade.score if a.grade else None,
        "grade_caps": list(a.grade.caps) if a.grade else [],
        "mozilla": {name: ok for name, ok, _ in a.mozilla},
        "mozilla_reasons": {name: list(why) for name, _, why in a.mozilla if why},
        **findings_json(a),
        "connections": scan.connections,
        "duration_seconds": round(scan.duration, 3),
    }


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def scan_json(r: ProbeResult, now: datetime) -> dict[str, Any]:
    err = r.outcome.error
    neg = r.outcome.negotiated
    v = r.verdict
    return {
        "target": r.name,
        "address": r.address,
        "peer_address": r.outcome.peer_address or None,
        "ok": r.success,
        "error": (
            {"reason": str(err.reason), "message": err.message, "alert": err.alert or None}
            if err
            else None
        ),
        "tls": (
            {
                "version": neg.version,
                "cipher": neg.cipher,
                "group": neg.group or None,
                "alpn": neg.alpn or None,
            }
            if neg
            else None
        ),
        "client_cert_required": r.outcome.client_cert_required,
        "verification": (
            {
                "verified": v.verified,
                "chain_trusted": v.chain_trusted,
                "hostname_match": v.hostname_match,
                "errors": [str(e) for e in v.errors],
            }
            if v
            else None
        ),
        "revocation": _revocation_json(r),
        "chain_truncated": r.outcome.chain_truncated,
        "chain_length": r.outcome.presented,
        "captured_by": r.outcome.captured_by if r.outcome.chain else None,
        "certificates": [
            {
                "subject": f.subject,
                "subject_cn": f.subject_cn,
                "issuer": f.issuer,
                "issuer_cn": f.issuer_cn,
                "serial": f.serial,
                "not_before": _iso(f.not_before),
                "not_after": _iso(f.not_after),
                "days_left": round(d, 2) if (d := f.days_left(now)) is not None else None,
                "sans": list(f.sans),
                "key_algorithm": f.key_algorithm,
                "key_bits": f.key_bits,
                "key_curve": f.key_curve or None,
                "signature_algorithm": f.signature_algorithm,
                "signature_hash": f.signature_hash or None,
                "is_ca": f.is_ca,
                "self_signed": f.self_signed,
                "fingerprint_sha256": f.fingerprint_sha256,
                "ocsp_urls": list(f.ocsp_urls),
                "crl_urls": list(f.crl_urls),
                "sct_log_ids": list(f.sct_log_ids),
                "must_staple": f.must_staple,
                "parse_errors": list(f.parse_errors),
            }
            for f in r.facts
        ],
        "duration_seconds": round(r.duration, 4),
    }


def _revocation_json(r: ProbeResult) -> dict[str, Any] | None:
    rev = r.revocation
    if rev is None:
        return None
    return {
        "revoked": rev.revoked,
        "ocsp_stapled": rev.stapled,
        "must_staple": rev.must_staple,
        "staple_next_update": _iso(datetime.fromtimestamp(rev.staple_next_update, UTC))
        if rev.staple_next_update is not None
        else None,
        "checks": [
            {
                "method": str(c.method),
                "status": str(c.status),
                "detail": c.detail,
                "source": c.source or None,
            }
            for c in rev.checks
        ],
    }


def scan_table(
    results: list[tuple[ProbeResult, PostureScan | None, Assessment]], now: datetime
) -> str:
    out: list[str] = []
    for r, scan, a in results:
        err = r.outcome.error
        neg = r.outcome.negotiated
        status = "OK" if r.success else f"FAILED {err.reason if err else 'no_certificate'}"
        out.append(f"{r.name}  [{status}]  {r.outcome.peer_address}")
        if err:
            out.append(f"  error:    {err.message}")
        if neg:
            group = f"  group {neg.group}" if neg.group else ""
            out.append(f"  tls:      {neg.version}  {neg.cipher}{group}")
        if r.outcome.client_cert_required:
            out.append("  note:     server requires a client certificate")
        if r.verdict:
            verdict = "trusted" if r.verdict.verified else ", ".join(r.verdict.errors)
            out.append(f"  verify:   {verdict}")
        for i, f in enumerate(r.facts):
            days = f.days_left(now)
            subject = f.subject_cn or f.subject or "?"
            out.append(f"  [{i}] {subject}  issuer {f.issuer_cn or f.issuer or '?'}")
            out.append(
                f"      not after {_iso(f.not_after)} ({days:.1f} days)  {f.key_algorithm} "
                f"{f.key_bits}  {f.signature_algorithm}/{f.signature_hash}  serial {f.serial}"
                if days is not None
                else f"      unparsed: {'; '.join(f.parse_errors)}"
            )
            if f.sans and i == 0:
                out.append(
                    f"      SANs: {', '.join(f.sans[:10])}" + (" …" if len(f.sans) > 10 else "")
                )
        if scan is not None:
            out.extend(_posture_lines(scan, a))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _posture_lines(scan: PostureScan, a: Assessment) -> list[str]:
    lines = []
    state = "" if scan.complete else f"  (incomplete: {scan.error})"
    protocols = " ".join(
        f"{p}{'+' if scan.supported(p) else '-' if scan.supported(p) is False else '?'}"
        for p in PROTOCOLS
    )
    lines.append(f"  protocols: {protocols}{state}")
    for p, _ in scan.suites:
        order = " (server order)" if scan.enforces_order(p) else ""
        lines.append(f"  {p}{order}:")
        for s in scan.suites_for(p):
            lines.append(f"      {s.code_hex} {s.name:<50} {s.cls}")
    if scan.groups:
        lines.append(f"  groups:   {', '.join(scan.groups)}")
    if a.grade:
        extra = (
            f" (if trusted: {a.grade.grade_if_trusted})"
            if a.grade.grade != a.grade.grade_if_trusted
            else ""
        )
        lines.append(f"  grade:    {a.grade.grade}{extra}  score {a.grade.score}")
    if a.mozilla:
        lines.append(
            "  mozilla:  " + ", ".join(f"{n} {'yes' if ok else 'no'}" for n, ok, _ in a.mozilla)
        )
    for f in a.active:
        lines.append(f"  finding:  {f.rule} [{f.severity}, {f.control}] {f.detail}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
