"""The hello codec: ClientHello layouts, ServerHello parsing, evaluation, and real servers."""

from __future__ import annotations

import itertools
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certscope.tls import hello as h
from certscope.tls.hello import HelloFailure, HelloFlags, NamedGroup
from helpers import tls_encoders as enc


def counting_rng() -> Callable[[int], bytes]:
    """Deterministic rng: 0x01, 0x02, ... wrapping, never all zeros."""
    counter = itertools.count(1)

    def rng(n: int) -> bytes:
        return bytes(next(counter) % 251 + 1 for _ in range(n))

    return rng


def fixed_rng(byte: int) -> Callable[[int], bytes]:
    def rng(n: int) -> bytes:
        return bytes([byte]) * n

    return rng


def hs_body(record: bytes) -> bytes:
    """Handshake message body of a single-record, single-message hello."""
    return record[9:]


# --------------------------------------------------------------------------------------
# ClientHello layouts
# --------------------------------------------------------------------------------------


def test_sslv2_client_hello_layout() -> None:
    ch = h.build_client_hello("SSLv2", [0x010080, 0x0700C0], rng=fixed_rng(0xAB))
    body = (
        b"\x01"  # CLIENT-HELLO
        + b"\x00\x02"  # version SSL 2.0
        + b"\x00\x06"  # cipher-specs length
        + b"\x00\x00"  # session-id length
        + b"\x00\x10"  # challenge length
        + bytes.fromhex("010080 0700c0")
        + b"\xab" * 16
    )
    assert ch.data == bytes([0x80, len(body)]) + body
    assert ch.random == b"\xab" * 16
    assert ch.cipher_suites == (0x010080, 0x0700C0)


def test_sslv3_client_hello_layout() -> None:
    ch = h.build_client_hello(
        "SSLv3", [0x002F, 0x000A], server_name="example.com", rng=fixed_rng(7)
    )
    body = (
        b"\x03\x00"
        + b"\x07" * 32  # random
        + b"\x20"
        + b"\x07" * 32  # session id
        + bytes.fromhex("0006 002f 000a 00ff")  # suites + renegotiation SCSV
        + b"\x01\x00"  # null compression; SSLv3: no extensions
    )
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    assert ch.data == b"\x16\x03\x00" + len(message).to_bytes(2, "big") + message
    assert ch.server_name is None  # SSLv3 hellos carry no SNI


def test_tls12_round_trip() -> None:
    offered = [0xC02F, 0xC030, 0x009C]
    ch = h.build_client_hello(
        "TLSv1.2", offered, server_name="Example.COM.", groups=[29, 23], rng=counting_rng()
    )
    d = enc.decode_client_hello(ch.data)
    assert d.record_version == 0x0301
    assert d.version == 0x0303
    assert d.random == ch.random
    assert len(d.session_id) == 32
    assert d.session_id == ch.session_id
    assert d.cipher_suites == (0xC02F, 0xC030, 0x009C, 0x00FF)
    assert d.compression_methods == b"\x00"
    assert [t for t, _ in d.extensions] == [0, 23, 10, 11, 13]
    host = b"example.com"
    assert (
        d.extension(0)
        == (len(host) + 3).to_bytes(2, "big") + b"\x00" + bytes([0, len(host)]) + host
    )
    assert d.extension(23) == b""
    assert d.extension(10) == bytes.fromhex("0004 001d 0017")
    assert d.extension(11) == b"\x01\x00"
    sigalgs = d.extension(13)
    assert sigalgs is not None
    codes = {int.from_bytes(sigalgs[i : i + 2], "big") for i in range(2, len(sigalgs), 2)}
    # RSA PKCS#1 and PSS, ECDSA, EdDSA, and the SHA-1 variants.
    assert {0x0401, 0x0804, 0x0403, 0x0807, 0x0201, 0x0203} <= codes
    assert ch.server_name == "example.com"
    assert ch.cipher_suites == tuple(offered)
    assert ch.key_share_group is None


def test_tls13_round_trip() -> None:
    rng = counting_rng()
    ch = h.build_client_hello("TLSv1.3", [0x1301, 0x1302], server_name="a.test", rng=rng)
    d = enc.decode_client_hello(ch.data)
    assert d.record_version == 0x0301
    assert d.version == 0x0303  # legacy_version
    assert d.cipher_suites == (0x1301, 0x1302)  # no SCSV in TLS 1.3
    assert d.extension(43) == b"\x02\x03\x04"
    assert d.extension(45) == b"\x01\x01"
    assert d.extension(23) is None
    share = d.extension(51)
    assert share is not None
    assert share[:6] == bytes.fromhex("0024 001d 0020")
    # The share is the X25519 public key for the private bytes the rng supplied next.
    replay = counting_rng()
    replay(32 + 32)  # random, session id
    expected = x25519.X25519PrivateKey.from_private_bytes(replay(32)).public_key()
    assert share[6:] == expected.public_bytes_raw()
    assert ch.key_share_group == NamedGroup.X25519
    assert ch.groups == tuple(h.DEFAULT_GROUPS)


