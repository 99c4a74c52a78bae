"""Bounded HTTP fetches for revocation data (OCSP responders, CRL distribution points).

The URLs come from certificates, which any server can present, so every fetch is held
tightly: plain ``http://`` only (RFC 5280 4.2.1.13 and RFC 6960 A.1 use HTTP; an ``https``
responder would need revocation checking itself), no redirects, a byte cap and a deadline.
The body is never logged or reflected; errors carry a stable reason and a short message.
With ``allowed_networks`` (a ``/probe`` target under ``probe.allowed_networks``) the URL's host
is resolved once, checked against the networks and connected to at that address only, exactly
as the probe itself is; a host outside them is ``not_allowed`` and nothing is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp

from .net import join_address
from .pinning import Network, NotAllowed, checked_address

__all__ = ["NOT_ALLOWED", "FetchError", "fetch"]

#: The reason of a fetch refused because its host is outside ``probe.allowed_networks``.
NOT_ALLOWED = "not_allowed"

_CHUNK = 65536


class FetchError(Exception):
    """A fetch that produced no usable body; ``reason`` is stable (``http_error`` …)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


async def _pinned(url: str, networks: Sequence[Network], seconds: float) -> str:
    """``url`` with its host replaced by the one address inside ``networks`` it resolves to."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    try:
        async with asyncio.timeout(seconds):
            ip = await checked_address(host, port, networks)
    except NotAllowed:
        raise FetchError(
            NOT_ALLOWED, f"{host} resolves to no address inside probe.allowed_networks"
        ) from None
    except (OSError, TimeoutError):  # socket.gaierror is an OSError
        raise FetchError("unreachable", f"{host}: cannot resolve") from None
    return parts._replace(netloc=join_address(ip, port)).geturl()


async def fetch(
    url: str,
    *,
    max_bytes: int,
    timeout: float,  # noqa: ASYNC109 - one fetch's bound, inside the caller's deadline
    body: bytes | None = None,
    content_type: str = "",
    allowed_networks: Sequence[Network] = (),
) -> bytes:
    """GET ``url`` (POST ``body`` when given) and return at most ``max_bytes`` of body."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise FetchError("unsupported_url", f"only http:// URLs are fetched, not {url[:80]!r}")
    headers = {"Content-Type": content_type} if content_type else {}
    if allowed_networks:
        url = await _pinned(url, allowed_networks, timeout)
        headers["Host"] = parts.netloc
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.request(
                "POST" if body is not None else "GET",
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
            ) as resp,
        ):
            if resp.status != 200:
                raise FetchError("http_error", f"HTTP {resp.status} from {parts.hostname}")
            if (resp.content_length or 0) > max_bytes:
                raise FetchError("too_large", f"{resp.content_length} bytes > {max_bytes}")
            out = bytearray()
            async for chunk in resp.content.iter_chunked(_CHUNK):
                out += chunk
                if len(out) > max_bytes:
                    raise FetchError("too_large", f"more than {max_bytes} bytes")
            return bytes(out)
    except TimeoutError:
        raise FetchError(
            "timeout", f"no answer from {parts.hostname} within {timeout:g} s"
        ) from None
    except asyncio.CancelledError:
        raise
    except aiohttp.ClientError as exc:
        raise FetchError("unreachable", f"{parts.hostname}: {type(exc).__name__}") from None
