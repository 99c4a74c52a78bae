"""Posture enumeration against real servers (openssl s_server, gnutls-serv), a scripted
responder for the servers nobody runs any more and the hostile ones, and sslscan as an
independent oracle. Every server listens on an ephemeral loopback port and is stopped by PID.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import re
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from certscope.posture import PostureScan
from certscope.tls import enumerate as en
from certscope.tls import hello as h
from certscope.tls import suites
from certscope.tls.enumerate import ScanFailure, dh, enumerate_posture
from certscope.tls.enumerate.base import is_dhe
from certscope.tls.hello import HelloFailure, NamedGroup
from certscope.tls.suites import SuiteClass
from helpers import tls_encoders as enc
from helpers.pki import TestPKI
from helpers.servers import (
    NginxServer,
    OpenSSLServer,
    garbage_server,
    listening_port,
    stop_process,
)
from helpers.tlsresponder import Reply, Responder, SeenHello, ServerModel, misbehave

# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def binary(name: str) -> str:
    """The path of a required tool; a missing one fails the test (no skips)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (scripts/install-system-deps.sh installs it)")
    return path


def codes(*openssl_names: str) -> tuple[int, ...]:
    out = []
    for name in openssl_names:
        suite = suites.by_openssl_name(name) or suites.by_name(name)
        assert suite is not None, name
        out.append(suite.code)
    return tuple(out)


def accepted(scan: PostureScan) -> dict[str, set[int]]:
    return {p: set(c) for p, c in scan.suites}


def only(scan: PostureScan, *protocols: str) -> None:
    """Exactly ``protocols`` are supported and every other one was decided as refused."""
    assert dict(scan.protocols) == {p: p in protocols for p in suites.PROTOCOLS}, scan


@dataclass
class Cert:
    combined: Path  # key + chain, for s_server
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def rsa_cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    leaf = ca.issue_cert("localhost", key_type=trustme.KeyType.RSA)
    d = tmp_path_factory.mktemp("enumerate-certs")
    out = Cert(d / "server.pem", d / "cert.pem", d / "key.pem")
    leaf.private_key_and_cert_chain_pem.write_to_path(str(out.combined))
    leaf.cert_chain_pems[0].write_to_path(str(out.cert))
    leaf.private_key_pem.write_to_path(str(out.key))
    return out


def _stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc)  # by PID: Popen signals exactly this process
    if proc.stdin is not None:
        proc.stdin.close()


StartServer = Callable[..., int]


@pytest.fixture
def s_server(rsa_cert: Cert, tmp_path: Path) -> Iterator[StartServer]:
    """``openssl s_server -www`` with extra arguments; returns its port."""
    openssl = binary("openssl")
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> int:
        log = tmp_path / f"s_server{len(procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    openssl,
                    "s_server",
                    "-www",
                    "-accept",
                    "127.0.0.1:0",
                    "-cert",
                    str(rsa_cert.combined),
                    *args,
                ],
                stdin=subprocess.PIPE,  # kept open: s_server may stop at EOF on stdin
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            match = re.search(r"ACCEPT 127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
            if match:
                return int(match.group(1))
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        raise RuntimeError(f"s_server did not start: {log.read_text(errors='replace')}")

    yield start
    for proc in procs:
        _stop(proc)


@pytest.fixture
def gnutls_serv(rsa_cert: Cert, tmp_path: Path) -> Iterator[StartServer]:
    """``gnutls-serv`` with a priority string; returns its IPv4 port (it binds 0.0.0.0)."""
    exe = binary("gnutls-serv")
    procs: list[subprocess.Popen[bytes]] = []

    cert_args = ["--x509certfile", str(rsa_cert.cert), "--x509keyfile", str(rsa_cert.key)]

    def start(priority: str, *extra: str) -> int:
        log = tmp_path / f"gnutls{len(procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [exe, "-p", "0", "--echo", "-q", "-a", "--priority", priority, *cert_args, *extra],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            port = listening_port(proc.pid)
            if port:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    return port
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"gnutls-serv did not start: {log.read_text(errors='replace')}")

    yield start
    for proc in procs:
        _stop(proc)


async def scan(port: int, **kwargs: object) -> PostureScan:
    result = await enumerate_posture("127.0.0.1", port, "localhost", **kwargs)  # type: ignore[arg-type]
    assert result.duration > 0
    assert result.timestamp == pytest.approx(time.time(), abs=60)
    return result


# --------------------------------------------------------------------------------------
# openssl s_server
# --------------------------------------------------------------------------------------

TLS12_LIST = (
    "ECDHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-AES128-GCM-SHA256",
    "AES128-SHA",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "CAMELLIA256-SHA",
)


@pytest.mark.parametrize("serverpref", [False, True])
async def test_tls12_only_exact_suites_and_order(s_server: StartServer, serverpref: bool) -> None:
    port = s_server("-tls1_2", "-cipher", ":".join(TLS12_LIST), *(["-serverpref"] * serverpref))
    result = await scan(port)
    assert result.complete, result.notes
    assert result.error == ""
    only(result, "TLSv1.2")
    assert accepted(result) == {"TLSv1.2": set(codes(*TLS12_LIST))}
    assert result.server_order == (("TLSv1.2", serverpref),)
    if serverpref:
        assert dict(result.suites)["TLSv1.2"] == codes(*TLS12_LIST)  # its preference order
    # No TLS 1.3: the curves come from one TLS 1.2 ECDHE hello per candidate.
    assert result.groups == ("x25519", "secp256r1", "secp384r1", "secp521r1", "x448")
    # 5 picks, one refusal per bundle (3), refusals of the 5 other protocols, one order
    # test, 5 curve tests: a budget, so a regression to one-suite-per-hello shows.
    assert result.connections <= 25


