"""The probe benchmark's processes: each one started, measured and stopped by its own PID.

CPU and memory are read from ``/proc/PID`` because the measured processes (the exporters, the
fleet, the ``/metrics`` app) are still running when a pass ends: ``getrusage`` of children
only counts those already waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from _harness import ROOT

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        # The command name in parentheses may hold spaces: the fields start after its ")".
        rest = fh.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    """VmRSS of a running process in MiB (0 when the kernel does not report it)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Proc:
    """One started process and the file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, wait: float = 15) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(sig)
        try:
            self.popen.wait(wait)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


class Procs:
    """Every process this run started, so that each is stopped (by its own PID) on the way out."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Proc] = []

    def start(self, name: str, argv: Sequence[str], stdout: int | None = None) -> Proc:
        log = self.workdir / f"{name}-{len(self.started)}.log"
        with open(log, "wb") as fh:
            popen = subprocess.Popen(
                list(argv),
                stdout=stdout if stdout is not None else fh,
                stderr=fh,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
            )
        proc = Proc(name, popen, log)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            with contextlib.suppress(Exception):
                proc.stop(wait=5)


async def read_json_line(proc: Proc, within: float) -> dict[str, Any]:
    """The first line of ``proc``'s stdout (a pipe), as JSON: how the fleet and the ``/metrics``
    app say they are ready and where."""
    assert proc.popen.stdout is not None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.popen.stdout.readline), within)
    except TimeoutError:
        raise RuntimeError(f"{proc.name} did not start in {within:.0f}s:\n{proc.tail()}") from None
    if not line:
        raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
    data: dict[str, Any] = json.loads(line)
    return data


async def wait_http(
    session: aiohttp.ClientSession, proc: Proc, url: str, within: float = 60
) -> None:
    """Poll ``url`` until it answers 200; fail early, with the log's tail, if ``proc`` exits."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
                await resp.read()
                if resp.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{proc.name}: {url} not ready after {within:.0f}s:\n{proc.tail()}")
