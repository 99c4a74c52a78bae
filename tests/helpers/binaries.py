"""Finding the programs tests start: next to the running interpreter first (the venv's
``bin/``, where pip puts the console scripts of the test extras), then on ``$PATH``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest


def beside_interpreter(name: str, missing: str) -> str:
    """Path of ``name``; fails the test (no skip) with ``missing`` as the instructions."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(missing, pytrace=False)