TLS13_LIST = ("TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_8_SHA256", "TLS_AES_256_GCM_SHA384")


@pytest.mark.parametrize("serverpref", [False, True])
async def test_tls13_only(s_server: StartServer, serverpref: bool) -> None:
    port = s_server(
        "-tls1_3", "-ciphersuites", ":".join(TLS13_LIST), *(["-serverpref"] * serverpref)
    )
    result = await scan(port)
    assert result.complete, result.notes
    only(result, "TLSv1.3")
    assert accepted(result) == {"TLSv1.3": set(codes(*TLS13_LIST))}
    assert result.server_order == (("TLSv1.3", serverpref),)
    if serverpref:
        assert dict(result.suites)["TLSv1.3"] == codes(*TLS13_LIST)
    ccm8 = suites.by_name("TLS_AES_128_CCM_8_SHA256")
    assert ccm8 is not None
    assert ccm8 in result.suites_for("TLSv1.3")
    assert ccm8.cls is SuiteClass.SECURE


async def test_tls10_to_tls13(s_server: StartServer) -> None:
    port = s_server(
        "-cipher",
        "ECDHE-RSA-AES128-SHA:AES256-SHA:ECDHE-RSA-AES256-GCM-SHA384:@SECLEVEL=0",
        "-legacy_renegotiation",
    )
    result = await scan(port)
    assert result.complete, result.notes
    only(result, "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
    legacy = set(codes("ECDHE-RSA-AES128-SHA", "AES256-SHA"))
    assert accepted(result) == {
        "TLSv1.0": legacy,
        "TLSv1.1": legacy,
        "TLSv1.2": legacy | set(codes("ECDHE-RSA-AES256-GCM-SHA384")),
        "TLSv1.3": set(codes("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"))
        | set(codes("TLS_CHACHA20_POLY1305_SHA256")),
    }
    assert not any(order for _, order in result.server_order)


async def test_tls10_only_server_answers_newer_hellos_with_tls10(s_server: StartServer) -> None:
    port = s_server("-tls1", "-cipher", "ALL:@SECLEVEL=0")
    result = await scan(port)
    assert result.complete, result.notes
    only(result, "TLSv1.0")
    assert set(codes("AES128-SHA", "ECDHE-RSA-AES256-SHA")) <= set(dict(result.suites)["TLSv1.0"])
    assert "TLSv1.2 hello answered with TLSv1.0" in result.notes
    assert "TLSv1.1 hello answered with TLSv1.0" in result.notes


@pytest.mark.parametrize(
    ("args", "groups"),
    [
        (("-tls1_3", "-groups", "X25519:P-384:ffdhe3072"), ("x25519", "secp384r1", "ffdhe3072")),
        (("-tls1_3", "-groups", "ffdhe2048:P-521"), ("secp521r1", "ffdhe2048")),
        (("-groups", "X448:P-256"), ("secp256r1", "x448")),
        (
            (
                "-tls1_2",
                "-curves",
                "P-256:P-521",
                "-cipher",
                "ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA",
            ),
            ("secp256r1", "secp521r1"),
        ),
    ],
)
async def test_groups(
    s_server: StartServer, args: tuple[str, ...], groups: tuple[str, ...]
) -> None:
    port = s_server(*args)
    result = await scan(port)
    assert result.complete, result.notes
    assert result.groups == groups


async def test_typical_server_cost(s_server: StartServer) -> None:
    """Default s_server (TLS 1.2 + 1.3, OpenSSL's default suites and groups)."""
    port = s_server()
    started = time.perf_counter()
    result = await scan(port)
    elapsed = time.perf_counter() - started
    assert result.complete, result.notes
    only(result, "TLSv1.2", "TLSv1.3")
    n = sum(len(c) for _, c in result.suites)
    assert n == 23
    # picks + bundle refusals + order tests + groups; a pick-per-suite scan would need 500+.
    assert result.connections <= n + 30, result.connections
    assert elapsed < 5


# --------------------------------------------------------------------------------------
# gnutls-serv: RC4 and 3DES, which OpenSSL 3 no longer serves
# --------------------------------------------------------------------------------------

GNUTLS_PRIORITY = "NORMAL:+ARCFOUR-128:+3DES-CBC:+VERS-TLS1.0:+VERS-TLS1.1"


def gnutls_expected(priority: str) -> dict[str, set[int]]:
    """What gnutls-cli says the priority string enables, minus ECDSA (the key is RSA)."""
    out = subprocess.run(
        [binary("gnutls-cli"), "--list", "--priority", priority],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected: dict[str, set[int]] = {}
    for m in re.finditer(r"^(TLS_\S+)\s+0x([0-9a-f]{2}), 0x([0-9a-f]{2})\s+(\S+)$", out, re.M):
        if "ECDSA" in m[1]:
            continue
        code = int(m[2] + m[3], 16)
        minimum = {"TLS1.0": "TLSv1.0", "TLS1.2": "TLSv1.2", "TLS1.3": "TLSv1.3"}[m[4]]
        versions = ["TLSv1.3"] if minimum == "TLSv1.3" else ["TLSv1.0", "TLSv1.1", "TLSv1.2"]
        for v in versions[versions.index(minimum) :]:
            expected.setdefault(v, set()).add(code)
    return expected


async def test_gnutls_rc4_and_3des(gnutls_serv: StartServer) -> None:
    port = gnutls_serv(GNUTLS_PRIORITY)
    result = await scan(port)
    assert result.complete, result.notes
    only(result, "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")
    assert accepted(result) == gnutls_expected(GNUTLS_PRIORITY)
    rc4 = codes("RC4-SHA", "ECDHE-RSA-RC4-SHA")
    des3 = codes("DES-CBC3-SHA", "DHE-RSA-DES-CBC3-SHA", "ECDHE-RSA-DES-CBC3-SHA")
    for protocol in ("TLSv1.0", "TLSv1.1", "TLSv1.2"):
        found = {s.code: s for s in result.suites_for(protocol)}
        assert set(rc4) | set(des3) <= set(found)
        assert {found[c].cls for c in rc4} == {SuiteClass.INSECURE}
        assert {found[c].cls for c in des3} == {SuiteClass.WEAK}
    assert not any(order for _, order in result.server_order)  # GnuTLS follows the client


# --------------------------------------------------------------------------------------
# Scripted servers: legacy protocols, order merging across bundles
# --------------------------------------------------------------------------------------

SSL2_KINDS = (0x0700C0, 0x010080, 0x020080)  # 3DES-EDE-CBC, RC4-128, RC4-128-EXPORT40


async def test_sslv2_server() -> None:
    model = ServerModel({"SSLv2": SSL2_KINDS, "SSLv3": codes("RC4-MD5")})
    async with Responder(model) as srv:
        result = await enumerate_posture(srv.host, srv.port, None, timeout=1)
    assert result.complete, result.notes
    only(result, "SSLv2", "SSLv3")
    assert dict(result.suites)["SSLv2"] == SSL2_KINDS  # as the SERVER-HELLO lists them
    assert {s.cls for s in result.suites_for("SSLv2")} == {SuiteClass.INSECURE}
    assert result.connections == srv.connections


EXPORT = codes("EXP-RC4-MD5", "EXP-RC2-CBC-MD5", "EXP-DES-CBC-SHA", "EXP-EDH-RSA-DES-CBC-SHA")


@pytest.mark.parametrize("server_order", [True, False])
async def test_sslv3_only_server_with_export_suites(server_order: bool) -> None:
    preference = (*EXPORT[2:], codes("DES-CBC3-SHA")[0], *EXPORT[:2])
    model = ServerModel({"SSLv3": preference}, server_order=server_order)
    async with Responder(model) as srv:
        result = await enumerate_posture(srv.host, srv.port, "sslv3.test", timeout=1)
    assert result.complete, result.notes
    only(result, "SSLv3")
    assert accepted(result) == {"SSLv3": set(preference)}
    assert result.server_order == (("SSLv3", server_order),)
    if server_order:
        assert dict(result.suites)["SSLv3"] == preference
    assert {s.cls for s in result.suites_for("SSLv3") if s.code in EXPORT} == {SuiteClass.INSECURE}
    # Newer hellos were answered at SSLv3, which is not support for them.
    assert "TLSv1.2 hello answered with SSLv3" in result.notes
    # SSLv3 hellos carry no SNI; newer ones do.
    assert {x.server_name for x in srv.hellos if x.protocol == "SSLv3"} == {None}
    assert "sslv3.test" in {x.server_name for x in srv.hellos}


def _spread(per_bundle: int) -> tuple[int, ...]:
    """TLS 1.2 suites taken from every bundle (``per_bundle`` each), interleaved."""
    bundles = en.candidate_bundles("TLSv1.2")
    assert len(bundles) >= 3
    picked = [b[5 : 5 + per_bundle] for b in bundles]
    return tuple(c for group in zip(*picked, strict=True) for c in group)


@pytest.mark.parametrize("per_bundle", [1, 3])
@pytest.mark.parametrize("server_order", [True, False])
async def test_order_across_bundles(per_bundle: int, server_order: bool) -> None:
    # Preference interleaves bundles, so the per-bundle orders must be merged.
    preference = _spread(per_bundle)[::-1]
    model = ServerModel({"TLSv1.2": preference}, server_order=server_order)
    async with Responder(model) as srv:
        result = await enumerate_posture(srv.host, srv.port, None, timeout=1)
    assert result.complete, result.notes
    only(result, "TLSv1.2")
    assert accepted(result) == {"TLSv1.2": set(preference)}
    assert result.server_order == (("TLSv1.2", server_order),)
    if server_order:
        assert dict(result.suites)["TLSv1.2"] == preference
    else:
        registry = [s.code for s in suites.for_protocol("TLSv1.2")]
        assert list(dict(result.suites)["TLSv1.2"]) == sorted(preference, key=registry.index)
    assert result.connections == srv.connections


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
async def test_order_one_big_bundle_and_a_few_others(seed: int | None) -> None:
    bundles = en.candidate_bundles("TLSv1.2")
    big, few = list(bundles[0][:24]), [*bundles[1][:2], bundles[2][0]]
    if seed is None:
        preference = (few[0], *big[:12], few[1], *big[12:], few[2])  # both ends
    else:
        rng = random.Random(seed)
        preference = tuple(rng.sample(big + few, len(big) + len(few)))
    model = ServerModel({"TLSv1.2": preference})
    async with Responder(model) as srv:
        result = await enumerate_posture(srv.host, srv.port, None, timeout=1)
    assert result.complete, result.notes
    assert dict(result.suites)["TLSv1.2"] == preference
    assert result.server_order == (("TLSv1.2", True),)
    # 27 picks + 3 refusals + 1 order test + 5 other protocols + the insertions (3 suites,
    # at most 5 comparisons each); offering bundle heads would take up to 27 instead. Then
    # one hello per DHE suite (its group) and one for the certificate's curve.
    dhe = sum(1 for c in preference if is_dhe(c))
    assert result.connections <= 27 + 3 + 1 + 5 + 15 + dhe + 1


async def test_tls13_groups_by_hello_retry_request() -> None:
    model = ServerModel(
        {"TLSv1.3": codes("TLS_AES_128_GCM_SHA256")},
        groups=(NamedGroup.FFDHE4096, NamedGroup.SECP384R1, NamedGroup.X25519MLKEM768),
    )
    async with Responder(model) as srv:
        result = await enumerate_posture(srv.host, srv.port, None, timeout=1)
    assert result.complete, result.notes
    only(result, "TLSv1.3")
    assert result.groups == ("secp384r1", "ffdhe4096", "x25519mlkem768")


# --------------------------------------------------------------------------------------
# Hostile and broken servers
# --------------------------------------------------------------------------------------

GOOD = ServerModel(
    {
        "TLSv1.2": codes("ECDHE-RSA-AES128-GCM-SHA256", "AES128-SHA"),
        "TLSv1.3": codes("TLS_AES_128_GCM_SHA256"),
    }
)
TLS12_HELLO = enc.build_server_hello(0xC02F, session_id=b"\x01" * 32)

WARNING = enc.build_alert(112, level=1)


def _same_suite_every_time(hello: SeenHello) -> Reply:
    # Accepts 0xC02F while it is offered, then keeps choosing it once it is not.
    return Reply(TLS12_HELLO)


def _refuses_only_accepted_suites(hello: SeenHello) -> Reply:
    # Accepts each of its suites while others are offered beside them, and refuses a hello
    # offering nothing else (the hellos that find the server's order).
    if set(hello.suites) <= set(GOOD.suites["TLSv1.2"]):
        return Reply(enc.build_alert(40))
    return GOOD(hello)


@pytest.mark.parametrize(
    ("reply", "reason", "tls12"),
    [
        (Reply(enc.build_server_hello(0x1301)), ScanFailure.SUITE_NOT_OFFERED, None),
        (_refuses_only_accepted_suites, ScanFailure.INCONSISTENT, True),
        (_same_suite_every_time, ScanFailure.SUITE_NOT_OFFERED, True),
        (Reply(enc.build_server_hello(0xC02F, version=0x0305)), ScanFailure.UNKNOWN_VERSION, None),
        (Reply(enc.build_server_hello(0xC02F, version=0x7F1C)), ScanFailure.UNKNOWN_VERSION, None),
        # TLS 1.3's version extension in answer to a TLS 1.2 hello, which did not offer it.
        (
            Reply(enc.build_server_hello(0xC02F, selected_version=0x0303)),
            ScanFailure.VERSION_NOT_OFFERED,
            None,
        ),
        # A version above the hello's.
        (
            Reply(enc.build_server_hello(0xC02F, version=0x0304)),
            ScanFailure.VERSION_NOT_OFFERED,
            None,
        ),
        (
            Reply(enc.build_server_hello(0xC02F, compression_method=1)),
            ScanFailure.PROTOCOL_VIOLATION,
            None,
        ),
        # A ServerHello whose session id overruns the message.
        (Reply(TLS12_HELLO[:43] + b"\x40" + TLS12_HELLO[44:]), HelloFailure.MALFORMED, None),
        (Reply(b"\x16\x09\x09\x00\x05hello"), HelloFailure.UNSUPPORTED_VERSION, None),
        (Reply(TLS12_HELLO[: len(TLS12_HELLO) // 2]), HelloFailure.TRUNCATED, None),
        (Reply(b"HTTP/1.1 400 Bad Request\r\n\r\n"), HelloFailure.NOT_TLS, None),
        (Reply(after="endless", chunk=WARNING * 1000), HelloFailure.BUFFER_LIMIT, None),
        (Reply(after="hang"), ScanFailure.TIMEOUT, None),
        (Reply(TLS12_HELLO, after="dribble", interval=0.2), ScanFailure.TIMEOUT, None),
    ],
    ids=[
        "suite-never-offered",
        "refuses-its-own-suites",
        "suite-no-longer-offered",
        "version-0305",
        "version-draft",
        "version-extension-not-offered",
        "version-above-the-hello",
        "compression",
        "malformed",
        "bad-record-version",
        "truncated",
        "not-tls",
        "endless-warnings",
        "silent",
        "dribble",
    ],
)
async def test_hostile_tls12_answers(
    reply: Reply | Callable[[SeenHello], Reply], reason: str, tls12: bool | None
) -> None:
    started = time.perf_counter()
    async with Responder(misbehave(GOOD, "TLSv1.2", reply)) as srv:
        result = await enumerate_posture(srv.host, srv.port, None, timeout=0.4, deadline=10)
    elapsed = time.perf_counter() - started
    assert not srv.errors
    assert not result.complete
    assert result.error == reason, result.notes
    assert any(n.startswith(f"{reason}: TLSv1.2") for n in result.notes), result.notes
    # Everything else is still decided.
    assert result.supported("TLSv1.2") is tls12
    assert result.supported("TLSv1.3") is True
    assert {p: s for p, s in result.protocols if p not in ("TLSv1.2", "TLSv1.3")} == {
        "SSLv2": False,
        "SSLv3": False,
        "TLSv1.0": False,
        "TLSv1.1": False,
    }
    assert dict(result.suites)["TLSv1.3"] == codes("TLS_AES_128_GCM_SHA256")
    assert elapsed < 5


async def test_silent_server_gives_up_after_one_retry() -> None:
    async with Responder(lambda hello: Reply(after="hang")) as srv:
        started = time.perf_counter()
        result = await enumerate_posture(srv.host, srv.port, None, timeout=0.3, max_connections=4)
        elapsed = time.perf_counter() - started
    assert not result.complete
    assert result.error == ScanFailure.TIMEOUT
    assert dict(result.protocols) == dict.fromkeys(suites.PROTOCOLS)
    assert result.suites == ()
    assert elapsed < 1.5  # two waves of timeouts, then the whole scan stops
    assert result.connections <= 12


# HelloRequest: a handshake message the parser skips before a ServerHello, so only the
# enumerator's byte limit ends a stream of them.
HELLO_REQUEST = b"\x16\x03\x03\x00\x04\x00\x00\x00\x00"


@pytest.mark.parametrize("chunk", [WARNING * 1024, HELLO_REQUEST * 1024], ids=["alerts", "hs"])
async def test_endless_stream_everywhere_is_bounded(chunk: bytes) -> None:
    async with Responder(lambda hello: Reply(after="endless", chunk=chunk)) as srv:
        result = await enumerate_posture(srv.host, srv.port, None, timeout=10)
    assert not result.complete
    assert result.error == HelloFailure.BUFFER_LIMIT
    assert all(s is None for _, s in result.protocols)
    assert result.duration < 5


async def test_legacy_hello_left_unanswered_is_not_support() -> None:
    # Some servers sit waiting on an SSLv2 hello; one that answers everything else is not an
    # SSLv2 server, and the scan stays complete.
    async with Responder(misbehave(GOOD, "SSLv2", Reply(after="hang"))) as srv:
        result = await enumerate_posture(srv.host, srv.port, None, timeout=0.3)
    assert result.complete, result.notes
    only(result, "TLSv1.2", "TLSv1.3")
    assert any(n.startswith("SSLv2: no answer") for n in result.notes)


async def test_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        result = await enumerate_posture("127.0.0.1", port, None, timeout=1)
    assert not result.complete
    assert result.error == ScanFailure.CONNECT_REFUSED
    assert dict(result.protocols) == dict.fromkeys(suites.PROTOCOLS)
    assert result.connections <= 4
    assert result.duration < 1


async def test_connect_error_other_than_refused() -> None:
    # Linux refuses a TCP connect to the limited broadcast address at once (ENETUNREACH).
    result = await enumerate_posture("255.255.255.255", 443, None, timeout=1)
    assert not result.complete
    assert result.error == ScanFailure.CONNECT_ERROR
    assert any("cannot connect to 255.255.255.255 port 443" in n for n in result.notes)
    assert dict(result.protocols) == dict.fromkeys(suites.PROTOCOLS)
    assert result.duration < 1


async def test_unresolvable_host() -> None:
    result = await enumerate_posture("nonexistent.invalid", 443, None, timeout=2)
    assert result.error == ScanFailure.DNS
    assert result.connections == 0


async def test_connection_resets_are_retried_with_backoff() -> None:
    # Resets far enough apart that a retry (at most max_connections + 3 later) is not hit.
    async with Responder(GOOD, reset=frozenset({2, 11, 20})) as srv:
        result = await enumerate_posture(srv.host, srv.port, None, timeout=1)
    assert result.complete, result.notes
    only(result, "TLSv1.2", "TLSv1.3")
    assert accepted(result) == {p: set(c) for p, c in GOOD.suites.items()}
    assert result.connections == srv.connections
    assert result.connections > len(srv.hellos)  # the reset ones were asked again


async def test_server_resetting_everything_is_not_a_refusal() -> None:
    async with Responder(GOOD, reset=frozenset(range(1, 1000))) as srv:
        result = await enumerate_posture(srv.host, srv.port, None, timeout=1)
    assert not result.complete
    assert result.error == ScanFailure.CONNECTION_RESET
    assert dict(result.protocols) == dict.fromkeys(suites.PROTOCOLS)
    assert result.duration < 2
    assert not srv.hellos


async def test_deadline_keeps_partial_results() -> None:
    # Every answer takes 0.1 s and only one connection at a time: far too slow to finish.
    slow = ServerModel({"TLSv1.2": _spread(3)})

    def script(hello: SeenHello) -> Reply:
        return Reply(slow(hello).data, delay=0.1)

    async with Responder(script) as srv:
        started = time.perf_counter()
        result = await enumerate_posture(
            srv.host, srv.port, None, timeout=1, max_connections=1, deadline=0.8
        )
        elapsed = time.perf_counter() - started
    assert elapsed < 1.3
    assert not result.complete
    assert result.error == ScanFailure.DEADLINE
    assert result.duration == pytest.approx(0.8, abs=0.3)
    # What was decided before the deadline is kept.
    assert any(s is not None for _, s in result.protocols)


@pytest.mark.parametrize("limit", [1, 2, 4])
async def test_connection_limit_is_respected(limit: int) -> None:
    async with Responder(GOOD) as srv:
        result = await enumerate_posture(srv.host, srv.port, None, max_connections=limit)
    assert result.complete, result.notes
    assert 1 <= srv.peak <= limit


async def test_shared_limiter() -> None:
    # Two scans of one host sharing the caller's semaphore stay within it together.
    limiter = asyncio.Semaphore(2)
    async with Responder(GOOD) as srv:
        a, b = await asyncio.gather(
            enumerate_posture(srv.host, srv.port, None, limiter=limiter),
            enumerate_posture(srv.host, srv.port, None, limiter=limiter),
        )
    assert a.complete and b.complete
    assert 1 <= srv.peak <= 2
    assert accepted(a) == accepted(b) == {p: set(c) for p, c in GOOD.suites.items()}


async def test_starttls_smtp() -> None:
    async with Responder(GOOD, preamble="smtp") as srv:
        result = await enumerate_posture(srv.host, srv.port, "mx.test", starttls="smtp")
    assert result.complete, result.notes
    only(result, "TLSv1.2", "TLSv1.3")
    assert {x.server_name for x in srv.hellos} - {None} == {"mx.test"}


async def test_starttls_refused_stops_the_scan() -> None:
    async with Responder(GOOD, preamble="smtp", refuse_starttls=True) as srv:
        result = await enumerate_posture(srv.host, srv.port, None, starttls="smtp", timeout=1)
    assert result.error == ScanFailure.STARTTLS_REFUSED
    assert dict(result.protocols) == dict.fromkeys(suites.PROTOCOLS)
    assert result.duration < 3


async def test_starttls_answered_out_of_protocol_stops_the_scan() -> None:
    """An HTTP server where an SMTP one was expected: the preamble fails the same way on
    every connection, so the scan stops with starttls_error instead of retrying each hello."""
    with garbage_server(b"HTTP/1.1 400 Bad Request\r\n\r\n") as srv:
        result = await enumerate_posture(srv.host, srv.port, None, starttls="smtp", timeout=1)
    assert result.error == ScanFailure.STARTTLS_ERROR
    assert result.notes == (
        "starttls_error: STARTTLS: unexpected reply 'HTTP/1.1 400 Bad Request'",
    )
    assert dict(result.protocols) == dict.fromkeys(suites.PROTOCOLS)
    assert result.connections <= 8
    assert result.duration < 3


async def test_bad_arguments_are_reported_not_raised() -> None:
    for kwargs in ({"starttls": "gopher"}, {"protocols": ["TLSv1.4"]}):
        result = await enumerate_posture("127.0.0.1", 1, None, **kwargs)
        assert result.error == ScanFailure.INVALID_ARGUMENT
        assert result.connections == 0
    result = await enumerate_posture("127.0.0.1", 1, "a" * 300 + ".test")
    assert result.error == ScanFailure.INVALID_ARGUMENT
    assert not result.complete


async def test_protocol_selection() -> None:
    async with Responder(GOOD) as srv:
        result = await enumerate_posture(srv.host, srv.port, None, protocols=["TLSv1.2"])
    assert result.complete
    assert dict(result.protocols) == {
        p: (True if p == "TLSv1.2" else None) for p in suites.PROTOCOLS
    }
    assert {x.protocol for x in srv.hellos} == {"TLSv1.2"}


# --------------------------------------------------------------------------------------
# sslscan as an oracle
# --------------------------------------------------------------------------------------

_SSLSCAN_VERSIONS = {
    ("ssl", "2"): "SSLv2",
    ("ssl", "3"): "SSLv3",
    ("tls", "1.0"): "TLSv1.0",
    ("tls", "1.1"): "TLSv1.1",
    ("tls", "1.2"): "TLSv1.2",
    ("tls", "1.3"): "TLSv1.3",
}


@dataclass
class SSLScan:
    protocols: set[str]
    suites: dict[str, set[int]]
    groups: set[str]


async def sslscan_xml(port: int, *extra: str) -> ET.Element:
    """sslscan's XML report for 127.0.0.1:``port`` (vulnerability checks left out)."""
    proc = await asyncio.create_subprocess_exec(
        binary("sslscan"),
        "--no-colour",
        "--xml=-",
        "--no-heartbleed",
        "--no-renegotiation",
        "--no-compression",
        "--no-fallback",
        "--no-check-certificate",
        *extra,
        f"127.0.0.1:{port}",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr
    return ET.fromstring(stdout[stdout.index(b"<?xml") :])


async def sslscan(port: int) -> SSLScan:
    root = await sslscan_xml(port)
    test = root.find("ssltest")
    assert test is not None
    out = SSLScan(set(), {}, set())
    for p in test.iter("protocol"):
        if p.get("enabled") == "1":
            out.protocols.add(_SSLSCAN_VERSIONS[(p.get("type", ""), p.get("version", ""))])
    for c in test.iter("cipher"):
        version = c.get("sslversion", "")
        suite = suites.by_code(int(c.get("id", ""), 16)) or suites.by_openssl_name(
            c.get("cipher", "")
        )
        assert suite is not None, c.attrib
        out.suites.setdefault(version, set()).add(suite.code)
    for g in test.iter("group"):
        out.groups.add(en.group_name(int(g.get("id", ""), 16)))
    return out


@pytest.mark.parametrize(
    "args",
    [
        ("-cipher", "ALL:COMPLEMENTOFALL:@SECLEVEL=0", "-legacy_renegotiation"),
        ("-tls1_2", "-serverpref", "-cipher", ":".join(TLS12_LIST), "-curves", "P-384:X448"),
        ("-tls1_3", "-ciphersuites", ":".join(TLS13_LIST), "-groups", "P-256:ffdhe2048"),
        ("-tls1", "-cipher", "ALL:@SECLEVEL=0"),
    ],
    ids=["all", "tls12", "tls13", "tls10"],
)
async def test_same_as_sslscan(s_server: StartServer, args: tuple[str, ...]) -> None:
    port = s_server(*args)
    ours = await scan(port)
    theirs = await sslscan(port)
    assert ours.complete, ours.notes
    assert set(ours.accepted_protocols) == theirs.protocols
    assert accepted(ours) == theirs.suites
    assert set(ours.groups) == theirs.groups


async def test_gnutls_same_as_sslscan(gnutls_serv: StartServer) -> None:
    port = gnutls_serv(GNUTLS_PRIORITY)
    ours = await scan(port)
    theirs = await sslscan(port)
    assert set(ours.accepted_protocols) == theirs.protocols
    assert accepted(ours) == theirs.suites


# --------------------------------------------------------------------------------------
# DHE groups (the ServerKeyExchange) and TLS 1.2 groups beside an ECDSA certificate
# --------------------------------------------------------------------------------------


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_int(v: int) -> bytes:
    raw = v.to_bytes(v.bit_length() // 8 + 1, "big")
    return b"\x02" + _der_len(len(raw)) + raw


def dh_params(path: Path, prime: int, generator: int = 2) -> Path:
    """A PKCS #3 ``DH PARAMETERS`` PEM, written by hand so that broken groups can be served."""
    body = _der_int(prime) + _der_int(generator)
    der = b"\x30" + _der_len(len(body)) + body
    b64 = base64.encodebytes(der).decode().replace("\n", "")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    path.write_text(
        "-----BEGIN DH PARAMETERS-----\n" + "\n".join(lines) + "\n-----END DH PARAMETERS-----\n"
    )
    return path


def _known(name: str) -> int:
    return next(p for (p, _), (n, _) in dh.known_groups().items() if n == name)


def _dsa_style_prime(bits: int = 1024) -> tuple[int, int]:
    """p = k*q + 1 with a 160-bit prime q: prime, but not a safe prime (small subgroups)."""
    rng = random.Random(7)
    while True:
        q = rng.getrandbits(160) | (1 << 159) | 1
        if dh._probably_prime(q):
            break
    while True:
        k = (rng.getrandbits(bits - 160) | (1 << (bits - 161))) & ~1
        p = k * q + 1
        if p.bit_length() == bits and dh._probably_prime(p):
            return p, pow(2, k, p)


async def sslscan_dhe_bits(port: int) -> dict[tuple[str, int], int]:
    """(protocol, suite code) -> dhebits, as sslscan reports them."""
    root = await sslscan_xml(port, "--no-groups")
    out = {}
    for c in root.iter("cipher"):
        if c.get("dhebits"):
            key = (c.get("sslversion", ""), int(c.get("id", ""), 16))
            out[key] = int(c.get("dhebits", "0"))
    return out


def _ours(scan_: PostureScan) -> dict[tuple[str, int], int]:
    return {(g.protocol, g.suite): g.bits for g in scan_.dhe_groups}


DHE_CIPHERS = "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA:@SECLEVEL=0"


@pytest.mark.parametrize(
    ("group", "bits", "name"),
    [("oakley2", 1024, "oakley2"), ("ffdhe2048", 2048, "ffdhe2048")],
)
async def test_dhe_groups_match_sslscan(
    s_server: StartServer, tmp_path: Path, group: str, bits: int, name: str
) -> None:
    params = dh_params(tmp_path / f"{group}.pem", _known(group))
    port = s_server("-tls1_2", "-cipher", DHE_CIPHERS, "-dhparam", str(params))
    result = await scan(port)
    assert result.complete, result.notes
    assert {(g.bits, g.name, g.problem) for g in result.dhe_groups} == {(bits, name, "")}
    assert len(result.dhe_groups) == 3
    theirs = await sslscan_dhe_bits(port)
    assert _ours(result) == {k: v for k, v in theirs.items() if k[0] == "TLSv1.2"}


async def test_dhe_groups_cost_no_connection_of_their_own(
    s_server: StartServer, tmp_path: Path
) -> None:
    # Each DHE pick's flight carries the group; the suite enumeration reads on after the
    # ServerHello, so the DHE check needs no hello of its own for these suites.
    params = dh_params(tmp_path / "ffdhe2048.pem", _known("ffdhe2048"))
    port = s_server("-tls1_2", "-cipher", DHE_CIPHERS, "-dhparam", str(params))
    result = await scan(port, protocols=("TLSv1.2",))
    assert result.complete, result.notes
    assert {(g.suite_name, g.name) for g in result.dhe_groups} == {
        (name, "ffdhe2048") for _, codes in result.suites for name in map(_suite_name, codes)
    }
    # One refusal per bundle, one connection per accepted suite, one order test.
    assert result.connections == len(en.candidate_bundles("TLSv1.2")) + 3 + 1


async def test_dhe_pick_whose_flight_never_comes_is_still_accepted() -> None:
    # Hand-written server: one that sends a DHE ServerHello and then nothing, which no real
    # server does on purpose. Reading on for the DHE group must not turn the accepted suite
    # into a timeout; only the DHE check's own hello then times out.
    model = ServerModel({"TLSv1.2": [0x009E, 0xC02F]})

    def script(seen: SeenHello) -> Reply:
        reply = model(seen)
        answer = h.ServerHelloParser().feed(reply.data)
        if answer and isinstance(answer[0], h.ServerHello) and is_dhe(answer[0].cipher_suite):
            return Reply(reply.data, after="hang")
        return reply

    async with Responder(script) as srv:
        result = await enumerate_posture(
            srv.host, srv.port, None, timeout=1.0, protocols=("TLSv1.2",)
        )
    assert dict(result.suites) == {"TLSv1.2": (0x009E, 0xC02F)}, result.notes
    assert result.dhe_groups == ()
    assert result.error == ScanFailure.TIMEOUT  # the DHE check's own hello, twice


def _suite_name(code: int) -> str:
    suite = suites.by_code(code)
    assert suite is not None
    return suite.name


async def test_small_composite_and_subgroup_dh(gnutls_serv: StartServer, tmp_path: Path) -> None:
    # gnutls-serv: OpenSSL-based servers (s_server, nginx) refuse groups under 1024 bits.
    small = tmp_path / "dh512.pem"
    command = [binary("openssl"), "dhparam", "-out", str(small), "512"]
    await asyncio.to_thread(subprocess.run, command, check=True, capture_output=True)
    composite = dh_params(tmp_path / "composite.pem", _known("oakley2") * 3)
    p, g = _dsa_style_prime()
    subgroup = dh_params(tmp_path / "subgroup.pem", p, g)
    priority = (
        "NONE:+VERS-TLS1.2:+DHE-RSA:+AES-128-CBC:+SHA1:+SIGN-ALL:+COMP-NULL:+GROUP-ALL"
        ":%PROFILE_VERY_WEAK"
    )
    found = {}
    for label, path in (("small", small), ("composite", composite), ("subgroup", subgroup)):
        port = gnutls_serv(priority, f"--dhparams={path}")
        result = await scan(port)
        if label == "small":
            assert _ours(result) == await sslscan_dhe_bits(port)
        (group,) = result.dhe_groups
        found[label] = group
    assert (found["small"].bits, found["small"].name) == (512, "custom")
    assert found["small"].problem == ""  # a safe prime, just far too small
    assert found["composite"].problem_severity == "critical"
    assert "not prime" in found["composite"].problem
    assert found["subgroup"].problem_severity == "warning"
    assert "safe prime" in found["subgroup"].problem


async def test_gnutls_and_nginx_dh_parameters(
    gnutls_serv: StartServer, rsa_cert: Cert, tmp_path: Path
) -> None:
    params = dh_params(tmp_path / "oakley2.pem", _known("oakley2"))
    priority = "NONE:+VERS-TLS1.2:+DHE-RSA:+AES-128-GCM:+AEAD:+SIGN-ALL:+COMP-NULL:+GROUP-ALL"
    port = gnutls_serv(priority, f"--dhparams={params}")
    result = await scan(port)
    assert {(g.bits, g.name) for g in result.dhe_groups} == {(1024, "oakley2")}
    assert _ours(result) == {
        k: v for k, v in (await sslscan_dhe_bits(port)).items() if k in _ours(result)
    }
    ffdhe = dh_params(tmp_path / "ffdhe3072.pem", _known("ffdhe3072"))
    directives = [
        "ssl_protocols TLSv1.2",
        "ssl_ciphers DHE-RSA-AES128-GCM-SHA256",
        f"ssl_dhparam {ffdhe}",
    ]
    with NginxServer(tmp_path / "nginx", rsa_cert.cert, rsa_cert.key, directives) as srv:
        nginx = await scan(srv.port)
    assert [(g.protocol, g.suite_name, g.bits, g.name) for g in nginx.dhe_groups] == [
        ("TLSv1.2", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", 3072, "ffdhe3072")
    ]


async def test_tls12_groups_beside_an_ecdsa_certificate(pki: TestPKI) -> None:
    leaf = pki.leaf("localhost", key="ec")  # P-256
    with OpenSSLServer(
        leaf.cert, leaf.key, "-tls1_2", "-groups", "X25519:P-256:P-521", chain=pki.intermediate.path
    ) as srv:
        result = await scan(srv.port)
    assert result.complete, result.notes
    # X25519 and P-521 are only accepted with the certificate's P-256 offered beside them.
    assert set(result.groups) == {"x25519", "secp256r1", "secp521r1"}
