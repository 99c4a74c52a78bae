"""The status page at ``/``: the snapshot as a table a person reads (Jinja2, autoescaped).

:func:`page` is pure: a snapshot and the time in, HTML out. Every value is escaped by the
template engine, so a target name or certificate field cannot inject markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

import jinja2

from .. import __version__
from ..config import format_duration
from ..results import ProbeResult
from ..snapshot import Snapshot


@dataclass(frozen=True)
class Days:
    """Days left, and the class that colours it at the rules pack's windows (7/14/30/60)."""

    text: str
    cls: str


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("certscope", "web/templates"),
        autoescape=True,  # every value from a snapshot is data, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def days_left(not_after: datetime | None, now: datetime) -> Days:
    if not_after is None:
        return Days("—", "")
    days = (not_after - now).total_seconds() / 86400
    cls = "expired" if days <= 0 else "d7" if days <= 7 else "d30" if days <= 30 else ""
    return Days(f"{days:.1f}", cls or ("d60" if days <= 60 else ""))


def _names(cn: str, sans: tuple[str, ...]) -> str:
    extra = [s for s in sans[:3] if s != cn]
    return ", ".join([cn, *extra] if cn else extra) + (" …" if len(sans) > 3 else "")


def _target_row(r: ProbeResult, now: datetime) -> dict[str, object]:
    leaf = r.facts[0] if r.facts else None
    err = r.outcome.error
    problems = [err.reason + (f" ({err.alert})" if err.alert else "")] if err else []
    if r.verdict:
        problems += list(r.verdict.errors)
    return {
        "name": r.name,
        "address": r.address,
        "names": _names(leaf.subject_cn, leaf.sans) if leaf else "",
        "issuer": leaf.issuer_cn if leaf else "",
        "not_after": leaf.not_after.isoformat() if leaf and leaf.not_after else "",
        "days": days_left(leaf.not_after if leaf else None, now),
        "problems": ", ".join(problems) or "ok",
    }


def page(snap: Snapshot, now: datetime) -> str:
    """The status page of ``snap`` at ``now``: targets soonest to expire first."""

    def soonest(r: ProbeResult) -> tuple[float, str]:
        leaf = r.facts[0] if r.facts and r.facts[0].not_after else None
        return (leaf.not_after.timestamp() if leaf and leaf.not_after else float("inf"), r.name)

    targets = [_target_row(r, now) for r in sorted(snap.probes.values(), key=soonest)]
    stored = [
        {
            "source": s.name,
            "location": f"{c.location}#{c.position}",
            "subject": _names(c.facts.subject_cn or c.facts.subject, c.facts.sans),
            "not_after": c.facts.not_after.isoformat() if c.facts.not_after else "",
            "days": days_left(c.facts.not_after, now),
        }
        for s in sorted(snap.sources.values(), key=lambda s: s.name)
        for c in sorted(s.certs, key=lambda c: c.facts.not_after or now)[:20]
    ]
    return (
        _environment()
        .get_template("status.html")
        .render(
            version=__version__,
            config=snap.config,
            reload_ok=snap.reload_ok,
            reload_errors="; ".join(snap.reload_errors),
            targets=targets,
            stored=stored,
            intervals=", ".join(sorted({format_duration(t.interval) for t in snap.config.targets})),
        )
    )
