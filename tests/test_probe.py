"""The probe against real servers on loopback: ``probe()`` and ``certscope scan``.

Every server here is real (Python ``ssl`` on asyncio, ``openssl s_server``, small STARTTLS and
hostile servers from ``servers.py``) and every certificate comes from the test PKI.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from OpenSSL import SSL

from certscope import certs
from certscope.config import Policy, Target, TLSOptions
from certscope.errors import ProbeFailure, VerifyFailure
from certscope.policy import assess_endpoint
from certscope.probe import probe
from certscope.results import ProbeResult
from certscope.revocation import Revocation, _leaf_and_issuer
from certscope.tls import channel as channel_module
from certscope.tls import driver as driver_module
from certscope.tls import handshake as handshake_module
from certscope.tls.handshake import MAX_CHAIN
from helpers.pki import Leaf, TestPKI, issued
from helpers.servers import (
    OpenSSLServer,
    Server,
    dribble_server,
    garbage_server,
    hangup_server,
    http_server,
    huge_certificate_server,
    long_chain_server,
    silent_server,
    tls_server,
)

CERTSCOPE = Path(sys.executable).with_name("certscope")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@dataclass(frozen=True)
class Leaves:
    web: Leaf  # web.test, localhost, 127.0.0.1, ::1
    api: Leaf  # api.test: chosen by SNI
    expired: Leaf
    future: Leaf
    self_signed: Leaf
    unknown: Leaf  # another CA, no AIA: its issuer cannot be located
    untrusted: Leaf  # another CA: fullchain ends in a root nobody trusts
    client: Leaf  # an mTLS client certificate
    rsa: Leaf


@pytest.fixture(scope="module")
def leaves(pki: TestPKI, other_pki: TestPKI) -> Leaves:
    return Leaves(
        web=pki.leaf("web.test", "localhost", "127.0.0.1", "::1"),
        api=pki.leaf("api.test"),
        expired=pki.leaf("expired.test", days_left=-3),
        future=pki.leaf("future.test", starts_in_days=5, days_left=90),
        self_signed=pki.leaf("self.test", issuer="self"),
        unknown=other_pki.leaf("unknown.test", issuer="root", aia=False),
        untrusted=other_pki.leaf("untrusted.test"),
        client=pki.leaf("client.test"),
        rsa=pki.leaf("rsa.test", key="rsa"),
    )


@pytest.fixture(scope="module")
def web_server(leaves: Leaves) -> Iterator[Server]:
    with tls_server(leaves.web.chain, leaves.web.key) as srv:
        yield srv


def target(
    srv: Server | OpenSSLServer,
    *,
    host: str | None = None,
    port: int | None = None,
    timeout: float = 5.0,
    **tls: Any,
) -> Target:
    """A target for ``srv``; Path values of TLS options become strings."""
    opts: dict[str, Any] = {k: (str(v) if isinstance(v, Path) else v) for k, v in tls.items()}
    if "alpn" in opts:
        opts["alpn"] = tuple(opts["alpn"])
    h = host or srv.host
    return Target(
        name=f"test-{h}", host=h, port=port or srv.port, tls=TLSOptions(timeout=timeout, **opts)
    )


def unused_port() -> tuple[socket.socket, int]:
    """A port that refuses connections (bound, never listening) while the socket lives."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def reason(r: ProbeResult) -> ProbeFailure | None:
    return r.outcome.error.reason if r.outcome.error else None


# --- verification outcomes -----------------------------------------------------------------


async def test_trusted_valid_chain(pki: TestPKI, leaves: Leaves, web_server: Server) -> None:
    r = await probe(target(web_server, sni="web.test", ca_file=pki.ca_file))
    assert r.outcome.error is None
    assert r.success
    assert r.verdict is not None
    assert r.verdict.errors == ()
    assert r.verdict.verified
    assert (r.verdict.chain_trusted, r.verdict.hostname_match, r.verdict.valid_now) == (
        True,
        True,
        True,
    )
    assert r.outcome.chain == (
        leaves.web.der,
        pki.intermediate.certificate.public_bytes(Encoding.DER),
    )
    assert [f.subject_cn for f in r.facts] == ["web.test", "certscope Test Intermediate CA"]
    assert r.facts[0].fingerprint_sha256 == hashlib.sha256(leaves.web.der).hexdigest()
    assert r.outcome.peer_address == "127.0.0.1"
    assert not r.outcome.chain_truncated
    assert not r.outcome.client_cert_required
    assert [name for name, _ in r.phases] == ["resolve", "connect", "handshake"]
    assert 0 < r.duration < 5
    assert r.last_success == r.timestamp
    assert (r.address, r.server_name) == (web_server.address, "web.test")


async def test_probes_that_negotiated_the_same_share_one_record(
    pki: TestPKI, web_server: Server
) -> None:
    """What was negotiated is named once per combination: every result that negotiated the
    same version, suite, group and ALPN holds one object."""
    first = await probe(target(web_server, sni="web.test", ca_file=pki.ca_file))
    second = await probe(target(web_server, sni="web.test", ca_file=pki.ca_file))
    assert first.outcome.negotiated is not None
    assert first.outcome.negotiated.version.startswith("TLSv1.")
    assert first.outcome.negotiated.cipher.startswith("TLS_")  # the IANA name
    assert second.outcome.negotiated is first.outcome.negotiated


