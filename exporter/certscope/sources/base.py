"""The contract every certificate store implements."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ..errors import SourceFailure
from ..results import ItemError, Labels, SourceResult, StorageResource, StoredCert, StoredKey

log = logging.getLogger("certscope.sources")

#: New item errors logged one by one per refresh; the rest in one summary line.
MAX_LOGGED_ERRORS = 20


class SourceReader(Protocol):
    """Reads one configured store. ``refresh`` never raises: failures are in the result.

    The scheduler calls ``refresh`` on the source's interval. A reader that can follow
    changes as they happen (Kubernetes list-then-watch) also has ``watch``; the scheduler then
    runs ``watch`` as one long task instead, and the reader publishes a new result whenever its
    inventory changes.
    """

    name: str
    kind: str

    async def refresh(self, previous: SourceResult | None) -> SourceResult: ...


Publish = Callable[[SourceResult], None]


@runtime_checkable
class WatchingReader(SourceReader, Protocol):
    async def watch(self, publish: Publish) -> None:
        """Run until cancelled, calling ``publish`` with the full current result on change."""


def succeeded(
    reader: SourceReader,
    labels: Labels,
    started: float,
    certs: tuple[StoredCert, ...],
    errors: tuple[ItemError, ...],
    keys: tuple[StoredKey, ...] = (),
    storage: tuple[StorageResource, ...] = (),
) -> SourceResult:
    """The result of a refresh that read the store (per-item errors may still be present)."""
    now = time.time()
    return SourceResult(
        name=reader.name,
        kind=reader.kind,
        labels=labels,
        timestamp=now,
        duration=time.perf_counter() - started,
        up=True,
        certs=certs,
        errors=errors,
        last_success=now,
        keys=keys,
        storage=storage,
    )


def failed(
    reader: SourceReader,
    labels: Labels,
    started: float,
    previous: SourceResult | None,
    reason: SourceFailure,
    message: str,
) -> SourceResult:
    """The result of a refresh that could not read the store: the last good certificates, keys,
    storage settings and item errors stay, so one failure does not empty the inventory."""
    return SourceResult(
        name=reader.name,
        kind=reader.kind,
        labels=labels,
        timestamp=time.time(),
        duration=time.perf_counter() - started,
        up=False,
        certs=previous.certs if previous else (),
        errors=previous.errors if previous else (),
        last_success=previous.last_success if previous else None,
        error=message,
        error_reason=reason,
        keys=previous.keys if previous else (),
        storage=previous.storage if previous else (),
    )


def log_new_errors(result: SourceResult, previous: SourceResult | None) -> None:
    """A warning for each item error the previous result did not have (by location and
    reason), so a file that fails every refresh is logged once, when it starts failing."""
    seen = {(e.location, e.reason) for e in previous.errors} if previous else set()
    new = sorted({(e.location, e.reason): e for e in result.errors}.items())
    new = [(key, e) for key, e in new if key not in seen]
    for _, e in new[:MAX_LOGGED_ERRORS]:
        log.warning("source %s: %s: %s: %s", result.name, e.location, e.reason, e.message)
    if len(new) > MAX_LOGGED_ERRORS:
        log.warning(
            "source %s: %d more new item errors not logged one by one (see /inventory)",
            result.name,
            len(new) - MAX_LOGGED_ERRORS,
        )
