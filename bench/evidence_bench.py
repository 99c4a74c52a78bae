"""Benchmark: a 12-month ``certscope evidence`` run over synthetic TSDB blocks.

    .venv/bin/python bench/evidence_bench.py --targets 200
    .venv/bin/python bench/evidence_bench.py --targets 200 --plain
    .venv/bin/python bench/evidence_bench.py --targets 2000

Builds a year (2025) of certscope series for N TLS targets with ``promtool tsdb
create-blocks-from openmetrics`` (groups of 500 targets, each one block for the whole year,
merged into one by Prometheus's compactor; cached under the system temporary directory), starts
a real Prometheus (Debian ``prometheus``) on a copy, runs ``certscope evidence`` for the year at
the automatic step (5 minutes) and prints wall time, peak RSS of the command, bytes received
from Prometheus (``manifest.json``), and the CPU time of the command and of Prometheus during
the run, as a Markdown row for docs/benchmarks.md; the JSON goes to ``bench/results/``.

Per target: ``certscope_cert_info``, ``certscope_cert_not_after_timestamp_seconds``,
``certscope_cert_not_before_timestamp_seconds``, ``certscope_probe_success``,
``certscope_probe_timestamp_seconds``, ``certscope_cert_verified`` and two
``certscope_tls_protocol_supported``; every target's certificate is renewed once (in a month
that depends on the target). The scrape interval of the bench job is 1 hour: a year at 15 s for
2,000 targets would be 70 billion samples of OpenMetrics text to convert. The evidence run's
cost on the certscope side does not depend on it (range queries are evaluated at the step; the
windows hold one sample instead of twenty); Prometheus's own evaluation is cheaper than at 15 s.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _harness import cpu_children, machine, write_report  # noqa: E402
from helpers.measure import run_measured  # noqa: E402
from helpers.promserver import Prometheus, free_port  # noqa: E402

START = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
END = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
INTERVAL = 3600
JOB = 'job="certscope",instance="c1:9899"'
BLOCKS_VERSION = 2
#: Targets per promtool run (about 4 GB of text and 1 GB of promtool memory).
GROUP = 500
#: promtool's largest block size: 2025 falls in one epoch-aligned block.
BLOCK_HOURS = 39366


def chunks(targets: range) -> Iterator[str]:
    """OpenMetrics text of ``targets`` (and of ``up``, with the first group), a series at a time.

    Each series is one ``str.join`` over the pre-formatted timestamps: a year of 2,000 targets
    is 17 GB of text, and formatting it a line at a time took longer than promtool reading it.
    """
    times = [START - INTERVAL + 7 + k * INTERVAL for k in range(int((END - START) / INTERVAL) + 2)]
    stamps = [f"{t:.0f}" for t in times]

    def series(head: str, lo: float = float("-inf"), hi: float = float("inf")) -> str:
        part = stamps[bisect.bisect_left(times, lo) : bisect.bisect_left(times, hi)]
        return head + ("\n" + head).join(part) + "\n" if part else ""

    if targets.start == 0:
        yield "# TYPE up gauge\n"
        yield series(f"up{{{JOB}}} 1 ")

    def each(name: str, value: str, extra: str = "", cert: bool = False) -> Iterator[str]:
        yield f"# TYPE {name} gauge\n"
        for i in targets:
            ident = f'source_kind="tls",source="t{i}",location="t{i}.example:443"'
            renew = START + (i % 12 + 0.5) * 30 * 86400
            if cert:
                ident += f',chain_position="0",subject_cn="t{i}.example"'
            for serial, lo, hi in (("01", 0.0, renew), ("02", renew, END * 2)):
                labels = ident + extra
                if name == "certscope_cert_info":
                    labels += (
                        f',serial="{i:x}{serial}",fingerprint_sha256="{i:x}{serial}",'
                        f'public_key_sha256="{serial * 32}"'
                    )
                v = value
                if name == "certscope_cert_not_after_timestamp_seconds":
                    v = f"{(renew if serial == '01' else renew + 180 * 86400) + 30 * 86400:.0f}"
                yield series(f"{name}{{{JOB},{labels}}} {v} ", lo, hi)
                if not cert:
                    break  # endpoint series do not change at a renewal

    yield from each("certscope_cert_info", "1", cert=True)
    yield from each("certscope_cert_not_after_timestamp_seconds", "0", cert=True)
    yield from each(
        "certscope_cert_not_before_timestamp_seconds", f"{START - 86400:.0f}", cert=True
    )
    yield from each("certscope_probe_success", "1")
    yield from each("certscope_cert_verified", "1")
    yield "# TYPE certscope_tls_protocol_supported gauge\n"
    for protocol in ("TLSv1.2", "TLSv1.3"):
        for text in each("certscope_tls_protocol_supported", "1", f',protocol="{protocol}"'):
            if not text.startswith("#"):
                yield text
    yield "# EOF\n"


def blocks(targets: int) -> Path:
    key = f"v{BLOCKS_VERSION}"  # bump when chunks() or the block layout changes
    out = Path(tempfile.gettempdir()) / f"certscope-evidence-bench-{targets}-{key}"
    if (out / "done").exists():
        return out
    work = Path(tempfile.mkdtemp(prefix="certscope-bench-"))
    try:
        started = time.monotonic()
        size = 0
        # groups of GROUP targets, one promtool run each: the text of 2,000 targets would be
        # 17 GB at once
        for first in range(0, targets, GROUP):
            text = work / "bench.om"
            with text.open("w") as f:
                f.writelines(chunks(range(first, min(first + GROUP, targets))))
            size += text.stat().st_size
            subprocess.run(
                [
                    shutil.which("promtool") or "promtool",
                    *("tsdb", "create-blocks-from", "openmetrics"),
                    # promtool parses the whole text once per block it writes; its largest
                    # block (39366h, epoch-aligned) holds all of 2025: one pass, not three
                    f"--max-block-duration={BLOCK_HOURS}h",
                    *(str(text), str(work / "blocks")),
                ],
                check=True,
                capture_output=True,
            )
            text.unlink()
        converted = time.monotonic() - started
        if targets > GROUP:
            compact(work / "blocks")
        print(
            f"blocks for {targets} targets: {size / 1e6:.0f} MB of OpenMetrics, "
            f"{converted:.0f} s to convert, {time.monotonic() - started:.0f} s in all",
            file=sys.stderr,
        )
        (work / "blocks" / "done").write_text(key)
        shutil.rmtree(out, ignore_errors=True)
        (work / "blocks").rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def compact(tsdb: Path) -> None:
    """Merge the groups' overlapping blocks into one, once, with Prometheus's own compactor.

    Otherwise every benchmark's Prometheus would merge them in the background while it answers.
    """

    def ulids() -> list[Path]:
        return [p for p in tsdb.iterdir() if (p / "meta.json").exists()]

    with tempfile.TemporaryDirectory(prefix="certscope-bench-compact-") as tmp:
        work = Path(tmp)
        (work / "tsdb").symlink_to(tsdb)
        with Prometheus(work, [], interval="1h", extra_args=["--storage.tsdb.retention.time=30y"]):
            deadline = time.monotonic() + 3600  # it compacts a minute after it starts
            while len(ulids()) > 1 or any(".tmp" in p.name for p in tsdb.iterdir()):
                if time.monotonic() > deadline:
                    raise SystemExit(f"Prometheus did not merge the blocks in {tsdb}")
                time.sleep(2)
    for p in tsdb.iterdir():  # the server's own state: the bench starts each run afresh
        if not (p / "meta.json").exists():
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def run(targets: int, chunk_points: int, concurrency: int, coarse_first: bool) -> dict[str, object]:
    source = blocks(targets)
    with tempfile.TemporaryDirectory(prefix="certscope-bench-prom-") as tmp:
        work = Path(tmp)
        shutil.copytree(source, work / "tsdb", ignore=shutil.ignore_patterns("done"))
        prom = Prometheus(
            work,
            [f"127.0.0.1:{free_port()}"],
            interval="1h",
            extra_args=["--storage.tsdb.retention.time=30y"],
        )
        with prom:
            out = work / "out"
            assert prom.proc is not None
            prom_cpu, own_cpu = cpu_of(prom.proc.pid), cpu_children()
            code, stderr, seconds, rss_kib = run_measured(
                [
                    *(sys.executable, "-m", "certscope.evidence.cli"),
                    *("--prometheus.url", prom.url, "--from", "2025-01-01", "--to", "2025-12-31"),
                    *("--out", str(out), "--query.chunk-points", str(chunk_points)),
                    *("--query.concurrency", str(concurrency), "--no-pdf"),
                    "--query.coarse-first" if coarse_first else "--no-query.coarse-first",
                ]
            )
            prom_cpu, own_cpu = cpu_of(prom.proc.pid) - prom_cpu, cpu_children() - own_cpu
            if code != 0:
                raise SystemExit(f"certscope evidence exited {code}:\n{stderr[-2000:]}")
            manifest = json.loads((out / "manifest.json").read_text())
            summary = json.loads((out / "summary.json").read_text())
    return {
        "targets": targets,
        "certificates": summary["counts"]["certificates"],
        "renewals": summary["counts"]["renewals"],
        "requests": len(manifest["queries"]),
        "wall_seconds": round(seconds, 1),
        # where the wall time went: the command's CPU (its JSON parsing, its Python) against
        # Prometheus's (evaluating the queries) during the run
        "certscope_cpu_seconds": round(own_cpu, 1),
        "prometheus_cpu_seconds": round(prom_cpu, 1),
        "peak_rss_mib": round(rss_kib / 1024),
        "bytes_received": manifest["bytes_received"],
        # chunks that failed after their retries: gaps in the report, not a faster run
        "failed_requests": manifest["failed_requests"],
        "failed_queries": sorted({f["query"] for f in summary["failed_requests"]}),
        "chunk_points": chunk_points,
        "concurrency": concurrency,
        "coarse_first": coarse_first,
    }


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", type=int, default=200)
    p.add_argument("--chunk-points", type=int, default=11000)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument(
        "--plain", action="store_true", help="certscope's --no-query.coarse-first (every step)"
    )
    args = p.parse_args()
    started, load = datetime.now(UTC).isoformat(timespec="seconds"), os.getloadavg()
    r = run(args.targets, args.chunk_points, args.concurrency, not args.plain)
    r |= {"started_utc": started, "load_start": load, "load_end": os.getloadavg()}
    path = write_report(f"evidence-{args.targets}", r | {"machine": machine()})
    print(json.dumps(r))
    print(path)
    print(
        f"| {r['targets']:,} | {r['certificates']:,} | {r['requests']:,} | "
        f"{r['wall_seconds']} s | {r['peak_rss_mib']} MiB | "
        f"{int(r['bytes_received']) / 1e6:,.0f} MB | {r['chunk_points']:,} | "  # type: ignore[call-overload]
        f"{'yes' if r['coarse_first'] else 'no'} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
