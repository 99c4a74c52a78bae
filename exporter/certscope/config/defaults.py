"""The embedded default configuration, used when no file is given."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..trust import system_ca_paths
from .load import targets_from_env
from .model import Config
from .schema import build_config


def default_config(environ: Mapping[str, str] = os.environ) -> Config:
    """The embedded default: the operating system's trust store plus ``CERTSCOPE_TARGETS``.

    It shows real data on a fresh, offline machine: the CA certificates on disk are real
    certificates with real expiry dates.
    """
    cafile, capath = system_ca_paths()
    paths = [p for p in (cafile,) if p] or ([os.path.join(capath, "*.pem")] if capath else [])
    raw: dict[str, Any] = {
        "sources": [
            {
                "name": "system-trust-store",
                "kind": "files",
                "paths": paths,
                "labels": {"owner": "operating-system"},
            }
        ]
        if paths
        else [],
        "targets": targets_from_env(environ.get("CERTSCOPE_TARGETS", "")),
    }
    return build_config(
        raw, "<embedded default>" + (" + CERTSCOPE_TARGETS" if raw["targets"] else "")
    )
