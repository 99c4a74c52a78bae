"""What every control module shares: the context it reads and the rule check it builds on.

A control module (``cc61.py`` …) defines ``CONTROL``: its id, title and a function from a
:class:`Context` to its :class:`~..facts.Check` s. A new kind of credential adds its checks to the
control it evidences (or a new module to :data:`..CONTROLS`), reading its data from the context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from ..facts import (
    AlertEpisode,
    Certificate,
    Check,
    Coverage,
    FindingSeries,
    Params,
    Renewal,
    WaiverRecord,
)
from ..model import Matrix
from ..verdict import FAIL, INSUFFICIENT, PASS

NO_CERTS = "no certificate series (certscope_cert_info) in the period: nothing was inventoried"


@dataclass(frozen=True)
class Context:
    """Everything a control may judge, computed once by :func:`..analyse.analyse`."""

    p: Params
    data: Mapping[str, Matrix]
    exporter: Sequence[Coverage]  # the job first, then each instance
    targets: Sequence[Coverage]
    certs: Sequence[Certificate]
    renewals: Sequence[Renewal]
    alerts: Sequence[AlertEpisode]
    findings: Sequence[FindingSeries]
    exceptions: Sequence[WaiverRecord]
    _cache: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    def steps_with(self, query: str) -> int:
        """Steps at which the query ``query`` of the plan had any series."""
        marks = bytearray(self.p.grid.count)
        for _, runs in self.data.get(query, Matrix()).items():
            for r in runs:
                marks[r.first : r.last + 1] = b"\x01" * r.length
        return marks.count(1)

    @cached_property
    def job(self) -> Coverage:
        return self.exporter[0]

    @cached_property
    def has_tls(self) -> bool:
        tls = [t for t in self.targets if t.subject.get("source_kind") == "tls"]
        return bool(tls) or self.steps_with("verified_endpoints") > 0

    def findings_of(self, control: str) -> list[FindingSeries]:
        return [f for f in self.findings if f.control == control]

    def alerts_named(self, *names: str) -> list[AlertEpisode]:
        return [a for a in self.alerts if a.name in names]


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    checks: Callable[[Context], list[Check]]
    #: policy rules this control's checks cover (others land in "other_policy_rules")
    rules: tuple[str, ...] = ()


def rule_check(
    check_id: str,
    rules: Sequence[str],
    title: str,
    control_findings: Iterable[FindingSeries],
    has_data: bool,
    no_data: str,
    extra_counts: Mapping[str, int | float] | None = None,
) -> Check:
    """Fails on any finding of ``rules``; without data, insufficient; else passes."""
    mine = [f for f in control_findings if f.rule in rules]
    violations = [f for f in mine if f.status == "violation"]
    waived = [f for f in mine if f.status == "waived"]
    counts: dict[str, int | float] = {
        "violations": len(violations),
        "violation_locations": len({tuple(sorted(f.labels.items())) for f in violations}),
        "waived": len(waived),
        **(extra_counts or {}),
    }
    rule_list = ", ".join(rules)
    if violations:
        names = sorted({f.rule for f in violations})
        detail = (
            f"{len(violations)} finding(s) of {', '.join(names)} during the period "
            f"(rules checked: {rule_list})"
        )
        return Check(check_id, title, FAIL, detail, counts)
    if not has_data:
        return Check(check_id, title, INSUFFICIENT, no_data, counts)
    detail = f"no active finding of {rule_list}"
    if waived:
        detail += f"; {len(waived)} finding(s) waived by a policy exception"
    return Check(check_id, title, PASS, detail, counts)
