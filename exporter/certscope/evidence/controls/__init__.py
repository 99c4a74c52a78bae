"""The SOC 2 controls of the report, one module per control, registered in :data:`CONTROLS`.

Each module judges its checks from a :class:`~.base.Context`; :func:`evaluate` combines them
with the control's verdict series (:mod:`..verdict`, the logic the dashboard shares) into a
:class:`~..facts.ControlResult`. A finding whose rule no control lists lands in an
``other_policy_rules`` check of the control in its own ``control`` label.
"""

from __future__ import annotations

from .. import verdict
from ..facts import Check, ControlResult
from ..model import Matrix
from . import cc61, cc66, cc67, cc71, cc72
from .base import Context, Control, rule_check

CONTROLS: tuple[Control, ...] = (
    cc61.CONTROL,
    cc66.CONTROL,
    cc67.CONTROL,
    cc71.CONTROL,
    cc72.CONTROL,
)
TITLES = {c.id: c.title for c in CONTROLS}

__all__ = ["CONTROLS", "TITLES", "Context", "Control", "evaluate"]


def _other_rules(ctx: Context, checks: dict[str, list[Check]]) -> None:
    known = {r for c in CONTROLS for r in c.rules}
    by_control: dict[str, list[str]] = {}
    for f in ctx.findings:
        if f.rule not in known:
            by_control.setdefault(f.control, []).append(f.rule)
    for control, rules in sorted(by_control.items()):
        findings = [f for f in ctx.findings if f.control == control and f.rule not in known]
        checks.setdefault(control, []).append(
            rule_check(
                "other_policy_rules",
                tuple(sorted(set(rules))),
                "Other policy rules",
                findings,
                True,
                "",
            )
        )


def evaluate(ctx: Context) -> tuple[ControlResult, ...]:
    """Every registered control (and any control a finding names) over the period."""
    checks = {c.id: c.checks(ctx) for c in CONTROLS}
    _other_rules(ctx, checks)
    p = ctx.p
    out = []
    for control, cs in checks.items():
        runs = [r for _, rs in ctx.data.get(f"verdict:{control}", Matrix()).items() for r in rs]
        period = verdict.over_period(
            runs,
            p.grid.count,
            ctx.job.ratio,
            [c.result for c in cs],
            p.min_observed,
            p.insufficient_below,
        )
        out.append(
            ControlResult(
                control,
                TITLES.get(control, "Other control"),
                period.result,
                round(period.observed_ratio, 6),
                tuple(cs),
                period.detail,
            )
        )
    return tuple(out)
