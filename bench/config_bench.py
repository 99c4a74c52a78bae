"""Configuration loading: the embedded default and a 10,000-target file, before and after.

    .venv/bin/python bench/config_bench.py [--targets N] [--sources S] [--rounds R]
        [--baseline DIR]

What it does:

1. writes a config with N targets (address, name, two labels; every tenth with its own
   interval and timeout, every hundredth with STARTTLS and ALPN), S sources (the five kinds in
   turn: files, vault, kubernetes, ssh_authorized_keys, aws, each with the keys a typical
   entry sets), a policy with two waivers and a ``probe`` section;
2. in a fresh interpreter: imports ``certscope.config`` (CPU and wall), then calls
   ``default_config()`` (the embedded default: the trust store plus ``CERTSCOPE_TARGETS``)
   twice, the first call separately as it is what start-up pays, and ``parse_config`` of the
   N-target file twice, and its two halves apart: the YAML (``load_yaml``) and the validation
   of the parsed document (``build_config``), and the validation of the ``sources:`` section
   alone; wall and CPU time (``time.process_time``);
3. ``certscope check-config FILE`` as a command, R times: wall time and the child's CPU
   (``resource.getrusage(RUSAGE_CHILDREN)``), medians: what a person or CI pays;
4. with ``--baseline DIR`` (another checkout with its own ``.venv``, e.g. the main branch), the
   same measurements for that tree in the same run, rounds interleaved, and the ratio
   after / before. Each step is repeated R times (a fresh interpreter each round); medians.

Prints a table and writes JSON to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Runs inside the tree being measured (its own interpreter and PYTHONPATH), so that the import
# cost is measured cold and both trees are measured the same way.
_CHILD = r"""
import json, sys, time
rounds, path = int(sys.argv[1]), sys.argv[2]
w0, c0 = time.perf_counter(), time.process_time()
from certscope.config import build_config, default_config, load_yaml, parse_config
out = {"import_wall": time.perf_counter() - w0, "import_cpu": time.process_time() - c0}
text = open(path, "rb").read()
raw = load_yaml(text)
for name, call in (("default", lambda: default_config({})),
                   ("parse", lambda: parse_config(text, path)),
                   ("yaml", lambda: load_yaml(text)),
                   ("validate", lambda: build_config(raw, path)),
                   ("sources", lambda: build_config({"sources": raw["sources"]}, path))):
    walls, cpus = [], []
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    out[name + "_first_wall"], out[name + "_first_cpu"] = walls[0], cpus[0]
    out[name + "_wall"], out[name + "_cpu"] = walls[-1], cpus[-1]
