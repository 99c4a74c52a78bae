"""Run ``certscope`` under cProfile timed by the main thread's CPU clock, not the wall clock.

    python bench/cpu_profile.py OUT.prof serve --config.file F --web.listen-address ADDR
    python bench/cpu_profile.py --first-sight [N] [--fleet]
    python bench/cpu_profile.py --later-pass

``python -m cProfile`` charges wall time, so an idle event loop waiting in ``epoll`` dominates
its output. With ``time.thread_time`` as the timer only CPU spent on the event-loop thread is
counted (the resolver threads' share is small and shows up as waits on their futures).
Profiling overhead inflates every figure; compare shares, not absolute times. The profile is
written when certscope exits (SIGTERM or SIGINT: aiohttp shuts down cleanly).

``--first-sight N`` times, in process and without a profiler, what a probe does with a chain
it has never seen (N new leaves behind one intermediate: ``bench/bench_pki.py``'s ECDSA
leaves with no revocation locations, or with ``--fleet`` the probe benchmark's RSA leaves,
which name an OCSP responder): the certificate facts, the trust judgement, the revocation
plan, the rest of the verdict and the certificate label text. Prints one JSON document: CPU
ms per new chain for each step, best of three rounds. Run against the code before the trust
judgement moved ahead of the revocation plan, ``trust`` is 0 and counted in ``verdict``.

``--later-pass`` times, the same way and for a chain seen before, what a probe does after its
handshake and what building a ``/probe`` request's target costs: µs per probe, minimum of
nine timings.
"""

from __future__ import annotations

import cProfile
import json
import sys
import time


def _fleet_chains(directory: str, count: int) -> tuple[str, list[tuple[bytes, ...]]]:
    """The probe benchmark's PKI (``bench/fleet.py``: RSA, leaves naming an OCSP responder):
    the CA file and ``count`` chains (leaf, intermediate)."""
    import ssl
    from pathlib import Path

    from fleet import write_pki

    ca_file, paths, _ = write_pki(Path(directory), count, "rsa")
    chains = []
    for path in paths:
        blocks = path.read_text().split("-----END CERTIFICATE-----")[:-1]
        pems = [b.strip() + "\n-----END CERTIFICATE-----\n" for b in blocks]
        chains.append(tuple(ssl.PEM_cert_to_DER_cert(pem) for pem in pems))
    return str(ca_file), chains


def _pki_chains(directory: str, count: int) -> tuple[str, list[tuple[bytes, ...]]]:
    """``bench/bench_pki.py``'s cheap chains (ECDSA, no revocation locations)."""
    import ssl
    from pathlib import Path

    from bench_pki import Issuer

    issuer = Issuer()
    ca_file = Path(directory) / "ca.pem"
    ca_file.write_bytes(issuer.root_pem)
    intermediate = ssl.PEM_cert_to_DER_cert(issuer.int_pem.decode())
    leaves = (issuer.leaf(f"ep{i}.bench.test", 90).decode() for i in range(count))
    return str(ca_file), [(ssl.PEM_cert_to_DER_cert(pem), intermediate) for pem in leaves]


