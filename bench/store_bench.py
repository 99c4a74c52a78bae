"""Certificate-store benchmark: 10,000 TLS Secrets (kubernetes source, list + watch) plus
10,000 PEM files (files source) read by one process.

    .venv/bin/python bench/store_bench.py [--secrets N] [--files N] [--steady S]
                                          [--rounds R] [--modify M] [--quick]

What it does, all on loopback:

1. generates a root CA, an intermediate and N + F distinct leaf certificates (one shared
   leaf key): N Secrets of type kubernetes.io/tls in 100 namespaces (``tls.crt`` = leaf +
   intermediate, ``tls.key``, ``ca.crt`` = root, cert-manager annotations, a ``bench/round``
   label), and F PEM files on disk;
2. serves the Secrets from ``tests/helpers/k8s_api.py`` (the in-test Kubernetes API server: real
   list/watch protocol, TLS, bearer token, kubeconfig) in *this* process, or with
   ``--api real`` from a real kube-apiserver and etcd (``scripts/test-cluster.sh``), whose
   audit log also counts the reader's requests;
3. for each scenario (``combined``: kubernetes + files; ``kubernetes``: the Secrets alone) starts
   a *separate* reader process, so the API server's memory is not counted, which runs
   ``KubernetesReader.watch`` with production settings (pages of 500, qps 5, burst 10, 0.5 s
   debounce) and ``FilesReader.refresh``, and measures:

   - time to first complete inventory (every Secret published, every file read);
   - CPU seconds (user + system, all threads) over a steady window with the watch open and
     nothing changing (``--steady``, 60 s by default; the server sends a bookmark a minute);
   - peak RSS (``VmHWM``) and RSS after imports, after sync, after each round;
   - RSS growth over R rounds of renewing M Secrets (new leaf certificate + new label), each
     round timed from the first write until the reader has published all M changes;
   - one re-list forced by 410 Gone (history compacted, watch broken): duration and CPU;
   - (combined) one files refresh of the unchanged tree.

Prints a table and writes JSON to ``bench/results/store-bench-<UTC time>.json``.

``--walk`` runs the walk benchmark instead (``bench/walk_bench.py``, which says what it measures).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import ROOT, machine, proc_status, tests_on_path, write_report
from bench_pki import Issuer

SCRIPT = str(Path(__file__).resolve())
NAMESPACES = 100
FIRST_SYNC_TARGET_S = 20.0
PEAK_RSS_TARGET_MIB = 150.0


# --- data ----------------------------------------------------------------------------------------


def put_secret(api: Any, issuer: Issuer, i: int, round_no: int) -> None:
    ns, name = f"team-{i % NAMESPACES:03d}", f"site-{i:05d}-tls"
    host = f"site-{i:05d}.team-{i % NAMESPACES:03d}.example.com"
    api.put_secret(
        ns,
        name,
        {
            "tls.crt": issuer.leaf(host, 90 - round_no) + issuer.int_pem,
            "tls.key": issuer.key_pem,
            "ca.crt": issuer.root_pem,
        },
        labels={"app.kubernetes.io/name": f"site-{i:05d}", "bench/round": str(round_no)},
        annotations={
            "cert-manager.io/issuer-name": "bench-issuer",
            "cert-manager.io/issuer-kind": "ClusterIssuer",
            "cert-manager.io/certificate-name": f"site-{i:05d}",
        },
    )


# --- orchestration -------------------------------------------------------------------------------


class Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()

    async def recv(self, limit: float = 900.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), limit)
        if not line:
            raise RuntimeError(f"reader process exited ({await self.proc.wait()})")
        msg: dict[str, Any] = json.loads(line)
        return msg


async def renewal_round(
    child_proc: Child, api: Any, issuer: Issuer, args: argparse.Namespace, r: int
) -> dict[str, Any]:
    """Renew ``args.modify`` Secrets; timed from the first write until the reader published
    them all."""
    start = time.monotonic()
    first = ((r - 1) * args.modify) % args.secrets
    for k in range(args.modify):
        put_secret(api, issuer, (first + k) % args.secrets, r)
    written = time.monotonic()
    await child_proc.send(cmd="round", round=r, expect=args.modify)
    msg = await child_proc.recv()
    return {
        "round": r,
        "write_s": written - start,
        "reflected_s": msg["done_at"] - start,
        "publishes": msg["publishes"],
        "rss_mib": msg["rss_mib"],
        "live_objects": msg["live_objects"],
    }


async def scenario(
    name: str, api: Any, issuer: Issuer, args: argparse.Namespace, workdir: Path, rounds_from: int
) -> dict[str, Any]:
    cfg = {
        "kubeconfig": str(api.kubeconfig),
        "files_glob": str(workdir / "files" / "**" / "*.pem"),
        "files": name == "combined",
        "secrets": args.secrets,
    }
    print(f"[{name}] starting the reader process", flush=True)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        SCRIPT,
        "--child",
        json.dumps(cfg),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    child_proc = Child(proc)
    requests_before = api.reader_requests() if hasattr(api, "reader_requests") else {}
    try:
        out: dict[str, Any] = {"scenario": name, "pid": proc.pid}
        synced = await child_proc.recv()
        out["sync"] = synced
        print(
            f"[{name}] first complete inventory in {synced['first_sync_total_s']:.2f} s", flush=True
        )

        await child_proc.send(cmd="steady", seconds=args.steady)
        out["steady"] = await child_proc.recv(limit=args.steady + 120)
        print(
            f"[{name}] steady {out['steady']['seconds']:.0f} s: {out['steady']['cpu_s']:.3f} CPU s",
            flush=True,
        )

        rounds = [
            await renewal_round(child_proc, api, issuer, args, r)
            for r in range(rounds_from, rounds_from + args.rounds)
        ]
        out["rounds"] = rounds
        if rounds:
            print(
                f"[{name}] {len(rounds)} rounds; RSS {rounds[0]['rss_mib']:.1f} -> {rounds[-1]['rss_mib']:.1f} MiB",
                flush=True,
            )

        await child_proc.send(cmd="arm")
        await child_proc.recv()
        # A write the reader never sees (another resource), then compaction: the reader's
        # resourceVersion is now older than the history, so resuming gets 410 and it re-lists.
        api.put_configmap("bench", "bump", {"round": str(rounds_from)})
        api.compact()
        api.break_watches()
        await child_proc.send(cmd="relisted")
        out["relist"] = await child_proc.recv()
        print(f"[{name}] re-list after 410: {out['relist']['seconds']:.2f} s", flush=True)

        if cfg["files"]:
            await child_proc.send(cmd="files")
            out["files_refresh"] = await child_proc.recv()

        await child_proc.send(cmd="quit")
        out["final"] = await child_proc.recv()
        if hasattr(api, "reader_requests"):  # the real API server's audit log counts them
            seen = api.reader_requests()
            out["api_requests"] = {k: v - requests_before.get(k, 0) for k, v in seen.items()}
        await asyncio.wait_for(proc.wait(), 30)
        return out
    finally:
        if proc.returncode is None:
            proc.kill()  # only the reader process this function started
            await proc.wait()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tests_on_path()
    api_class: Any
    if args.api == "real":
        # A real etcd + kube-apiserver (scripts/test-cluster.sh; built once, cached).
        from kube_api import RealKubeAPI as api_class
    else:
        from helpers.k8s_api import FakeKubeAPI as api_class

    workdir = Path(tempfile.mkdtemp(prefix="certscope-store-bench-"))
    try:
        return await _run_in(args, workdir, api_class)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _run_in(args: argparse.Namespace, workdir: Path, fake_api: Any) -> dict[str, Any]:
    t = time.perf_counter()
    issuer = Issuer()
    files_dir = workdir / "files"
    for i in range(args.files):
        d = files_dir / f"dir-{i % NAMESPACES:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"cert-{i:05d}.pem").write_bytes(
            issuer.leaf(f"file-{i:05d}.example.org", 365) + issuer.int_pem
        )
    print(f"wrote {args.files} PEM files in {time.perf_counter() - t:.1f} s", flush=True)

    async with fake_api(workdir, bookmark_interval=60.0) as api:
        t = time.perf_counter()
        for i in range(args.secrets):
            put_secret(api, issuer, i, 0)
        print(f"created {args.secrets} Secrets in {time.perf_counter() - t:.1f} s", flush=True)
        results = []
        next_round = 1
        for name in args.scenarios.split(","):
            results.append(await scenario(name, api, issuer, args, workdir, next_round))
            next_round += args.rounds
    return {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "args": vars(args),
        "command": " ".join([".venv/bin/python", "bench/store_bench.py", *sys.argv[1:]]),
        "machine": machine(),
        "scenarios": results,
    }


def summarise(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(scenario, what, value) rows of the printed table."""
    rows: list[tuple[str, str, str]] = []
    for s in report["scenarios"]:
        pairs = [*_sync_rows(s), *_change_rows(s, report["args"]["modify"])]
        rows += [(s["scenario"], what, value) for what, value in pairs]
    return rows