@pytest.mark.parametrize(
    ("group", "length"),
    [
        (NamedGroup.SECP256R1, 65),
        (NamedGroup.SECP384R1, 97),
        (NamedGroup.SECP521R1, 133),
        (NamedGroup.X448, 56),
        (NamedGroup.X25519, 32),
    ],
)
def test_tls13_key_share_is_valid(group: NamedGroup, length: int) -> None:
    ch = h.build_client_hello("TLSv1.3", [0x1301], groups=[group, 256], rng=counting_rng())
    share = enc.decode_client_hello(ch.data).extension(51)
    assert share is not None
    assert int.from_bytes(share[2:4], "big") == group
    key = share[6:]
    assert len(key) == length
    curves: dict[int, ec.EllipticCurve] = {
        23: ec.SECP256R1(),
        24: ec.SECP384R1(),
        25: ec.SECP521R1(),
    }
    if group in curves:
        ec.EllipticCurvePublicKey.from_encoded_point(curves[group], key)  # raises if off-curve
    assert ch.key_share_group == group


@pytest.mark.parametrize(
    ("groups", "flags"),
    [
        ([NamedGroup.FFDHE2048, NamedGroup.X25519], HelloFlags.NONE),
        ([NamedGroup.X25519MLKEM768, NamedGroup.X25519], HelloFlags.NONE),
        ([NamedGroup.X25519], HelloFlags.EMPTY_KEY_SHARE),
    ],
)
def test_tls13_empty_key_share(groups: list[int], flags: HelloFlags) -> None:
    ch = h.build_client_hello("TLSv1.3", [0x1301], groups=groups, flags=flags)
    assert enc.decode_client_hello(ch.data).extension(51) == b"\x00\x00"
    assert ch.key_share_group is None


def test_tls10_and_tls11_omit_signature_algorithms() -> None:
    for protocol, version in (("TLSv1.0", 0x0301), ("TLSv1.1", 0x0302)):
        d = enc.decode_client_hello(h.build_client_hello(protocol, [0xC013]).data)
        assert d.version == version
        assert d.extension(13) is None
        assert d.extension(10) is not None


@pytest.mark.parametrize("host", ["192.0.2.1", "2001:db8::1", "[2001:db8::1]", "fe80::1%eth0", ""])
def test_sni_omitted_for_ip_addresses(host: str) -> None:
    ch = h.build_client_hello("TLSv1.2", [0xC02F], server_name=host)
    assert enc.decode_client_hello(ch.data).extension(0) is None
    assert ch.server_name is None


def test_sni_too_long() -> None:
    with pytest.raises(ValueError, match="too long"):
        h.build_client_hello("TLSv1.2", [0xC02F], server_name="a" * 256)


def test_sni_idna() -> None:
    ch = h.build_client_hello("TLSv1.2", [0xC02F], server_name="bücher.example")
    sni = enc.decode_client_hello(ch.data).extension(0)
    assert sni is not None
    assert sni.endswith(b"xn--bcher-kva.example")


def test_scsv_flags() -> None:
    def sent(protocol: str, flags: HelloFlags) -> tuple[int, ...]:
        ch = h.build_client_hello(protocol, [0xC02F], flags=flags)
        return enc.decode_client_hello(ch.data).cipher_suites

    assert sent("TLSv1.2", HelloFlags.NONE) == (0xC02F, 0x00FF)
    assert sent("TLSv1.2", HelloFlags.FALLBACK_SCSV) == (0xC02F, 0x00FF, 0x5600)
    assert sent("TLSv1.1", HelloFlags.NO_RENEGOTIATION_SCSV | HelloFlags.FALLBACK_SCSV) == (
        0xC02F,
        0x5600,
    )


def test_deterministic_with_injected_rng() -> None:
    a = h.build_client_hello("TLSv1.3", [0x1301], groups=[23], rng=counting_rng())
    b = h.build_client_hello("TLSv1.3", [0x1301], groups=[23], rng=counting_rng())
    assert a == b
    c = h.build_client_hello("TLSv1.3", [0x1301], groups=[23])
    assert c.random != a.random


def test_default_rng_reuses_one_key_share_per_group() -> None:
    # No hello is finished, so the share's private half is never used: one per group and
    # process spares an EC key per hello. Random and session id stay fresh.
    a, b = (h.build_client_hello("TLSv1.3", [0x1301], groups=[29]) for _ in range(2))
    share_a = enc.decode_client_hello(a.data).extension(51)
    assert share_a == enc.decode_client_hello(b.data).extension(51)
    assert share_a is not None and len(share_a) == 2 + 2 + 2 + 32
    assert (a.random, a.session_id) != (b.random, b.session_id)
    other = h.build_client_hello("TLSv1.3", [0x1301], groups=[23])
    assert enc.decode_client_hello(other.data).extension(51) != share_a


