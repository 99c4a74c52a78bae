"""How a probe's connection failed: a stable reason, a message, and the alert if any.

A leaf module so that the connection (:mod:`.channel`) and the handshake (:mod:`.handshake`)
raise and return the same type without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ProbeFailure


@dataclass(frozen=True)
class Failure:
    reason: ProbeFailure
    message: str
    alert: str = ""


class Abort(Exception):
    """Ends a probe's connection early with ``failure``; the handshake turns it into an
    :class:`~certscope.tls.handshake.Outcome` that keeps whatever was seen."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure
