"""The certificate is reported whatever the server negotiates: legacy-only suites and
versions, chains over OpenSSL's certificate-list limit, huge and long chains, certificates
OpenSSL refuses to load.

Real servers: gnutls-serv (RC4, 3DES and NULL suites, which OpenSSL 3 no longer serves, a
TLS 1.0-only endpoint, and a certificate OpenSSL refuses), ``openssl s_server`` and Python
``ssl`` for huge certificates and long chains. SSLv3 has no real server left on Debian (OpenSSL and GnuTLS both removed it), so that
one case uses the scripted responder from ``tlsresponder.py``; the flight codec's own edge
cases are tested without sockets.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import crypto

from certscope.collector import render_once
from certscope.config import Policy, Target, TLSOptions
from certscope.errors import ProbeFailure, VerifyFailure
from certscope.policy import assess_endpoint
from certscope.posture import PostureScan
from certscope.probe import probe
from certscope.tls import hello as h
from certscope.tls.flight import DHParams, ECParams, Flight, FlightParser, parse_key_exchange
from certscope.tls.handshake import MAX_CHAIN
from certscope.tls.suites import PROTOCOLS, by_name
from helpers import tls_encoders as enc
from helpers.pki import Leaf, TestPKI
from helpers.servers import GnuTLSServer, OpenSSLServer, long_chain_server, tls_server
from helpers.tlsresponder import Reply, Responder, SeenHello


def _target(host: str, port: int, **tls: object) -> Target:
    opts = TLSOptions(timeout=10.0, **tls)  # type: ignore[arg-type]
    return Target(name="t", host=host, port=port, tls=opts)


@pytest.fixture(scope="module")
def rsa_leaf(pki: TestPKI) -> Leaf:
    return pki.leaf("legacy.test", "localhost", key="rsa")


# --- legacy-only endpoints (gnutls-serv) ------------------------------------------------------

_BASE = ":+RSA:+SHA1:+COMP-NULL:+SIGN-ALL"


@pytest.mark.parametrize(
    ("priority", "cipher"),
    [
        ("NONE:+VERS-TLS1.2:+ARCFOUR-128" + _BASE, "TLS_RSA_WITH_RC4_128_SHA"),
        ("NONE:+VERS-TLS1.2:+3DES-CBC" + _BASE, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"),
        ("NONE:+VERS-TLS1.2:+NULL" + _BASE, "TLS_RSA_WITH_NULL_SHA"),
    ],
    ids=["rc4-only", "3des-only", "null-only"],
)
async def test_legacy_only_suites_still_report_the_certificate(
    pki: TestPKI, rsa_leaf: Leaf, priority: str, cipher: str
) -> None:
    with GnuTLSServer(rsa_leaf.chain, rsa_leaf.key, priority) as srv:
        r = await probe(_target("127.0.0.1", srv.port, sni="legacy.test", ca_file=str(pki.ca_file)))
    # The handshake failed (OpenSSL will not negotiate these suites) and says so ...
    assert r.outcome.error is not None
    assert not r.success
    # ... and the certificate is reported beside the error, read from the first flight.
    assert r.outcome.captured_by == "hello"
    assert [f.subject_cn for f in r.facts] == ["legacy.test", "certscope Test Intermediate CA"]
    assert r.outcome.negotiated is not None
    assert r.outcome.negotiated.cipher == cipher
    assert r.outcome.negotiated.version == "TLSv1.2"
    assert r.verdict is not None
    assert r.verdict.verified, r.verdict.errors
    text = render_once([r])
    assert "certscope_cert_not_after_timestamp_seconds{" in text
    assert 'certscope_probe_error_info{source_kind="tls"' in text
    # The grade scores key exchange on the captured certificate (RSA 2048: 90), not as 0.
    suite = by_name(cipher)
    assert suite is not None
    scan = PostureScan(
        protocols=tuple((p, p == "TLSv1.2") for p in PROTOCOLS),
        suites=(("TLSv1.2", (suite.code,)),),
    )
    a = assess_endpoint(("t", "x"), r.facts, r.verdict, scan, Policy(), datetime.now(UTC))
    assert a.grade is not None
    # 0.3 x protocol (TLS 1.2: 100) + 0.3 x key exchange (RSA 2048: 90) + 0.4 x cipher
    # (RC4 128 bits: 80, 3DES 112 bits: 20, NULL: 0); without the certificate it would be 0.
    expected = {"TLS_RSA_WITH_RC4_128_SHA": 89, "TLS_RSA_WITH_3DES_EDE_CBC_SHA": 65}
    assert a.grade.score == expected.get(cipher, 57)


async def test_tls10_only_endpoint_reports_its_certificate(pki: TestPKI, rsa_leaf: Leaf) -> None:
    priority = "NONE:+VERS-TLS1.0:+AES-128-CBC" + _BASE
    with GnuTLSServer(rsa_leaf.chain, rsa_leaf.key, priority) as srv:
        r = await probe(_target("127.0.0.1", srv.port, sni="legacy.test", ca_file=str(pki.ca_file)))
    assert r.facts and r.facts[0].subject_cn == "legacy.test"
    assert r.outcome.negotiated is not None
    assert r.outcome.negotiated.version == "TLSv1.0"
    assert r.outcome.negotiated.cipher == "TLS_RSA_WITH_AES_128_CBC_SHA"


async def test_refused_connection_gets_no_capture() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    try:
        r = await probe(_target("127.0.0.1", s.getsockname()[1]))
    finally:
        s.close()
    assert r.outcome.error is not None
    assert r.outcome.error.reason is ProbeFailure.CONNECT_REFUSED
    assert r.facts == ()


# --- SSLv3 (scripted: no real SSLv3 server exists on Debian any more) -------------------------


def _certificate_message(chain: list[bytes]) -> bytes:
    body = b"".join(len(c).to_bytes(3, "big") + c for c in chain)
    body = len(body).to_bytes(3, "big") + body
    return bytes([11]) + len(body).to_bytes(3, "big") + body


def _records(version: int, payload: bytes) -> bytes:
    out = b""
    for i in range(0, len(payload), 16384):
        chunk = payload[i : i + 16384]
        out += bytes([22]) + version.to_bytes(2, "big") + len(chunk).to_bytes(2, "big") + chunk
    return out


def _flight(version: int, suite: int, chain: list[bytes], extra: bytes = b"") -> bytes:
    hello = enc.build_server_hello(suite, version=version, record_version=version)
    done = bytes([14, 0, 0, 0])
    return hello + _records(version, _certificate_message(chain) + extra + done)


async def test_sslv3_only_server(rsa_leaf: Leaf) -> None:
    def script(seen: SeenHello) -> Reply:
        if seen.protocol != "SSLv3" or 0x000A not in seen.suites:
            return Reply(enc.build_alert(40, record_version=0x0300))
        return Reply(_flight(0x0300, 0x000A, [rsa_leaf.der]))

    async with Responder(script) as srv:
        r = await probe(_target("127.0.0.1", srv.port, sni="legacy.test"))
    assert r.outcome.captured_by == "hello"
    assert r.facts[0].subject_cn == "legacy.test"
    assert r.outcome.negotiated is not None
    assert r.outcome.negotiated.version == "SSLv3"
    assert r.outcome.negotiated.cipher == "TLS_RSA_WITH_3DES_EDE_CBC_SHA"
    assert {s.protocol for s in srv.hellos} >= {"TLSv1.2", "TLSv1.0", "SSLv3"}


# --- huge certificates and long chains --------------------------------------------------------


def _many_names(n: int, domain: str = "many.test") -> list[str]:
    return [f"host{i:05d}.{domain}" for i in range(n)]


@pytest.fixture(scope="module")
def san_10k(pki: TestPKI) -> Leaf:
    return pki.leaf(*_many_names(10_000))


async def test_ten_thousand_sans(pki: TestPKI, san_10k: Leaf) -> None:
    assert len(san_10k.der) > 200_000  # over OpenSSL's 100 KiB certificate-list limit
    with OpenSSLServer(san_10k.cert, san_10k.key, chain=pki.intermediate.path) as srv:
        r = await probe(
            _target("127.0.0.1", srv.port, sni="host05000.many.test", ca_file=str(pki.ca_file))
        )
        limited = await probe(
            _target("127.0.0.1", srv.port, sni="host05000.many.test", max_handshake_bytes=65536)
        )
    assert r.outcome.error is not None
    assert r.outcome.error.reason is ProbeFailure.RESPONSE_TOO_LARGE
    assert r.outcome.captured_by == "hello"
    leaf = r.facts[0]
    assert len(leaf.sans) == 10_000
    assert leaf.not_after is not None
    assert leaf.parse_errors == ()
    assert r.verdict is not None
    assert r.verdict.hostname_match
    assert VerifyFailure.HOSTNAME_MISMATCH not in r.verdict.errors
    assert r.verdict.chain_trusted
    # The configured limit is honoured: 64 KiB is not enough for this chain.
    assert limited.facts == ()
    assert limited.outcome.error is not None
    assert limited.outcome.error.reason is ProbeFailure.RESPONSE_TOO_LARGE


async def test_85_kb_leaf_is_parsed(pki: TestPKI) -> None:
    leaf = pki.leaf(*_many_names(2_500, "eighty-five-kilobytes.test"))
    assert 80 * 1000 < len(leaf.der) < 95 * 1024  # below OpenSSL's limit, above the old cap
    with tls_server(leaf.chain, leaf.key) as srv:
        r = await probe(
            _target(
                "127.0.0.1",
                srv.port,
                sni="host02499.eighty-five-kilobytes.test",
                ca_file=str(pki.ca_file),
            )
        )
    assert r.success
    assert r.facts[0].not_after is not None
    assert r.verdict is not None and r.verdict.verified, r.verdict
    assert "certscope_cert_not_after_timestamp_seconds{" in render_once([r])


async def test_61_certificate_chain_reports_its_real_length(pki: TestPKI) -> None:
    with long_chain_server(pki, 61) as srv:
        r = await probe(_target("127.0.0.1", srv.port, sni="long.test"))
    assert r.outcome.error is None
    assert r.outcome.chain_length == 61
    assert r.outcome.presented == 61
    assert r.outcome.chain_truncated
    assert len(r.facts) == MAX_CHAIN
    text = render_once([r])
    assert 'certscope_cert_chain_certificates{source_kind="tls",source="t",' in text
    line = next(x for x in text.splitlines() if x.startswith("certscope_cert_chain_certificates{"))
    assert line.endswith(" 61")


# --- the flight codec, without sockets --------------------------------------------------------


def test_flight_across_records_with_staple_and_key_exchange(rsa_leaf: Leaf) -> None:
    ske = (2).to_bytes(2, "big") + b"\x17" * 2 + b"\x00\x01\x02" + b"\x00\x01\x05" + b"sig"
    status = bytes([22]) + (4 + 3).to_bytes(3, "big") + b"\x01" + (3).to_bytes(3, "big") + b"abc"
    key_exchange = bytes([12]) + len(ske).to_bytes(3, "big") + ske
    data = _flight(0x0303, 0x0033, [rsa_leaf.der], status + key_exchange)
    parser = FlightParser(max_bytes=1 << 20)
    events = []
    for i in range(0, len(data), 7):  # byte-by-byte-ish delivery
        events += parser.feed(data[i : i + 7])
    assert len(events) == 1
    flight = events[0]
    assert isinstance(flight, Flight)
    assert flight.complete
    assert flight.certificates == (rsa_leaf.der,)
    assert flight.ocsp_response == b"abc"
    assert flight.key_exchange == ske
    params = parse_key_exchange("DHE", ske)
    assert params == DHParams(prime=0x1717, generator=2, public_bytes=1)


def test_flight_limits_and_failures(rsa_leaf: Leaf) -> None:
    data = _flight(0x0303, 0x002F, [rsa_leaf.der])
    small = FlightParser(max_bytes=100)
    events = small.feed(data)
    assert len(events) == 1 and isinstance(events[0], h.ProtocolError)
    assert events[0].reason is h.HelloFailure.BAD_LENGTH  # refused before it is buffered
    # Many small messages that never end the flight hit the byte limit.
    stream = (
        enc.build_server_hello(0x002F) + _records(0x0303, bytes([99, 0, 0, 10]) + bytes(10)) * 50
    )
    (limit,) = FlightParser(max_bytes=400).feed(stream)
    assert isinstance(limit, h.ProtocolError) and limit.reason is h.HelloFailure.BUFFER_LIMIT
    # An alert before any certificate is the answer; after one, the chain is still returned.
    assert isinstance(FlightParser(max_bytes=1000).feed(enc.build_alert(40))[0], h.Alert)
    # ServerHelloDone missing, then EOF
    cut = enc.build_server_hello(0x002F) + _records(0x0303, _certificate_message([rsa_leaf.der]))
    p = FlightParser(max_bytes=1 << 20)
    assert p.feed(cut) == []
    (end,) = p.feed(b"")
    assert isinstance(end, Flight) and not end.complete and end.certificates == (rsa_leaf.der,)
    assert isinstance(FlightParser(max_bytes=10).feed(b"")[0], h.ConnectionClosed)
    assert isinstance(FlightParser(max_bytes=100).feed(b"HTTP/1.1 400")[0], h.ProtocolError)


def test_parse_key_exchange() -> None:
    assert parse_key_exchange("ECDHE", b"\x03\x00\x1d\x01\x00") == ECParams(29)
    assert parse_key_exchange("ECDHE", b"\x01\x00\x1d") is None  # explicit curves: no name
    assert parse_key_exchange("DHE", b"\x00\x05ab") is None  # truncated
    assert parse_key_exchange("RSA", b"") is None


def test_max_handshake_bytes_setting() -> None:
    from certscope.config import DEFAULT_MAX_HANDSHAKE_BYTES, parse_config
    from certscope.errors import ConfigError

    assert DEFAULT_MAX_HANDSHAKE_BYTES >= 1024 * 1024
    cfg = parse_config(
        "defaults: {max_handshake_bytes: 2097152}\n"
        "targets:\n - address: a.test:443\n - address: b.test:443\n   max_handshake_bytes: 65536\n",
        "t.yaml",
    )
    assert [t.tls.max_handshake_bytes for t in cfg.targets] == [2097152, 65536]
    with pytest.raises(ConfigError) as err:
        parse_config("targets:\n - address: a.test:443\n   max_handshake_bytes: 1000\n", "t.yaml")
    assert [p.location for p in err.value.problems] == ["targets[0].max_handshake_bytes"]


# --- a certificate OpenSSL will not load (gnutls-serv) -----------------------------------------


async def test_certificate_openssl_refuses_is_unsupported(pki: TestPKI, tmp_path: Path) -> None:
    """A subject whose UTF8String is not UTF-8: cryptography parses the certificate (names
    are read lazily), OpenSSL refuses it outright, in the handshake and in the chain builder.
    GnuTLS serves it. The probe reports the certificate, read from the first flight, and the
    verdict says OpenSSL could not use it rather than calling it trusted or merely unknown."""
    leaf = pki.leaf("refused.test", cn="refused-cn-Q", key="rsa")
    marker = b"\x0c\x0crefused-cn-Q"  # the subject's CN, a UTF8String of 12 bytes
    assert leaf.der.count(marker) == 1
    der = leaf.der.replace(marker, marker[:-1] + b"\xff")
    with pytest.raises(crypto.Error):
        crypto.load_certificate(crypto.FILETYPE_ASN1, der)
    chain = tmp_path / "refused-chain.pem"
    intermediate = pki.intermediate.certificate.public_bytes(Encoding.PEM).decode()
    chain.write_text(ssl.DER_cert_to_PEM_cert(der) + intermediate)
    with GnuTLSServer(chain, leaf.key, "NORMAL:-VERS-ALL:+VERS-TLS1.2") as srv:
        r = await probe(
            _target("127.0.0.1", srv.port, sni="refused.test", ca_file=str(pki.ca_file))
        )
    assert r.outcome.error is not None  # OpenSSL's own handshake refuses the certificate
    assert r.outcome.captured_by == "hello"
    assert r.facts[0].sans == ("refused.test",)
    assert r.verdict is not None
    assert not r.verdict.chain_trusted
    assert VerifyFailure.UNSUPPORTED_CERTIFICATE in r.verdict.errors
    failures = [
        line
        for line in render_once([r]).splitlines()
        if line.startswith("certscope_cert_verification_failure{")
    ]
    assert any('reason="unsupported_certificate"' in f and f.endswith(" 1") for f in failures)