def test_suite_limits() -> None:
    codes = list(range(0x0001, 0x0001 + h.MAX_SUITES))
    assert len(
        enc.decode_client_hello(h.build_client_hello("TLSv1.2", codes).data).cipher_suites
    ) == (h.MAX_SUITES + 1)
    with pytest.raises(ValueError, match="at most 128"):
        h.build_client_hello("TLSv1.2", [*codes, 0xC02F])
    with pytest.raises(ValueError, match="at most 128"):
        h.build_client_hello("SSLv2", [0x010080 + i for i in range(129)])
    with pytest.raises(ValueError, match="at least one"):
        h.build_client_hello("TLSv1.2", [])
    with pytest.raises(ValueError, match="duplicate"):
        h.build_client_hello("TLSv1.2", [0xC02F, 0xC02F])
    with pytest.raises(ValueError, match="out of range"):
        h.build_client_hello("TLSv1.2", [0x010080])
    with pytest.raises(ValueError, match=r"code -0x1 out of range for TLSv1\.2"):
        h.build_client_hello("TLSv1.2", [0xC02F, -1])
    with pytest.raises(ValueError, match="code 0x1000000 out of range for SSLv2"):
        h.build_client_hello("SSLv2", [0x010080, 0x1000000])
    with pytest.raises(ValueError, match="group code -0x1d out of range"):
        h.build_client_hello("TLSv1.3", [0x1301], groups=[-29])
    with pytest.raises(ValueError, match="out of range"):
        h.build_client_hello("TLSv1.2", [0xC02F], groups=[70000])
    with pytest.raises(ValueError, match="unknown protocol"):
        h.build_client_hello("TLSv1.4", [0xC02F])
    with pytest.raises(ValueError, match="rng returned"):
        h.build_client_hello("TLSv1.2", [0xC02F], rng=lambda n: b"short")


@pytest.mark.parametrize("protocol", ["SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"])
def test_hello_length_never_in_f5_range(protocol: str) -> None:
    hosts = [None, "a.example", "x" * 60 + ".example.com", "y" * 200 + ".example"]
    lengths = set()
    for count, host, groups in itertools.product(
        range(1, h.MAX_SUITES + 1), hosts, [h.DEFAULT_GROUPS, [NamedGroup.FFDHE2048]]
    ):
        ch = h.build_client_hello(
            protocol, list(range(1, count + 1)), server_name=host, groups=groups
        )
        d = enc.decode_client_hello(ch.data)  # padding must leave it well-formed
        assert not 256 <= d.handshake_length <= 511, (count, host, d.handshake_length)
        padding = d.extension(21)
        assert padding is None or padding == bytes(len(padding))
        lengths.add(d.handshake_length)
    assert min(lengths) < 256 < 512 <= max(lengths)  # both sides of the range exercised


# --------------------------------------------------------------------------------------
# ServerHello parsing
# --------------------------------------------------------------------------------------


def parse_all(data: bytes, *, chunks: Sequence[int] = ()) -> list[h.Event]:
    """Feed ``data`` split at ``chunks`` offsets (then EOF) and collect every event."""
    parser = h.ServerHelloParser()
    events: list[h.Event] = []
    cuts = [0, *sorted(c for c in chunks if 0 < c < len(data)), len(data)]
    for start, end in itertools.pairwise(cuts):
        events += parser.feed(data[start:end])
    events += parser.feed(b"")
    return events


def only(events: list[h.Event]) -> h.Event:
    assert len(events) == 1, events
    return events[0]


TLS12_HELLO = enc.build_server_hello(
    0xC02F,
    random=bytes(range(32)),
    session_id=b"\x55" * 32,
    extensions=[(0xFF01, b"\x00"), (23, b"")],
)


def test_parse_tls12_server_hello() -> None:
    event = only(parse_all(TLS12_HELLO))
    assert isinstance(event, h.ServerHello)
    assert event.version == 0x0303
    assert event.cipher_suite == 0xC02F
    assert event.selected_version is None
    assert event.key_share_group is None
    assert event.session_id == b"\x55" * 32
    assert event.random == bytes(range(32))
    assert event.extensions == ((0xFF01, b"\x00"), (23, b""))
    assert event.extension(0xFF01) == b"\x00"
    assert event.extension(43) is None
    assert not event.is_hello_retry_request
    assert event.protocol == "TLSv1.2"
    assert event.downgrade_sentinel is None


def test_parse_known_bytes() -> None:
    # A ServerHello written out by hand: TLS 1.2, no session id, AES128-GCM-SHA256,
    # and no extensions block at all (legal before TLS 1.3).
    data = bytes.fromhex("16 0303 002a 02 000026 0303") + b"\x11" * 32 + bytes.fromhex("00 009c 00")
    event = only(parse_all(data))
    assert event == h.ServerHello(
        version=0x0303,
        cipher_suite=0x009C,
        selected_version=None,
        key_share_group=None,
        session_id=b"",
        extensions=(),
        is_hello_retry_request=False,
        random=b"\x11" * 32,
        compression_method=0,
    )


