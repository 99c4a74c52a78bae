"""The tools of the enumeration benchmark and how each one is run and measured.

:class:`Processes` starts every child process (and stops each by its PID) and measures a run
with ``os.wait4``: wall time and the child's own CPU, all threads. certscope runs as
``bench/enum_bench.py --role certscope`` (:func:`run_certscope_worker`), CPU measured inside
that process around each pass; sslyze from its own virtualenv; sslscan as Debian ships it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enum_fleet import Fleet

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
SSLYZE_VENV = BENCH_DIR / ".sslyze-venv"
SSLYZE_SPEC = "sslyze==6.3.1"
HOST = "127.0.0.1"

SSLSCAN_FLAGS = (
    "--no-colour",
    "--no-compression",
    "--no-fallback",
    "--no-heartbleed",
    "--no-renegotiation",
    "--no-check-certificate",
)
SSLYZE_FLAGS = (
    "--mozilla_config=disable",
    "--sslv2",
    "--sslv3",
    "--tlsv1",
    "--tlsv1_1",
    "--tlsv1_2",
    "--tlsv1_3",
    "--elliptic_curves",
    "--quiet",
)

# --- running and measuring processes -------------------------------------------------------------


@dataclass
class Run:
    """One tool process: wall seconds and CPU seconds (user + system, all threads)."""

    argv: list[str]
    wall_s: float
    cpu_s: float
    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""


class Processes:
    """Every process this run started, so that each is stopped by its own PID on the way out."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(list(argv), cwd=ROOT, stdin=subprocess.DEVNULL, **kw)
        self.started.append(proc)
        return proc

    def run(self, argv: Sequence[str], timeout: float) -> Run:
        """Run to completion; rusage of exactly this child from ``os.wait4``."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t0 = time.perf_counter()
            proc = self.popen(argv, stdout=out, stderr=err)
            deadline = t0 + timeout
            while True:
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    pid, status, ru = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.002)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: keep Popen quiet
            out.seek(0)
            err.seek(0)
            return Run(
                list(argv),
                wall,
                ru.ru_utime + ru.ru_stime,
                proc.returncode,
                out.read(),
                err.read(),
            )

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            if proc.poll() is None:
                with contextlib.suppress(Exception):
                    proc.terminate()
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5)


# --- certscope (--role certscope) ----------------------------------------------------------------


def _cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _posture_json(scan: Any) -> dict[str, Any]:
    return {
        "protocols": dict(scan.protocols),
        "suites": {p: list(codes) for p, codes in scan.suites},
        "server_order": dict(scan.server_order),
        "groups": list(scan.groups),
        "complete": scan.complete,
        "error": scan.error,
        "connections": scan.connections,
        "duration": scan.duration,
        "notes": list(scan.notes),
    }


async def _certscope_phases(args: argparse.Namespace) -> dict[str, Any]:
    from certscope.tls.enumerate import enumerate_posture

    ports = [int(p) for p in args.ports.split(",")]

    async def scan(port: int) -> Any:
        return await enumerate_posture(
            HOST,
            port,
            None,
            timeout=args.timeout,
            max_connections=args.max_connections,
            deadline=args.deadline,
        )

    out: dict[str, Any] = {}
    # Warm-up: imports, the suite registry, the hello codec's caches; never a measured port.
    c0, t0 = _cpu_self(), time.perf_counter()
    out["warmup"] = _posture_json(await scan(args.warmup_port))
    out["warmup"].update(cpu_s=_cpu_self() - c0, wall_s=time.perf_counter() - t0)

    rows = []
    c_start, t_start = _cpu_self(), time.perf_counter()
    for port in ports:
        c0, t0 = _cpu_self(), time.perf_counter()
        result = await scan(port)
        row = _posture_json(result)
        row.update(port=port, cpu_s=_cpu_self() - c0, wall_s=time.perf_counter() - t0)
        rows.append(row)
    out["sequential"] = {
        "cpu_s": _cpu_self() - c_start,
        "wall_s": time.perf_counter() - t_start,
        "endpoints": rows,
    }

    limit = asyncio.Semaphore(args.parallel)

    async def limited(port: int) -> dict[str, Any]:
        async with limit:
            t0 = time.perf_counter()
            row = _posture_json(await scan(port))
            row.update(port=port, wall_s=time.perf_counter() - t0)
            return row

    c_start, t_start = _cpu_self(), time.perf_counter()
    rows = list(await asyncio.gather(*(limited(p) for p in ports)))
    out["parallel"] = {
        "cpu_s": _cpu_self() - c_start,
        "wall_s": time.perf_counter() - t_start,
        "parallel": args.parallel,
        "endpoints": rows,
    }
    return out


def run_certscope_worker(args: argparse.Namespace) -> int:
    out = asyncio.run(_certscope_phases(args))
    print(json.dumps(out), flush=True)
    return 0


def run_certscope(
    procs: Processes, fleet: Fleet, args: argparse.Namespace
) -> tuple[dict[str, Any], Run]:
    argv = [
        sys.executable,
        str(BENCH_DIR / "enum_bench.py"),
        "--role",
        "certscope",
        "--ports",
        ",".join(map(str, fleet.ports)),
        "--warmup-port",
        str(fleet.warmup_port),
        "--parallel",
        str(args.parallel),
        "--max-connections",
        str(args.max_connections),
        "--timeout",
        str(args.timeout),
        "--deadline",
        str(args.deadline),
    ]
    run = procs.run(argv, timeout=1800)
    if run.returncode != 0:
        raise RuntimeError(f"certscope worker failed ({run.returncode}):\n{run.stderr[-3000:]!r}")
    data: dict[str, Any] = json.loads(run.stdout)
    return data, run


# --- sslyze -------------------------------------------------------------------------------------


def sslyze_python() -> Path:
    return SSLYZE_VENV / "bin" / "python"


def ensure_sslyze(spec: str) -> tuple[str | None, str]:
    """(version, error): create the separate virtualenv and install sslyze when missing."""
    py = sslyze_python()
    probe = [str(py), "-c", "from sslyze.__version__ import __version__ as v; print(v)"]
    if py.exists():
        got = subprocess.run(probe, capture_output=True, text=True, check=False)
        if got.returncode == 0:
            return got.stdout.strip(), ""
    print(f"[sslyze] creating {SSLYZE_VENV.relative_to(ROOT)} and installing {spec} ...")
    steps = [
        [sys.executable, "-m", "venv", str(SSLYZE_VENV)],
        [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", spec],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return None, f"`{' '.join(step)}` exited {done.returncode}:\n{done.stderr[-3000:]}"
    got = subprocess.run(probe, capture_output=True, text=True, check=False)
    if got.returncode != 0:
        return None, f"sslyze installed but does not import:\n{got.stderr[-3000:]}"
    return got.stdout.strip(), ""


def sslyze_argv(ports: Sequence[int], json_out: Path) -> list[str]:
    return [
        str(sslyze_python()),
        "-m",
        "sslyze",
        f"--json_out={json_out}",
        *SSLYZE_FLAGS,
        *(f"{HOST}:{p}" for p in ports),
    ]


def nassl_openssl() -> str:
    """OpenSSL versions compiled into nassl (sslyze's TLS engine), read from its binaries."""
    site = list((SSLYZE_VENV / "lib").glob("python*/site-packages/nassl"))
    found = []
    for so in sorted(site[0].glob("_nassl*.so")) if site else []:
        m = re.search(rb"OpenSSL \d+\.\d+\.\d+[a-z]*", so.read_bytes())
        if m:
            found.append(m.group().decode())
    return ", ".join(found)


# --- sslscan ------------------------------------------------------------------------------------


def sslscan_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())


def machine_info() -> dict[str, Any]:
    cpu = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model") and key not in cpu:
                cpu[key] = value.strip()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "openssl_python_ssl": ssl.OPENSSL_VERSION,
        "commit": commit,
        "loadavg_start": os.getloadavg(),
    }
