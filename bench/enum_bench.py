"""Enumeration benchmark: certscope's ``enumerate_posture`` against sslyze and sslscan.

    .venv/bin/python bench/enum_bench.py [--endpoints N] [--quick] [--parallel P]

What it does, all on loopback (127.0.0.1):

1. starts a fleet of N OpenSSL TLS endpoints (plus one warm-up endpoint) in a separate
   process (this file with ``--role fleet``), so its CPU is charged to no tool. Each endpoint
   is a Python ``ssl`` server on blocking sockets, one thread per connection: OpenSSL does
   the whole handshake and sends its own alerts, as nginx or any OpenSSL server would.
   Endpoints cycle through four configurations (:data:`PROFILES`): Python's defaults with an
   RSA or an ECDSA certificate, OpenSSL's ``DEFAULT`` list in client order with DHE and one
   curve, and a legacy TLS 1.0-1.3 server with ``ALL:@SECLEVEL=0`` and RSA, ECDSA and DSA
   certificates. Certificates come from ``bench/fleet.py``'s ``write_pki`` (DSA: self-signed).
   The fleet counts accepted connections and completed handshakes per port, so each tool's
   connections per endpoint are reported too;
2. certscope: a subprocess (this file with ``--role certscope``, the project's interpreter)
   scans the warm-up endpoint, then every endpoint one after the other, then all of them
   again with ``--parallel`` scans at a time (each scan with ``--max-connections``). CPU is
   ``resource.getrusage(RUSAGE_SELF)`` inside that process around each phase (start-up and
   imports excluded), wall time ``perf_counter``;
3. sslyze, from its own virtualenv (``bench/.sslyze-venv``, created with ``pip install`` if
   missing: sslyze pins its own ``cryptography``): one process per fleet configuration with
   all its endpoints as targets (sslyze scans 10 servers at a time, 5 connections each),
   restricted to ``--sslv2 --sslv3 --tlsv1 --tlsv1_1 --tlsv1_2 --tlsv1_3 --elliptic_curves``
   with ``--mozilla_config=disable``. CPU is the process's rusage from ``os.wait4`` (all its
   threads); its start-up (``python -m sslyze --help``) is measured apart and subtracted for
   the per-endpoint figure. One process per endpoint is also run for one endpoint of each
   configuration;
4. sslscan: ``sslscan --no-colour --xml=FILE`` per endpoint, one after the other, with the
   checks that are not enumeration switched off (``--no-compression --no-fallback
   --no-heartbleed --no-renegotiation --no-check-certificate``); CPU from ``os.wait4``.

Then it compares, per endpoint and protocol, the suites certscope accepted with sslyze's and
sslscan's (by code: sslscan's ``id``, sslyze's IANA name through
``certscope.tls.suites.by_name``, its OpenSSL name as a fallback), protocol support, the
groups (within the groups both tools test), and certscope's server order against sslscan's
listing order, and prints every mismatch. A suite certscope found that sslyze never offered
(sslyze lists every suite it tried, accepted or rejected), or a group the other tool found
that certscope never offers, is listed apart as "not tested", not as a mismatch.

Prints a summary table and writes JSON to ``bench/results/enum-bench-<UTC time>.json``
(gitignored). The exit status is 1 when a phase failed or a tool disagreed with certscope.
Every process it starts is its own and is stopped by PID on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from enum_fleet import PROFILE_DOC, PROFILES, Fleet, per_port_delta, run_fleet, start_fleet
from enum_report import (
    View,
    certscope_view,
    compare,
    print_report,
    ratios,
    sslscan_view,
    sslyze_view,
)
from enum_tools import (
    HOST,
    ROOT,
    SSLSCAN_FLAGS,
    SSLYZE_FLAGS,
    SSLYZE_SPEC,
    SSLYZE_VENV,
    Processes,
    Run,
    ensure_sslyze,
    machine_info,
    nassl_openssl,
    run_certscope,
    run_certscope_worker,
    sslscan_version,
    sslyze_argv,
    sslyze_python,
)

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


@dataclass
class _Run:
    """One benchmark run: its processes, fleet and arguments, and what it has found so far."""

    procs: Processes
    fleet: Fleet
    args: argparse.Namespace
    n: int
    workdir: Path
    report: dict[str, Any]
    by_profile: dict[str, list[int]]
    summary: list[dict[str, Any]] = field(default_factory=list)
    mismatches: list[dict[str, Any]] = field(default_factory=list)


def _certscope(ctx: _Run) -> list[dict[str, Any]]:
    """certscope's two passes; its sequential rows."""
    print(
        f"[certscope] sequential, then {ctx.args.parallel} scans at a time "
        f"(max_connections={ctx.args.max_connections}) ...",
        flush=True,
    )
    before = ctx.fleet.counts()
    cs, cs_run = run_certscope(ctx.procs, ctx.fleet, ctx.args)
    after = ctx.fleet.counts()
    seq, par = cs["sequential"], cs["parallel"]
    conns = per_port_delta(before, after, list(range(ctx.n)))
    cs_rows: list[dict[str, Any]] = seq["endpoints"]
    ctx.report["tools"]["certscope"] = {
        "process_cpu_s_including_startup": cs_run.cpu_s,
        "process_wall_s": cs_run.wall_s,
        "fleet_counts_per_endpoint_both_passes": conns,
        **cs,
    }
    incomplete = [r["port"] for r in cs_rows + par["endpoints"] if not r["complete"]]
    ctx.summary.append(
        {
            "tool": "certscope",
            "mode": "sequential, 1 endpoint at a time",
            "cpu_per_endpoint": seq["cpu_s"] / ctx.n,
            "wall_per_endpoint": seq["wall_s"] / ctx.n,
            "connections": statistics.fmean(r["connections"] for r in cs_rows),
            "failures": sum(1 for r in cs_rows if not r["complete"]),
        }
    )
    ctx.summary.append(
        {
            "tool": "certscope",
            "mode": f"{ctx.args.parallel} endpoints at a time",
            "cpu_per_endpoint": par["cpu_s"] / ctx.n,
            "wall_per_endpoint": par["wall_s"] / ctx.n,
            "connections": statistics.fmean(r["connections"] for r in par["endpoints"]),
            "failures": sum(1 for r in par["endpoints"] if not r["complete"]),
        }
    )
    if incomplete:
        ctx.report["errors"].append(f"certscope: incomplete scans on ports {incomplete}")
    # The two certscope passes must agree with each other.
    par_by_port = {r["port"]: r for r in par["endpoints"]}
    for i, row in enumerate(cs_rows):
        other = certscope_view(par_by_port[row["port"]])
        for d in compare(
            certscope_view(row),
            other,
            "certscope_parallel",
            row["port"],
            ctx.fleet.profiles[i],
            order=None,
        ):
            ctx.mismatches.append(d)

    return cs_rows


