"""STARTTLS against the real servers: Postfix, Dovecot, vsftpd, slapd, PostgreSQL, MariaDB.

Each daemon comes from its Debian package and is started by ``daemons.py`` on loopback with a
certificate from the test PKI, once with TLS configured and once without (the refusal is the
server's own). Where the daemon logs it, the server's side of the story is checked too: it saw
a TLS session, not just a probe that believed it had one.

Hand-written servers remain only for misbehaviour no real server shows on demand (a banner
that never ends, an answer that lies about its length, a line without end): those are at the
bottom of this file.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from certscope.config import Target, TLSOptions
from certscope.errors import ProbeFailure
from certscope.probe import probe
from certscope.results import ProbeResult
from helpers import daemons
from helpers.pki import Leaf, TestPKI
from helpers.servers import Connection, Server

# (daemon, port name, certscope's starttls protocol, what the server logs for a TLS session)
CASES: list[tuple[str, str, str, str | None]] = [
    ("postfix", "smtp", "smtp", r"postfix/smtpd\[\d+\]: Anonymous TLS connection established"),
    (
        "postfix",
        "submission",
        "smtp",
        r"postfix/submission/smtpd\[\d+\]: Anonymous TLS connection established",
    ),
    ("dovecot", "imap", "imap", r"imap-login: .*\bTLS\b"),
    ("dovecot", "pop3", "pop3", r"pop3-login: .*\bTLS\b"),
    ("vsftpd", "ftp", "ftp", r"SSL version: TLSv1\.[23]"),
    ("slapd", "ldap", "ldap", r"op=0 STARTTLS"),
    ("postgres", "postgres", "postgres", None),  # it logs nothing before authentication
    ("mariadb", "mysql", "mysql", None),  # it logs nothing for a connection that never logs in
]
IDS = [f"{d}-{port}" for d, port, _, _ in CASES]

Factory = Callable[..., daemons.Daemon]


@pytest.fixture(scope="module")
def leaf(pki: TestPKI) -> Leaf:
    return pki.leaf("mail.test", "127.0.0.1")


@pytest.fixture(scope="module")
def started(leaf: Leaf) -> Iterator[Callable[[str, bool], daemons.Daemon]]:
    """Starts each daemon (with or without TLS) once for the module, on first use."""
    running: dict[tuple[str, bool], daemons.Daemon] = {}
    with ExitStack() as stack:

        def get(name: str, tls: bool) -> daemons.Daemon:
            if (name, tls) not in running:
                factory: Factory = getattr(daemons, name)
                running[name, tls] = stack.enter_context(factory(leaf.chain, leaf.key, tls=tls))
            return running[name, tls]

        yield get


def target(port: int, protocol: str, timeout: float = 10.0, **tls: Any) -> Target:
    return Target(
        name=f"real-{protocol}",
        host="127.0.0.1",
        port=port,
        tls=TLSOptions(timeout=timeout, starttls=protocol, **tls),
    )


def reason(r: ProbeResult) -> ProbeFailure | None:
    return r.outcome.error.reason if r.outcome.error else None


async def server_log(daemon: daemons.Daemon, pattern: str, timeout: float = 5.0) -> str:
    """The daemon's log once ``pattern`` appears in it (daemons write their logs lazily)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        text = daemon.log()
        if re.search(pattern, text):
            return text
        if loop.time() > deadline:
            raise AssertionError(f"{daemon.name} never logged {pattern!r}:\n{text[-3000:]}")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(("name", "port", "protocol", "logged"), CASES, ids=IDS)
async def test_starttls_with_the_real_server(
    started: Callable[[str, bool], daemons.Daemon],
    pki: TestPKI,
    leaf: Leaf,
    name: str,
    port: str,
    protocol: str,
    logged: str | None,
) -> None:
    daemon = await asyncio.to_thread(started, name, True)
    r = await probe(target(daemon.ports[port], protocol, sni="mail.test", ca_file=str(pki.ca_file)))
    assert r.outcome.error is None, r.outcome.error
    assert r.success
    assert r.verdict is not None and r.verdict.verified, r.verdict
    assert r.facts[0].subject_cn == "mail.test"
    assert r.outcome.chain[0] == leaf.der  # the certificate the daemon was configured with
    assert [phase for phase, _ in r.phases] == [
        "resolve",
        "connect",
        "starttls",
        "handshake",
    ]
    if logged is not None:
        await server_log(daemon, logged)


@pytest.mark.parametrize(("name", "port", "protocol", "logged"), CASES, ids=IDS)
async def test_starttls_refused_by_the_real_server(
    started: Callable[[str, bool], daemons.Daemon],
    name: str,
    port: str,
    protocol: str,
    logged: str | None,
) -> None:
    daemon = await asyncio.to_thread(started, name, False)
    r = await probe(target(daemon.ports[port], protocol))
    assert reason(r) is ProbeFailure.STARTTLS_REFUSED, r.outcome.error
    assert r.facts == ()
    assert r.outcome.error is not None and r.outcome.error.message


# --- misbehaviour no real server shows on demand (hand-written servers) ---------------------


def scripted(send: Callable[[Connection], bytes], repeat: bool = False) -> Server:
    """A server that answers every client with ``send(conn)`` (forever when ``repeat``)."""

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter, c: Connection) -> None:
        while True:
            w.write(send(c))
            await w.drain()
            if not repeat:
                break
        while await r.read(4096):
            pass

    return Server(handler)


async def test_a_banner_that_never_ends_is_cut_off() -> None:
    # An SMTP greeting of endless "220-" continuation lines: bounded, not buffered forever.
    with scripted(lambda c: b"220-still greeting you\r\n" * 64, repeat=True) as srv:
        r = await probe(target(srv.port, "smtp"))
    assert reason(r) is ProbeFailure.STARTTLS_ERROR
    assert r.outcome.error is not None and "too long" in r.outcome.error.message
    assert r.duration < 5


async def test_a_line_without_end_is_cut_off() -> None:
    with scripted(lambda c: b"* OK " + b"x" * 8192, repeat=True) as srv:
        r = await probe(target(srv.port, "imap"))
    assert reason(r) is ProbeFailure.STARTTLS_ERROR
    assert r.outcome.error is not None and "too long" in r.outcome.error.message


async def test_an_ldap_answer_that_lies_about_its_length() -> None:
    # A BER length of 16 MiB: refused before reading, not allocated.
    with scripted(lambda c: b"\x30\x83\xff\xff\xff") as srv:
        r = await probe(target(srv.port, "ldap"))
    assert reason(r) is ProbeFailure.STARTTLS_ERROR
    assert r.outcome.error is not None and "too long" in r.outcome.error.message


async def test_a_mysql_greeting_that_lies_about_its_length() -> None:
    with scripted(lambda c: b"\xff\xff\xff\x00" + b"\x0a" * 100) as srv:
        r = await probe(target(srv.port, "mysql", timeout=3.0))
    assert reason(r) is ProbeFailure.STARTTLS_ERROR
    assert r.outcome.error is not None and "too long" in r.outcome.error.message