def test_parse_tls13_server_hello() -> None:
    data = enc.build_server_hello(
        0x1302,
        random=b"\x42" * 32,
        selected_version=0x0304,
        key_share_group=29,
        key_share=b"\x09" * 32,
    )
    event = only(parse_all(data))
    assert isinstance(event, h.ServerHello)
    assert event.version == 0x0303
    assert event.selected_version == 0x0304
    assert event.negotiated_version == 0x0304
    assert event.protocol == "TLSv1.3"
    assert event.key_share_group == 29
    assert not event.is_hello_retry_request


def test_hello_retry_request_is_detected_by_its_random() -> None:
    data = enc.build_server_hello(
        0x1301, selected_version=0x0304, key_share_group=24, hello_retry_request=True
    )
    event = only(parse_all(data))
    assert isinstance(event, h.ServerHello)
    assert event.is_hello_retry_request
    assert event.key_share_group == 24
    assert event.random.hex().startswith("cf21ad74e59a6111")


def test_downgrade_sentinel() -> None:
    data = enc.build_server_hello(0xC02F, random=b"\x01" * 24 + b"DOWNGRD\x01")
    event = only(parse_all(data))
    assert isinstance(event, h.ServerHello)
    assert event.downgrade_sentinel == "TLSv1.2"


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 50])
def test_split_across_reads(step: int) -> None:
    events = parse_all(TLS12_HELLO, chunks=range(step, len(TLS12_HELLO), step))
    assert events == parse_all(TLS12_HELLO)


def split_into_records(record: bytes, sizes: Sequence[int]) -> bytes:
    """Re-frame a single handshake record's message over several records."""
    message = record[5:]
    out = b""
    pos = 0
    for size in [*sizes, len(message)]:
        piece = message[pos : pos + size]
        if piece:
            out += b"\x16\x03\x03" + len(piece).to_bytes(2, "big") + piece
        pos += size
    return out


@pytest.mark.parametrize("sizes", [[1], [2, 1, 1], [4], [10, 10, 10], [37]])
def test_handshake_message_split_over_records(sizes: list[int]) -> None:
    data = split_into_records(TLS12_HELLO, sizes)
    assert data.count(b"\x16\x03\x03") > 1
    assert parse_all(data) == parse_all(TLS12_HELLO)


def test_several_messages_in_one_record() -> None:
    # ServerHello, Certificate and ServerHelloDone in one record: only the ServerHello
    # matters, and nothing after it is kept.
    message = TLS12_HELLO[5:] + b"\x0b\x00\x00\x03\x00\x00\x00" + b"\x0e\x00\x00\x00"
    data = b"\x16\x03\x03" + len(message).to_bytes(2, "big") + message
    parser = h.ServerHelloParser()
    events = parser.feed(data + b"\x17\x03\x03\x00\x01\x00")
    assert isinstance(only(events), h.ServerHello)
    assert parser.done
    assert parser.buffered == 0
    assert parser.feed(b"more bytes after the end") == []
    assert parser.feed(b"") == []


def test_hello_request_before_server_hello_is_skipped() -> None:
    data = b"\x16\x03\x03\x00\x04\x00\x00\x00\x00" + TLS12_HELLO
    assert parse_all(data) == parse_all(TLS12_HELLO)


def test_next_event_api() -> None:
    parser = h.ServerHelloParser()
    parser.receive_data(TLS12_HELLO[:10])
    assert parser.next_event() == h.NeedMoreData()
    assert not parser.done
    assert parser.buffered == 10
    parser.receive_data(TLS12_HELLO[10:])
    assert isinstance(parser.next_event(), h.ServerHello)
    assert parser.next_event() == h.NeedMoreData()
    assert parser.done


# -- alerts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "name"),
    [
        (40, "handshake_failure"),
        (70, "protocol_version"),
        (71, "insufficient_security"),
        (112, "unrecognized_name"),
        (116, "certificate_required"),
        (80, "internal_error"),
        (47, "illegal_parameter"),
        (86, "inappropriate_fallback"),
        (0, "close_notify"),
        (200, "unknown_200"),
    ],
)
def test_fatal_alert(description: int, name: str) -> None:
    event = only(parse_all(enc.build_alert(description)))
    assert event == h.Alert(2, description, name)
    assert isinstance(event, h.Alert)
    assert event.fatal
    assert h.alert_name(description) == name


def test_alert_bytes() -> None:
    assert only(parse_all(bytes.fromhex("15 0301 0002 02 28"))) == h.Alert(
        2, 40, "handshake_failure"
    )


def test_warning_alert_then_server_hello() -> None:
    data = enc.build_alert(112, level=1) + TLS12_HELLO
    events = parse_all(data)
    assert events[0] == h.Alert(1, 112, "unrecognized_name")
    assert isinstance(events[0], h.Alert)
    assert not events[0].fatal
    assert isinstance(events[1], h.ServerHello)
    assert len(events) == 2


def test_two_alerts_in_one_record() -> None:
    data = bytes.fromhex("15 0303 0004 01 70 02 28")
    assert parse_all(data) == [
        h.Alert(1, 112, "unrecognized_name"),
        h.Alert(2, 40, "handshake_failure"),
    ]


# -- SSLv2 -----------------------------------------------------------------------------