def _sslyze(ctx: _Run) -> dict[int, dict[str, Any]]:
    """sslyze, one process per fleet configuration, then one per endpoint for one of each."""
    sslyze_rows: dict[int, dict[str, Any]] = {}
    if "sslyze" in ctx.args.skip:
        print("[sslyze] skipped")
        return sslyze_rows
    version, err = ensure_sslyze(ctx.args.sslyze_spec)
    if version is None:
        ctx.report["errors"].append(f"sslyze: {err}")
        print(f"[sslyze] NOT AVAILABLE: {err}", flush=True)
        return sslyze_rows
    info: dict[str, Any] = {
        "version": version,
        "nassl_openssl": nassl_openssl(),
        "venv": str(SSLYZE_VENV.relative_to(ROOT)),
        "flags": list(SSLYZE_FLAGS),
    }
    startups = [
        ctx.procs.run([str(sslyze_python()), "-m", "sslyze", "--help"], 120) for _ in range(3)
    ]
    startup_cpu = statistics.median(r.cpu_s for r in startups)
    startup_wall = statistics.median(r.wall_s for r in startups)
    info["startup"] = {"cpu_s": startup_cpu, "wall_s": startup_wall}
    print(
        f"[sslyze] {version}: start-up {startup_cpu:.2f} s CPU; one process per "
        "fleet configuration ...",
        flush=True,
    )
    before = ctx.fleet.counts()
    batches = _sslyze_batches(ctx, sslyze_rows)
    after = ctx.fleet.counts()
    info["batches"] = batches
    info["fleet_counts_per_endpoint"] = per_port_delta(before, after, list(range(ctx.n)))
    cpu = sum(b["cpu_s"] for b in batches)
    wall = sum(b["wall_s"] for b in batches)
    info["cpu_s"], info["wall_s"] = cpu, wall
    ctx.summary.append(
        {
            "tool": "sslyze",
            "mode": "1 process per configuration, 10 servers at a time, start-up excluded",
            "cpu_per_endpoint": (cpu - startup_cpu * len(batches)) / ctx.n,
            "wall_per_endpoint": (wall - startup_wall * len(batches)) / ctx.n,
            "connections": info["fleet_counts_per_endpoint"]["accepted"],
            "failures": ctx.n - sum(1 for p in ctx.fleet.ports if p in sslyze_rows),
        }
    )
    ctx.summary.append(
        {
            "tool": "sslyze",
            "mode": "the same, start-up included",
            "cpu_per_endpoint": cpu / ctx.n,
            "wall_per_endpoint": wall / ctx.n,
            "connections": None,
            "failures": None,
        }
    )
    info["one_process_per_endpoint"] = _sslyze_singles(ctx)
    ctx.report["tools"]["sslyze"] = info
    return sslyze_rows


