"""The SSH transport codec and key-exchange arithmetic, without sockets."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certscope.ssh import kex, wire


def server_reply(host_key: bytes, value: bytes, signature: bytes) -> bytes:
    """A KEX_ECDH_REPLY payload (test-only encoder: certscope never plays the server)."""
    return bytes([31]) + wire.string(host_key) + wire.string(value) + wire.string(signature)


def feed(data: bytes, chunk: int = 0) -> list[wire.Event]:
    p = wire.ServerParser()
    if chunk:
        for i in range(0, len(data), chunk):
            p.receive_data(data[i : i + chunk])
    else:
        p.receive_data(data)
    events: list[wire.Event] = []
    while not isinstance(ev := p.next_event(), wire.NeedMoreData):
        events.append(ev)
    return events


KEXINIT = wire.build_kexinit(
    ["curve25519-sha256", "diffie-hellman-group14-sha256"],
    ["ssh-ed25519", "rsa-sha2-512"],
    ["aes256-gcm@openssh.com"],
    ["hmac-sha2-256-etm@openssh.com"],
    ("none", "zlib@openssh.com"),
    cookie=b"\x01" * 16,
)
STREAM = b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n" + wire.build_packet(KEXINIT)


@pytest.mark.parametrize("chunk", [0, 1, 7])
def test_identification_and_kexinit_whatever_the_chunking(chunk: int) -> None:
    events = feed(STREAM, chunk)
    assert len(events) == 2
    ident, ki = events
    assert isinstance(ident, wire.Identification)
    assert (ident.proto, ident.software, ident.comments) == (
        "2.0",
        "OpenSSH_9.6p1",
        "Ubuntu-3ubuntu13",
    )
    assert ident.line == b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13"  # V_S: without CR LF
    assert isinstance(ki, wire.KexInit)
    assert ki.kex == ("curve25519-sha256", "diffie-hellman-group14-sha256")
    assert ki.host_key == ("ssh-ed25519", "rsa-sha2-512")
    assert ki.ciphers_s2c == ("aes256-gcm@openssh.com",)
    assert ki.compression_c2s == ("none", "zlib@openssh.com")
    assert ki.payload == KEXINIT  # I_S for the exchange hash is the exact payload
    assert ki.cookie == b"\x01" * 16


def test_lines_before_the_identification_are_skipped() -> None:
    events = feed(b"Welcome\r\nplease be nice\n" + STREAM)
    assert isinstance(events[0], wire.Identification)


def test_too_many_preamble_lines_is_not_ssh() -> None:
    events = feed(b"x\n" * (wire.MAX_PREAMBLE_LINES + 1))
    assert events == [
        wire.ProtocolError(wire.SSHWireFailure.NOT_SSH, "no identification in 32 lines")
    ]


def test_http_answer_is_not_ssh() -> None:
    (ev,) = feed(b"HTTP/1.1 400 Bad Request" + b"x" * 300)
    assert isinstance(ev, wire.ProtocolError)
    assert ev.reason is wire.SSHWireFailure.NOT_SSH


def test_identification_longer_than_255_bytes() -> None:
    (ev,) = feed(b"SSH-2.0-" + b"A" * 300 + b"\r\n")
    assert isinstance(ev, wire.ProtocolError)
    assert ev.reason is wire.SSHWireFailure.IDENTIFICATION_TOO_LONG


def test_identification_of_exactly_255_bytes_is_accepted() -> None:
    line = b"SSH-2.0-" + b"A" * (253 - 8)
    (ev,) = feed(line + b"\r\n")
    assert isinstance(ev, wire.Identification)
    assert len(ev.line) + 2 == 255


def test_oversized_packet_is_refused_before_it_is_buffered() -> None:
    data = b"SSH-2.0-x\r\n" + struct.pack(">I", wire.MAX_PACKET + 1)
    events = feed(data)
    assert isinstance(events[-1], wire.ProtocolError)
    assert events[-1].reason is wire.SSHWireFailure.PACKET_TOO_LARGE


def test_packet_of_exactly_the_limit_is_waited_for() -> None:
    data = b"SSH-2.0-x\r\n" + struct.pack(">I", wire.MAX_PACKET)
    assert len(feed(data)) == 1  # the identification only: the packet may still arrive


def test_padding_that_eats_the_payload() -> None:
    data = b"SSH-2.0-x\r\n" + struct.pack(">IB", 8, 7) + b"\x00" * 7
    events = feed(data)
    assert isinstance(events[-1], wire.ProtocolError)
    assert events[-1].reason is wire.SSHWireFailure.BAD_PACKET


def test_truncated_kexinit() -> None:
    events = feed(b"SSH-2.0-x\r\n" + wire.build_packet(KEXINIT[:40]))
    assert isinstance(events[-1], wire.ProtocolError)
    assert events[-1].reason is wire.SSHWireFailure.MALFORMED_KEXINIT


def test_name_list_with_empty_name_is_malformed() -> None:
    bad = bytes([20]) + b"\0" * 16 + wire.string(b"a,,b") + wire.name_list([]) * 9 + b"\0" * 5
    events = feed(b"SSH-2.0-x\r\n" + wire.build_packet(bad))
    assert isinstance(events[-1], wire.ProtocolError)


def test_ignore_and_debug_are_skipped_and_disconnect_is_final() -> None:
    data = (
        b"SSH-2.0-x\r\n"
        + wire.build_packet(bytes([2]) + wire.string(b"noise"))
        + wire.build_packet(bytes([4, 0]) + wire.string(b"dbg") + wire.string(b""))
        + wire.build_packet(wire.build_disconnect(3, "no matching key exchange"))
        + wire.build_packet(KEXINIT)  # after a final event: discarded
    )
    events = feed(data)
    assert events[1:] == [wire.Disconnect(3, "no matching key exchange")]


def test_kex_reply() -> None:
    data = b"SSH-2.0-x\r\n" + wire.build_packet(server_reply(b"K" * 51, b"Q" * 32, b"S" * 83))
    assert feed(data)[1] == wire.KexReply(b"K" * 51, b"Q" * 32, b"S" * 83)


def test_malformed_kex_reply() -> None:
    data = b"SSH-2.0-x\r\n" + wire.build_packet(bytes([31]) + struct.pack(">I", 1000) + b"x")
    events = feed(data)
    assert isinstance(events[-1], wire.ProtocolError)
    assert events[-1].reason is wire.SSHWireFailure.MALFORMED_KEX_REPLY


def test_eof_before_anything() -> None:
    p = wire.ServerParser()
    p.receive_eof()
    assert p.next_event() == wire.ConnectionClosed()


def test_packet_layout() -> None:
    pkt = wire.build_packet(b"\x15", padding=b"\0" * 10)
    assert pkt == struct.pack(">IB", 12, 10) + b"\x15" + b"\0" * 10
    for n in range(40):
        assert len(wire.build_packet(b"x" * n)) % 8 == 0
        assert wire.build_packet(b"x" * n)[4] >= 4
    with pytest.raises(ValueError, match="padding must be"):
        wire.build_packet(b"x", padding=b"")


@pytest.mark.parametrize(
    ("n", "encoded"),
    [  # RFC 4251 section 5 examples
        (0, "00000000"),
        (0x9A378F9B2E332A7, "0000000809a378f9b2e332a7"),
        (0x80, "000000020080"),
        (-0x1234, "00000002edcc"),
        (-0xDEADBEEF, "00000005ff21524111"),
    ],
)
def test_mpint_rfc4251_examples(n: int, encoded: str) -> None:
    assert wire.mpint(n).hex() == encoded


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096), st.integers(min_value=1, max_value=64))
def test_random_bytes_never_raise_and_stay_bounded(data: bytes, chunk: int) -> None:
    p = wire.ServerParser()
    for i in range(0, len(data), chunk):
        p.receive_data(data[i : i + chunk])
        assert len(p._buf) <= wire.MAX_PACKET + 4 + wire.MAX_IDENTIFICATION_LINE
    p.receive_eof()
    events = []
    while not isinstance(ev := p.next_event(), wire.NeedMoreData):
        events.append(ev)
    assert events  # at least ConnectionClosed or an error


# --- key exchange ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "head", "tail"),
    [  # first and last 64 bits of the primes as printed in RFC 2409 and RFC 3526
        (1, "FFFFFFFFFFFFFFFFC90FDAA22168C234", "FFFFFFFFFFFFFFFF"),
        (14, "FFFFFFFFFFFFFFFFC90FDAA22168C234", "15728E5A8AACAA68FFFFFFFFFFFFFFFF"),
        (16, "FFFFFFFFFFFFFFFFC90FDAA22168C234", "4DF435C934063199FFFFFFFFFFFFFFFF"),
        (18, "FFFFFFFFFFFFFFFFC90FDAA22168C234", "60C980DD98EDD3DFFFFFFFFFFFFFFFFF"),
    ],
)
def test_modp_primes_match_the_rfcs(group: int, head: str, tail: str) -> None:
    text = f"{kex.modp_prime(group):X}"
    assert text.startswith(head)
    assert text.endswith(tail)
    assert len(text) * 4 == {1: 1024, 14: 2048, 16: 4096, 18: 8192}[group]


def test_group1_prime_is_oakley_group_2() -> None:
    # RFC 2409 6.2 prints the full 1024-bit prime; its middle proves the pi digits.
    assert f"{kex.modp_prime(1):X}".endswith(
        "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF"
    )


@pytest.mark.parametrize("method", sorted(kex.METHODS))
def test_both_sides_agree_on_the_shared_secret(method: str) -> None:
    a, b = kex.start(method), kex.start(method)
    # What the peer puts on the wire: the mpint or string body of its value.
    assert a.shared_secret(b.client_field()[4:]) == b.shared_secret(a.client_field()[4:])


def test_invalid_server_values_are_refused() -> None:
    x = kex.start("curve25519-sha256")
    with pytest.raises(ValueError, match="32 bytes"):
        x.shared_secret(b"\x01" * 31)
    with pytest.raises(ValueError, match="shared key"):  # cryptography refuses it itself
        x.shared_secret(b"\x00" * 32)  # a low-order point gives an all-zero secret
    d = kex.start("diffie-hellman-group14-sha256")
    with pytest.raises(ValueError, match="out of range"):
        d.shared_secret(b"\x01")
    e = kex.start("ecdh-sha2-nistp256")
    with pytest.raises(ValueError, match="Invalid EC key"):
        e.shared_secret(b"\x04" + b"\x00" * 64)


def test_binary_before_the_identification_is_not_ssh_at_once() -> None:
    (ev,) = feed(b"\x16\x03\x01\x02\x00")  # a TLS record: no need to wait for a line
    assert ev == wire.ProtocolError(
        wire.SSHWireFailure.NOT_SSH, "the server did not send an SSH identification"
    )


def test_packet_in_the_same_chunk_as_the_identification_is_not_mistaken_for_binary() -> None:
    assert len(feed(STREAM)) == 2