async def test_nothing_to_check_for_revocation_skips_the_issuer_search(pki: TestPKI) -> None:
    """A leaf with no OCSP or CRL location and no staple: its revocation is known without
    parsing the chain again or finding its issuer (a signature check) on first sight."""
    leaf = pki.leaf("quiet.test", aia=False, must_staple=True)
    before = _leaf_and_issuer.cache_info()
    with tls_server(leaf.chain, leaf.key) as srv:
        r = await probe(target(srv, sni="quiet.test", ca_file=pki.ca_file))
    assert r.success
    assert r.facts[0].ocsp_urls == () and r.facts[0].crl_urls == ()
    assert r.revocation == Revocation(checks=(), stapled=False, must_staple=True)
    assert _leaf_and_issuer.cache_info() == before
    assert r.verdict is not None and r.verdict.verified


@dataclass(frozen=True)
class Case:
    leaf: str  # attribute of Leaves
    presented: str  # "chain", "cert" (leaf only) or "fullchain"
    sni: str
    trusted_pki: str | None  # fixture whose root is the ca_file; None: the system store
    errors: tuple[VerifyFailure, ...]
    chain_trusted: bool
    hostname_match: bool
    valid_now: bool
    chain_len: int


V = VerifyFailure
CASES = {
    "expired": Case("expired", "chain", "expired.test", "pki", (V.EXPIRED,), True, True, False, 2),
    "not-yet-valid": Case(
        "future", "chain", "future.test", "pki", (V.NOT_YET_VALID,), True, True, False, 2
    ),
    "self-signed": Case(
        "self_signed", "chain", "self.test", "pki", (V.SELF_SIGNED,), False, True, True, 1
    ),
    "hostname-mismatch": Case(
        "web", "chain", "other.test", "pki", (V.HOSTNAME_MISMATCH,), True, False, True, 2
    ),
    "incomplete-chain": Case(
        "web", "cert", "web.test", "pki", (V.INCOMPLETE_CHAIN,), False, True, True, 1
    ),
    "unknown-issuer": Case(
        "unknown", "chain", "unknown.test", "pki", (V.UNKNOWN_ISSUER,), False, True, True, 1
    ),
    "untrusted-root": Case(
        "untrusted",
        "fullchain",
        "untrusted.test",
        "pki",
        (V.UNTRUSTED_ROOT,),
        False,
        True,
        True,
        3,
    ),
    "expired-and-mismatch": Case(
        "expired",
        "chain",
        "web.test",
        "pki",
        (V.EXPIRED, V.HOSTNAME_MISMATCH),
        True,
        False,
        False,
        2,
    ),
    # A private CA's complete chain (leaf + intermediate) judged against the system store:
    # the root is simply unknown here; the server did send everything it should.
    "private-ca-vs-system-store": Case(
        "web", "chain", "web.test", None, (V.UNKNOWN_ISSUER,), False, True, True, 2
    ),
    # The same server leaving out its intermediate: now the chain is incomplete.
    "private-ca-incomplete-vs-system-store": Case(
        "web", "cert", "web.test", None, (V.INCOMPLETE_CHAIN,), False, True, True, 1
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_verification_outcome(
    case: Case, leaves: Leaves, request: pytest.FixtureRequest
) -> None:
    leaf: Leaf = getattr(leaves, case.leaf)
    ca_file = request.getfixturevalue(case.trusted_pki).ca_file if case.trusted_pki else None
    with tls_server(getattr(leaf, case.presented), leaf.key) as srv:
        r = await probe(target(srv, sni=case.sni, ca_file=ca_file))
    # The handshake succeeds and the chain is captured whatever its validity.
    assert r.outcome.error is None
    assert r.success
    assert len(r.facts) == case.chain_len
    assert r.facts[0].subject_cn == leaf.name
    assert r.outcome.chain[0] == leaf.der
    assert r.verdict is not None
    assert r.verdict.chain_trusted is case.chain_trusted
    assert r.verdict.hostname_match is case.hostname_match
    assert r.verdict.valid_now is case.valid_now
    assert not r.verdict.verified
    assert r.verdict.errors == case.errors


async def test_expired_intermediate(tmp_path: Path) -> None:
    stale = TestPKI(tmp_path, name="Stale", intermediate_days_left=-1)
    leaf = stale.leaf("stale.test", days_left=30)
    with tls_server(leaf.chain, leaf.key) as srv:
        r = await probe(target(srv, sni="stale.test", ca_file=stale.ca_file))
    assert r.verdict is not None
    assert r.verdict.errors == (V.INTERMEDIATE_EXPIRED,)
    assert r.verdict.chain_trusted  # trust is judged without the clock
    assert not r.verdict.valid_now
    assert len(r.facts) == 2


def _with_broken_signature(der: bytes) -> bytes:
    """``der`` with the last byte of its signature changed: the certificate still parses (the
    last byte of an ECDSA signature's ``s``), and no key verifies it."""
    return der[:-1] + bytes([der[-1] ^ 0x01])


async def test_broken_leaf_signature(pki: TestPKI, tmp_path: Path) -> None:
    """A leaf whose signature does not verify under the intermediate that names it: the chain
    is refused for that reason, not as an unknown issuer or a generic error."""
    leaf = pki.leaf("forged.test")
    forged = _with_broken_signature(leaf.der)
    chain = tmp_path / "forged.chain.pem"
    chain.write_text(ssl.DER_cert_to_PEM_cert(forged) + pki.intermediate.pem.decode())
    with tls_server(chain, leaf.key) as srv:
        r = await probe(target(srv, sni="forged.test", ca_file=pki.ca_file))
    assert r.success  # the handshake does not judge the chain
    assert r.outcome.chain[0] == forged
    assert r.verdict is not None
    assert r.verdict.errors == (V.BAD_SIGNATURE,)
    assert not r.verdict.chain_trusted
    assert r.verdict.hostname_match and r.verdict.valid_now


@pytest.mark.parametrize(
    "ca",
    [
        # An end-entity certificate (CA:FALSE) signed the leaf.
        pytest.param(False, id="issuer-not-a-ca"),
        # A real sub-CA signed it, but the intermediate above allows no CA below it
        # (pathlen 0).
        pytest.param(True, id="issuer-beyond-path-length"),
    ],
)
async def test_leaf_issued_by_a_certificate_that_may_not_issue(
    pki: TestPKI, tmp_path: Path, ca: bool
) -> None:
    """The intermediate issued a certificate whose key then signed the leaf: every signature
    verifies and the chain reaches the trusted root, and it is still refused, as an invalid
    CA, not as a generic verification error."""
    intermediate = pki.intermediate
    middle, middle_key = issued(
        "certscope Middle", intermediate.certificate, intermediate.key, ca=ca
    )
    leaf, leaf_key = issued("under-middle.test", middle, middle_key)
    chain = tmp_path / "under-middle.chain.pem"
    presented = (leaf, middle, intermediate.certificate)
    chain.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in presented))
    key = tmp_path / "under-middle.key"
    key.write_bytes(leaf_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    with tls_server(chain, key) as srv:
        r = await probe(target(srv, sni="under-middle.test", ca_file=pki.ca_file))
    assert r.success
    assert len(r.facts) == 3 and r.facts[1].is_ca is ca
    assert r.verdict is not None
    assert r.verdict.errors == (V.INVALID_CA,)
    assert not r.verdict.chain_trusted


async def test_client_flight_larger_than_the_send_buffer(
    pki: TestPKI, leaves: Leaves, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client chain of ~60 KB (under OpenSSL's 100 KiB limit): more than one read of
    OpenSSL's output, through a 4 KB send buffer, and every byte of the flight delivered."""
    bulky = tmp_path / "bulky-chain.pem"
    intermediate = leaves.client.chain.read_bytes().split(b"-----END CERTIFICATE-----\n", 1)[1]
    bulky.write_bytes(leaves.client.pem + intermediate * 80)
    assert bulky.stat().st_size > 40_000
    connect_one = channel_module._connect_one

    async def small_buffer(*args: Any) -> channel_module.Channel:
        ch = await connect_one(*args)
        ch.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        return ch

    monkeypatch.setattr(channel_module, "_connect_one", small_buffer)
    with tls_server(
        leaves.web.chain, leaves.web.key, client_ca=pki.ca_file, max_version=ssl.TLSVersion.TLSv1_2
    ) as srv:
        r = await probe(
            target(
                srv,
                sni="web.test",
                ca_file=pki.ca_file,
                client_cert=bulky,
                client_key=leaves.client.key,
                timeout=10.0,
            )
        )
        conns = srv.settled()
    assert r.outcome.error is None, r.outcome.error
    assert conns[0].tls_done
    assert conns[0].client_cert == leaves.client.der


async def test_socket_driver_waits_for_a_full_send_buffer() -> None:
    """The bare-socket driver's writer path, on a real socket pair whose peer reads only
    later: a send that would block must resume when the socket drains, not be lost.
    (Loopback TCP drains too fast to make a handshake's flight block reliably.)"""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    payload = os.urandom(1 << 20)
    try:
        driver = driver_module._SocketDriver(SSL.Connection(SSL.Context(SSL.TLS_METHOD)), ours, 0)
        driver.done = True  # as after the client's last flight
        driver.pending = payload
        driver.flush()
        assert driver.writing, "a 1 MiB send through a 4 KiB buffer must block"
        assert not driver.fut.done()
        loop = asyncio.get_running_loop()
        received = bytearray()
        async with asyncio.timeout(10):
            while len(received) < len(payload):
                received += await loop.sock_recv(theirs, 65536)
            await driver.fut
        assert bytes(received) == payload
        assert not driver.writing
    finally:
        ours.close()
        theirs.close()


# --- client certificates -------------------------------------------------------------------

_VERSION_NAMES = {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}


@pytest.fixture(params=["certificate callback", "info callback"])
def request_detector(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Both ways the handshake notices a CertificateRequest: OpenSSL's certificate callback,
    and the info callback it falls back to where the bindings lack ``SSL_CTX_set_cert_cb``."""
    if request.param == "info callback":
        monkeypatch.setattr(handshake_module, "_cert_cb_setter", lambda: None)
    handshake_module._context.cache_clear()  # contexts are built with the detector in force
    yield str(request.param)
    handshake_module._context.cache_clear()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_mtls_without_client_certificate(
    pki: TestPKI, leaves: Leaves, version: ssl.TLSVersion, request_detector: str
) -> None:
    with tls_server(
        leaves.web.chain,
        leaves.web.key,
        client_ca=pki.ca_file,
        min_version=version,
        max_version=version,
    ) as srv:
        r = await probe(target(srv, sni="web.test", ca_file=pki.ca_file))
        conns = srv.settled()
    assert r.outcome.client_cert_required
    assert r.outcome.error is None  # an mTLS endpoint is not a failed probe
    assert r.success
    assert [f.subject_cn for f in r.facts] == ["web.test", "certscope Test Intermediate CA"]
    assert r.verdict is not None
    assert r.verdict.verified
    assert r.outcome.negotiated is not None
    assert r.outcome.negotiated.version == _VERSION_NAMES[version]
    assert conns[0].client_cert is None
    assert conns[0].error  # the server did reject the client


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_mtls_with_client_certificate(
    pki: TestPKI, leaves: Leaves, version: ssl.TLSVersion, request_detector: str
) -> None:
    with tls_server(
        leaves.web.chain,
        leaves.web.key,
        client_ca=pki.ca_file,
        min_version=version,
        max_version=version,
    ) as srv:
        r = await probe(
            target(
                srv,
                sni="web.test",
                ca_file=pki.ca_file,
                client_cert=leaves.client.chain,
                client_key=leaves.client.key,
            )
        )
        conns = srv.settled()
    assert r.outcome.error is None
    assert not r.outcome.client_cert_required
    assert r.success
    assert conns[0].error == ""
    assert conns[0].tls_done
    assert conns[0].client_cert == leaves.client.der


async def test_client_key_that_does_not_match(leaves: Leaves, web_server: Server) -> None:
    r = await probe(target(web_server, client_cert=leaves.client.chain, client_key=leaves.rsa.key))
    assert reason(r) is ProbeFailure.CLIENT_CONFIG
    assert r.outcome.error is not None
    assert "PRIVATE KEY" not in r.outcome.error.message
    assert r.facts == ()
    assert r.verdict is None
    assert r.outcome.peer_address == ""  # nothing was sent: the context could not be built


# --- protocol versions, suites, groups, SNI, ALPN -------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected_version", "cipher", "server_cipher"),
    [
        (
            ssl.TLSVersion.TLSv1_2,
            "TLSv1.2",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
        ),
        (ssl.TLSVersion.TLSv1_3, "TLSv1.3", "TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"),
    ],
    ids=["tls12", "tls13"],
)
async def test_python_server_single_version(
    leaves: Leaves,
    version: ssl.TLSVersion,
    expected_version: str,
    cipher: str,
    server_cipher: str,
) -> None:
    with tls_server(
        leaves.web.chain, leaves.web.key, min_version=version, max_version=version
    ) as srv:
        r = await probe(target(srv))
        conns = srv.settled()
    neg = r.outcome.negotiated
    assert neg is not None
    # Both ends agree (OpenSSL's suite name on the server, the IANA name in the probe).
    assert (neg.version, neg.cipher, neg.group) == (expected_version, cipher, "x25519")
    assert (conns[0].version, conns[0].cipher) == (expected_version, server_cipher)


@pytest.mark.parametrize(
    ("leaf_name", "args", "version", "cipher", "group"),
    [
        (
            "web",
            ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", "-groups", "P-256"],
            "TLSv1.2",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "secp256r1",
        ),
        (
            "rsa",
            ["-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384", "-groups", "X25519"],
            "TLSv1.2",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            "x25519",
        ),
        (
            "web",
            ["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384", "-groups", "P-384"],
            "TLSv1.3",
            "TLS_AES_256_GCM_SHA384",
            "secp384r1",
        ),
        (
            "web",
            ["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256", "-groups", "X25519"],
            "TLSv1.3",
            "TLS_CHACHA20_POLY1305_SHA256",
            "x25519",
        ),
    ],
    ids=["tls12-ecdsa-p256", "tls12-rsa-x25519", "tls13-aes256-p384", "tls13-chacha-x25519"],
)
async def test_openssl_server_negotiation(
    pki: TestPKI,
    leaves: Leaves,
    leaf_name: str,
    args: list[str],
    version: str,
    cipher: str,
    group: str,
) -> None:
    leaf: Leaf = getattr(leaves, leaf_name)
    async with OpenSSLServer(leaf.cert, leaf.key, *args, chain=pki.intermediate.path) as srv:
        r = await probe(target(srv, sni=leaf.name, ca_file=pki.ca_file))
    assert r.outcome.error is None
    neg = r.outcome.negotiated
    assert neg is not None
    assert (neg.version, neg.cipher, neg.group) == (version, cipher, group)
    assert r.verdict is not None
    assert r.verdict.verified
    assert r.facts[0].key_algorithm == ("RSA" if leaf_name == "rsa" else "EC")


async def test_sni_selects_certificate(pki: TestPKI, leaves: Leaves) -> None:
    with tls_server(
        leaves.web.chain,
        leaves.web.key,
        sni_certs={"api.test": (leaves.api.chain, leaves.api.key)},
    ) as srv:
        api = await probe(target(srv, sni="api.test", ca_file=pki.ca_file))
        web = await probe(target(srv, sni="web.test", ca_file=pki.ca_file))
        bare = await probe(target(srv))  # an IP address: no SNI at all
        idn = await probe(target(srv, sni="bücher.test"))
        conns = srv.settled(4)
    assert [c.server_name for c in conns] == ["api.test", "web.test", None, "xn--bcher-kva.test"]
    assert api.facts[0].subject_cn == "api.test"
    assert api.verdict is not None
    assert api.verdict.verified
    assert web.facts[0].subject_cn == "web.test"
    assert bare.server_name is None
    assert bare.facts[0].subject_cn == "web.test"
    assert bare.verdict is not None
    assert bare.verdict.hostname_match  # 127.0.0.1 is an IP SAN of the default certificate
    assert idn.verdict is not None
    assert not idn.verdict.hostname_match
    # Stored results share one DER object per certificate instead of a copy per probe.
    assert bare.outcome.chain[0] is web.outcome.chain[0]
    assert api.outcome.chain[1] is web.outcome.chain[1]  # the same intermediate
    assert api.outcome.chain[0] != web.outcome.chain[0]


async def test_alpn(leaves: Leaves) -> None:
    with tls_server(leaves.web.chain, leaves.web.key, alpn=["h2", "http/1.1"]) as srv:
        h2 = await probe(target(srv, alpn=["h2", "http/1.1"]))
        h1 = await probe(target(srv, alpn=["http/1.1"]))
        none = await probe(target(srv))
        conns = srv.settled(3)
    assert h2.outcome.negotiated is not None
    assert h2.outcome.negotiated.alpn == "h2"
    assert h1.outcome.negotiated is not None
    assert h1.outcome.negotiated.alpn == "http/1.1"
    assert none.outcome.negotiated is not None
    assert none.outcome.negotiated.alpn == ""
    assert [c.alpn for c in conns] == ["h2", "http/1.1", None]


# --- addresses and names -------------------------------------------------------------------


async def test_ipv6_loopback(pki: TestPKI, leaves: Leaves) -> None:
    with tls_server(leaves.web.chain, leaves.web.key, host="::1") as srv:
        r = await probe(target(srv, ca_file=pki.ca_file))
        conns = srv.settled()
    assert r.outcome.error is None
    assert r.outcome.peer_address == "::1"
    assert r.address == f"[::1]:{srv.port}"
    assert r.server_name is None
    assert conns[0].server_name is None
    assert r.verdict is not None
    assert r.verdict.verified  # "::1" matches the IP SAN


async def test_localhost_name(pki: TestPKI, web_server: Server) -> None:
    r = await probe(target(web_server, host="localhost", ca_file=pki.ca_file))
    conns = web_server.settled()
    assert r.outcome.error is None
    assert r.outcome.peer_address == "127.0.0.1"
    assert r.server_name == "localhost"
    assert conns[-1].server_name == "localhost"
    assert r.verdict is not None
    assert r.verdict.verified


async def test_dns_failure() -> None:
    r = await probe(Target("nx", "no-such-host.certscope.invalid", 443, TLSOptions(timeout=5)))
    assert reason(r) is ProbeFailure.DNS
    assert r.outcome.error is not None
    assert "no-such-host.certscope.invalid" in r.outcome.error.message
    assert (r.facts, r.verdict, r.success, r.last_success) == ((), None, False, None)


async def test_connection_refused() -> None:
    sock, port = unused_port()
    with sock:
        r = await probe(Target("refused", "127.0.0.1", port, TLSOptions(timeout=5)))
    assert reason(r) is ProbeFailure.CONNECT_REFUSED
    assert r.outcome.error is not None
    assert str(port) in r.outcome.error.message
    assert r.duration < 2
    assert not r.success


#: Linux refuses a TCP connect to the limited broadcast address at once (ENETUNREACH), with
#: or without a route out: a connect error that is neither a refusal nor a timeout.
UNREACHABLE = "255.255.255.255"


async def test_connect_error_other_than_refused() -> None:
    r = await probe(Target("unreachable", UNREACHABLE, 443, TLSOptions(timeout=5)))
    assert reason(r) is ProbeFailure.CONNECT_ERROR
    assert r.outcome.error is not None
    assert r.outcome.error.message.startswith(f"cannot connect to {UNREACHABLE} port 443: ")
    assert r.duration < 2
    assert not r.success


# --- failures during the handshake ---------------------------------------------------------


@pytest.mark.parametrize("factory", [silent_server, dribble_server], ids=["silent", "dribble"])
async def test_slow_servers_time_out(factory: Any) -> None:
    with factory() as srv:
        started = time.monotonic()
        r = await probe(target(srv, timeout=1.0))
        elapsed = time.monotonic() - started
    assert reason(r) is ProbeFailure.TIMEOUT
    assert r.outcome.error is not None
    assert "1s" in r.outcome.error.message
    assert 0.9 <= elapsed < 2.0
    assert r.facts == ()


@pytest.mark.parametrize(
    ("factory", "shown"),
    [(http_server, "HTTP/1.1 400 Bad Request"), (garbage_server, ".garbage")],
    ids=["http", "garbage"],
)
async def test_not_tls(factory: Any, shown: str) -> None:
    with factory() as srv:
        r = await probe(target(srv))
    assert reason(r) is ProbeFailure.NOT_TLS
    assert r.outcome.error is not None
    assert shown in r.outcome.error.message
    assert r.duration < 2


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
async def test_server_hangs_up_during_the_handshake(reset: bool) -> None:
    """The server reads the ClientHello and goes away: a clean close or a TCP reset is
    ``connection_closed`` at once, and the probe does not wait for its timeout."""
    with hangup_server(reset=reset) as srv:
        r = await probe(target(srv, timeout=10))
        seen = srv.settled()
    assert reason(r) is ProbeFailure.CONNECTION_CLOSED
    assert r.outcome.error is not None
    expected = "connection lost" if reset else "server closed the connection during the handshake"
    assert expected in r.outcome.error.message
    assert r.duration < 3
    assert r.facts == ()
    assert seen[0].commands[0][:1] == b"\x16"  # it did get a ClientHello first


async def test_tls_alert_no_shared_suite(pki: TestPKI, leaves: Leaves) -> None:
    # The probe offers OpenSSL's default TLS 1.3 suites, which do not include CCM_8.
    async with OpenSSLServer(
        leaves.web.cert,
        leaves.web.key,
        "-tls1_3",
        "-ciphersuites",
        "TLS_AES_128_CCM_8_SHA256",
        chain=pki.intermediate.path,
    ) as srv:
        r = await probe(target(srv))
    assert reason(r) is ProbeFailure.TLS_ALERT
    assert r.outcome.error is not None
    assert r.outcome.error.alert == "handshake_failure"
    assert r.facts == ()


async def test_tls_alert_unrecognized_name(pki: TestPKI, leaves: Leaves) -> None:
    async with OpenSSLServer(
        leaves.web.cert,
        leaves.web.key,
        "-servername",
        "web.test",
        "-servername_fatal",
        "-cert2",
        str(leaves.web.cert),
        "-key2",
        str(leaves.web.key),
        chain=pki.intermediate.path,
    ) as srv:
        r = await probe(target(srv, sni="other.test"))
        good = await probe(target(srv, sni="web.test"))
    assert reason(r) is ProbeFailure.TLS_ALERT
    assert r.outcome.error is not None
    assert r.outcome.error.alert == "unrecognized_name"
    assert good.outcome.error is None


async def test_huge_certificate(pki: TestPKI) -> None:
    # About 1 MiB: over the default max_handshake_bytes, so refused quickly, never buffered.
    with huge_certificate_server(pki, size=1200 * 1024) as srv:
        r = await probe(target(srv, timeout=10))
    assert reason(r) is ProbeFailure.RESPONSE_TOO_LARGE
    assert r.duration < 5
    assert r.facts == ()


async def test_chain_of_100_certificates(pki: TestPKI) -> None:
    with long_chain_server(pki, 100) as srv:
        r = await probe(target(srv, sni="long.test"))
    assert r.outcome.error is None
    assert r.outcome.chain_truncated
    assert r.outcome.chain_length == 100
    assert len(r.outcome.chain) == MAX_CHAIN
    assert len(r.facts) == MAX_CHAIN
    assert r.facts[0].subject_cn == "long.test"
    assert [f.subject_cn for f in r.facts[1:3]] == [
        "certscope Test chain CA 1",
        "certscope Test chain CA 2",
    ]
    assert r.verdict is not None
    assert not r.verdict.chain_trusted
    assert r.verdict.hostname_match


# --- STARTTLS -------------------------------------------------------------------------------

# The preambles against the real servers (Postfix, Dovecot, vsftpd, slapd, PostgreSQL,
# MariaDB) are in test_starttls_servers.py; here, what a STARTTLS client meets elsewhere.


async def test_starttls_against_a_tls_server(web_server: Server) -> None:
    # The TLS server waits for a ClientHello; the SMTP client waits for a greeting.
    r = await probe(target(web_server, starttls="smtp", timeout=0.5))
    assert reason(r) is ProbeFailure.TIMEOUT
    assert r.facts == ()


async def test_starttls_against_garbage() -> None:
    with garbage_server(b"\x00\x01 garbage\r\n") as srv:
        r = await probe(target(srv, starttls="smtp", timeout=5))
    assert reason(r) is ProbeFailure.STARTTLS_ERROR
    assert r.outcome.error is not None
    assert "garbage" in r.outcome.error.message
    assert r.duration < 2


# --- concurrency ---------------------------------------------------------------------------


async def test_fifty_servers_at_once_with_hostile_neighbours(pki: TestPKI, leaves: Leaves) -> None:
    with ExitStack() as stack:
        healthy = [
            stack.enter_context(tls_server(leaves.web.chain, leaves.web.key)) for _ in range(50)
        ]
        hostile = [
            stack.enter_context(factory())
            for factory in (silent_server, dribble_server, garbage_server, http_server)
            for _ in range(3)
        ]
        sock, refused_port = unused_port()
        stack.enter_context(sock)
        opts: dict[str, Any] = dict(sni="web.test", ca_file=pki.ca_file, timeout=3.0)
        healthy_targets = [target(s, **opts) for s in healthy]
        hostile_targets = [target(s, **opts) for s in hostile] + [
            target(healthy[0], port=refused_port, **opts)
        ]
        started = time.monotonic()
        done_at: dict[int, float] = {}

        async def timed(i: int, t: Target) -> ProbeResult:
            r = await probe(t)
            done_at[i] = time.monotonic() - started
            return r

        results = await asyncio.gather(
            *(timed(i, t) for i, t in enumerate(healthy_targets + hostile_targets))
        )
    good, bad = results[:50], results[50:]
    assert [r.outcome.error for r in good] == [None] * 50
    assert all(r.verdict is not None and r.verdict.verified for r in good)
    assert {r.outcome.peer_address for r in good} == {"127.0.0.1"}
    assert len({r.address for r in good}) == 50
    # Healthy probes finish long before the silent and dribbling servers time out.
    assert max(done_at[i] for i in range(50)) < 2.0
    assert [reason(r) for r in bad] == (
        [ProbeFailure.TIMEOUT] * 6 + [ProbeFailure.NOT_TLS] * 6 + [ProbeFailure.CONNECT_REFUSED]
    )


# --- the CLI --------------------------------------------------------------------------------


def scan(*args: str) -> subprocess.CompletedProcess[str]:
    assert CERTSCOPE.exists(), f"{CERTSCOPE} missing: install the package (make)"
    return subprocess.run(
        [str(CERTSCOPE), "scan", *args], capture_output=True, text=True, timeout=60, check=False
    )


def scan_json(*args: str) -> tuple[int, list[dict[str, Any]]]:
    proc = scan("--format", "json", *args)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"not JSON (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    assert isinstance(data, list)
    return proc.returncode, data


CERT_FIELDS = {
    "subject_cn",
    "issuer_cn",
    "serial",
    "not_before",
    "not_after",
    "days_left",
    "sans",
    "key_algorithm",
    "key_bits",
    "signature_algorithm",
    "fingerprint_sha256",
}


def test_cli_json_documented_fields(pki: TestPKI, leaves: Leaves, web_server: Server) -> None:
    sock, refused_port = unused_port()
    with sock:
        code, data = scan_json(
            f"localhost:{web_server.port}",
            f"127.0.0.1:{refused_port}",
            "--ca-file",
            str(pki.ca_file),
            "--timeout",
            "5s",
        )
    assert code == 1  # one target could not be probed
    ok, refused = data
    assert ok["target"] == f"localhost:{web_server.port}"
    assert ok["ok"] is True
    assert ok["error"] is None
    assert ok["tls"]["version"] == "TLSv1.3"
    assert ok["tls"]["cipher"] == "TLS_AES_256_GCM_SHA384"
    assert ok["tls"]["group"] == "x25519"
    assert ok["verification"] == {
        "verified": True,
        "chain_trusted": True,
        "hostname_match": True,
        "errors": [],
    }
    assert ok["client_cert_required"] is False
    assert ok["chain_truncated"] is False
    assert len(ok["certificates"]) == 2
    leaf_json, inter_json = ok["certificates"]
    for c in ok["certificates"]:
        assert c.keys() >= CERT_FIELDS
        assert ISO_UTC.match(c["not_before"]), c["not_before"]
        assert ISO_UTC.match(c["not_after"]), c["not_after"]
    cert = leaves.web.certificate
    assert leaf_json["subject_cn"] == "web.test"
    assert leaf_json["issuer_cn"] == "certscope Test Intermediate CA"
    assert int(leaf_json["serial"], 16) == cert.serial_number
    assert leaf_json["not_after"] == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert leaf_json["not_before"] == cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    days = (cert.not_valid_after_utc - datetime.now(UTC)).total_seconds() / 86400
    assert leaf_json["days_left"] == pytest.approx(days, abs=0.02)
    assert leaf_json["sans"] == ["web.test", "localhost", "127.0.0.1", "::1"]
    assert (leaf_json["key_algorithm"], leaf_json["key_bits"]) == ("EC", 256)
    assert leaf_json["signature_algorithm"] == "ECDSA"
    assert leaf_json["fingerprint_sha256"] == hashlib.sha256(leaves.web.der).hexdigest()
    assert inter_json["subject_cn"] == "certscope Test Intermediate CA"
    assert inter_json["is_ca"] is True

    assert refused["ok"] is False
    assert refused["error"]["reason"] == "connect_refused"
    assert str(refused_port) in refused["error"]["message"]
    assert refused["certificates"] == []
    assert refused["verification"] is None
    assert refused["tls"] is None


def test_cli_verification_errors_and_exit_code(pki: TestPKI, leaves: Leaves) -> None:
    with tls_server(leaves.expired.cert, leaves.expired.key) as srv:
        code, data = scan_json(
            srv.address, "--sni", "wrong.test", "--ca-file", str(pki.ca_file), "--timeout", "5s"
        )
    assert code == 0  # the probe worked; the verdict is data
    (r,) = data
    assert r["ok"] is True
    assert r["verification"]["verified"] is False
    assert r["verification"]["errors"] == ["expired", "incomplete_chain", "hostname_mismatch"]
    assert r["verification"]["chain_trusted"] is False
    assert r["verification"]["hostname_match"] is False
    assert r["certificates"][0]["subject_cn"] == "expired.test"
    assert r["certificates"][0]["days_left"] == pytest.approx(-3, abs=0.02)


def test_cli_ipv6_and_failures(leaves: Leaves) -> None:
    with tls_server(leaves.web.chain, leaves.web.key, host="::1") as srv, silent_server() as quiet:
        code, data = scan_json(
            f"[::1]:{srv.port}",
            quiet.address,
            "no-such-host.certscope.invalid:443",
            "--timeout",
            "1s",
        )
    assert code == 1
    v6, silent, nx = data
    assert v6["ok"] is True
    assert v6["peer_address"] == "::1"
    assert v6["address"] == f"[::1]:{srv.port}"
    assert silent["error"]["reason"] == "timeout"
    assert nx["error"]["reason"] == "dns"


def test_cli_table_is_readable(pki: TestPKI, leaves: Leaves, web_server: Server) -> None:
    sock, refused_port = unused_port()
    with sock:
        proc = scan(
            f"localhost:{web_server.port}",
            f"127.0.0.1:{refused_port}",
            "--ca-file",
            str(pki.ca_file),
            "--timeout",
            "5s",
        )
    assert proc.returncode == 1
    out = proc.stdout
    assert f"localhost:{web_server.port}  [OK]  127.0.0.1" in out
    assert "tls:      TLSv1.3  TLS_AES_256_GCM_SHA384  group x25519" in out
    assert "verify:   trusted" in out
    assert "[0] web.test  issuer certscope Test Intermediate CA" in out
    assert "[1] certscope Test Intermediate CA  issuer certscope Test Root CA" in out
    assert "SANs: web.test, localhost, 127.0.0.1, ::1" in out
    assert f"127.0.0.1:{refused_port}  [FAILED connect_refused]" in out
    assert "error:    connection to 127.0.0.1" in out
    assert proc.stderr == ""


def _pem_body_lines(pem: bytes) -> list[str]:
    return [
        line
        for line in pem.decode().splitlines()
        if line and not line.startswith("-----") and len(line) >= 16
    ]


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_cli_never_prints_the_private_key(pki: TestPKI, leaves: Leaves, fmt: str) -> None:
    key_lines = _pem_body_lines(leaves.client.key_pem)
    rsa_key_lines = _pem_body_lines(leaves.rsa.key_pem)
    assert len(key_lines) >= 3
    with tls_server(leaves.web.chain, leaves.web.key, client_ca=pki.ca_file) as srv:
        good = scan(
            srv.address,
            "--format",
            fmt,
            "--ca-file",
            str(pki.ca_file),
            "--client-cert",
            str(leaves.client.chain),
            "--client-key",
            str(leaves.client.key),
        )
        wrong = scan(  # a key that does not match the certificate: the error names no key
            srv.address,
            "--format",
            fmt,
            "--client-cert",
            str(leaves.client.chain),
            "--client-key",
            str(leaves.rsa.key),
        )
    assert good.returncode == 0, good.stdout + good.stderr
    assert wrong.returncode == 1
    assert "client_config" in wrong.stdout
    for proc in (good, wrong):
        text = proc.stdout + proc.stderr
        assert "PRIVATE KEY" not in text
        for line in key_lines + rsa_key_lines:
            assert line not in text


def test_cli_usage_errors(leaves: Leaves) -> None:
    proc = scan("127.0.0.1:1", "--client-cert", str(leaves.client.chain))
    assert proc.returncode == 2
    assert "--client-cert and --client-key go together" in proc.stderr
    assert proc.stdout == ""


async def test_equal_chains_and_verdicts_are_held_once(pki: TestPKI, web_server: Server) -> None:
    """Targets behind one endpoint share its chain's bytes and their equal policy verdicts
    (memory at fleet scale); unequal ones never share, and the table is bounded."""
    # Two targets on one endpoint, both asking for a name its certificate does not hold.
    one = await probe(target(web_server, sni="other.test", ca_file=pki.ca_file))
    two = await probe(target(web_server, host="localhost", sni="other.test", ca_file=pki.ca_file))
    assert one.name != two.name
    assert one.outcome.chain[0] is two.outcome.chain[0]
    now = datetime.now(UTC)
    assessed = [
        assess_endpoint((r.name, r.address), r.facts, r.verdict, None, Policy(), now)
        for r in (one, two)
    ]
    assert assessed[0].findings  # the name mismatch
    assert assessed[0].findings is assessed[1].findings
    # A different verdict (the name matches) is its own value.
    good = await probe(target(web_server, sni="web.test", ca_file=pki.ca_file))
    matched = assess_endpoint(("x", "y"), good.facts, good.verdict, None, Policy(), now)
    assert matched.findings != assessed[0].findings
    for i in range(certs.shared.limit + 10):
        assert certs.shared(("bound", i)) == ("bound", i)
    assert len(certs.shared.table) <= certs.shared.limit
