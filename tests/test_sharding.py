"""Scale-out: shards split targets without overlap, and their union is one exporter's series."""

from __future__ import annotations

import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from certscope.config import parse_config
from certscope.errors import UsageError
from certscope.sharding import apply_shard, owns, parse_shard
from helpers.exporter import Exporter


def test_parse_shard() -> None:
    assert parse_shard("0/3") == (0, 3)
    assert parse_shard(" 2 / 3 ") == (2, 3)
    assert parse_shard("auto/4", "certscope-3") == (3, 4)
    for bad in ("3/3", "x/2", "1", "-1/2", "0/0"):
        with pytest.raises(UsageError):
            parse_shard(bad)
    with pytest.raises(UsageError, match="does not end in a number"):
        parse_shard("auto/2", "certscope")


def test_every_key_has_exactly_one_shard() -> None:
    keys = [f"target:t{i}" for i in range(3000)]
    for count in (1, 2, 3, 7):
        owners = [[i for i in range(count) if owns(k, (i, count))] for k in keys]
        assert all(len(o) == 1 for o in owners)
        sizes = [sum(1 for o in owners if o[0] == i) for i in range(count)]
        assert min(sizes) > len(keys) / count * 0.85  # a fair split


def test_apply_shard_splits_targets_and_keeps_kubernetes_everywhere(tmp_path: Path) -> None:
    (tmp_path / "a.pem").write_text("")
    cfg = parse_config(
        "targets:\n"
        + "".join(f"  - {{address: 127.0.0.1:{2000 + i}, name: t{i}}}\n" for i in range(40))
        + "sources:\n"
        + "".join(f"  - {{name: f{i}, kind: files, paths: [{tmp_path}/a.pem]}}\n" for i in range(6))
        + "  - {name: cluster, kind: kubernetes}\n",
        "t",
    )
    parts = [apply_shard(cfg, (i, 3)) for i in range(3)]
    names = [t.name for p in parts for t in p.targets]
    assert sorted(names) == sorted(t.name for t in cfg.targets)
    files = [s.name for p in parts for s in p.sources if s.kind == "files"]
    assert sorted(files) == [f"f{i}" for i in range(6)]
    for i, p in enumerate(parts):
        (k8s,) = [s for s in p.sources if s.kind == "kubernetes"]
        assert k8s.shard == (i, 3)  # type: ignore[union-attr]


def _series(port: int) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = set()
    for fam in text_string_to_metric_families(text):
        if not fam.name.startswith("certscope_probe_success"):
            continue
        for s in fam.samples:
            out.add((s.name, frozenset(s.labels.items())))
    return out


def test_shards_union_equals_one_exporter(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "defaults: {enumerate: false, timeout: 1s}\ntargets:\n"
        + "".join(f"  - {{address: 127.0.0.1:{3000 + i}, name: t{i}}}\n" for i in range(30))
    )
    with ExitStack() as stack:
        ports = []
        for n, shard in enumerate((None, "0/3", "1/3", "2/3")):
            args = ["--shard", shard] if shard else []
            exporter = Exporter(cfg, tmp_path / f"exporter-{n}.log", args)
            stack.enter_context(exporter)
            ports.append(exporter.port)
        whole, *parts = (_series(p) for p in ports)
    assert len(whole) == 30
    assert all(parts)  # every shard has work
    for i, a in enumerate(parts):
        for b in parts[i + 1 :]:
            assert not a & b  # no duplicate series
    assert set().union(*parts) == whole
