"""The certificate of a server no modern TLS library will finish a handshake with.

When the full handshake (:mod:`certscope.tls.handshake`) fails, the chain is fetched with the
hello codec instead: up to TLS 1.2 the Certificate message travels in clear right after the
ServerHello, so offering every suite and version the codec knows (NULL, RC4, 3DES, export,
anonymous; TLS 1.2, TLS 1.0, SSLv3, then SSLv2) and reading the flight
(:class:`~certscope.tls.flight.FlightParser`) yields the certificate of an endpoint that only
speaks legacy suites, or one whose chain exceeds OpenSSL's 100 KiB certificate-list limit.
No key exchange is ever made; each connection is closed once the flight is read.

The caller bounds the time (the probe's deadline); ``max_bytes`` bounds memory per connection.
Failures are data: :func:`capture_chain` returns None when no hello yielded a certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from . import hello as h
from . import starttls, suites
from .enumerate import candidate_bundles
from .flight import Flight, read_flight
from .options import TLSOptions

__all__ = ["MAX_ATTEMPTS", "Capture", "capture_chain"]

#: Hellos tried before giving up; the likeliest suites of each version come first.
MAX_ATTEMPTS: Final = 8

_ALERT_PROTOCOL_VERSION: Final = 70


@dataclass(frozen=True)
class Capture:
    """A chain read from a server's first flight, and the suite the server chose for it."""

    chain: tuple[bytes, ...]
    version: str
    cipher: str
    ocsp_response: bytes | None = None


def _offers() -> Iterator[tuple[str, list[int]]]:
    for protocol in ("TLSv1.2", "TLSv1.0", "SSLv3"):
        for bundle in candidate_bundles(protocol):
            yield protocol, bundle
    yield "SSLv2", [s.code for s in suites.for_protocol("SSLv2")]


async def capture_chain(
    host: str, port: int, server_name: str | None, opts: TLSOptions, *, max_bytes: int
) -> Capture | None:
    """Read the chain ``host:port`` presents from its first flight; None if none is had."""
    skip: set[str] = set()
    attempts = 0
    for protocol, offer in _offers():
        if protocol in skip:
            continue
        if attempts >= MAX_ATTEMPTS:
            break
        attempts += 1
        ch = h.build_client_hello(protocol, offer, server_name=server_name)
        try:
            event = await _exchange(host, port, server_name, opts, ch, max_bytes)
        except (OSError, starttls.StartTLSError, starttls.StartTLSRefused):
            return None  # the same would happen on every further connection
        found = _certificate(protocol, event)
        if found is not None:
            return found
        if isinstance(event, h.Alert) and event.description == _ALERT_PROTOCOL_VERSION:
            skip.add(protocol)
    return None


def _certificate(protocol: str, event: object) -> Capture | None:
    if isinstance(event, h.SSLv2ServerHello) and event.certificate:
        return Capture((event.certificate,), "SSLv2", "")
    if not isinstance(event, Flight) or not event.certificates:
        return None
    answer = event.server_hello
    version = h.protocol_name(answer.negotiated_version) or protocol
    suite = suites.by_code(answer.cipher_suite)
    cipher = suite.name if suite is not None else f"{answer.cipher_suite:#06x}"
    return Capture(event.certificates, version, cipher, event.ocsp_response)


async def _exchange(
    host: str,
    port: int,
    server_name: str | None,
    opts: TLSOptions,
    ch: h.ClientHello,
    max_bytes: int,
) -> object:
    reader, writer = await asyncio.open_connection(host, port, limit=starttls._MAX_LINE)
    try:
        if opts.starttls:
            await starttls.PREAMBLES[opts.starttls](reader, writer, server_name or host)
        writer.write(ch.data)
        await writer.drain()
        event, _ = await read_flight(reader.read, max_bytes=max_bytes)
        return event
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 0.5)
