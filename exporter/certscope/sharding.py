"""Scale-out: N exporter replicas split the work by a stable hash, without duplicate series.

Each replica runs with ``--shard INDEX/COUNT`` (or ``CERTSCOPE_SHARD``; ``auto/COUNT`` takes the
index from the trailing number of the host name, as StatefulSet pods are named ``name-0``,
``name-1``, …). A target or a whole source belongs to exactly one shard; Kubernetes sources run
on every shard and each keeps only the Secrets whose ``namespace/name`` hashes to it, so a large
cluster is split too. The hash is SHA-256, so every replica computes the same split whatever its
Python version or process.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

from .config import Config, KubernetesSource
from .errors import UsageError

Shard = tuple[int, int]  # (index, count)


def parse_shard(text: str, hostname: str = "") -> Shard:
    m = re.fullmatch(r"\s*(auto|\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise UsageError(f"shard {text!r} must be INDEX/COUNT (e.g. 0/3) or auto/COUNT")
    count = int(m.group(2))
    if m.group(1) == "auto":
        tail = re.search(r"(\d+)$", hostname)
        if tail is None:
            raise UsageError(f"shard auto/{count}: host name {hostname!r} does not end in a number")
        index = int(tail.group(1))
    else:
        index = int(m.group(1))
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"shard {index}/{count}: the index must be from 0 to {count - 1}")
    return index, count


def owns(key: str, shard: Shard | None) -> bool:
    """Whether ``key`` belongs to ``shard`` (always, without sharding)."""
    if shard is None or shard[1] == 1:
        return True
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shard[1] == shard[0]


def apply_shard(config: Config, shard: Shard | None) -> Config:
    if shard is None or shard[1] == 1:
        return config
    targets = tuple(t for t in config.targets if owns("target:" + t.name, shard))
    sources = tuple(
        replace(s, shard=shard) if isinstance(s, KubernetesSource) else s
        for s in config.sources
        if isinstance(s, KubernetesSource) or owns("source:" + s.name, shard)
    )
    return replace(config, targets=targets, sources=sources, shard=shard)
