"""docs/metrics.md is the metrics contract: every family the exporter can expose is in one of
its tables, with its type, and the tables name no family the exporter does not have.

The collector's families (:data:`certscope.collector.FAMILIES`, which also write the HELP and
TYPE lines) and the exporter's own metrics (a prometheus_client registry) are compared with
the rows of the document's tables, so a family added, renamed, dropped or given another type
on one side only fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

from certscope.collector import FAMILIES
from certscope.selfmetrics import SelfMetrics

METRICS_MD = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
#: A table row documenting a family: its name, then its type as the next cell's first word.
ROW = re.compile(r"^\| `(certscope_[a-z0-9_]+)` \| (gauge|counter|histogram|summary)\b", re.M)


def documented() -> dict[str, str]:
    rows = ROW.findall(METRICS_MD.read_text())
    names = [name for name, _ in rows]
    assert len(names) == len(set(names)), "a family is documented twice"
    return dict(rows)


def exposed() -> dict[str, str]:
    families = {f.name: f.type for f in FAMILIES}
    for family in SelfMetrics().registry.collect():
        # prometheus_client names a counter family without its _total sample suffix.
        name = family.name + "_total" if family.type == "counter" else family.name
        families[name] = family.type
    return families


def test_every_exposed_family_is_documented_with_its_type() -> None:
    docs = documented()
    missing = sorted(set(exposed()) - set(docs))
    assert not missing, f"families with no row in docs/metrics.md: {missing}"
    wrong = {n: (t, docs[n]) for n, t in exposed().items() if docs[n] != t}
    assert not wrong, f"(exposed type, documented type): {wrong}"


def test_every_documented_family_exists() -> None:
    extra = sorted(set(documented()) - set(exposed()))
    assert not extra, f"docs/metrics.md documents families the exporter does not have: {extra}"


def test_the_tables_are_read() -> None:
    # The row pattern must keep matching the document's tables: both sides are large.
    assert len(documented()) >= 80
    assert len(exposed()) >= 80
