"""Certificate stores: each kind turns its own coordinates into StoredCert records."""

from __future__ import annotations

from ..config import FilesSource, Source
from .base import SourceReader
from .files import FilesReader


def reader_for(source: Source) -> SourceReader:
    """The reader for one configured source (one instance per source, it keeps a cache)."""
    if isinstance(source, FilesSource):
        return FilesReader(source)
    raise ValueError(f"unsupported source kind {source.kind!r}")


__all__ = ["SourceReader", "reader_for"]
