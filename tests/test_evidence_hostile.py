"""``certscope evidence`` against a Prometheus that misbehaves, and its output directory.

The servers here are hand-written (tests/helpers/hostile_prometheus.py): a real Prometheus cannot be
made to drip its answer, answer 300 MB or send JSON of the wrong shape. Every case must end
with exit status 1, one line on stderr (no traceback), in bounded time and memory, and
nothing written to --out.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from certscope.evidence import query
from helpers.hostile_prometheus import HostilePrometheus, drip, fixed, huge
from helpers.measure import run_measured

PERIOD = ["--from", "2025-01-01", "--to", "2025-01-02"]


def run_evidence(url: str, out: Path, *extra: str) -> tuple[int, str, float, int]:
    """Exit status, stderr, seconds and peak RSS (KiB) of one ``certscope evidence`` run."""
    return run_measured(
        [
            *(sys.executable, "-m", "certscope.evidence.cli", "--prometheus.url", url),
            *(*PERIOD, "--out", str(out), *extra),
        ]
    )


def assert_clean_error(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if not line.startswith("certscope evidence: ")]
    assert errors == [], stderr


async def test_a_dripping_server_hits_the_deadline() -> None:
    with HostilePrometheus(drip(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", 1.0)) as srv:
        started = time.monotonic()
        async with query.PrometheusClient(srv.url, timeout=2, retries=0) as client:
            with pytest.raises(query.PrometheusUnreachable, match="no complete answer within 2 s"):
                await client.instant("x", "up", 0)
        assert time.monotonic() - started < 4


def test_a_dripping_server_ends_the_command(tmp_path: Path) -> None:
    with HostilePrometheus(drip(b"HTTP/1.1 200 OK\r\n", 5.0)) as srv:
        out = tmp_path / "out"
        code, stderr, seconds, _ = run_evidence(srv.url, out, "--query.timeout", "1s")
    assert code == 1
    assert "no complete answer within 1 s (4 attempts)" in stderr
    assert_clean_error(stderr)
    assert seconds < 15  # 4 attempts of 1 s and 3.5 s of back-off
    assert not out.exists()


def test_a_300_mb_answer_is_dropped_at_the_cap(tmp_path: Path) -> None:
    with HostilePrometheus(huge(300 * 1024 * 1024)) as srv:
        out = tmp_path / "out"
        code, stderr, _, rss_kib = run_evidence(srv.url, out, "--query.max-bytes", "1048576")
    assert code == 1
    assert "larger than 1,048,576 bytes" in stderr
    assert_clean_error(stderr)
    assert rss_kib < 250 * 1024, f"peak RSS {rss_kib} KiB"  # the interpreter and matplotlib
    assert not out.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>not a Prometheus</html>", "not Prometheus API JSON"),
        (b"[1, 2, 3]", "unexpected answer"),
        (b'{"status": "error", "error": "boom"}', "boom"),
        (b'{"status": "success", "data": {"result": "x"}}', "has no result list"),
        (
            b'{"status": "success", "data": {"resultType": "matrix", "result": '
            b'[{"metric": {}, "values": [["a", "b"]]}]}}',
            "malformed sample",
        ),
        (
            b'{"status": "success", "data": {"resultType": "matrix", "result": [7]}}',
            "malformed series",
        ),
    ],
)
def test_malformed_answers_are_one_line_errors(tmp_path: Path, body: bytes, message: str) -> None:
    with HostilePrometheus(fixed(body)) as srv:
        out = tmp_path / "out"
        code, stderr, seconds, _ = run_evidence(srv.url, out)
    assert code == 1, stderr
    assert message in stderr
    assert_clean_error(stderr)
    assert seconds < 30
    assert not out.exists()


def test_a_non_empty_out_is_refused_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "audit-2024.txt").write_text("keep me")
    code, stderr, _, _ = run_evidence("http://127.0.0.1:9", out)
    assert code == 2 and "not empty (use --force" in stderr
    assert (out / "audit-2024.txt").read_text() == "keep me"
    # with --force, a failing run leaves the old content in place: nothing half-written
    code, stderr, _, _ = run_evidence("http://127.0.0.1:9", out, "--force")
    assert code == 1 and "cannot reach Prometheus" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["audit-2024.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left
