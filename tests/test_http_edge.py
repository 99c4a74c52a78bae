"""The exporter's HTTP edge under hostile clients, against the real ``certscope serve`` process.

One request must never freeze the exporter: hostile ``/probe`` inputs, slow clients and
malformed requests leave ``/-/healthy`` answering fast, and nothing the attacker sent is
written to the log.
"""

from __future__ import annotations

import ast
import http.client
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.exporter import Exporter

DENY_ALL = "targets: []\n"


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Exporter]:
    cfg = tmp_path / "c.yml"
    cfg.write_text(DENY_ALL)
    args = ["--web.read-header-timeout", "1s", "--log.level", "debug"]
    with Exporter(cfg, tmp_path / "exporter.log", args) as running:
        yield running


def healthy_seconds(port: int) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        started = time.perf_counter()
        conn.request("GET", "/-/healthy")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        return time.perf_counter() - started
    finally:
        conn.close()


ATTACKER = """
import collections, http.client, sys, time
port, n, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
statuses = collections.Counter()
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/probe?target=" + "a" * n + "-:443&sni=" + "b" * n + "-")
    statuses[conn.getresponse().status] += 1
    conn.close()
    time.sleep(0.005)  # a steady stream, not a CPU hog: the machine has other work
print(dict(statuses))
"""


def test_hostile_probe_targets_do_not_freeze_the_exporter(exporter: Exporter) -> None:
    """``aaaa…a-`` once took 21 s of event-loop time at 28 characters, doubling per character.

    The attackers are separate processes, so the latency measured here is the exporter's, not
    this process's thread scheduling. One such request used to freeze the loop for longer
    than the whole test.
    """
    attackers = [
        subprocess.Popen(
            [sys.executable, "-c", ATTACKER, str(exporter.port), str(n), "3"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in (33, 250)
    ]
    try:
        time.sleep(0.5)
        latencies = []
        for _ in range(20):
            latencies.append(healthy_seconds(exporter.port))
            time.sleep(0.05)
        assert all(a.poll() is None for a in attackers)  # the attack lasted the whole time
    finally:
        outputs = [a.communicate(timeout=30)[0] for a in attackers]
    counts = [ast.literal_eval(out) for out in outputs]
    assert all(set(c) == {400} and c[400] > 10 for c in counts), counts
    print(f"/-/healthy under attack: max {max(latencies) * 1000:.1f} ms; hostile requests {counts}")
    assert max(latencies) < 0.1, latencies


def test_slow_clients_are_cut_off_and_do_not_block_others(exporter: Exporter) -> None:
    slow = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", exporter.port), timeout=5)
        s.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        slow.append(s)
    try:
        assert healthy_seconds(exporter.port) < 0.5
        time.sleep(1.0)
        for s in slow[:5]:
            s.sendall(b"X-Drip: 1\r\n")  # still dripping: no more time
        deadline = time.monotonic() + 5
        closed = 0
        for s in slow:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            if s.recv(1) == b"":
                closed += 1
        assert closed == 200
    finally:
        for s in slow:
            s.close()


def test_malformed_requests_are_logged_at_debug_without_their_bytes(exporter: Exporter) -> None:
    secret = b"hunter2-malformed-marker"
    for raw in (
        b"GET /\x00" + secret + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01Header: " + secret + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: " + secret + b"\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", exporter.port), timeout=5) as s:
            s.sendall(raw)
            assert b" 400 " in s.recv(64)
    assert healthy_seconds(exporter.port) < 0.5
    log = exporter.log.read_bytes()
    assert secret not in log
    assert b"level=ERROR" not in log
    assert log.count(b"malformed HTTP request refused") == 3