def _sync_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """First sync, the steady window and memory."""
    out: list[tuple[str, str]] = []
    sync, steady, final = s["sync"], s["steady"], s["final"]
    out.append(
        (
            "first complete inventory",
            f"{sync['first_sync_total_s']:.2f} s (target < {FIRST_SYNC_TARGET_S:.0f} s)",
        )
    )
    out.append(
        (
            "  kubernetes / files",
            f"{sync['first_sync_kubernetes_s']:.2f} s / {sync['first_sync_files_s']:.2f} s",
        )
    )
    out.append(("  CPU during first sync", f"{sync['first_sync_cpu_s']:.2f} s"))
    out.append(
        (
            "  items",
            f"{sync['kubernetes_secrets']} Secrets, {sync['kubernetes_certs']} + {sync['files_certs']} certificates",
        )
    )
    out.append(
        (
            f"steady state CPU ({steady['seconds']:.0f} s, watch open)",
            f"{steady['cpu_s']:.3f} s ({100 * steady['cpu_s'] / steady['seconds']:.2f} %), {steady['publishes']} publishes",
        )
    )
    out.append(("RSS after imports", f"{sync['rss_imported_mib']:.1f} MiB"))
    out.append(("RSS after first sync", f"{sync['rss_synced_mib']:.1f} MiB"))
    out.append(
        (
            "peak RSS (VmHWM)",
            f"{final['hwm_mib']:.1f} MiB (target < {PEAK_RSS_TARGET_MIB:.0f} MiB)",
        )
    )
    return out


