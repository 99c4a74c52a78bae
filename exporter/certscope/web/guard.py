"""Request hygiene for the exporter's own endpoint: CSRF, slow clients, malformed requests.

* A browser on another site can send a "simple" cross-origin POST (a form, or ``fetch`` with
  ``text/plain``) without a CORS preflight. :func:`csrf_problem` refuses state-changing
  requests that carry any sign of that: a cross-site ``Sec-Fetch-Site``, an ``Origin`` other
  than the exporter's own, or a form content type. ``curl -X POST`` and Prometheus tooling
  send none of these.
* A client that sends one byte a minute must not hold a connection for ever. aiohttp closes
  a connection that has no complete request after its keep-alive timeout, counted from the
  connection's start or the last response; ``certscope serve`` sets it to
  :data:`HEADER_TIMEOUT`, which makes it the deadline for reading a request's headers.
* aiohttp logs a malformed request at ERROR with the offending bytes; :class:`QuietBadRequests`
  turns that into one DEBUG line naming the error type only.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)

#: Content types an HTML form or a no-preflight fetch can send.
_SIMPLE_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
_SAME_SITE = frozenset({"same-origin", "none"})

#: Seconds a client has to send a request's headers, and the longest idle keep-alive.
HEADER_TIMEOUT = 10.0


def csrf_problem(request: web.Request) -> str | None:
    """Why a state-changing request looks cross-site, or None."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in _SAME_SITE:
        return "cross-site request refused"
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
        return "cross-origin request refused"
    if request.content_type in _SIMPLE_TYPES:
        return "form and text/plain bodies are refused here: send no body"
    return None


class QuietBadRequests(logging.Filter):
    """Drop aiohttp's ERROR record for a malformed request; log its type at DEBUG instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            log.debug("malformed HTTP request refused (%s)", type(exc).__name__)
            return False
        return True
