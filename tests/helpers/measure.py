"""Run a command and measure it: exit status, stderr, wall seconds and peak RSS (KiB).

The peak is taken by a small intermediate interpreter that starts the command and ``wait4`` s
it: Linux carries a process's peak RSS across ``exec``, so a command forked straight from a
large process (a pytest run holding hundreds of MB) would report the parent's size.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

_WAIT = (
    "import os, sys\n"
    "pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status) % 256)\n"
)


def run_measured(argv: Sequence[str]) -> tuple[int, str, float, int]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        rss = Path(tmp) / "rss"
        proc = subprocess.run(
            [sys.executable, "-S", "-c", _WAIT, str(rss), *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        peak = int(rss.read_text()) if rss.exists() else 0
    return proc.returncode, proc.stderr, time.monotonic() - started, peak
