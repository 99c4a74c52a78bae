"""Run a command and measure it: exit status, stderr, wall seconds and peak RSS (KiB)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence


def run_measured(argv: Sequence[str]) -> tuple[int, str, float, int]:
    """The command's own peak RSS (``wait4``), not that of this process or other children."""
    started = time.monotonic()
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    with proc.stderr:
        stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, stderr, time.monotonic() - started, usage.ru_maxrss
