"""The validation toolkit: a collector of located problems.

Validation collects *every* problem with its location (``targets[3].port: must be 1-65535``)
before one :class:`~certscope.errors.ConfigError` is raised, because fixing a config one error
per run is miserable. Unknown keys are errors, with the nearest known key suggested: a misspelt
``timeout`` silently ignored is how a probe ends up with the wrong deadline.
"""

from __future__ import annotations

import difflib
from typing import Any

from ..errors import Problem
from .fields import type_name

__all__ = ["MAX_PROBLEMS", "Checker", "join", "type_name"]

#: At most this many problems are listed, then their count.
MAX_PROBLEMS = 100


class Checker:
    """Collects problems; the sections are read by the declared models (:mod:`.fields`), and
    the top-level mapping by :meth:`mapping`."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.hidden = 0

    def add(self, loc: str, msg: str) -> None:
        # A hostile file can hold a million wrong entries: list the first ones and a count.
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(loc, msg))
        else:
            self.hidden += 1

    def listed(self) -> list[Problem]:
        more = [Problem("", f"and {self.hidden} more problems")] if self.hidden else []
        return [*self.problems, *more]

    def mapping(self, value: object, loc: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(loc, f"must be a mapping, got {type_name(value)}")
            return {}
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                extra = f' (did you mean "{hint[0]}"?)' if hint else ""
                self.add(join(loc, str(key)), f"unknown key{extra}")
        return {k: v for k, v in value.items() if isinstance(k, str) and k in allowed}


def join(loc: str, key: str) -> str:
    return f"{loc}.{key}" if loc else key
