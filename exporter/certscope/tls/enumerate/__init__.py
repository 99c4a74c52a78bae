"""Protocol, cipher-suite and group enumeration on top of the hello codec.

:func:`enumerate_posture` finds what one endpoint accepts by sending crafted ClientHellos
(:func:`certscope.tls.hello.build_client_hello`) on raw asyncio streams and reading only the
server's first answer (:class:`~certscope.tls.hello.ServerHelloParser`). No handshake is ever
finished: each connection is closed as soon as the ServerHello (or an alert) arrives, or, for
key-exchange groups and DHE picks, once the rest of the server's first flight (up to
ServerHelloDone) is in, so a scan costs one round trip per connection and no key exchange
beyond what the server's first flight commits to. The certificate comes from the core probe, not from here.

One module per check, on a small shared base (sslyze's plugins on ``plugin_base``):

==================  =====================================================================
:mod:`.base`        the scan's state and reasons, shared answer checks
:mod:`.connection`  :class:`~.connection.Endpoint`: every connection of one scan
:mod:`.exchange`    one hello and its answer on a bare socket, on loop callbacks
:mod:`.poller`      the scan's sockets in one epoll instance the loop watches
:mod:`.answer`      the answer readers: bytes in, the final answer (or flight) out
:mod:`.protocols`   which protocols, each running its own checks concurrently
:mod:`.suites`      cipher suites by pick and remove
:mod:`.order`       whether the server enforces its order, and the order
:mod:`.groups`      key-exchange groups (TLS 1.3, or the ECDHE curves of TLS 1.0-1.2)
:mod:`.dh`          the finite-field groups behind DHE suites, and what they are worth
:mod:`.scan`        the checks in order (:data:`~.scan.CHECKS`), and the result
==================  =====================================================================

How a scan proceeds::

    per protocol, concurrently ─┬─ SSLv2: one CLIENT-HELLO; the SERVER-HELLO lists the kinds
                                └─ SSLv3 … TLS 1.3: pick and remove
                                     candidates = every IANA suite for the protocol, most
                                     commonly implemented first, cut into bundles of ≤128;
                                     offer a bundle, record the server's pick, remove it,
                                     offer the rest again, until the server refuses
                                   ─ server order: offer the accepted suites reversed; a
                                     server that still picks its favourite enforces its order
                                   ─ merge: when it does and several bundles found suites,
                                     offer the bundles' heads until one bundle is left, or
                                     binary-insert a few strays into the main bundle's order
    then groups ─── TLS 1.3: pick and remove over supported_groups (key_share or
                    HelloRetryRequest names the group); without TLS 1.3, one TLS 1.2 (or
                    1.1, 1.0) hello per elliptic curve offering only ECDHE suites, with the
                    certificate's curve beside it (an ECDSA server needs it); the flight's
                    ServerKeyExchange names the curve chosen
    then DHE ────── per accepted DHE suite (TLS 1.2 and older), the flight's
                    ServerKeyExchange carries the server's finite-field group, named or
                    checked by :mod:`.dh`; pick and remove already read it when the
                    server picked the suite, else one hello offers the suite alone

The first hello of a protocol goes out alone: an answer that rules the protocol out
(``protocol_version`` alert, or a ServerHello at a lower version) spares the other bundles.

Failures are data. Every problem ends only the loop it happened in, is written to
``notes`` and marks the result incomplete (``complete=False``, ``error`` = the first
problem's :class:`ScanFailure` or :class:`~certscope.tls.hello.HelloFailure` value); what was
found before it is kept. A problem that would repeat on every connection (DNS, a closed
port, a server that never answers, STARTTLS refused) stops the whole scan at once.

Cost: a scan is dozens of connections, so each is kept cheap. Without STARTTLS a
connection is a bare non-blocking socket driven by loop callbacks (:mod:`.exchange`): the
hello goes out as soon as ``connect_ex`` returns, one registration in the scan's own epoll
instance (:mod:`.poller`) reads the answer, one timer bounds it, one future hands it to the
waiting check.

Robustness: connections to the endpoint share a semaphore (``max_connections``, or the
caller's ``limiter`` to share it across scans of one host); each connection has ``timeout``
seconds from connect to answer and one retry; a refused connect or a reset after earlier
successes looks like rate limiting and pauses every worker with exponential backoff; the
whole scan has a ``deadline``. The parser bounds memory per connection, and a server that
streams bytes without ever answering is cut off after :data:`MAX_ANSWER_BYTES` (or
:data:`MAX_WARNINGS` warning alerts). A server that resets every connection before saying
anything is taken for a filter, not for one refusing every protocol: the scan stops with
``connection_reset`` and leaves the protocols undecided.

Not determined: order among suites of different bundles when the server does not enforce
one (there is none to find). Where a server prefers its certificate's curve over a probed one
in TLS 1.2, the probed curve stays undecided (not reported).
"""

from __future__ import annotations

from ...errors import ScanFailure
from .answer import MAX_ANSWER_BYTES, MAX_WARNINGS
from .base import CANDIDATE_GROUPS, group_name
from .connection import BACKOFF_MAX
from .scan import DEFAULT_DEADLINE, enumerate_posture
from .suites import candidate_bundles

__all__ = [
    "BACKOFF_MAX",
    "CANDIDATE_GROUPS",
    "DEFAULT_DEADLINE",
    "MAX_ANSWER_BYTES",
    "MAX_WARNINGS",
    "ScanFailure",
    "candidate_bundles",
    "enumerate_posture",
    "group_name",
]
