"""Certificate and key stores: each kind turns its own coordinates into StoredCert and
StoredKey records."""

from __future__ import annotations

from ..config import AwsSource, FilesSource, KubernetesSource, Source, SSHKeysSource, VaultSource
from .base import SourceReader
from .files import FilesReader


def reader_for(source: Source) -> SourceReader:
    """The reader for one configured source (one instance per source, it keeps a cache)."""
    if isinstance(source, FilesSource):
        return FilesReader(source)
    if isinstance(source, VaultSource):
        from .vault import VaultReader

        return VaultReader(source)
    if isinstance(source, KubernetesSource):
        from .kubernetes import KubernetesReader

        return KubernetesReader(source)
    if isinstance(source, SSHKeysSource):
        from .ssh_keys import SSHKeysReader

        return SSHKeysReader(source)
    if isinstance(source, AwsSource):
        from .aws import AwsReader

        return AwsReader(source)
    raise ValueError(f"unsupported source kind {source.kind!r}")


__all__ = ["SourceReader", "reader_for"]
