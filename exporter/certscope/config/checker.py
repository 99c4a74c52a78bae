"""The validation toolkit: a collector of located problems and typed getters.

Validation collects *every* problem with its location (``targets[3].port: must be 1-65535``)
before one :class:`~certscope.errors.ConfigError` is raised, because fixing a config one error
per run is miserable. Unknown keys are errors, with the nearest known key suggested: a misspelt
``timeout`` silently ignored is how a probe ends up with the wrong deadline.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

from ..errors import Problem
from .durations import format_duration, parse_duration
from .fields import file_problem, label_name_problem, label_value_problem, type_name

__all__ = ["MAX_PROBLEMS", "Checker", "join", "type_name"]

#: At most this many problems are listed, then their count.
MAX_PROBLEMS = 100


class Checker:
    """Collects problems; every ``get_*`` returns a usable default after recording a problem."""

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

    def problems_at(self, loc: str) -> bool:
        return any(p.location.startswith(loc + ".") for p in self.problems)

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

    def string(
        self, d: Mapping[str, Any], key: str, loc: str, required: bool = False
    ) -> str | None:
        if key not in d or d[key] is None:
            if required:
                self.add(join(loc, key), "is required")
            return None
        v = d[key]
        if not isinstance(v, str) or not v.strip():
            self.add(join(loc, key), f"must be a non-empty string, got {type_name(v)}")
            return None
        return v

    def strings(self, d: Mapping[str, Any], key: str, loc: str) -> tuple[str, ...]:
        v = d.get(key)
        if v is None:
            return ()
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            self.add(join(loc, key), "must be a list of non-empty strings")
            return ()
        return tuple(v)

    def duration(
        self, d: Mapping[str, Any], key: str, loc: str, default: float, minimum: float = 0.0
    ) -> float:
        if key not in d:
            return default
        try:
            seconds = parse_duration(d[key])
        except ValueError as exc:
            self.add(join(loc, key), str(exc))
            return default
        if seconds < minimum:
            self.add(join(loc, key), f"must be at least {format_duration(minimum)}")
            return default
        return seconds

    def number(
        self, d: Mapping[str, Any], key: str, loc: str, default: float, lo: float, hi: float
    ) -> float:
        if key not in d:
            return default
        v = d[key]
        # NaN fails every comparison, but say so explicitly: a NaN that slipped through would
        # poison every computation it reaches.
        numeric = isinstance(v, int | float) and not isinstance(v, bool)
        if not numeric or (isinstance(v, float) and not math.isfinite(v)) or not lo <= v <= hi:
            self.add(join(loc, key), f"must be a number from {lo:g} to {hi:g}")
            return default
        return float(v)

    def boolean(self, d: Mapping[str, Any], key: str, loc: str, default: bool) -> bool:
        if key not in d:
            return default
        v = d[key]
        if not isinstance(v, bool):
            self.add(join(loc, key), f"must be true or false, got {type_name(v)}")
            return default
        return v

    def choices(
        self, d: Mapping[str, Any], key: str, loc: str, allowed: tuple[str, ...]
    ) -> tuple[str, ...] | None:
        if key not in d:
            return None
        values = self.strings(d, key, loc)
        bad = [v for v in values if v not in allowed]
        if bad:
            self.add(join(loc, key), f"unknown value {bad[0]!r}; allowed: {', '.join(allowed)}")
        return tuple(v for v in values if v in allowed)

    def labels(self, value: object, loc: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(loc, f"must be a mapping of label names to values, got {type_name(value)}")
            return {}
        out: dict[str, str] = {}
        for k, v in value.items():
            why = label_name_problem(k) or label_value_problem(v)
            if why:
                self.add(join(loc, str(k)), why)
            else:
                out[k] = str(v)
        return out

    def readable_file(self, path: str | None, loc: str, pem_certs: bool = False) -> str | None:
        if path is None:
            return None
        why = file_problem(path, pem_certs)
        if why:
            self.add(loc, why)
        return path


def join(loc: str, key: str) -> str:
    return f"{loc}.{key}" if loc else key
