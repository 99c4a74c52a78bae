"""The Helm chart as the chart tests see it: its directory, the value sets it is checked with
(the defaults and every ``ci/*-values.yaml``), and the objects a rendering produces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "certscope"
CI_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
CASES = ["default", *(p.name for p in CI_FILES)]
# A rendered Kubernetes object (parsed YAML), with ``__template__`` naming its template file.
Obj = dict[str, Any]


def case_values(case: str) -> dict[str, Any]:
    if case == "default":
        return {}
    return helm.values_from_yaml((CHART / "ci" / case).read_text())


def objects(manifests: dict[str, str]) -> list[Obj]:
    """Every object of every rendered template, with ``__template__`` set to its file."""
    out = []
    for path, text in sorted(manifests.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__template__"] = path
                out.append(doc)
    return out


def strip(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k != "__template__"}
