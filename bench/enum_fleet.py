"""The enumeration benchmark's fleet: N OpenSSL TLS endpoints on loopback, in a process of its own.

``bench/enum_bench.py --role fleet`` runs :func:`run_fleet`; the runner starts it with
:func:`start_fleet` and reads its per-port connection counts through :class:`Fleet`. Each
endpoint is a Python ``ssl`` server on blocking sockets, one thread per connection: OpenSSL
does the whole handshake and sends its own alerts, as nginx or any OpenSSL server would.
Endpoints cycle through the configurations of :data:`PROFILES`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from enum_tools import Processes

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"

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
        ctx.load_dh_params(str(dh))
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        ctx.set_ecdh_curve("secp384r1")
    elif profile == "legacy":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.load_dh_params(str(dh))
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
        str(BENCH_DIR / "enum_bench.py"),
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
