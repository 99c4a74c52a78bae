"""Durations as the configuration writes them: Prometheus-style text (``1h30m``, ``500ms``)
or a number of seconds. Pure functions."""

from __future__ import annotations

import math
import re

#: The longest duration anywhere in the configuration: 100 years.
MAX_DURATION = 100 * 365 * 86400.0
_MAX_DURATION_TEXT = 64

_DURATION_RE = re.compile(
    r"^(?:(?P<y>\d+)y)?(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?"
    r"(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$"
)
_DURATION_UNITS = {
    "y": 365 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 0.001,
}


def parse_duration(value: object) -> float:
    """Prometheus-style duration (``1h30m``, ``500ms``) or a number of seconds → seconds.

    The result is finite, positive and at most :data:`MAX_DURATION`: a NaN or infinite
    interval would make the scheduler spin or never run the job again.
    """
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s, 5m or 6h")
    if isinstance(value, int | float):
        # int first: a 400-digit integer is a valid YAML int but overflows float().
        if isinstance(value, int) and value > MAX_DURATION:
            raise ValueError(f"must be at most {format_duration(MAX_DURATION)}")
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError("must be a finite number of seconds")
    elif isinstance(value, str) and value and len(value) <= _MAX_DURATION_TEXT:
        m = _DURATION_RE.match(value.strip())
        if not m or not any(m.groupdict().values()):
            raise ValueError(f"{value!r} is not a duration such as 30s, 5m or 6h")
        seconds = sum(_DURATION_UNITS[k] * int(v) for k, v in m.groupdict().items() if v)
    else:
        raise ValueError("must be a duration such as 30s, 5m or 6h")
    if seconds <= 0:
        raise ValueError("must be positive")
    if seconds > MAX_DURATION:
        raise ValueError(f"must be at most {format_duration(MAX_DURATION)}")
    return seconds


def format_duration(seconds: float) -> str:
    """Inverse of :func:`parse_duration` for display (``300.0`` → ``5m``)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out = []
    rest = int(seconds)
    for unit in ("d", "h", "m", "s"):
        size = int(_DURATION_UNITS[unit])
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"
