"""Kubernetes Secrets and a watch loop for the source tests: the data of a ``kubernetes.io/tls``
Secret issued by a trustme CA, and a running ``KubernetesReader.watch`` whose published results a
test waits on (shared by the in-test API server's tests and the real cluster's).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import trustme

from certscope.results import SourceResult
from certscope.sources.kubernetes import KubernetesReader


def tls(ca: trustme.CA, host: str, *, with_ca: bool = True) -> dict[str, bytes]:
    """A kubernetes.io/tls Secret's data: tls.crt = leaf + CA, tls.key, and ca.crt."""
    leaf = ca.issue_cert(host)
    data = {
        "tls.crt": leaf.cert_chain_pems[0].bytes() + ca.cert_pem.bytes(),
        "tls.key": leaf.private_key_pem.bytes(),
    }
    if with_ca:
        data["ca.crt"] = ca.cert_pem.bytes()
    return data


@contextlib.asynccontextmanager
async def watching(reader: KubernetesReader) -> AsyncIterator[Published]:
    published = Published()
    task = asyncio.create_task(reader.watch(published))
    try:
        yield published
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def locations(r: SourceResult) -> set[str]:
    return {c.location for c in r.certs}


def names(r: SourceResult) -> set[str]:
    return {c.location.split("#")[0] for c in r.certs}


class Published:
    """Collects what ``watch`` publishes; ``until`` waits for the next matching result."""

    def __init__(self) -> None:
        self.results: list[SourceResult] = []
        self.times: list[float] = []
        self._seen = 0
        self._event = asyncio.Event()

    def __call__(self, result: SourceResult) -> None:
        self.results.append(result)
        self.times.append(time.monotonic())
        self._event.set()

    async def until(
        self, pred: Callable[[SourceResult], bool], timeout: float = 5.0
    ) -> SourceResult:
        deadline = time.monotonic() + timeout
        while True:
            while self._seen < len(self.results):
                r = self.results[self._seen]
                self._seen += 1
                if pred(r):
                    return r
            self._event.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                last = self.results[-1] if self.results else None
                raise AssertionError(f"no matching result; last: {summary(last)}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), remaining)

    @property
    def last(self) -> SourceResult:
        return self.results[-1]


def summary(r: SourceResult | None) -> object:
    if r is None:
        return None
    return (r.up, r.error_reason, r.error, sorted(locations(r)))
