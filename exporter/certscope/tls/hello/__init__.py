"""TLS/SSL hello codec: ClientHello bytes out, ServerHello events in. No I/O.

Modelled on h11: the caller owns the socket; this package only turns parameters into bytes
(:func:`build_client_hello`) and bytes into typed events (:class:`ServerHelloParser`).
It exists for posture scanning, where a real TLS library is the wrong tool: we want to
offer exactly the suites, versions and groups under test (including ones no modern library
will send) and read the server's choice from its first flight, without finishing the
handshake.

One module per concern, as h11 splits ``_events``, ``_readers`` and ``_writers``:

====================  ===================================================================
:mod:`.wire`          constants, names and byte helpers shared by the others
:mod:`.client`        the ClientHello encoder (:func:`build_client_hello`)
:mod:`.events`        what the server's answer can be (frozen dataclasses)
:mod:`.parser`        :class:`ServerHelloParser`: bytes in, events out
:mod:`.evaluation`    :func:`evaluate`: a ServerHello compared with the hello behind it
====================  ===================================================================

The parser's events are drawn in :mod:`.events`. Every event except ``NeedMoreData`` and a
warning ``Alert`` is final: after it the parser discards input, so memory stays bounded
however much the peer sends.

:func:`evaluate` compares a ServerHello with the ClientHello that provoked it: whether the
chosen suite was one we offered, and which protocol was really negotiated.

Server-side encoders (a ServerHello, an alert, an SSLv2 SERVER-HELLO) and a ClientHello
decoder serve only the tests that play a server; they live with the tests
(``tests/helpers/tls_encoders.py``).
"""

from .client import (
    DEFAULT_GROUPS,
    MAX_SUITES,
    SIGNATURE_ALGORITHMS,
    ClientHello,
    HelloFlags,
    build_client_hello,
)
from .evaluation import Negotiation, evaluate
from .events import (
    Alert,
    ConnectionClosed,
    Event,
    HelloFailure,
    NeedMoreData,
    ProtocolError,
    ServerHello,
    SSLv2Error,
    SSLv2ServerHello,
)
from .parser import MAX_BUFFER, ServerHelloParser
from .wire import ALERT_NAMES, VERSIONS, ExtensionType, NamedGroup, alert_name, protocol_name

__all__ = [
    "ALERT_NAMES",
    "DEFAULT_GROUPS",
    "MAX_BUFFER",
    "MAX_SUITES",
    "SIGNATURE_ALGORITHMS",
    "VERSIONS",
    "Alert",
    "ClientHello",
    "ConnectionClosed",
    "Event",
    "ExtensionType",
    "HelloFailure",
    "HelloFlags",
    "NamedGroup",
    "NeedMoreData",
    "Negotiation",
    "ProtocolError",
    "SSLv2Error",
    "SSLv2ServerHello",
    "ServerHello",
    "ServerHelloParser",
    "alert_name",
    "build_client_hello",
    "evaluate",
    "protocol_name",
]