def first_sight(n: int, fleet: bool) -> dict[str, float]:
    """CPU ms per never-seen chain for each step a probe takes after its handshake, in the
    probe's order (the trust judgement, then revocation with what it found, then the rest of
    the verdict)."""
    import datetime as dt
    import tempfile

    from certscope import verify
    from certscope.certs import facts_from_der
    from certscope.collector import _cert_text
    from certscope.config import RevocationOptions
    from certscope.revocation import cached_revocation
    from certscope.verify import verify_chain

    # Against the code before (PYTHONPATH=<checkout>/exporter), which has no separate trust
    # judgement: its own order, the trust judged inside the verdict.
    judge_trust = getattr(verify, "judge_trust", None)

    opts = RevocationOptions()
    now = dt.datetime.now(dt.UTC)
    best: dict[str, float] = {}
    steps = ("facts", "trust", "revocation", "verdict", "label_text")
    with tempfile.TemporaryDirectory() as tmp:
        ca_file, every = (_fleet_chains if fleet else _pki_chains)(tmp, 3 * n)
        for round_ in range(3):
            spent = dict.fromkeys(steps, 0.0)
            for i, chain in enumerate(every[round_ * n : (round_ + 1) * n]):
                t0 = time.process_time()
                facts = tuple(facts_from_der(der) for der in chain)
                t1 = time.process_time()
                if judge_trust is None:
                    t2 = t1  # judged in the verdict
                    cached_revocation(chain, facts[0], None, opts)
                    t3 = time.process_time()
                    verify_chain(chain, facts, f"ep{i}.bench.test", ca_file, now)
                else:
                    trust = judge_trust(chain, ca_file, now)
                    t2 = time.process_time()
                    cached_revocation(chain, facts[0], None, opts, trust.signer)
                    t3 = time.process_time()
                    verify_chain(chain, facts, f"ep{i}.bench.test", ca_file, now, trust=trust)
                t4 = time.process_time()
                for f in facts:
                    _cert_text(f)
                t5 = time.process_time()
                for step, took in zip(
                    spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True
                ):
                    spent[step] += took
            spent["total"] = sum(spent.values())
            for step, took in spent.items():
                ms = round(1000 * took / n, 3)
                best[step] = min(best.get(step, ms), ms)
    return best


def later_pass(repeat: int = 9, number: int = 5000) -> dict[str, float]:
    """CPU µs per probe of a chain seen before (the probe benchmark's PKI) for what follows the
    handshake (facts, trust, revocation plan, verdict: the probe's own calls) and for building
    a ``/probe`` request's target; minimum of ``repeat`` timings of ``number`` calls, so that
    preemption by other load drops out. Runs against the code before too (its calls)."""
    import datetime as dt
    import tempfile
    import timeit
    from pathlib import Path

    from aiohttp.test_utils import make_mocked_request

    from certscope import app, revocation, verify
    from certscope.certs import facts_from_der
    from certscope.config import RevocationOptions, load_config
    from probe_exporters import write_certscope_probe_config

    judge_trust = getattr(verify, "judge_trust", None)
    opts = RevocationOptions()
    with tempfile.TemporaryDirectory() as tmp:
        ca_file, (chain, *_) = _fleet_chains(tmp, 1)
        leaf = facts_from_der(chain[0])
        # As in the benchmark: the fleet's OCSP responder does not resolve, which is cached.
        failed = revocation.Check(revocation.Method.OCSP, revocation.Status.ERROR, "unreachable")
        revocation._unreachable.put(leaf.ocsp_urls[0], failed, 3600)

        def after_handshake() -> object:
            facts = tuple(facts_from_der(der) for der in chain)
            if judge_trust is None:
                rev = revocation.cached_revocation(chain, facts[0], None, opts)
                assert rev is not None
                now = dt.datetime.now(dt.UTC)
                return verify.verify_chain(chain, facts, "127.0.0.1", ca_file, now, rev.revoked)
            trust = judge_trust(chain, ca_file, dt.datetime.now(dt.UTC))
            rev = revocation.cached_revocation(chain, facts[0], None, opts, trust.signer)
            assert rev is not None
            now = dt.datetime.now(dt.UTC)
            return verify.verify_chain(chain, facts, "127.0.0.1", ca_file, now, rev.revoked, trust)

        config_file = Path(tmp) / "certscope.yml"
        write_certscope_probe_config(config_file, ca_file)
        config = load_config(str(config_file))
        request = make_mocked_request("GET", "/probe?target=127.0.0.1:4443")
        gate = app._ProbeGate()
        held = getattr(gate, "target", None)

        def probe_target() -> object:
            return held(request, config) if held else app._probe_target(request, config)

        steps = {"after_handshake": after_handshake, "probe_target": probe_target}
        return {
            name: round(min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6, 2)
            for name, fn in steps.items()
        }


def main() -> int:
    if sys.argv[1] == "--first-sight":
        fleet = "--fleet" in sys.argv
        args = [a for a in sys.argv[2:] if a != "--fleet"]
        n = int(args[0]) if args else 500
        best = first_sight(n, fleet)
        print(json.dumps({"new_chains": n, "fleet_pki": fleet, "cpu_ms_per_new_chain": best}))
        return 0
    if sys.argv[1] == "--later-pass":
        print(json.dumps({"cpu_us_per_probe": later_pass()}))
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