parsed = parse_config(text, path)
out["parse_targets"], out["parse_sources"] = len(parsed.targets), len(parsed.sources)
print(json.dumps(out))
"""


def source_entry(i: int) -> str:
    """The ``i``-th source: the five kinds in turn, each with the keys a typical entry sets."""
    kind = i % 5
    if kind == 0:
        return (
            f"  - {{name: disk{i}, kind: files, paths: ['/srv/tls{i}/**/*.pem'],"
            " exclude: ['**/old/**'], max_files: 5000, labels: {tier: disk}}"
        )
    if kind == 1:
        return (
            f"  - {{name: vault{i}, kind: vault, address: 'https://vault{i}.example.test:8200',"
            " auth: {method: token, token_env: VAULT_TOKEN}, kv: [{mount: secret, path: tls}],"
            " pki: [{mount: pki, include_revoked: true}], timeout: 5s}"
        )
    if kind == 2:
        return (
            f"  - {{name: k8s{i}, kind: kubernetes, namespaces: [app{i % 9}, web],"
            " configmaps: true, labels_from_annotations: {owner: example.test/owner}, qps: 20}"
        )
    if kind == 3:
        return (
            f"  - {{name: ssh{i}, kind: ssh_authorized_keys,"
            f" paths: ['/home/*/.ssh/authorized_keys'], exclude: ['/home/svc{i}/**']}}"
        )
    return (
        f"  - {{name: aws{i}, kind: aws, regions: [us-east-1, eu-west-1], services: [kms, acm],"
        " intervals: {kms: 2h}, concurrency: 4, stale_after: 1h}"
    )


def write_config(path: Path, targets: int, sources: int = 1) -> None:
    lines = [
        "defaults: {interval: 5m, timeout: 5s, labels: {environment: prod}}",
        "scheduler: {concurrency: 64}",
        "probe: {allowed_targets: ['*.example.test:443'], max_concurrent: 16}",
        "sources:",
        *(source_entry(i) for i in range(sources)),
        "policy:",
        "  min_protocol: TLSv1.2",
        "  exceptions:",
        "    - {target: 'legacy-*', rule: cipher_weak, owner: web, reason: vendor,"
        " expires: 2099-01-01}",
        "    - {target: disk, location: '/srv/tls/old/*', rule: cert_expired, owner: pki,"
        " reason: archive, expires: 2099-01-01}",
        "targets:",
    ]
    for i in range(targets):
        host = f"host{i}.region{i % 7}.example.test"
        extra = ""
        if i % 10 == 0:
            extra += ", interval: 10m, timeout: 3s"
        if i % 100 == 0:
            extra += ", starttls: smtp, alpn: [h2, http/1.1]"
        lines.append(
            f"  - {{address: '{host}:{443 + i % 3}', name: t{i}, "
            f"labels: {{owner: team{i % 40}, service: svc{i % 300}}}{extra}}}"
        )
    path.write_text("\n".join(lines) + "\n")


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree / "exporter")
    env.pop("CERTSCOPE_TARGETS", None)
    return env


def _child(python: str, env: dict[str, str], config: Path) -> dict[str, float]:
    """One fresh interpreter: import, two default_config() calls, one parse of the file."""
    child = subprocess.run(
        [python, "-c", _CHILD, "2", str(config)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    out: dict[str, float] = json.loads(child.stdout)
    return out


def _check_config(python: str, env: dict[str, str], config: Path) -> tuple[float, float]:
    """``certscope check-config`` as a command: wall time and the child's CPU time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.perf_counter()
    subprocess.run(
        [python, "-m", "certscope.cli", "check-config", str(config)],
        env=env,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - w0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(trees: dict[str, Path], config: Path, rounds: int) -> dict[str, dict[str, Any]]:
    """Every measurement of every tree, rounds interleaved (A, B, A, B...) so that a change
    in the machine's load during the run falls on both trees alike; medians."""
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(rounds):
        for name, tree in trees.items():
            python, env = str(tree / ".venv" / "bin" / "python"), _env(tree)
            sample = _child(python, env, config)
            sample["check_config_wall"], sample["check_config_cpu"] = _check_config(
                python, env, config
            )
            samples[name].append(sample)
    out: dict[str, dict[str, Any]] = {}
    for name, tree in trees.items():
        keys = samples[name][0].keys()
        result: dict[str, Any] = {k: statistics.median(s[k] for s in samples[name]) for k in keys}
        commit = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
        result["tree"], result["commit"] = str(tree), commit.stdout.strip()
        out[name] = result
    return out


ROWS = (
    ("import certscope.config", "import"),
    ("default_config(), first call (embedded default)", "default_first"),
    ("default_config(), second call", "default"),
    ("parse_config, {n:,} targets (second call)", "parse"),
    ("  of which: YAML (load_yaml)", "yaml"),
    ("  of which: validation (build_config)", "validate"),
    ("validation of the sources section alone ({s:,} sources)", "sources"),
    ("certscope check-config, {n:,} targets (command)", "check_config"),
)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def report(results: dict[str, dict[str, Any]], targets: int, sources: int) -> str:
    after = results["after"]
    before = results.get("before")
    head = "| step | after wall | after CPU |"
    rule = "| --- | --- | --- |"
    if before:
        head += " before wall | before CPU | CPU ratio (after / before) |"
        rule += " --- | --- | --- |"
    out = [head, rule]
    for label, key in ROWS:
        row = f"| {label.format(n=targets, s=sources)} | {_ms(after[key + '_wall'])} |"
        row += f" {_ms(after[key + '_cpu'])} |"
        if before:
            ratio = after[key + "_cpu"] / before[key + "_cpu"] if before[key + "_cpu"] else 0.0
            row += f" {_ms(before[key + '_wall'])} | {_ms(before[key + '_cpu'])} |"
            row += f" {ratio:.2g}x |"
        out.append(row)
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--targets", type=int, default=10_000)
    ap.add_argument("--sources", type=int, default=1_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", type=Path, help="another checkout with its own .venv")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "targets.yml"
        write_config(config, args.targets, args.sources)
        size = config.stat().st_size
        trees = {"after": ROOT}
        if args.baseline:
            trees["before"] = args.baseline.resolve()
        results = measure(trees, config, args.rounds)
    for tree in results.values():
        if (tree["parse_targets"], tree["parse_sources"]) != (args.targets, args.sources):
            sys.exit(f"{tree['tree']}: parsed a different number of targets or sources")
    table = report(results, args.targets, args.sources)
    print(
        f"config: {args.targets:,} targets, {args.sources:,} sources, {size / 2**20:.2f} MiB;"
        f" medians of {args.rounds}"
    )
    print(table)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"config-bench-{stamp}.json"
    meta = {
        "targets": args.targets,
        "sources": args.sources,
        "rounds": args.rounds,
        "config_bytes": size,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }
    out.write_text(json.dumps({"meta": meta, **results}, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
