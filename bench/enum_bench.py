"""Enumeration benchmark: certscope's ``enumerate_posture`` against sslyze and sslscan.

    .venv/bin/python bench/enum_bench.py [--endpoints N] [--quick] [--parallel P]

What it does, all on loopback (127.0.0.1):

1. starts a fleet of N OpenSSL TLS endpoints (plus one warm-up endpoint) in a separate
   process (this file with ``--role fleet``), so its CPU is charged to no tool. Each endpoint
   is a Python ``ssl`` server on blocking sockets, one thread per connection: OpenSSL does
   the whole handshake and sends its own alerts, as nginx or any OpenSSL server would.
   Endpoints cycle through four configurations (:data:`PROFILES`): Python's defaults with an
   RSA or an ECDSA certificate, OpenSSL's ``DEFAULT`` list in client order with DHE and one
   curve, and a legacy TLS 1.0-1.3 server with ``ALL:@SECLEVEL=0`` and RSA, ECDSA and DSA
   certificates. Certificates come from ``bench/fleet.py``'s ``write_pki`` (DSA: self-signed).
   The fleet counts accepted connections and completed handshakes per port, so each tool's
   connections per endpoint are reported too;
2. certscope: a subprocess (this file with ``--role certscope``, the project's interpreter)
   scans the warm-up endpoint, then every endpoint one after the other, then all of them
   again with ``--parallel`` scans at a time (each scan with ``--max-connections``). CPU is
   ``resource.getrusage(RUSAGE_SELF)`` inside that process around each phase (start-up and
   imports excluded), wall time ``perf_counter``;
3. sslyze, from its own virtualenv (``bench/.sslyze-venv``, created with ``pip install`` if
   missing: sslyze pins its own ``cryptography``): one process per fleet configuration with
   all its endpoints as targets (sslyze scans 10 servers at a time, 5 connections each),
   restricted to ``--sslv2 --sslv3 --tlsv1 --tlsv1_1 --tlsv1_2 --tlsv1_3 --elliptic_curves``
   with ``--mozilla_config=disable``. CPU is the process's rusage from ``os.wait4`` (all its
   threads); its start-up (``python -m sslyze --help``) is measured apart and subtracted for
   the per-endpoint figure. One process per endpoint is also run for one endpoint of each
   configuration;
4. sslscan: ``sslscan --no-colour --xml=FILE`` per endpoint, one after the other, with the
   checks that are not enumeration switched off (``--no-compression --no-fallback
   --no-heartbleed --no-renegotiation --no-check-certificate``); CPU from ``os.wait4``.

Then it compares, per endpoint and protocol, the suites certscope accepted with sslyze's and
sslscan's (by code: sslscan's ``id``, sslyze's IANA name through
``certscope.tls.suites.by_name``, its OpenSSL name as a fallback), protocol support, the
groups (within the groups both tools test), and certscope's server order against sslscan's
listing order, and prints every mismatch. A suite certscope found that sslyze never offered
(sslyze lists every suite it tried, accepted or rejected), or a group the other tool found
that certscope never offers, is listed apart as "not tested", not as a mismatch.

Prints a summary table and writes JSON to ``bench/results/enum-bench-<UTC time>.json``
(gitignored). The exit status is 1 when a phase failed or a tool disagreed with certscope.
Every process it starts is its own and is stopped by PID on exit.
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
import selectors
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
SSLYZE_VENV = BENCH_DIR / ".sslyze-venv"
SSLYZE_SPEC = "sslyze==6.3.1"
HOST = "127.0.0.1"

CPU_RATIO_TARGET = 20.0  # sslyze CPU / certscope CPU, at least
WALL_RATIO_TARGET = 1.0  # certscope wall / sslscan wall, at most

#: Fleet configurations, assigned to endpoints in turn (endpoint i gets PROFILES[i % 4]).
PROFILES: tuple[str, ...] = ("modern-rsa", "modern-ecdsa", "openssl-default", "legacy")
PROFILE_DOC = {
    "modern-rsa": "Python ssl defaults: TLS 1.2-1.3, Python's cipher list, server order, RSA-2048",
    "modern-ecdsa": "the same with an ECDSA P-256 certificate",
    "openssl-default": "TLS 1.2-1.3, OpenSSL 'DEFAULT' list, client order, ffdhe2048 DHE, "
    "secp384r1 only, RSA-2048",
    "legacy": "TLS 1.0-1.3, 'ALL:@SECLEVEL=0' (anonymous, CBC, CAMELLIA, ARIA ...), ffdhe2048 "
    "DHE, server order, three certificates: RSA-2048, ECDSA P-256 and DSA-2048",
}

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
SSLYZE_PROTOCOLS = {
    "ssl_2_0_cipher_suites": "SSLv2",
    "ssl_3_0_cipher_suites": "SSLv3",
    "tls_1_0_cipher_suites": "TLSv1.0",
    "tls_1_1_cipher_suites": "TLSv1.1",
    "tls_1_2_cipher_suites": "TLSv1.2",
    "tls_1_3_cipher_suites": "TLSv1.3",
}
SSLSCAN_PROTOCOLS = {
    ("ssl", "2"): "SSLv2",
    ("ssl", "3"): "SSLv3",
    ("tls", "1.0"): "TLSv1.0",
    ("tls", "1.1"): "TLSv1.1",
    ("tls", "1.2"): "TLSv1.2",
    ("tls", "1.3"): "TLSv1.3",
}
PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")


# =================================================================================================
# Fleet (``--role fleet``): its own process
# =================================================================================================


def _dsa_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed DSA-2048 certificate: its DHE-DSS suites fall outside the first bundle
    of certscope's candidates, so server-order merging across bundles gets exercised."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import dsa
    from cryptography.x509.oid import NameOID

    key = dsa.generate_private_key(key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dsa.bench.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    chain, key_file = directory / "dsa.pem", directory / "dsa.key"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return chain, key_file


def _server_context(profile: str, certs: list[tuple[Path, Path]], dh: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for chain, key in certs:  # OpenSSL keeps one certificate per key type
        ctx.load_cert_chain(chain, key)
    ctx.num_tickets = 0  # no tool resumes; tickets to a client that left only cost the fleet
    if profile == "openssl-default":
        ctx.set_ciphers("DEFAULT")
        ctx.load_dh_params(dh)
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        ctx.set_ecdh_curve("secp384r1")
    elif profile == "legacy":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.load_dh_params(dh)
    return ctx


class _Fleet:
    """Listening sockets on one selector; each connection handled on a worker thread."""

    def __init__(self, contexts: list[ssl.SSLContext]) -> None:
        self.contexts = contexts
        self.listeners: list[socket.socket] = []
        self.accepted = [0] * len(contexts)
        self.handshakes = [0] * len(contexts)
        self.lock = threading.Lock()
        self.stop = False
        self.pool = ThreadPoolExecutor(max_workers=160)

    def listen(self) -> list[int]:
        for _ in self.contexts:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((HOST, 0))
            s.listen(1024)
            s.setblocking(False)
            self.listeners.append(s)
        return [int(s.getsockname()[1]) for s in self.listeners]

    def counts(self) -> dict[str, list[int]]:
        with self.lock:
            return {"accepted": list(self.accepted), "handshakes": list(self.handshakes)}

    def _handle(self, conn: socket.socket, index: int) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(10)
            with self.contexts[index].wrap_socket(conn, server_side=True) as tls:
                with self.lock:
                    self.handshakes[index] += 1
                while tls.recv(4096):
                    pass
        except (OSError, ValueError):
            pass  # refused suites, clients hanging up after the ServerHello: expected
        finally:
            conn.close()

    def serve(self) -> None:
        sel = selectors.DefaultSelector()
        for i, s in enumerate(self.listeners):
            sel.register(s, selectors.EVENT_READ, i)
        while not self.stop:
            for key, _ in sel.select(0.5):
                index = key.data
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                while True:
                    try:
                        conn, _ = sock.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    self.accepted[index] += 1  # only this thread writes it
                    self.pool.submit(self._handle, conn, index)
        for s in self.listeners:
            s.close()
        self.pool.shutdown(wait=False, cancel_futures=True)


def run_fleet(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(BENCH_DIR))
    from fleet import write_pki  # bench/fleet.py: the project's certificate fleet

    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    total = args.endpoints + 1  # the last one is the warm-up endpoint
    profiles = [PROFILES[i % len(PROFILES)] for i in range(args.endpoints)] + ["legacy"]
    n_ecdsa = profiles.count("modern-ecdsa")
    n_legacy = profiles.count("legacy")
    _, rsa_chains, rsa_key = write_pki(work / "rsa", total - n_ecdsa, "rsa")
    _, ec_chains, ec_key = write_pki(work / "ecdsa", n_ecdsa + n_legacy, "ecdsa")
    dsa_cert = _dsa_cert(work)
    dh = work / "ffdhe2048.pem"
    subprocess.run(
        ["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048"],
        stdout=dh.open("wb"),
        check=True,
    )
    contexts = []
    rsa_iter, ec_iter = iter(rsa_chains), iter(ec_chains)
    for profile in profiles:
        if profile == "modern-ecdsa":
            certs = [(next(ec_iter), ec_key)]
        elif profile == "legacy":
            certs = [(next(rsa_iter), rsa_key), (next(ec_iter), ec_key), dsa_cert]
        else:
            certs = [(next(rsa_iter), rsa_key)]
        contexts.append(_server_context(profile, certs, dh))
    fleet = _Fleet(contexts)
    ports = fleet.listen()
    counts_file = work / "counts.json"

    def dump_counts(_sig: int, _frame: object) -> None:
        tmp = counts_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(fleet.counts()))
        tmp.replace(counts_file)

    def stop(_sig: int, _frame: object) -> None:
        fleet.stop = True

    signal.signal(signal.SIGUSR1, dump_counts)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        json.dumps(
            {
                "ports": ports[:-1],
                "profiles": profiles[:-1],
                "warmup_port": ports[-1],
                "counts_file": str(counts_file),
                "pid": os.getpid(),
                "openssl": ssl.OPENSSL_VERSION,
            }
        ),
        flush=True,
    )
    fleet.serve()
    # Worker threads may sit in recv() for up to their 10 s timeout, and the interpreter
    # would join them at exit; nothing is left to flush, so leave at once.
    sys.stdout.flush()
    os._exit(0)


# =================================================================================================
# certscope worker (``--role certscope``): its own process, the project's interpreter
# =================================================================================================


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


# =================================================================================================
# Runner
# =================================================================================================


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


@dataclass
class Fleet:
    proc: subprocess.Popen[bytes]
    ports: list[int]
    profiles: list[str]
    warmup_port: int
    counts_file: Path
    openssl: str

    def counts(self) -> dict[str, list[int]]:
        """Accepted connections and completed handshakes per port so far."""
        with contextlib.suppress(FileNotFoundError):
            self.counts_file.unlink()
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                data: dict[str, list[int]] = json.loads(self.counts_file.read_text())
                return data
            time.sleep(0.02)
        raise RuntimeError("the fleet did not report its connection counts")


def start_fleet(procs: Processes, endpoints: int, workdir: Path) -> Fleet:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--role",
        "fleet",
        "--endpoints",
        str(endpoints),
        "--dir",
        str(workdir / "fleet"),
    ]
    log = (workdir / "fleet.log").open("wb")
    proc = procs.popen(argv, stdout=subprocess.PIPE, stderr=log)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(
            "fleet exited:\n" + (workdir / "fleet.log").read_text(errors="replace")[-2000:]
        )
    info = json.loads(line)
    return Fleet(
        proc,
        info["ports"],
        info["profiles"],
        info["warmup_port"],
        Path(info["counts_file"]),
        info["openssl"],
    )


def per_port_delta(
    before: dict[str, list[int]], after: dict[str, list[int]], indexes: Sequence[int]
) -> dict[str, float]:
    if not indexes:
        return {}
    return {
        k: sum(after[k][i] - before[k][i] for i in indexes) / len(indexes)
        for k in ("accepted", "handshakes")
    }


# --- certscope ----------------------------------------------------------------------------------


def run_certscope(
    procs: Processes, fleet: Fleet, args: argparse.Namespace
) -> tuple[dict[str, Any], Run]:
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
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


# --- views: what each tool says an endpoint accepts -------------------------------------------


@dataclass
class View:
    protocols: dict[str, bool | None] = field(default_factory=dict)
    suites: dict[str, list[int]] = field(default_factory=dict)  # in the tool's listing order
    groups: set[str] = field(default_factory=set)
    groups_tested: set[str] | None = None  # None: every group certscope tests
    suites_tested: dict[str, set[int]] | None = None  # None: the tool does not say
    unknown_names: list[str] = field(default_factory=list)
    extra_groups: set[str] = field(default_factory=set)  # accepted, not tested by certscope
    error: str = ""


def certscope_view(row: dict[str, Any]) -> View:
    return View(
        protocols=dict(row["protocols"]),
        suites={p: list(c) for p, c in row["suites"].items()},
        groups=set(row["groups"]),
        error="" if row["complete"] else f"incomplete: {row['error']}",
    )


def _suite_code(suites_mod: Any, name: str, openssl_name: str | None) -> int | None:
    suite = suites_mod.by_name(name)
    if suite is None and openssl_name:
        suite = suites_mod.by_openssl_name(openssl_name)
    return None if suite is None else int(suite.code)


_SSLYZE_CURVES = {"X25519": "x25519", "X448": "x448"}


def sslyze_view(server: dict[str, Any], ec_candidates: set[str]) -> View:
    from certscope.tls import suites as suites_mod

    view = View()
    if server.get("connectivity_status") != "COMPLETED":
        view.error = f"connectivity {server.get('connectivity_status')}: " + str(
            server.get("connectivity_error_trace")
        )
        return view
    result = server.get("scan_result") or {}
    for key, protocol in SSLYZE_PROTOCOLS.items():
        attempt = result.get(key) or {}
        if attempt.get("status") != "COMPLETED":
            view.protocols[protocol] = None
            view.error += f"{key} {attempt.get('status')}; "
            continue
        res = attempt["result"]
        tested = view.suites_tested = view.suites_tested or {}
        for rejected in res["rejected_cipher_suites"]:
            cs = rejected["cipher_suite"]
            code = _suite_code(suites_mod, cs["name"], cs.get("openssl_name"))
            if code is not None:
                tested.setdefault(protocol, set()).add(code)
        codes = []
        for accepted in res["accepted_cipher_suites"]:
            cs = accepted["cipher_suite"]
            code = _suite_code(suites_mod, cs["name"], cs.get("openssl_name"))
            if code is None:
                view.unknown_names.append(f"{protocol} {cs['name']}")
            else:
                codes.append(code)
                tested.setdefault(protocol, set()).add(code)
        view.protocols[protocol] = bool(res["is_tls_version_supported"])
        if codes:
            view.suites[protocol] = codes
    curves = result.get("elliptic_curves") or {}
    if curves.get("status") == "COMPLETED":
        res = curves["result"]

        def norm(entry: dict[str, Any]) -> str:
            name = str(entry["name"])
            return _SSLYZE_CURVES.get(name, name.lower())

        supported = {norm(c) for c in res.get("supported_curves") or []}
        tested = supported | {norm(c) for c in res.get("rejected_curves") or []}
        view.groups_tested = tested & ec_candidates
        view.groups = supported & ec_candidates
        view.extra_groups = supported - ec_candidates
    else:
        view.groups_tested = set()
        view.error += f"elliptic_curves {curves.get('status')}; "
    return view


def sslscan_view(xml_path: Path, candidates: set[str]) -> View:
    from certscope.tls.enumerate import group_name

    view = View()
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        view.error = f"no XML: {exc}"
        return view
    test = root.find("ssltest")
    if test is None:
        view.error = "no <ssltest> in the XML: " + (root.findtext("error") or "")
        return view
    for proto in test.findall("protocol"):
        name = SSLSCAN_PROTOCOLS.get((proto.get("type", ""), proto.get("version", "")))
        if name:
            view.protocols[name] = proto.get("enabled") == "1"
    for cipher in test.findall("cipher"):
        version = cipher.get("sslversion", "")
        protocol = {"SSLv2": "SSLv2", "SSLv3": "SSLv3"}.get(version, version)
        ident = cipher.get("id")
        if protocol not in PROTOCOLS or not ident:
            view.unknown_names.append(f"{version} {cipher.get('cipher')}")
            continue
        view.suites.setdefault(protocol, []).append(int(ident, 16))
    by_version: dict[str, set[str]] = {}
    for group in test.findall("group"):
        ident = group.get("id")
        if ident:
            by_version.setdefault(group.get("sslversion", ""), set()).add(
                group_name(int(ident, 16))
            )
    chosen = by_version.get("TLSv1.3") if view.protocols.get("TLSv1.3") else None
    if chosen is None:
        chosen = next(
            (by_version[v] for v in ("TLSv1.2", "TLSv1.1", "TLSv1.0") if v in by_version), set()
        )
    view.groups = chosen & candidates
    view.extra_groups = chosen - candidates
    return view


def compare(
    cs: View, other: View, tool: str, port: int, profile: str, *, order: dict[str, bool] | None
) -> list[dict[str, Any]]:
    """Differences between certscope's view and another tool's, one dict per finding."""
    from certscope.tls import suites as suites_mod

    def name(code: int) -> str:
        suite = suites_mod.by_code(code)
        return suite.name if suite is not None else f"0x{code:04X}"

    found: list[dict[str, Any]] = []

    def add(kind: str, **detail: Any) -> None:
        found.append({"tool": tool, "port": port, "profile": profile, "kind": kind, **detail})

    if cs.error:
        add("certscope_error", detail=cs.error)
    if other.error:
        add(f"{tool}_error", detail=other.error)
    for protocol in PROTOCOLS:
        a, b = cs.protocols.get(protocol), other.protocols.get(protocol)
        if protocol in other.protocols and a != b:
            add("protocol", protocol=protocol, certscope=a, other=b)
        sa, sb = set(cs.suites.get(protocol, ())), set(other.suites.get(protocol, ()))
        if other.suites_tested is not None and protocol in other.suites_tested:
            untested = sa - other.suites_tested[protocol]
            if untested:
                # Accepted by the server per certscope, never offered by the other tool.
                add(
                    "not_tested_by_" + tool,
                    protocol=protocol,
                    items=sorted(name(c) for c in untested),
                )
                sa -= untested
        if sa != sb:
            add(
                "suites",
                protocol=protocol,
                only_certscope=sorted(name(c) for c in sa - sb),
                only_other=sorted(name(c) for c in sb - sa),
            )
        elif (
            order and order.get(protocol) and cs.suites.get(protocol) != other.suites.get(protocol)
        ):
            add(
                "server_order",
                protocol=protocol,
                certscope=[name(c) for c in cs.suites[protocol]],
                other=[name(c) for c in other.suites.get(protocol, [])],
            )
    tested = other.groups_tested
    ga = cs.groups if tested is None else cs.groups & tested
    if ga != other.groups:
        add(
            "groups",
            only_certscope=sorted(ga - other.groups),
            only_other=sorted(other.groups - ga),
        )
    if other.extra_groups:
        # Accepted per the other tool, among groups certscope does not offer.
        add("not_tested_by_certscope", protocol="groups", items=sorted(other.extra_groups))
    if other.unknown_names:
        add("unmapped_names", names=other.unknown_names)
    return found


# --- machine ------------------------------------------------------------------------------------


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


# --- the run ------------------------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def main_run(args: argparse.Namespace) -> int:
    from certscope.tls.enumerate import CANDIDATE_GROUPS, group_name

    n = 10 if args.quick and args.endpoints is None else (args.endpoints or 100)
    started = datetime.now(UTC)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out_file = RESULTS_DIR / f"enum-bench-{started:%Y%m%dT%H%M%SZ}.json"
    report: dict[str, Any] = {
        "args": {k: v for k, v in vars(args).items() if k != "role"},
        "endpoints": n,
        "machine": machine_info(),
        "started": started.isoformat(),
        "tools": {},
        "errors": [],
    }
    candidates = {group_name(g) for g in CANDIDATE_GROUPS}
    ec_candidates = {"x25519", "x448", "secp256r1", "secp384r1", "secp521r1"}
    procs = Processes()
    workdir = Path(tempfile.mkdtemp(prefix="enum-bench-"))
    summary: list[dict[str, Any]] = []
    mismatches: list[dict[str, Any]] = []
    try:
        print(f"[fleet] starting {n} endpoints (+1 warm-up) ...", flush=True)
        fleet = start_fleet(procs, n, workdir)
        report["machine"]["openssl_fleet"] = fleet.openssl
        report["fleet"] = {
            "ports": fleet.ports,
            "profiles": fleet.profiles,
            "profile_doc": PROFILE_DOC,
        }
        idx_all = list(range(n))
        by_profile = {p: [i for i in idx_all if fleet.profiles[i] == p] for p in PROFILES}
        by_profile = {p: ix for p, ix in by_profile.items() if ix}

        # -- certscope ---------------------------------------------------------------------
        print(
            f"[certscope] sequential, then {args.parallel} scans at a time "
            f"(max_connections={args.max_connections}) ...",
            flush=True,
        )
        before = fleet.counts()
        cs, cs_run = run_certscope(procs, fleet, args)
        after = fleet.counts()
        seq, par = cs["sequential"], cs["parallel"]
        conns = per_port_delta(before, after, idx_all)
        cs_rows = seq["endpoints"]
        report["tools"]["certscope"] = {
            "process_cpu_s_including_startup": cs_run.cpu_s,
            "process_wall_s": cs_run.wall_s,
            "fleet_counts_per_endpoint_both_passes": conns,
            **cs,
        }
        incomplete = [r["port"] for r in cs_rows + par["endpoints"] if not r["complete"]]
        summary.append(
            {
                "tool": "certscope",
                "mode": "sequential, 1 endpoint at a time",
                "cpu_per_endpoint": seq["cpu_s"] / n,
                "wall_per_endpoint": seq["wall_s"] / n,
                "connections": statistics.fmean(r["connections"] for r in cs_rows),
                "failures": sum(1 for r in cs_rows if not r["complete"]),
            }
        )
        summary.append(
            {
                "tool": "certscope",
                "mode": f"{args.parallel} endpoints at a time",
                "cpu_per_endpoint": par["cpu_s"] / n,
                "wall_per_endpoint": par["wall_s"] / n,
                "connections": statistics.fmean(r["connections"] for r in par["endpoints"]),
                "failures": sum(1 for r in par["endpoints"] if not r["complete"]),
            }
        )
        if incomplete:
            report["errors"].append(f"certscope: incomplete scans on ports {incomplete}")
        # The two certscope passes must agree with each other.
        par_by_port = {r["port"]: r for r in par["endpoints"]}
        for i, row in enumerate(cs_rows):
            other = certscope_view(par_by_port[row["port"]])
            for d in compare(
                certscope_view(row),
                other,
                "certscope_parallel",
                row["port"],
                fleet.profiles[i],
                order=None,
            ):
                mismatches.append(d)

        # -- sslyze ------------------------------------------------------------------------
        sslyze_rows: dict[int, dict[str, Any]] = {}
        if "sslyze" in args.skip:
            print("[sslyze] skipped")
        else:
            version, err = ensure_sslyze(args.sslyze_spec)
            if version is None:
                report["errors"].append(f"sslyze: {err}")
                print(f"[sslyze] NOT AVAILABLE: {err}", flush=True)
            else:
                info: dict[str, Any] = {
                    "version": version,
                    "nassl_openssl": nassl_openssl(),
                    "venv": str(SSLYZE_VENV.relative_to(ROOT)),
                    "flags": list(SSLYZE_FLAGS),
                }
                startups = [
                    procs.run([str(sslyze_python()), "-m", "sslyze", "--help"], 120)
                    for _ in range(3)
                ]
                startup_cpu = statistics.median(r.cpu_s for r in startups)
                startup_wall = statistics.median(r.wall_s for r in startups)
                info["startup"] = {"cpu_s": startup_cpu, "wall_s": startup_wall}
                print(
                    f"[sslyze] {version}: start-up {startup_cpu:.2f} s CPU; one process per "
                    "fleet configuration ...",
                    flush=True,
                )
                batches = []
                before = fleet.counts()
                for profile, ix in by_profile.items():
                    json_out = workdir / f"sslyze-{profile}.json"
                    run = procs.run(sslyze_argv([fleet.ports[i] for i in ix], json_out), 3600)
                    batch = {
                        "profile": profile,
                        "endpoints": len(ix),
                        "cpu_s": run.cpu_s,
                        "wall_s": run.wall_s,
                        "returncode": run.returncode,
                    }
                    batches.append(batch)
                    print(
                        f"  {profile:16} {len(ix):3} endpoints  CPU {run.cpu_s:7.2f} s  "
                        f"wall {run.wall_s:7.2f} s",
                        flush=True,
                    )
                    if run.returncode != 0 or not json_out.exists():
                        report["errors"].append(
                            f"sslyze {profile}: exit {run.returncode}: {run.stderr[-2000:]!r}"
                        )
                        continue
                    doc = json.loads(json_out.read_text())
                    for server in doc["server_scan_results"]:
                        sslyze_rows[int(server["server_location"]["port"])] = server
                after = fleet.counts()
                info["batches"] = batches
                info["fleet_counts_per_endpoint"] = per_port_delta(before, after, idx_all)
                cpu = sum(b["cpu_s"] for b in batches)
                wall = sum(b["wall_s"] for b in batches)
                info["cpu_s"], info["wall_s"] = cpu, wall
                summary.append(
                    {
                        "tool": "sslyze",
                        "mode": "1 process per configuration, 10 servers at a time, "
                        "start-up excluded",
                        "cpu_per_endpoint": (cpu - startup_cpu * len(batches)) / n,
                        "wall_per_endpoint": (wall - startup_wall * len(batches)) / n,
                        "connections": info["fleet_counts_per_endpoint"]["accepted"],
                        "failures": n - sum(1 for p in fleet.ports if p in sslyze_rows),
                    }
                )
                summary.append(
                    {
                        "tool": "sslyze",
                        "mode": "the same, start-up included",
                        "cpu_per_endpoint": cpu / n,
                        "wall_per_endpoint": wall / n,
                        "connections": None,
                        "failures": None,
                    }
                )
                singles = []
                for profile, ix in by_profile.items():
                    port = fleet.ports[ix[0]]
                    run = procs.run(sslyze_argv([port], workdir / f"sslyze-1-{port}.json"), 600)
                    singles.append(
                        {"profile": profile, "port": port, "cpu_s": run.cpu_s, "wall_s": run.wall_s}
                    )
                info["one_process_per_endpoint"] = singles
                summary.append(
                    {
                        "tool": "sslyze",
                        "mode": f"1 process per endpoint ({len(singles)} endpoints, 1 per "
                        "configuration), start-up included",
                        "cpu_per_endpoint": statistics.fmean(s["cpu_s"] for s in singles),
                        "wall_per_endpoint": statistics.fmean(s["wall_s"] for s in singles),
                        "connections": None,
                        "failures": None,
                    }
                )
                report["tools"]["sslyze"] = info

        # -- sslscan -----------------------------------------------------------------------
        sslscan_rows: dict[int, tuple[View, Run]] = {}
        binary = shutil.which(args.sslscan) or (
            args.sslscan if Path(args.sslscan).exists() else None
        )
        if "sslscan" in args.skip:
            print("[sslscan] skipped")
        elif binary is None:
            report["errors"].append(f"sslscan: {args.sslscan} not found")
            print(f"[sslscan] NOT FOUND: {args.sslscan}")
        else:
            version = sslscan_version(binary)
            print(f"[sslscan] {version}: one endpoint at a time ...", flush=True)
            before = fleet.counts()
            per = []
            for i, port in enumerate(fleet.ports):
                xml = workdir / f"sslscan-{port}.xml"
                run = procs.run(
                    [binary, *SSLSCAN_FLAGS, f"--xml={xml}", f"{HOST}:{port}"], timeout=600
                )
                view = sslscan_view(xml, candidates)
                if run.returncode != 0:
                    view.error += f" exit {run.returncode}"
                sslscan_rows[port] = (view, run)
                per.append(
                    {
                        "port": port,
                        "profile": fleet.profiles[i],
                        "cpu_s": run.cpu_s,
                        "wall_s": run.wall_s,
                        "returncode": run.returncode,
                    }
                )
            after = fleet.counts()
            counts = per_port_delta(before, after, idx_all)
            report["tools"]["sslscan"] = {
                "version": version,
                "flags": list(SSLSCAN_FLAGS),
                "endpoints": per,
                "fleet_counts_per_endpoint": counts,
            }
            summary.append(
                {
                    "tool": "sslscan",
                    "mode": "1 process per endpoint, 1 at a time",
                    "cpu_per_endpoint": statistics.fmean(r["cpu_s"] for r in per),
                    "wall_per_endpoint": statistics.fmean(r["wall_s"] for r in per),
                    "connections": counts["accepted"],
                    "failures": sum(1 for v, _ in sslscan_rows.values() if v.error),
                }
            )
        # -- agreement ---------------------------------------------------------------------
        for i, row in enumerate(cs_rows):
            port, profile = row["port"], fleet.profiles[i]
            view = certscope_view(row)
            if port in sslyze_rows:
                mismatches += compare(
                    view,
                    sslyze_view(sslyze_rows[port], ec_candidates),
                    "sslyze",
                    port,
                    profile,
                    order=None,
                )
            elif "sslyze" in report["tools"]:
                mismatches.append(
                    {"tool": "sslyze", "port": port, "profile": profile, "kind": "no_result"}
                )
            if port in sslscan_rows:
                mismatches += compare(
                    view,
                    sslscan_rows[port][0],
                    "sslscan",
                    port,
                    profile,
                    order=dict(row["server_order"]),
                )
        report["load_end"] = os.getloadavg()
    except Exception as exc:
        report["errors"].append(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        procs.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
        report["summary"] = summary
        report["mismatches"] = mismatches
        ratios = _ratios(summary)
        report["ratios"] = ratios
        out_file.write_text(json.dumps(report, indent=1, default=str))
    print_report(report, summary, mismatches, ratios, by_profile)
    print(f"\nJSON: {out_file.relative_to(ROOT)}")
    hard = [m for m in mismatches if not m["kind"].startswith("not_tested_by_")]
    return 1 if report["errors"] or hard else 0


def _row(summary: list[dict[str, Any]], tool: str, start: str) -> dict[str, Any] | None:
    return next((r for r in summary if r["tool"] == tool and r["mode"].startswith(start)), None)


def _ratios(summary: list[dict[str, Any]]) -> dict[str, Any]:
    """Headlines: sslyze's CPU against certscope's parallel pass (both scan several endpoints
    at a time), certscope's sequential wall against sslscan's (both one endpoint at a time)."""
    seq = _row(summary, "certscope", "sequential")
    par = next((r for r in summary if r["tool"] == "certscope" and r is not seq), None)
    yz = _row(summary, "sslyze", "1 process per configuration")
    sc = _row(summary, "sslscan", "")
    out: dict[str, Any] = {}
    if yz and seq and par:
        cpu_par = yz["cpu_per_endpoint"] / par["cpu_per_endpoint"]
        cpu_seq = yz["cpu_per_endpoint"] / seq["cpu_per_endpoint"]
        out.update(
            sslyze_cpu_over_certscope_cpu_parallel=cpu_par,
            sslyze_cpu_over_certscope_cpu_sequential=cpu_seq,
            cpu_target=CPU_RATIO_TARGET,
            cpu_target_met=cpu_par >= CPU_RATIO_TARGET,
            cpu_target_met_sequential=cpu_seq >= CPU_RATIO_TARGET,
        )
    if sc and seq:
        wall = seq["wall_per_endpoint"] / sc["wall_per_endpoint"]
        out.update(
            certscope_wall_sequential_over_sslscan_wall=wall,
            wall_target=WALL_RATIO_TARGET,
            wall_target_met=wall <= WALL_RATIO_TARGET,
            sslscan_cpu_over_certscope_cpu_sequential=sc["cpu_per_endpoint"]
            / seq["cpu_per_endpoint"],
        )
    return out


def print_report(
    report: dict[str, Any],
    summary: list[dict[str, Any]],
    mismatches: list[dict[str, Any]],
    ratios: dict[str, Any],
    by_profile: dict[str, list[int]],
) -> None:
    n = report["endpoints"]
    print(f"\n=== Enumeration of {n} loopback endpoints ===")
    print(f"{'tool':10} {'mode':72} {'CPU s/ep':>9} {'wall s/ep':>9} {'conns/ep':>9} {'fail':>5}")
    for r in summary:
        conns = "-" if r["connections"] is None else f"{r['connections']:.0f}"
        fails = "-" if r["failures"] is None else str(r["failures"])
        print(
            f"{r['tool']:10} {r['mode']:72} {_fmt(r['cpu_per_endpoint']):>9} "
            f"{_fmt(r['wall_per_endpoint']):>9} {conns:>9} {fails:>5}"
        )
    # Per fleet configuration.
    tools = report["tools"]
    print("\nPer fleet configuration (CPU s / wall s per endpoint):")
    print(
        f"{'configuration':16} {'n':>3} {'certscope seq':>15} {'sslyze batch':>15} {'sslscan':>15}"
    )
    cs = tools.get("certscope", {})
    seq_rows = cs.get("sequential", {}).get("endpoints", [])
    yz_batches = {b["profile"]: b for b in tools.get("sslyze", {}).get("batches", [])}
    startup = tools.get("sslyze", {}).get("startup", {})
    sc_rows = tools.get("sslscan", {}).get("endpoints", [])

    def cell(rows: list[dict[str, Any]]) -> str:
        if not rows:
            return "-"
        cpu = statistics.fmean(r["cpu_s"] for r in rows)
        return f"{cpu:.3f} / {statistics.fmean(r['wall_s'] for r in rows):.3f}"

    for profile, ix in by_profile.items():
        b = yz_batches.get(profile)
        yz = "-"
        if b:
            cpu = (b["cpu_s"] - startup.get("cpu_s", 0)) / b["endpoints"]
            wall = (b["wall_s"] - startup.get("wall_s", 0)) / b["endpoints"]
            yz = f"{cpu:.3f} / {wall:.3f}"
        sc = cell([r for r in sc_rows if r["profile"] == profile])
        seq = cell([seq_rows[i] for i in ix if i < len(seq_rows)])
        print(f"{profile:16} {len(ix):>3} {seq:>15} {yz:>15} {sc:>15}")

    print("\nRatios:")
    if "sslyze_cpu_over_certscope_cpu_parallel" in ratios:
        met = "met" if ratios["cpu_target_met"] else "MISSED"
        print(
            f"  sslyze CPU / certscope CPU: "
            f"{ratios['sslyze_cpu_over_certscope_cpu_parallel']:.1f}x (certscope parallel), "
            f"{ratios['sslyze_cpu_over_certscope_cpu_sequential']:.1f}x (sequential)  "
            f"target >= {CPU_RATIO_TARGET:g}x (headline: parallel): {met}"
        )
    if "certscope_wall_sequential_over_sslscan_wall" in ratios:
        met = "met" if ratios["wall_target_met"] else "MISSED"
        print(
            f"  certscope wall / sslscan wall (both 1 endpoint at a time): "
            f"{ratios['certscope_wall_sequential_over_sslscan_wall']:.3f}  "
            f"target <= {WALL_RATIO_TARGET:g}: {met}"
        )
        print(
            "  sslscan CPU / certscope CPU (sequential): "
            f"{ratios['sslscan_cpu_over_certscope_cpu_sequential']:.1f}x"
        )
    untested = [m for m in mismatches if m["kind"].startswith("not_tested_by_")]
    real = [m for m in mismatches if m not in untested]
    if untested:
        print(
            f"\nAccepted, but one of the two tools never offers it (not mismatches): "
            f"{len(untested)} findings"
        )
        seen: dict[tuple[str, str, str], int] = {}
        for m in untested:
            key = (m["kind"], m["protocol"], ", ".join(m["items"]))
            seen[key] = seen.get(key, 0) + 1
        for (kind, protocol, names), count in seen.items():
            print(f"  {kind}: {protocol} on {count} endpoint(s): {names}")
    print(f"\nMismatches: {len(real)}")
    for m in real:
        detail = {k: v for k, v in m.items() if k not in ("tool", "port", "profile", "kind")}
        print(f"  {m['tool']:18} port {m['port']} ({m['profile']}) {m['kind']}: {detail}")
    for err in report["errors"]:
        print(f"ERROR: {err}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--endpoints", type=int, default=None, help="endpoints (default 100)")
    p.add_argument("--quick", action="store_true", help="10 endpoints")
    p.add_argument(
        "--parallel", type=int, default=10, help="certscope scans at a time (default 10)"
    )
    p.add_argument("--max-connections", type=int, default=4, help="per certscope scan")
    p.add_argument("--timeout", type=float, default=5.0, help="certscope per connection")
    p.add_argument("--deadline", type=float, default=120.0, help="certscope per scan")
    p.add_argument("--sslscan", default="sslscan", help="sslscan binary")
    p.add_argument("--sslyze-spec", default=SSLYZE_SPEC, help="pip requirement for sslyze")
    p.add_argument("--skip", action="append", default=[], choices=["sslyze", "sslscan"])
    # Internal roles: this file is also the fleet and the certscope worker.
    p.add_argument(
        "--role", choices=["run", "fleet", "certscope"], default="run", help=argparse.SUPPRESS
    )
    p.add_argument("--dir", help=argparse.SUPPRESS)
    p.add_argument("--ports", help=argparse.SUPPRESS)
    p.add_argument("--warmup-port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.role == "fleet":
        return run_fleet(args)
    if args.role == "certscope":
        return run_certscope_worker(args)
    return main_run(args)


if __name__ == "__main__":
    sys.exit(main())