def _change_rows(s: dict[str, Any], modify: int) -> list[tuple[str, str]]:
    """Renewal rounds, API requests, the re-list after 410 and the files refresh."""
    out: list[tuple[str, str]] = []
    if s["rounds"]:
        r0, rn = s["rounds"][0], s["rounds"][-1]
        lags = sorted(r["reflected_s"] for r in s["rounds"])
        out.append(
            (
                f"watch rounds ({len(s['rounds'])} x {modify} renewals)",
                f"write->published median {lags[len(lags) // 2]:.2f} s, max {lags[-1]:.2f} s",
            )
        )
        out.append(
            (
                "  RSS after round 1 -> last",
                f"{r0['rss_mib']:.1f} -> {rn['rss_mib']:.1f} MiB ({rn['rss_mib'] - r0['rss_mib']:+.1f} MiB)",
            )
        )
    if "api_requests" in s:
        counts = s["api_requests"]
        out.append(
            (
                "API requests (audit log)",
                ", ".join(f"{v} {k}" for k, v in sorted(counts.items())),
            )
        )
    rel = s["relist"]
    out.append(
        (
            "re-list after 410 (unchanged objects)",
            f"{rel['seconds']:.2f} s, {rel['cpu_s']:.2f} CPU s",
        )
    )
    if "files_refresh" in s:
        f = s["files_refresh"]
        out.append(
            (
                "files refresh, tree unchanged",
                f"{f['seconds']:.2f} s, {f['cpu_s']:.2f} CPU s",
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--walk", action="store_true", help="the walk benchmark (see above)")
    parser.add_argument("--walk-repeats", type=int, default=5)
    parser.add_argument("--secrets", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--steady", type=float, default=60.0, help="steady window, seconds")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--modify", type=int, default=500, help="Secrets renewed per round")
    parser.add_argument("--scenarios", default="combined,kubernetes")
    parser.add_argument(
        "--api",
        choices=("in-test", "real"),
        default="in-test",
        help="serve the Secrets from tests/helpers/k8s_api.py or a real kube-apiserver + etcd",
    )
    parser.add_argument("--quick", action="store_true", help="1,000 of each, 5 s, 3 rounds")
    args = parser.parse_args()
    if args.walk:
        from walk_bench import main_walk

        main_walk(args.walk_repeats)
        return
    if args.child:
        import logging

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        start_rss = proc_status()["VmRSS"]
        import store_reader  # the reader's own imports count from here

        asyncio.run(store_reader.run(json.loads(args.child), start_rss))
        return
    if args.quick:
        args.secrets, args.files, args.steady, args.rounds, args.modify = 1000, 1000, 5.0, 3, 100
    args.modify = min(args.modify, args.secrets)
    report = asyncio.run(run(args))
    rows = summarise(report)
    width = max(len(r[1]) for r in rows)
    print()
    print(
        f"certscope store benchmark: {args.secrets} Secrets + {args.files} files, {report['machine']['cpus']} CPUs, Python {report['machine']['python']}"
    )
    last = None
    for scen, what, value in rows:
        if scen != last:
            print(f"\n[{scen}]")
            last = scen
        print(f"  {what:<{width}}  {value}")
    path = write_report(f"store-bench{'-quick' if args.quick else ''}", report)
    print(f"\nwrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
