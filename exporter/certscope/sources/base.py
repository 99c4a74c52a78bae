"""The contract every certificate store implements."""

from __future__ import annotations

from typing import Protocol

from ..results import SourceResult


class SourceReader(Protocol):
    """Reads one configured store. ``refresh`` never raises: failures are in the result."""

    name: str
    kind: str

    async def refresh(self, previous: SourceResult | None) -> SourceResult: ...