def test_sslv2_server_hello_from_hand_built_bytes() -> None:
    certificate = b"0\x82\x01\x00fake-der"
    body = (
        b"\x04"  # SERVER-HELLO
        + b"\x00"  # session-id-hit
        + b"\x01"  # certificate type: X.509
        + b"\x00\x02"  # version
        + len(certificate).to_bytes(2, "big")
        + b"\x00\x06"  # two cipher kinds
        + b"\x00\x10"  # connection id length
        + certificate
        + bytes.fromhex("010080 0700c0")
        + b"\xcc" * 16
    )
    data = bytes([0x80 | (len(body) >> 8), len(body) & 0xFF]) + body
    event = only(parse_all(data, chunks=[1, 2, 3, 20]))
    assert event == h.SSLv2ServerHello(
        cipher_kinds=(0x010080, 0x0700C0),
        certificate=certificate,
        version=2,
        session_id_hit=False,
        certificate_type=1,
        connection_id=b"\xcc" * 16,
    )
    assert data == enc.build_sslv2_server_hello(
        [0x010080, 0x0700C0], certificate, connection_id=b"\xcc" * 16
    )


def test_sslv2_error() -> None:
    assert only(parse_all(bytes.fromhex("8003 00 0001"))) == h.SSLv2Error(1, "no_cipher")


def test_sslv2_malformed() -> None:
    event = only(
        parse_all(bytes.fromhex("8008 04 00 01 0002 0000 0004 0000") + b"\x01\x00\x80\x00")
    )
    assert isinstance(event, h.ProtocolError)
    assert event.reason is HelloFailure.MALFORMED


# -- protocol errors -------------------------------------------------------------------


def server_hello_record(body: bytes, *, declared: int | None = None) -> bytes:
    length = len(body) if declared is None else declared
    message = b"\x02" + length.to_bytes(3, "big") + body
    return b"\x16\x03\x03" + len(message).to_bytes(2, "big") + message


VALID_BODY = TLS12_HELLO[9:]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", HelloFailure.NOT_TLS),
        (b"SSH-2.0-OpenSSH_9.6\r\n", HelloFailure.NOT_TLS),
        (b"\x00\x00\x00\x00", HelloFailure.NOT_TLS),
        (b"\x80\x05\x07abcde", HelloFailure.NOT_TLS),
        (bytes.fromhex("17 0303 0005") + b"hello", HelloFailure.UNEXPECTED_CONTENT_TYPE),
        (bytes.fromhex("14 0303 0001 01"), HelloFailure.UNEXPECTED_CONTENT_TYPE),
        (bytes.fromhex("18 0303 0003 010000"), HelloFailure.UNEXPECTED_CONTENT_TYPE),
        (bytes.fromhex("16 0305 0004 02000000"), HelloFailure.UNSUPPORTED_VERSION),
        (bytes.fromhex("16 fefd 0004 02000000"), HelloFailure.UNSUPPORTED_VERSION),
        (
            bytes.fromhex("16 0303") + (2**14 + 2049).to_bytes(2, "big"),
            HelloFailure.RECORD_OVERFLOW,
        ),
        (bytes.fromhex("16 0303 0004 02ffffff"), HelloFailure.BAD_LENGTH),
        (bytes.fromhex("16 0303 0004 0b000000"), HelloFailure.UNEXPECTED_MESSAGE),
        (bytes.fromhex("16 0303 0004 01000000"), HelloFailure.UNEXPECTED_MESSAGE),
        (bytes.fromhex("16 0303 0000"), HelloFailure.MALFORMED),
        (bytes.fromhex("15 0303 0003 022800"), HelloFailure.MALFORMED),
        (bytes.fromhex("15 0303 0002 0328"), HelloFailure.MALFORMED),
        # The message claims fewer bytes than its fields need.
        (server_hello_record(VALID_BODY[:30]), HelloFailure.MALFORMED),
        # ...or more than they use: trailing garbage after the extensions.
        (server_hello_record(VALID_BODY + b"\x00"), HelloFailure.MALFORMED),
        # A 33-byte session id.
        (
            server_hello_record(b"\x03\x03" + bytes(32) + b"\x21" + bytes(33) + b"\xc0\x2f\x00"),
            HelloFailure.MALFORMED,
        ),
        # The same extension twice.
        (
            server_hello_record(
                b"\x03\x03"
                + bytes(32)
                + b"\x00\xc0\x2f\x00"
                + bytes.fromhex("0008 ff01 0000 ff01 0000")
            ),
            HelloFailure.MALFORMED,
        ),
        # supported_versions with a list instead of one version.
        (
            server_hello_record(
                b"\x03\x03"
                + bytes(32)
                + b"\x00\x13\x01\x00"
                + bytes.fromhex("0007 002b 0003 020304")
            ),
            HelloFailure.MALFORMED,
        ),
        # The declared handshake length outruns the data, and the stream ends.
        (
            server_hello_record(VALID_BODY, declared=len(VALID_BODY) + 10)[: 9 + len(VALID_BODY)],
            HelloFailure.TRUNCATED,
        ),
        (TLS12_HELLO[:20], HelloFailure.TRUNCATED),
    ],
)
def test_protocol_errors(data: bytes, reason: HelloFailure) -> None:
    event = only(parse_all(data))
    assert isinstance(event, h.ProtocolError)
    assert event.reason is reason, event


