"""Bounded HTTP fetches for revocation data (OCSP responders, CRL distribution points).

The URLs come from certificates, which any server can present, so every fetch is held
tightly: plain ``http://`` only (RFC 5280 4.2.1.13 and RFC 6960 A.1 use HTTP; an ``https``
responder would need revocation checking itself), no redirects, a byte cap and a deadline.
The body is never logged or reflected; errors carry a stable reason and a short message.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp

__all__ = ["FetchError", "fetch"]

_CHUNK = 65536


class FetchError(Exception):
    """A fetch that produced no usable body; ``reason`` is stable (``http_error`` …)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


async def fetch(
    url: str,
    *,
    max_bytes: int,
    timeout: float,  # noqa: ASYNC109 - one fetch's bound, inside the caller's deadline
    body: bytes | None = None,
    content_type: str = "",
) -> bytes:
    """GET ``url`` (POST ``body`` when given) and return at most ``max_bytes`` of body."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise FetchError("unsupported_url", f"only http:// URLs are fetched, not {url[:80]!r}")
    headers = {"Content-Type": content_type} if content_type else {}
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
