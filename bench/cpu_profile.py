"""Run ``certscope`` under cProfile timed by the main thread's CPU clock, not the wall clock.

    python bench/cpu_profile.py OUT.prof serve --config.file F --web.listen-address ADDR
    python bench/cpu_profile.py --first-sight [N]

``python -m cProfile`` charges wall time, so an idle event loop waiting in ``epoll`` dominates
its output. With ``time.thread_time`` as the timer only CPU spent on the event-loop thread is
counted (the resolver threads' share is small and shows up as waits on their futures).
Profiling overhead inflates every figure; compare shares, not absolute times. The profile is
written when certscope exits (SIGTERM or SIGINT: aiohttp shuts down cleanly).

``--first-sight N`` times, in process and without a profiler, what a probe does with a chain
it has never seen (N new leaves behind one intermediate, ``bench/bench_pki.py``): the
certificate facts, the revocation plan, the trust verdict and the certificate label text.
Prints one JSON document: CPU ms per new chain for each step, best of three rounds.
"""

from __future__ import annotations

import cProfile
import json
import sys
import time


def first_sight(n: int) -> dict[str, float]:
    """CPU ms per never-seen chain for each step a probe takes after its handshake."""
    import datetime as dt
    import ssl
    import tempfile

    from bench_pki import Issuer
    from certscope.certs import facts_from_der
    from certscope.collector import _cert_text
    from certscope.config import RevocationOptions
    from certscope.revocation import cached_revocation
    from certscope.verify import verify_chain

    issuer = Issuer()
    intermediate = ssl.PEM_cert_to_DER_cert(issuer.int_pem.decode())
    opts = RevocationOptions()
    now = dt.datetime.now(dt.UTC)
    best: dict[str, float] = {}
    with tempfile.NamedTemporaryFile(suffix=".pem") as ca_file:
        ca_file.write(issuer.root_pem)
        ca_file.flush()
        for round_ in range(3):
            chains = [
                (
                    ssl.PEM_cert_to_DER_cert(issuer.leaf(f"r{round_}-{i}.example", 90).decode()),
                    intermediate,
                )
                for i in range(n)
            ]
            spent = dict.fromkeys(("facts", "revocation", "verdict", "label_text"), 0.0)
            for i, chain in enumerate(chains):
                t0 = time.process_time()
                facts = tuple(facts_from_der(der) for der in chain)
                t1 = time.process_time()
                cached_revocation(chain, facts[0], None, opts)
                t2 = time.process_time()
                verify_chain(chain, facts, f"r{round_}-{i}.example", ca_file.name, now)
                t3 = time.process_time()
                for f in facts:
                    _cert_text(f)
                t4 = time.process_time()
                for step, took in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                    spent[step] += took
            spent["total"] = sum(spent.values())
            for step, took in spent.items():
                ms = round(1000 * took / n, 3)
                best[step] = min(best.get(step, ms), ms)
    return best


def main() -> int:
    if sys.argv[1] == "--first-sight":
        n = int(sys.argv[2]) if len(sys.argv) > 2 else 500
        print(json.dumps({"new_chains": n, "cpu_ms_per_new_chain": first_sight(n)}, indent=1))
        return 0
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