def test_error_detail_quotes_printable_garbage() -> None:
    event = only(parse_all(b"HTTP/1.1 400 Bad Request\r\n"))
    assert isinstance(event, h.ProtocolError)
    assert "HTTP/1.1 400" in event.detail
    assert event.reason == "not_tls"


def test_connection_closed_before_answer() -> None:
    assert parse_all(b"") == [h.ConnectionClosed()]


def test_handshake_lying_about_length_is_caught_when_the_next_record_arrives() -> None:
    # The message claims 10 more bytes than its record holds; the next record (an alert)
    # cannot complete it, and the parser reports the alert rather than waiting forever.
    data = server_hello_record(VALID_BODY, declared=len(VALID_BODY) + 10) + enc.build_alert(40)
    assert parse_all(data) == [h.Alert(2, 40, "handshake_failure")]


def test_buffer_cap() -> None:
    parser = h.ServerHelloParser(max_buffer=1000)
    events = parser.feed(bytes.fromhex("16 0303 2000") + bytes(600))
    assert events == []
    events = parser.feed(bytes(600))
    event = only(events)
    assert isinstance(event, h.ProtocolError)
    assert event.reason is HelloFailure.BUFFER_LIMIT
    assert parser.buffered == 0
    assert parser.done


def test_buffer_cap_across_records() -> None:
    # A handshake message spread over many records, read in chunks that split records,
    # must not grow the parser past its cap either.
    cap = 4096
    parser = h.ServerHelloParser(max_buffer=cap)
    first = b"\x02" + (cap - 100).to_bytes(3, "big") + bytes(96)
    stream = b"\x16\x03\x03" + len(first).to_bytes(2, "big") + first
    stream += (b"\x16\x03\x03\x01\x00" + b"\x01" * 256) * 20
    events: list[h.Event] = []
    for start in range(0, len(stream), 300):
        events += parser.feed(stream[start : start + 300])
        assert parser.buffered <= cap
    event = only(events)
    assert isinstance(event, h.ProtocolError)
    assert event.reason in (HelloFailure.BUFFER_LIMIT, HelloFailure.MALFORMED)


def test_default_cap_holds_a_maximal_record() -> None:
    parser = h.ServerHelloParser()
    header = b"\x16\x03\x03" + (2**14 + 2048).to_bytes(2, "big")
    assert parser.feed(header + bytes(2**14)) == []
    assert parser.buffered == 5 + 2**14
    assert parser.buffered <= h.MAX_BUFFER


# -- fuzz ------------------------------------------------------------------------------

FINAL_TYPES = (h.ServerHello, h.SSLv2ServerHello, h.SSLv2Error, h.ConnectionClosed, h.ProtocolError)
SEEDS = [
    TLS12_HELLO,
    enc.build_server_hello(
        0x1301, selected_version=0x0304, key_share_group=29, key_share=bytes(32)
    ),
    enc.build_server_hello(
        0x1301, selected_version=0x0304, key_share_group=24, hello_retry_request=True
    ),
    enc.build_alert(112, level=1) + TLS12_HELLO,
    enc.build_sslv2_server_hello([0x010080], b"cert"),
    split_into_records(TLS12_HELLO, [3, 3, 3]),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=40))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(st.binary(max_size=2048), mutated()),
    cuts=st.lists(st.integers(0, 2048), max_size=8),
    max_buffer=st.sampled_from([64, 1024, h.MAX_BUFFER]),
)
def test_fuzz_parser_never_raises(data: bytes, cuts: list[int], max_buffer: int) -> None:
    parser = h.ServerHelloParser(max_buffer=max_buffer)
    events: list[h.Event] = []
    points = [0, *sorted(c for c in cuts if c < len(data)), len(data)]
    for start, end in itertools.pairwise(points):
        events += parser.feed(data[start:end])
        assert parser.buffered <= max_buffer
    events += parser.feed(b"")
    assert parser.done
    assert parser.buffered == 0
    assert events, "EOF always produces a final event"
    assert isinstance(events[-1], (*FINAL_TYPES, h.Alert))
    for event in events[:-1]:
        assert isinstance(event, h.Alert)
        assert not event.fatal
    assert parser.next_event() == h.NeedMoreData()


# --------------------------------------------------------------------------------------
# evaluate()
# --------------------------------------------------------------------------------------


def server_hello(**kwargs: object) -> h.ServerHello:
    event = only(parse_all(enc.build_server_hello(**kwargs)))  # type: ignore[arg-type]
    assert isinstance(event, h.ServerHello)
    return event


TLS12_CH = h.build_client_hello("TLSv1.2", [0xC02F, 0xC013, 0x009C], rng=counting_rng())
TLS13_CH = h.build_client_hello("TLSv1.3", [0x1301, 0x1302, 0xC02F], rng=counting_rng())


