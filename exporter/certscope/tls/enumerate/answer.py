"""Reading the server's answer to one hello: bytes in, the final answer out. No I/O.

A connection feeds what it receives into one reader (``b""`` at end of stream) until
:meth:`~AnswerReader.feed` returns something other than None. Both ways of driving a
connection share the readers: the bare socket on loop callbacks (:mod:`.exchange`) and the
STARTTLS streams (:mod:`.connection`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from .. import hello as h
from ..flight import Flight, FlightParser
from .base import Answer

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_FLIGHT_BYTES",
    "MAX_WARNINGS",
    "AnswerReader",
    "FlightReader",
    "Reader",
    "Reading",
    "reader_for",
]

#: Bytes read on one connection without a final answer before giving up on it. A first
#: flight is well under 1 KiB; the parser already caps what it holds at once, this caps a
#: stream of warnings or padding that never reaches a ServerHello.
MAX_ANSWER_BYTES: Final = 2 * h.MAX_BUFFER

#: Bytes of a first flight (chain included) read to find its ServerKeyExchange.
MAX_FLIGHT_BYTES: Final = 1024 * 1024

#: Warning alerts tolerated before the ServerHello (servers send one, unrecognized_name, if
#: any); a stream of them is cut off here, well before the byte limit.
MAX_WARNINGS: Final = 16

#: What to read: the answer alone (False), the whole first flight (True), or the flight
#: only when the ServerHello passes the test.
Reading = bool | Callable[[h.ServerHello], bool]


class AnswerReader:
    """The final answer: a ServerHello, a fatal alert, the end of the stream or an error.

    With ``then_flight``, a ServerHello that passes it is not final: the rest of the first
    flight is read on the same connection, :attr:`hello` is set meanwhile, and a complete
    :class:`~certscope.tls.flight.Flight` comes back (the ServerHello alone when the flight
    cannot be had). The ServerHello answered the question asked, so the caller bounds that
    second read with a shorter limit of its own, and takes :attr:`hello` when it runs out.
    """

    __slots__ = ("_chunks", "_flight", "_parser", "_then_flight", "_warnings", "hello", "received")

    #: Every byte received means the server spoke (:attr:`Endpoint.spoke`), final or not.
    spoke_on_data: Final = True

    def __init__(self, then_flight: Callable[[h.ServerHello], bool] | None = None) -> None:
        self._parser = h.ServerHelloParser()
        self._then_flight = then_flight
        self._chunks: list[bytes] = []  # kept only when the flight may be wanted
        self._flight: FlightParser | None = None
        self._warnings = 0
        self.received = 0
        self.hello: h.ServerHello | None = None

    def feed(self, data: bytes) -> Answer | Flight | None:
        """The final answer once ``data`` (``b""``: end of stream) completes it, else None."""
        if self._flight is not None:
            return self._rest(data)
        self.received += len(data)
        if data and self._then_flight is not None:
            self._chunks.append(data)
        for event in self._parser.feed(data):
            if isinstance(event, h.Alert) and not event.fatal:
                # Warnings (unrecognized_name) may precede the ServerHello; a stream of
                # them is a server that will never answer.
                self._warnings += 1
                if self._warnings > MAX_WARNINGS:
                    return h.ProtocolError(
                        h.HelloFailure.BUFFER_LIMIT,
                        f"more than {MAX_WARNINGS} warning alerts without a ServerHello",
                    )
                continue
            if isinstance(event, h.NeedMoreData):
                continue
            wanted = self._then_flight
            if wanted is not None and isinstance(event, h.ServerHello) and wanted(event):
                # The flight parser starts again from the first byte: it needs the
                # ServerHello too, and re-reading a few hundred bytes costs less than a
                # connection of its own.
                self.hello = event
                self._flight = FlightParser(max_bytes=MAX_FLIGHT_BYTES)
                return self._rest(b"".join(self._chunks))
            return event
        if not data:
            return h.ConnectionClosed()
        if self.received > MAX_ANSWER_BYTES:
            return h.ProtocolError(
                h.HelloFailure.BUFFER_LIMIT,
                f"{self.received} bytes without a ServerHello or a fatal alert",
            )
        return None

    def reset(self) -> Answer | Flight | None:
        """The connection was reset. Before the server said anything that is a refusal (or
        rate limiting) the caller decides about: re-raised. After, it ends the stream."""
        if self._flight is None and not self.received:
            raise ConnectionResetError
        return self.feed(b"")

    def _rest(self, data: bytes) -> Flight | h.ServerHello | None:
        assert self._flight is not None
        assert self.hello is not None
        for event in self._flight.feed(data):
            return event if isinstance(event, Flight) else self.hello
        return None if data else self.hello


class FlightReader:
    """The server's whole first flight (TLS 1.2 and older: the Certificate and the
    ServerKeyExchange follow the ServerHello in clear), as a
    :class:`~certscope.tls.flight.Flight`, or the answer that came instead."""

    __slots__ = ("_parser", "received")

    #: The server counts as having spoken only once the flight is in.
    spoke_on_data: Final = False
    hello: Final = None

    def __init__(self) -> None:
        self._parser = FlightParser(max_bytes=MAX_FLIGHT_BYTES)
        self.received = 0

    def feed(self, data: bytes) -> Answer | Flight | None:
        self.received += len(data)
        for event in self._parser.feed(data):
            return event
        return None if data else h.ConnectionClosed()

    def reset(self) -> Answer | Flight | None:
        # A reset ends the stream like EOF would: keep what arrived.
        return self.feed(b"")


Reader = AnswerReader | FlightReader


def reader_for(reading: Reading) -> Reader:
    if reading is True:
        return FlightReader()
    return AnswerReader(reading or None)
