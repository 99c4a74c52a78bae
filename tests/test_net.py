"""Addresses and host names: linear-time validation, properties checked with hypothesis.

Every example has a time budget (hypothesis ``deadline``): a validator that backtracks fails
the property test instead of passing slowly.
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certscope.net import (
    MAX_HOSTNAME,
    PortError,
    hostname_problem,
    is_hostname,
    join_address,
    split_address,
)

#: Per example: the slowest legitimate input takes microseconds.
BUDGET = settings(deadline=50, max_examples=400)

LABEL = st.from_regex(r"\A[a-z0-9_](?:[a-z0-9_-]{0,20}[a-z0-9_])?\Z")
NAME = (
    st.lists(LABEL, min_size=1, max_size=6)
    .filter(lambda labels: not labels[-1].isdigit())
    .map(".".join)
)


@pytest.mark.parametrize(
    "name",
    [
        "example.com",
        "web.example.test.",
        "_dmarc.example.com",
        "a",
        "xn--bcher-kva.example",
        "bücher.example",
        "a-b.c_d.e",
        "x" * 63 + ".test",
    ],
)
def test_valid_host_names(name: str) -> None:
    assert hostname_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "1-253"),
        ("a" * 254, "1-253"),
        ("x" * 64 + ".test", "1-63"),
        ("a..b", "1-63"),
        ("-a.test", "start or end"),
        ("a-.test", "start or end"),
        ("a b.test", "letters, digits"),
        ("a*.test", "letters, digits"),
        ("127.0.1", "neither"),  # all-numeric last label: the resolver reads an address
        ("2130706433", "neither"),
        ("0x7f000001", "neither"),  # inet_aton reads hex: 127.0.0.1
        ("127.0.1.evil\x00", "letters, digits"),
        ("a" * 28 + "-", "start or end"),  # the input that froze the event loop for 21 s
    ],
)
def test_invalid_host_names(name: str, why: str) -> None:
    problem = hostname_problem(name)
    assert problem is not None and why in problem


def test_hostile_name_is_refused_in_microseconds() -> None:
    """The exponential-backtracking input of the old pattern, far longer: still instant."""
    for n in (28, 40, 252):
        name = "a" * n + "-"
        started = time.perf_counter()
        for _ in range(1000):
            assert not is_hostname(name)
        assert (time.perf_counter() - started) / 1000 < 1e-4  # measured: about 2 µs


@BUDGET
@given(NAME, st.integers(1, 65535))
def test_split_join_round_trip_for_names(name: str, port: int) -> None:
    assert split_address(join_address(name, port)) == (name, port)


@BUDGET
@given(st.ip_addresses(), st.integers(1, 65535))
def test_split_join_round_trip_for_addresses(ip: ipaddress._BaseAddress, port: int) -> None:
    host, got = split_address(join_address(str(ip), port))
    assert (ipaddress.ip_address(host), got) == (ip, port)


@BUDGET
@given(st.text(max_size=400))
def test_split_address_accepts_or_explains_any_text(text: str) -> None:
    try:
        host, port = split_address(text)
    except ValueError as exc:
        message = str(exc)
        assert message
    else:
        assert 1 <= port <= 65535
        assert len(host) <= MAX_HOSTNAME


@BUDGET
@given(st.text(alphabet="a-._*0123456789:[]", max_size=300))
def test_hostile_alphabet_validates_within_budget(text: str) -> None:
    # The deadline is the assertion: each example must finish within the budget.
    hostname_problem(text)
    with contextlib.suppress(ValueError):
        split_address(text)


@pytest.mark.parametrize("port", ["0", "65536", "١٢٣", "+443", " 443", "4430000"])
def test_ports_are_ascii_digits_in_range(port: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        split_address(f"example.com:{port}")


def test_port_out_of_range_is_a_port_error() -> None:
    with pytest.raises(PortError):
        split_address("example.com:70000")


def test_scan_refuses_a_hostile_name_at_once() -> None:
    """``certscope scan`` validates with the same functions (it once froze here too)."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "certscope.cli", "scan", "a" * 40 + "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.perf_counter() - started < 10  # the interpreter's start-up; the check is µs
    assert result.returncode == 2
    assert "is not a valid host name" in result.stderr and "Traceback" not in result.stderr