def test_evaluate_consistent_tls12() -> None:
    result = h.evaluate(TLS12_CH, server_hello(cipher_suite=0xC013))
    assert result == h.Negotiation("TLSv1.2", 0xC013, suite_offered=True, violations=())
    assert result.ok


@pytest.mark.parametrize("suite", [0xC030, 0x00FF, 0x5600, 0x1301])
def test_evaluate_suite_not_offered(suite: int) -> None:
    result = h.evaluate(TLS12_CH, server_hello(cipher_suite=suite))
    assert not result.suite_offered
    assert not result.ok
    assert any("not offered" in v for v in result.violations)


def test_evaluate_tls13() -> None:
    answer = server_hello(
        cipher_suite=0x1302,
        session_id=TLS13_CH.session_id,
        selected_version=0x0304,
        key_share_group=29,
        key_share=bytes(32),
    )
    result = h.evaluate(TLS13_CH, answer)
    assert result.protocol == "TLSv1.3"
    assert result.ok, result.violations


def test_evaluate_tls12_answer_to_tls13_hello_is_tls12() -> None:
    result = h.evaluate(TLS13_CH, server_hello(cipher_suite=0xC02F))
    assert result.protocol == "TLSv1.2"
    assert result.ok, result.violations
    # ...and a TLS 1.3 suite in such an answer is a violation, not TLS 1.3.
    bad = h.evaluate(TLS13_CH, server_hello(cipher_suite=0x1301))
    assert bad.protocol == "TLSv1.2"
    assert bad.suite_offered
    assert not bad.ok


def test_evaluate_hello_retry_request() -> None:
    hrr = server_hello(
        cipher_suite=0x1301,
        session_id=TLS13_CH.session_id,
        selected_version=0x0304,
        key_share_group=24,
        hello_retry_request=True,
    )
    assert h.evaluate(TLS13_CH, hrr).ok
    # An HRR for the group we already sent a share for is a violation.
    same = server_hello(
        cipher_suite=0x1301,
        session_id=TLS13_CH.session_id,
        selected_version=0x0304,
        key_share_group=29,
        hello_retry_request=True,
    )
    assert not h.evaluate(TLS13_CH, same).ok


@pytest.mark.parametrize(
    ("client", "kwargs", "needle"),
    [
        (TLS12_CH, {"cipher_suite": 0xC02F, "selected_version": 0x0304}, "supported_versions"),
        (
            h.build_client_hello("TLSv1.0", [0xC013]),
            {"cipher_suite": 0xC013, "version": 0x0303},
            "above",
        ),
        (TLS12_CH, {"cipher_suite": 0xC02F, "compression_method": 1}, "compression"),
        (TLS12_CH, {"cipher_suite": 0xC02F, "version": 0x0305}, "above"),
        (
            TLS13_CH,
            {
                "cipher_suite": 0x1301,
                "session_id": TLS13_CH.session_id,
                "selected_version": 0x0304,
                "key_share_group": 24,
                "key_share": bytes(97),
            },
            "not sent",
        ),
        (
            TLS13_CH,
            {
                "cipher_suite": 0x1301,
                "session_id": TLS13_CH.session_id,
                "selected_version": 0x0304,
                "key_share_group": 256,
                "key_share": bytes(256),
            },
            "not offered",
        ),
        (
            TLS13_CH,
            {
                "cipher_suite": 0x1301,
                "selected_version": 0x0304,
                "key_share_group": 29,
                "key_share": bytes(32),
            },
            "session_id",
        ),
        (TLS12_CH, {"cipher_suite": 0xC02F, "hello_retry_request": True}, "HelloRetryRequest"),
    ],
)
def test_evaluate_violations(client: h.ClientHello, kwargs: dict[str, object], needle: str) -> None:
    result = h.evaluate(client, server_hello(**kwargs))
    assert not result.ok
    assert any(needle in v for v in result.violations), result.violations


def test_evaluate_sslv2() -> None:
    client = h.build_client_hello("SSLv2", [0x010080, 0x0700C0])
    good = h.SSLv2ServerHello(cipher_kinds=(0x0700C0,), certificate=b"c")
    assert h.evaluate(client, good) == h.Negotiation("SSLv2", None, True, ())
    bad = h.SSLv2ServerHello(cipher_kinds=(0x0700C0, 0x030080), certificate=b"c")
    assert not h.evaluate(client, bad).suite_offered


def test_protocol_names() -> None:
    assert h.protocol_name(0x0303) == "TLSv1.2"
    assert h.protocol_name(0x0002) == "SSLv2"
    assert h.protocol_name(0x7F1C) is None


# --------------------------------------------------------------------------------------
# Real servers: openssl s_server on loopback
# --------------------------------------------------------------------------------------

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def _require_openssl() -> None:
    # A missing binary is a failure that names the package, never a silent skip.
    if not Path(OPENSSL).exists():
        raise RuntimeError(
            f"{OPENSSL} not found: install the Debian package 'openssl' (make system-deps)"
        )


