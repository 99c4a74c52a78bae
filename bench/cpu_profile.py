"""Run ``certscope`` under cProfile timed by the main thread's CPU clock, not the wall clock.

    python bench/cpu_profile.py OUT.prof serve --config.file F --web.listen-address ADDR

``python -m cProfile`` charges wall time, so an idle event loop waiting in ``epoll`` dominates
its output. With ``time.thread_time`` as the timer only CPU spent on the event-loop thread is
counted (the resolver threads' share is small and shows up as waits on their futures).
Profiling overhead inflates every figure; compare shares, not absolute times. The profile is
written when certscope exits (SIGTERM or SIGINT: aiohttp shuts down cleanly).
"""

from __future__ import annotations

import cProfile
import sys
import time


def main() -> int:
    out, argv = sys.argv[1], sys.argv[2:]
    from certscope.cli import main as certscope_main

    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    try:
        return certscope_main(argv)
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    sys.exit(main())
