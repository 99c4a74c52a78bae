"""The contract every certificate store implements."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ..results import SourceResult


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