@pytest.fixture(scope="module")
def rsa_cert_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    leaf = ca.issue_cert("localhost", key_type=trustme.KeyType.RSA)
    path = tmp_path_factory.mktemp("s_server") / "server.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


StartServer = Callable[..., int]


@pytest.fixture
def s_server(rsa_cert_file: Path, tmp_path: Path) -> Iterator[StartServer]:
    """Start ``openssl s_server`` with extra args on an ephemeral port; returns the port."""
    _require_openssl()
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> int:
        log = tmp_path / f"s_server{len(procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [OPENSSL, "s_server", "-accept", "127.0.0.1:0", "-cert", str(rsa_cert_file), *args],
                stdin=subprocess.PIPE,  # kept open: s_server stops at EOF on stdin
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
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


def exchange(port: int, client_hello: h.ClientHello) -> list[h.Event]:
    parser = h.ServerHelloParser()
    events: list[h.Event] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(client_hello.data)
        while not parser.done:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            events += parser.feed(data)
    return events


def test_live_tls12_ecdhe_rsa_aes128_gcm(s_server: StartServer) -> None:
    port = s_server("-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    ch = h.build_client_hello("TLSv1.2", [0xC030, 0x009C, 0xC02F, 0xC013], server_name="localhost")
    event = only(exchange(port, ch))
    assert isinstance(event, h.ServerHello)
    assert event.version == 0x0303
    assert event.cipher_suite == 0xC02F
    assert event.selected_version is None
    assert h.evaluate(ch, event) == h.Negotiation("TLSv1.2", 0xC02F, True, ())


def test_live_no_shared_suite_is_handshake_failure(s_server: StartServer) -> None:
    port = s_server("-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    ch = h.build_client_hello("TLSv1.2", [0x009C, 0xC030, 0xC013], server_name="localhost")
    assert exchange(port, ch) == [h.Alert(2, 40, "handshake_failure")]


def test_live_version_not_enabled_is_protocol_version(s_server: StartServer) -> None:
    port = s_server("-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    ch = h.build_client_hello("TLSv1.0", [0xC013, 0xC02F], server_name="localhost")
    assert exchange(port, ch) == [h.Alert(2, 70, "protocol_version")]


def test_live_tls13(s_server: StartServer) -> None:
    port = s_server("-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384", "-groups", "X25519:P-256")
    ch = h.build_client_hello("TLSv1.3", [0x1301, 0x1302, 0x1303], server_name="localhost")
    event = only(exchange(port, ch))
    assert isinstance(event, h.ServerHello)
    assert event.cipher_suite == 0x1302
    assert event.selected_version == 0x0304
    assert event.key_share_group == NamedGroup.X25519
    assert not event.is_hello_retry_request
    assert h.evaluate(ch, event) == h.Negotiation("TLSv1.3", 0x1302, True, ())


@pytest.mark.parametrize(
    ("group", "openssl_name"),
    [
        (NamedGroup.SECP256R1, "P-256"),
        (NamedGroup.SECP384R1, "P-384"),
        (NamedGroup.SECP521R1, "P-521"),
        (NamedGroup.X448, "X448"),
    ],
)
def test_live_tls13_key_shares_accepted(
    s_server: StartServer, group: NamedGroup, openssl_name: str
) -> None:
    port = s_server("-tls1_3", "-groups", openssl_name)
    ch = h.build_client_hello("TLSv1.3", [0x1301], server_name="localhost", groups=[group])
    event = only(exchange(port, ch))
    assert isinstance(event, h.ServerHello)
    assert not event.is_hello_retry_request  # the server used our share
    assert event.key_share_group == group
    assert h.evaluate(ch, event).ok


@pytest.mark.parametrize(
    ("groups", "server_groups", "expected"),
    [
        ([NamedGroup.X25519, NamedGroup.SECP384R1], "P-384", NamedGroup.SECP384R1),
        ([NamedGroup.FFDHE2048], "ffdhe2048", NamedGroup.FFDHE2048),
    ],
)
def test_live_tls13_hello_retry_request(
    s_server: StartServer, groups: list[int], server_groups: str, expected: int
) -> None:
    port = s_server("-tls1_3", "-groups", server_groups)
    ch = h.build_client_hello("TLSv1.3", [0x1301], server_name="localhost", groups=groups)
    event = only(exchange(port, ch))
    assert isinstance(event, h.ServerHello)
    assert event.is_hello_retry_request
    assert event.key_share_group == expected
    assert h.evaluate(ch, event).ok


@pytest.mark.parametrize("protocol", ["SSLv2", "SSLv3", "TLSv1.3"])
def test_live_unsupported_protocols_get_a_final_answer(
    s_server: StartServer, protocol: str
) -> None:
    port = s_server("-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    codes = {"SSLv2": [0x010080, 0x0700C0], "SSLv3": [0x002F, 0xC013], "TLSv1.3": [0x1301]}
    events = exchange(port, h.build_client_hello(protocol, codes[protocol]))
    final = events[-1]
    assert isinstance(final, (h.Alert, h.ConnectionClosed)), events