def _sslyze_batches(ctx: _Run, sslyze_rows: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """One sslyze process per fleet configuration; each server's scan result goes into
    ``sslyze_rows`` by port, and each process's cost into the list returned."""
    batches: list[dict[str, Any]] = []
    for profile, ix in ctx.by_profile.items():
        json_out = ctx.workdir / f"sslyze-{profile}.json"
        run = ctx.procs.run(sslyze_argv([ctx.fleet.ports[i] for i in ix], json_out), 3600)
        batch = {
            "profile": profile,
            "endpoints": len(ix),
            "cpu_s": run.cpu_s,
            "wall_s": run.wall_s,
            "returncode": run.returncode,
        }
        batches.append(batch)
        print(
            f"  {profile:16} {len(ix):3} endpoints  CPU {run.cpu_s:7.2f} s  "
            f"wall {run.wall_s:7.2f} s",
            flush=True,
        )
        if run.returncode != 0 or not json_out.exists():
            ctx.report["errors"].append(
                f"sslyze {profile}: exit {run.returncode}: {run.stderr[-2000:]!r}"
            )
            continue
        doc = json.loads(json_out.read_text())
        for server in doc["server_scan_results"]:
            sslyze_rows[int(server["server_location"]["port"])] = server
    return batches


def _sslyze_singles(ctx: _Run) -> list[dict[str, Any]]:
    """One sslyze process per endpoint, for one endpoint of each configuration (start-up
    included), summarised as a row of its own."""
    singles: list[dict[str, Any]] = []
    for profile, ix in ctx.by_profile.items():
        port = ctx.fleet.ports[ix[0]]
        run = ctx.procs.run(sslyze_argv([port], ctx.workdir / f"sslyze-1-{port}.json"), 600)
        singles.append({"profile": profile, "port": port, "cpu_s": run.cpu_s, "wall_s": run.wall_s})
    ctx.summary.append(
        {
            "tool": "sslyze",
            "mode": f"1 process per endpoint ({len(singles)} endpoints, 1 per "
            "configuration), start-up included",
            "cpu_per_endpoint": statistics.fmean(s["cpu_s"] for s in singles),
            "wall_per_endpoint": statistics.fmean(s["wall_s"] for s in singles),
            "connections": None,
            "failures": None,
        }
    )
    return singles


def _sslscan(ctx: _Run, candidates: set[str]) -> dict[int, tuple[View, Run]]:
    """sslscan, one endpoint at a time."""
    sslscan_rows: dict[int, tuple[View, Run]] = {}
    binary = shutil.which(ctx.args.sslscan) or (
        ctx.args.sslscan if Path(ctx.args.sslscan).exists() else None
    )
    if "sslscan" in ctx.args.skip:
        print("[sslscan] skipped")
    elif binary is None:
        ctx.report["errors"].append(f"sslscan: {ctx.args.sslscan} not found")
        print(f"[sslscan] NOT FOUND: {ctx.args.sslscan}")
    else:
        version = sslscan_version(binary)
        print(f"[sslscan] {version}: one endpoint at a time ...", flush=True)
        before = ctx.fleet.counts()
        per: list[dict[str, Any]] = []
        for i, port in enumerate(ctx.fleet.ports):
            xml = ctx.workdir / f"sslscan-{port}.xml"
            run = ctx.procs.run(
                [binary, *SSLSCAN_FLAGS, f"--xml={xml}", f"{HOST}:{port}"], timeout=600
            )
            view = sslscan_view(xml, candidates)
            if run.returncode != 0:
                view.error += f" exit {run.returncode}"
            sslscan_rows[port] = (view, run)
            per.append(
                {
                    "port": port,
                    "profile": ctx.fleet.profiles[i],
                    "cpu_s": run.cpu_s,
                    "wall_s": run.wall_s,
                    "returncode": run.returncode,
                }
            )
        after = ctx.fleet.counts()
        counts = per_port_delta(before, after, list(range(ctx.n)))
        ctx.report["tools"]["sslscan"] = {
            "version": version,
            "flags": list(SSLSCAN_FLAGS),
            "endpoints": per,
            "fleet_counts_per_endpoint": counts,
        }
        ctx.summary.append(
            {
                "tool": "sslscan",
                "mode": "1 process per endpoint, 1 at a time",
                "cpu_per_endpoint": statistics.fmean(r["cpu_s"] for r in per),
                "wall_per_endpoint": statistics.fmean(r["wall_s"] for r in per),
                "connections": counts["accepted"],
                "failures": sum(1 for v, _ in sslscan_rows.values() if v.error),
            }
        )
    return sslscan_rows


def _agreement(
    ctx: _Run,
    cs_rows: list[dict[str, Any]],
    sslyze_rows: dict[int, dict[str, Any]],
    sslscan_rows: dict[int, tuple[View, Run]],
    ec_candidates: set[str],
) -> None:
    """certscope's answers against sslyze's and sslscan's, endpoint by endpoint."""
    for i, row in enumerate(cs_rows):
        port, profile = row["port"], ctx.fleet.profiles[i]
        view = certscope_view(row)
        if port in sslyze_rows:
            ctx.mismatches += compare(
                view,
                sslyze_view(sslyze_rows[port], ec_candidates),
                "sslyze",
                port,
                profile,
                order=None,
            )
        elif "sslyze" in ctx.report["tools"]:
            ctx.mismatches.append(
                {"tool": "sslyze", "port": port, "profile": profile, "kind": "no_result"}
            )
        if port in sslscan_rows:
            ctx.mismatches += compare(
                view,
                sslscan_rows[port][0],
                "sslscan",
                port,
                profile,
                order=dict(row["server_order"]),
            )


def main_run(args: argparse.Namespace) -> int:
    from certscope.tls.enumerate import CANDIDATE_GROUPS, group_name

    n = 10 if args.quick and args.endpoints is None else (args.endpoints or 100)
    started = datetime.now(UTC)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out_file = RESULTS_DIR / f"enum-bench-{started:%Y%m%dT%H%M%SZ}.json"
    report: dict[str, Any] = {
        "args": {k: v for k, v in vars(args).items() if k != "role"},
        "endpoints": n,
        "machine": machine_info(),
        "started": started.isoformat(),
        "tools": {},
        "errors": [],
    }
    candidates = {group_name(g) for g in CANDIDATE_GROUPS}
    ec_candidates = {"x25519", "x448", "secp256r1", "secp384r1", "secp521r1"}
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix="enum-bench-"))
    ctx: _Run | None = None
    try:
        print(f"[fleet] starting {n} endpoints (+1 warm-up) ...", flush=True)
        fleet = start_fleet(procs, n, workdir)
        report["machine"]["openssl_fleet"] = fleet.openssl
        report["fleet"] = {
            "ports": fleet.ports,
            "profiles": fleet.profiles,
            "profile_doc": PROFILE_DOC,
        }
        by_profile = {p: [i for i in range(n) if fleet.profiles[i] == p] for p in PROFILES}
        by_profile = {p: ix for p, ix in by_profile.items() if ix}
        ctx = _Run(procs, fleet, args, n, workdir, report, by_profile)
        cs_rows = _certscope(ctx)
        sslyze_rows = _sslyze(ctx)
        sslscan_rows = _sslscan(ctx, candidates)
        _agreement(ctx, cs_rows, sslyze_rows, sslscan_rows, ec_candidates)
        report["load_end"] = os.getloadavg()
    except Exception as exc:
        report["errors"].append(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
        report["summary"] = ctx.summary if ctx else []
        report["mismatches"] = ctx.mismatches if ctx else []
        report["ratios"] = ratios(report["summary"])
        out_file.write_text(json.dumps(report, indent=1, default=str))
    print_report(report, ctx.summary, ctx.mismatches, report["ratios"], ctx.by_profile)
    print(f"\nJSON: {out_file.relative_to(ROOT)}")
    hard = [m for m in ctx.mismatches if not m["kind"].startswith("not_tested_by_")]
    return 1 if report["errors"] or hard else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--endpoints", type=int, default=None, help="endpoints (default 100)")
    p.add_argument("--quick", action="store_true", help="10 endpoints")
    p.add_argument(
        "--parallel", type=int, default=10, help="certscope scans at a time (default 10)"
    )
    p.add_argument("--max-connections", type=int, default=4, help="per certscope scan")
    p.add_argument("--timeout", type=float, default=5.0, help="certscope per connection")
    p.add_argument("--deadline", type=float, default=120.0, help="certscope per scan")
    p.add_argument("--sslscan", default="sslscan", help="sslscan binary")
    p.add_argument("--sslyze-spec", default=SSLYZE_SPEC, help="pip requirement for sslyze")
    p.add_argument("--skip", action="append", default=[], choices=["sslyze", "sslscan"])
    # Internal roles: this file is also the fleet and the certscope worker.
    p.add_argument(
        "--role", choices=["run", "fleet", "certscope"], default="run", help=argparse.SUPPRESS
    )
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--ports", help=argparse.SUPPRESS)
    p.add_argument("--warmup-port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role == "fleet":
        return run_fleet(args)
    if args.role == "certscope":
        return run_certscope_worker(args)
    return main_run(args)


if __name__ == "__main__":
    sys.exit(main())
