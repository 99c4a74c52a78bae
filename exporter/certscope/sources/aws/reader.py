"""The ``aws`` source: reads each (service, region) part on its own interval and merges them.

A refresh first asks STS who the credentials are (``GetCallerIdentity``, which needs no
permission). When that fails the source is down (``auth_failed``, ``unreachable``, …) and
keeps its last good data, as every source does. Otherwise each part that is due is read:
KMS, ACM, Secrets Manager, RDS and EBS per region, S3 once for the account. A part that fails
(the service is denied in that region, throttled beyond every retry, unreachable) becomes one
item error at ``<service>/<region>`` and contributes nothing: a setting that could not be read
is absent, never carried forward as if it were current. A part that succeeded is kept until
its service's interval has passed (KMS and S3 settings change rarely: one hour by default),
so a five-minute source interval does not mean reading 2,000 buckets every five minutes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from ...config import AwsSource
from ...errors import SourceFailure
from ...results import ItemError, SourceResult
from ..base import failed, succeeded
from . import acm, kms, secretsmanager, storage
from .client import Api, AwsError, Clients
from .model import GLOBAL, Part, part_location

log = logging.getLogger(__name__)

Reader = Callable[[Api, str], Awaitable[Part]]
READERS: dict[str, Reader] = {
    "kms": kms.read,
    "acm": acm.read,
    "secretsmanager": secretsmanager.read,
    "s3": storage.read_s3,
    "rds": storage.read_rds,
    "ebs": storage.read_ebs,
}
#: Threads for botocore calls, over all regions of one source.
MAX_THREADS = 32


class AwsReader:
    """Reads one ``aws`` source. One instance per source: it keeps clients and due parts."""

    kind = "aws"

    def __init__(self, source: AwsSource) -> None:
        self.source = source
        self.name = source.name
        self._clients = Clients(source)
        # (service, region) -> (monotonic time it is due again, its last result)
        self._parts: dict[tuple[str, str], tuple[float, Part]] = {}

    def __repr__(self) -> str:
        return f"AwsReader({self.name!r}, {list(self.source.regions)!r})"

    def parts(self) -> list[tuple[str, str]]:
        """Every (service, region) this source reads, S3 once under ``global``."""
        out: list[tuple[str, str]] = []
        for service in self.source.services:
            if service == "s3":
                out.append((service, GLOBAL))
            else:
                out += [(service, region) for region in self.source.regions]
        return out

    async def refresh(self, previous: SourceResult | None) -> SourceResult:
        started = time.perf_counter()
        labels = self.source.labels
        threads = min(MAX_THREADS, self.source.concurrency * len(self.source.regions))
        executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"aws-{self.name}")
        try:
            merged = await self._refresh(executor)
        except asyncio.CancelledError:
            raise
        except AwsError as exc:
            return failed(self, labels, started, previous, exc.reason, exc.message)
        except Exception as exc:  # a failing source keeps its last good data
            log.exception("aws source %s: unexpected error", self.name)
            return failed(
                self, labels, started, previous, SourceFailure.INTERNAL, type(exc).__name__
            )
        finally:
            # Threads still in a call finish it (bounded by timeout x attempts) and exit.
            executor.shutdown(wait=False, cancel_futures=True)
        return succeeded(
            self,
            labels,
            started,
            tuple(sorted(merged.certs, key=lambda c: (c.location, c.position))),
            tuple(sorted(merged.errors, key=lambda e: (e.location, e.reason))),
            keys=tuple(sorted(merged.keys, key=lambda k: (k.kind, k.location))),
            storage=tuple(sorted(merged.storage, key=lambda s: (s.resource_kind, s.resource))),
        )

    async def _refresh(self, executor: ThreadPoolExecutor) -> Part:
        loop = asyncio.get_running_loop()
        identity = await loop.run_in_executor(executor, self._clients.identity)
        api = Api(self._clients, executor, identity)
        now = time.monotonic()
        due = [p for p in self.parts() if p not in self._parts or self._parts[p][0] <= now]
        home = self.source.regions[0]

        async def read(part: tuple[str, str]) -> Part:
            service, region = part
            where = part_location(service, region)
            view = api.part(where)
            try:
                got = await READERS[service](view, home if region == GLOBAL else region)
            except AwsError as exc:
                log.info("aws source %s: %s: %s", self.name, where, exc.message)
                return Part(errors=(ItemError(where, exc.reason, exc.message),))
            return replace(got, errors=got.errors + tuple(view.notes)) if view.notes else got

        fresh = await asyncio.gather(*(read(p) for p in due))
        for part, got in zip(due, fresh, strict=True):
            service = part[0]
            failed_part = any(e.location == part_location(*part) for e in got.errors) and not (
                got.certs or got.keys or got.storage
            )
            # Half an interval of slack, so a part never waits one more source interval.
            again = now + self.source.service_interval(service) - self.source.interval / 2
            self._parts[part] = (now if failed_part else again, got)
        return _merge([self._parts[p][1] for p in self.parts()])


def _merge(parts: list[Part]) -> Part:
    return Part(
        certs=tuple(c for p in parts for c in p.certs),
        keys=tuple(k for p in parts for k in p.keys),
        storage=tuple(s for p in parts for s in p.storage),
        errors=tuple(e for p in parts for e in p.errors),
    )
