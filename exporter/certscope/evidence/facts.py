"""The shapes the evidence analysis produces: parameters, coverage, gaps, certificates,
renewals, alert episodes, findings, checks and control results (frozen data, no logic but
derived properties). :mod:`.analyse` computes them, :mod:`.controls` judges them and
:mod:`.report` writes them.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..config import FINDING_LABELS as FINDING_LABELS  # re-exported: the label names
from ..config import INFO_LABELS as INFO_LABELS
from ..config import SLOT_LABELS as SLOT_LABELS
from . import verdict
from .credentials import Credentials
from .endpoints import Endpoint
from .model import Grid, Matrix, Run, value_at

#: Labels of an ALERTS series that are not the alert's own labels.
ALERT_META = ("__name__", "alertname", "alertstate")

# Gap kinds (stable strings: they appear in coverage.csv and summary.json).
NO_DATA = "no_data"  # no scrape of the exporter job recorded at all
EXPORTER_DOWN = "exporter_down"  # scrapes recorded, none succeeded (up == 0)
NOT_MONITORED = "not_monitored"  # the target's series were not reported
PROBE_STALLED = "probe_stalled"  # the last probe is older than --probe-stale-after
PROBE_FAILING = "probe_failing"  # probes ran and failed
SOURCE_FAILING = "source_failing"  # the store could not be read

COVERED = 255  # state code of a covered step; others index _KINDS
_EXPORTER_KINDS = {0: NO_DATA, 1: EXPORTER_DOWN}
_TARGET_KINDS = {0: NOT_MONITORED, 1: PROBE_STALLED, 2: PROBE_FAILING, 3: SOURCE_FAILING}


@dataclass(frozen=True)
class Params:
    """How the data was fetched: what the analysis needs to turn steps into times."""

    grid: Grid
    window: float  # look-back of exporter series evaluations
    alert_window: float  # look-back of ALERTS evaluations
    scrape_interval: float
    stale_after: float
    job_regex: str
    min_observed: float = verdict.MIN_OBSERVED
    insufficient_below: float = verdict.INSUFFICIENT_BELOW


@dataclass(frozen=True)
class ScrapeData:
    """What the gap detection fetched (:mod:`.gaps`): counts per window and raw drill-downs."""

    successes: Matrix = field(default_factory=Matrix)
    counts: Matrix = field(default_factory=Matrix)
    raw: Mapping[tuple[str, str], Sequence[tuple[float, float]]] = field(default_factory=dict)
    drilled: frozenset[int] = frozenset()
    #: parts of the period a query could not fetch after its retries: (name, start, end)
    failed: tuple[tuple[str, float, float], ...] = ()


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """An interval without evidence: no successful scrape, or a target not probed."""

    scope: str  # "exporter" or "target"
    subject: Mapping[str, str]  # job/instance, or source_kind/source/location
    kind: str  # NO_DATA, EXPORTER_DOWN, … ("a+b" when kinds follow each other)
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class Coverage:
    """Coverage of the exporter job, one of its instances, or a target or store.

    One definition everywhere: ``1 - seconds inside a gap / judged seconds``. The job and its
    instances are judged over the whole requested period; a target from its first to its last
    appearance (widened over exporter gaps at the edges).
    """

    scope: str  # "exporter" or "target"
    subject: Mapping[str, str]
    judged_from: float
    judged_to: float
    first_seen: float | None
    last_seen: float | None
    gaps: tuple[Gap, ...]

    @property
    def seconds(self) -> float:
        return max(0.0, self.judged_to - self.judged_from)

    @property
    def gap_seconds(self) -> float:
        return sum(g.seconds for g in self.gaps)

    @property
    def ratio(self) -> float:
        return max(0.0, 1.0 - self.gap_seconds / self.seconds) if self.seconds else 0.0

    @property
    def observed(self) -> bool:
        return self.first_seen is not None


@dataclass(frozen=True)
class Certificate:
    """One certificate seen in one slot (a distinct ``certscope_cert_info`` series)."""

    labels: Mapping[str, str]  # slot and configured labels
    facts: Mapping[str, str]  # INFO_LABELS values
    not_before: float | None
    not_after: float | None
    runs: tuple[Run, ...]
    first_seen: float
    last_seen: float
    present_at_start: bool
    present_at_end: bool

    @property
    def slot(self) -> tuple[str, ...]:
        return tuple(self.labels.get(name, "") for name in SLOT_LABELS)

    @property
    def first_step(self) -> int:
        return self.runs[0].first

    def present(self, k: int) -> bool:
        return value_at(list(self.runs), k) is not None


@dataclass(frozen=True)
class Renewal:
    """A slot whose certificate was replaced during the period."""

    kind: str  # "renewal" (notAfter increased), "replacement" (decreased), "reissue" (same)
    at: float  # when the new certificate was first seen
    old: Certificate
    new: Certificate
    days_before_expiry: float | None  # old notAfter - at, in days (negative: after expiry)
    key_changed: str  # "yes", "no" or "unknown"
    key_basis: str  # why

    @property
    def slot(self) -> Mapping[str, str]:
        return {name: self.new.labels.get(name, "") for name in SLOT_LABELS}


@dataclass(frozen=True)
class AlertEpisode:
    """One firing of one alert series."""

    name: str
    labels: Mapping[str, str]  # the alert's labels without alertname/alertstate
    fired_at: float
    resolved_at: float | None  # None: still firing at the end of the period
    fired_before_start: bool
    end_of_period: float
    #: "fired", "before_period" or "interrupted" (first seen right after a monitoring gap)
    start_state: str = "fired"
    #: "resolved", "still_firing" or "interrupted" (last seen right before a monitoring gap)
    end_state: str = "resolved"
    #: monitoring gaps inside the episode (the alert was seen on both sides of them)
    gaps_inside: int = 0

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def control(self) -> str:
        return self.labels.get("soc2_control", "")

    @property
    def seconds(self) -> float:
        end = self.resolved_at if self.resolved_at is not None else self.end_of_period
        return max(0.0, end - self.fired_at)


@dataclass(frozen=True)
class FindingSeries:
    """One policy finding's series over the period (active or waived): how
    :class:`certscope.policy.Finding` s of one rule and place showed in Prometheus."""

    rule: str
    severity: str
    control: str
    status: str  # "violation" or "waived"
    labels: Mapping[str, str]  # identity and configured labels
    exception_owner: str
    first_seen: float
    last_seen: float
    active_at_end: bool
    episodes: int  # runs separated only by a monitoring gap count once
    seconds: float
    #: monitoring gaps inside an episode (the finding was seen on both sides of them)
    gaps_inside: int = 0


@dataclass(frozen=True)
class WaiverRecord:
    """A configured waiver (policy exception, ``certscope_policy_exception_expiry_timestamp_seconds``)
    seen during the period."""

    target: str
    location: str
    rule: str
    owner: str
    expires: float
    first_seen: float
    last_seen: float
    status: str  # "open" (live at the end), "expired", "removed" (gone from the config)


@dataclass(frozen=True)
class Check:
    """One thing verified for a control, with its result over the period."""

    id: str
    title: str
    result: str
    detail: str
    counts: Mapping[str, int | float]


@dataclass(frozen=True)
class ControlResult:
    control: str
    title: str
    result: str
    observed_ratio: float  # share of the period with a verdict and no monitoring gap
    checks: tuple[Check, ...]
    detail: str = ""


@dataclass(frozen=True)
class Timeline:
    """Per-step counts for the charts (arrays of ``grid.count`` values)."""

    exporter: bytes  # COVERED, or the gap kind code
    targets_ok: array[int]
    targets_total: array[int]
    certificates: array[int]
    findings: Mapping[str, array[int]]  # control → active findings per step
    alerts: array[int]


@dataclass(frozen=True)
class Evidence:
    params: Params
    exporter: tuple[Coverage, ...]  # the aggregate first, then one per instance
    targets: tuple[Coverage, ...]
    certificates: tuple[Certificate, ...]
    renewals: tuple[Renewal, ...]
    alerts: tuple[AlertEpisode, ...]
    findings: tuple[FindingSeries, ...]
    exceptions: tuple[WaiverRecord, ...]
    controls: tuple[ControlResult, ...]
    timeline: Timeline
    notes: tuple[str, ...] = field(default=())
    endpoints: tuple[Endpoint, ...] = field(default=())
    credentials: Credentials = field(default_factory=Credentials)

    @property
    def gaps(self) -> list[Gap]:
        """Every monitoring gap: the exporter job's, then each target's."""
        out = list(self.exporter[0].gaps) if self.exporter else []
        for cov in self.targets:
            out.extend(cov.gaps)
        return out
