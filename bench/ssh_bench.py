"""SSH benchmark: CPU per SSH posture probe, certscope against ssh-audit on the same servers,
and the ssh_authorized_keys source on 10,000 keys.

    .venv/bin/python bench/ssh_bench.py [--probes N] [--rounds R] [--keys K]

What it does, all on loopback:

1. starts three real servers with ``tests/helpers/sshservers.py``: OpenSSH ``sshd`` with modern
   algorithms and five host keys (Ed25519, ECDSA, RSA-3072, Ed25519 and RSA certificates),
   OpenSSH with legacy algorithms (RSA-1024, DSA, ECDSA host keys; ECDH key exchange), and
   Dropbear (Ed25519, ECDSA, RSA-3072);
2. certscope: ``certscope.ssh.probe.scan`` N times per server in this process, sequentially;
   CPU is this process's user+system time (``time.process_time``) per probe, after two
   warm-up probes. That is what the exporter pays per scheduled probe;
3. ssh-audit's own audit function (``ssh_audit.ssh_audit.audit`` with ``-j``), N times per
   server in this process: ssh-audit's probe work without its interpreter start;
4. ``certscope scan --format json ssh://…`` and ``ssh-audit -j`` as subprocesses, N times
   each per server; CPU is the
   children's user+system time (``resource.getrusage(RUSAGE_CHILDREN)``) per run: what a
   person or a cron job running each tool per server pays;
5. the source: K Ed25519/RSA keys written into 100 authorized_keys files, a people file
   naming every tenth key's comment and a state file; first refresh (parse everything,
   write the state) and a second refresh (state loaded), wall and CPU time.

Medians over R rounds. Prints a table and writes JSON to ``bench/results/``. Every process it
starts is its own and is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import io
import json
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from _harness import ROOT, cpu_children, machine, median_of, tests_on_path, write_report
from certscope import __version__
from certscope.config import SSHKeysSource
from certscope.sources.ssh_keys import SSHKeysReader
from certscope.ssh.probe import scan

tests_on_path()

from helpers.sshservers import (  # noqa: E402 - importable once tests/ is on the path
    STRONG,
    WEAK,
    DropbearServer,
    HostKeys,
    OpenSSHServer,
)

BIN = Path(sys.executable).parent


def in_process(host: str, port: int, n: int) -> float:
    """CPU seconds per certscope probe, in this process."""
    for _ in range(2):
        asyncio.run(scan(host, port))
    t0 = time.process_time()
    for _ in range(n):
        result = asyncio.run(scan(host, port))
        assert result.error is None, result.error
    return (time.process_time() - t0) / n


def ssh_audit_in_process(host: str, port: int, n: int) -> float:
    """CPU seconds per ssh-audit audit run in this process (no interpreter start)."""
    from ssh_audit.outputbuffer import OutputBuffer
    from ssh_audit.ssh_audit import audit, process_commandline

    def once() -> None:
        out = OutputBuffer()
        aconf = process_commandline(out, ["-j", "-p", str(port), host])
        with contextlib.redirect_stdout(io.StringIO()):
            audit(out, aconf)

    for _ in range(2):
        once()
    t0 = time.process_time()
    for _ in range(n):
        once()
    return (time.process_time() - t0) / n


def subprocess_cpu(cmd: list[str], n: int) -> float:
    """CPU seconds per run of a command (its own and its children's)."""
    t0 = cpu_children()
    for _ in range(n):
        out = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
        assert out.stdout, out.stderr
    return (cpu_children() - t0) / n


def bench_probes(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    rows = []
    with ExitStack() as stack:
        strong_keys = HostKeys.generate(
            tmp / "strong", ("ed25519", "ecdsa", "rsa"), certify=("ed25519", "rsa")
        )
        weak_keys = HostKeys.generate(tmp / "weak", ("rsa1024", "dsa", "ecdsa"))
        servers = {
            "openssh-modern": stack.enter_context(
                OpenSSHServer(tmp / "strong", strong_keys, STRONG)
            ),
            "openssh-legacy": stack.enter_context(OpenSSHServer(tmp / "weak", weak_keys, WEAK)),
            "dropbear": stack.enter_context(DropbearServer(tmp)),
        }
        for name, srv in servers.items():
            host, port = srv.host, srv.port
            first = asyncio.run(scan(host, port))
            mine = median_of(args.rounds, partial(in_process, host, port, args.probes))
            cli = [str(BIN / "certscope"), "scan", "--format", "json", f"ssh://{host}:{port}"]
            audit = [str(BIN / "ssh-audit"), "-j", "-p", str(port), host]
            theirs_inproc = median_of(
                args.rounds, partial(ssh_audit_in_process, host, port, args.probes)
            )
            mine_cli = median_of(args.rounds, partial(subprocess_cpu, cli, args.probes))
            theirs = median_of(args.rounds, partial(subprocess_cpu, audit, args.probes))
            rows.append(
                {
                    "server": name,
                    "banner": first.info.banner if first.info else "",
                    "host_keys": len(first.host_keys),
                    "connections": first.connections,
                    "certscope_probe_cpu_ms": round(mine * 1000, 2),
                    "certscope_scan_cli_cpu_ms": round(mine_cli * 1000, 1),
                    "ssh_audit_cli_cpu_ms": round(theirs * 1000, 1),
                    "ssh_audit_in_process_cpu_ms": round(theirs_inproc * 1000, 2),
                    "ratio_in_process": round(theirs_inproc / mine, 1),
                    "ratio_probe": round(theirs / mine, 1),
                    "ratio_cli": round(theirs / mine_cli, 2),
                }
            )
    return rows


def _key_line(i: int) -> str:
    if i % 10 == 0:
        k = rsa.generate_private_key(65537, 2048).public_key()
    else:
        k = ed25519.Ed25519PrivateKey.generate().public_key()  # type: ignore[assignment]
    raw = k.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode() + f" user{i}@example.com"


def bench_source(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    home = tmp / "home"
    lines = [_key_line(i) for i in range(args.keys)]
    per_file = max(1, len(lines) // 100)
    for f in range(0, len(lines), per_file):
        d = home / f"user{f // per_file}" / ".ssh"
        d.mkdir(parents=True, exist_ok=True)
        (d / "authorized_keys").write_text("\n".join(lines[f : f + per_file]) + "\n")
    people = tmp / "people.csv"
    people.write_text(
        "person,status,key\n"
        + "".join(f"p{i},active,user{i}@example.com\n" for i in range(0, args.keys, 10))
    )
    src = SSHKeysSource(
        "bench",
        (str(home / "*/.ssh/authorized_keys"),),
        people=str(people),
        state_file=str(tmp / "state.json"),
    )
    out: dict[str, Any] = {
        "keys": args.keys,
        "files": len(list(home.glob("*/.ssh/authorized_keys"))),
    }
    for label in ("first_refresh", "second_refresh"):
        reader = SSHKeysReader(src)  # a new reader: the second run loads the state file
        w0, c0 = time.perf_counter(), time.process_time()
        result = asyncio.run(reader.refresh(None))
        out[f"{label}_wall_s"] = round(time.perf_counter() - w0, 3)
        out[f"{label}_cpu_s"] = round(time.process_time() - c0, 3)
        assert len(result.keys) == args.keys
        assert not result.errors
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--probes", type=int, default=10, help="probes per server and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--keys", type=int, default=10_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        probes = bench_probes(args, tmp)
        source = bench_source(args, tmp)
    ssh_audit_version = importlib.metadata.version("ssh-audit")
    report = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "certscope": __version__,
        "python": platform.python_version(),
        "machine": machine(),
        "ssh_audit": ssh_audit_version,
        "args": vars(args),
        "probes": probes,
        "source": source,
    }
    head = ("server", "keys", "conn", "certscope probe", "certscope scan", "ssh-audit",
            "ssh-audit in-process", "ratio", "ratio in-process", "ratio (CLI)")  # fmt: skip
    print(" | ".join(head))
    for r in probes:
        print(
            " | ".join(
                str(r[k])
                for k in (
                    "server", "host_keys", "connections", "certscope_probe_cpu_ms",
                    "certscope_scan_cli_cpu_ms", "ssh_audit_cli_cpu_ms",
                    "ssh_audit_in_process_cpu_ms", "ratio_probe", "ratio_in_process",
                    "ratio_cli",
                )
            )
        )  # fmt: skip
    print(json.dumps(source))
    path = write_report("ssh-bench", report)
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
