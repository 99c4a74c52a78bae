"""PNG charts of the evidence report, drawn with matplotlib's Agg backend.

No pyplot: each chart is a :class:`~matplotlib.figure.Figure` on its own Agg canvas, so nothing
needs a display and no global state is shared between charts or with the caller.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure

from .facts import COVERED, Evidence

#: Most points drawn per line: long periods are binned down to this many.
MAX_BINS = 1000
#: Most certificate rows in the expiry timeline (the rest are in inventory.csv).
MAX_ROWS = 30

COLORS = {
    "ok": "#2e7d32",
    "gap": "#c62828",
    "warn": "#ef6c00",
    "period": "#1565c0",
    "grey": "#757575",
}
CONTROL_COLORS = ["#6a1b9a", "#00838f", "#ef6c00", "#c62828", "#283593", "#558b2f"]


def _date(t: float) -> float:
    """Unix time → matplotlib's date number (matplotlib ships no types for ``dates``)."""
    naive = datetime.fromtimestamp(t, UTC).replace(tzinfo=None)
    return float(date2num(naive))  # type: ignore[no-untyped-call]


def _dates(ts: Sequence[float]) -> np.ndarray:
    return np.asarray([_date(float(t)) for t in ts])


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def _bins(ev: Evidence) -> tuple[np.ndarray, int]:
    """Bin edges (step indexes) and bin count for per-step arrays."""
    n = ev.params.grid.count
    bins = min(n, MAX_BINS)
    return np.linspace(0, n, bins + 1).astype(int), bins


def _binned(values: np.ndarray, edges: np.ndarray, how: str) -> np.ndarray:
    out = np.empty(len(edges) - 1)
    for i in range(len(edges) - 1):
        part = values[edges[i] : max(edges[i + 1], edges[i] + 1)]
        out[i] = part.mean() if how == "mean" else part.max()
    return out


def _bin_times(ev: Evidence, edges: np.ndarray) -> np.ndarray:
    """The start of each bin, then the end of the period (for ``step(where="post")``)."""
    g = ev.params.grid
    return _dates([g.start + int(e) * g.step for e in edges])


def _closed(values: np.ndarray) -> np.ndarray:
    """Repeat the last value so that the last bin is drawn to the end of the period."""
    return np.append(values, values[-1:]) if len(values) else values


def _time_axis(ax: Axes) -> None:
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def coverage_chart(ev: Evidence) -> bytes:
    """Exporter scraped and targets covered, as a fraction of each time bin."""
    g = ev.params.grid
    edges, _ = _bins(ev)
    times = _bin_times(ev, edges)
    exporter = (np.frombuffer(ev.timeline.exporter, dtype=np.uint8) == COVERED).astype(float)
    ok = np.asarray(ev.timeline.targets_ok, dtype=float)
    total = np.asarray(ev.timeline.targets_total, dtype=float)
    ratio = np.divide(ok, total, out=np.ones_like(ok), where=total > 0)
    fig = Figure(figsize=(10, 3.6))
    ax = fig.add_subplot()
    exp_b = _binned(exporter, edges, "mean") if len(exporter) else np.zeros(0)
    tgt_b = _binned(ratio, edges, "mean") if len(ratio) else np.zeros(0)
    exp_b, tgt_b = _closed(exp_b), _closed(tgt_b)
    ax.fill_between(times, 0, exp_b, step="post", color=COLORS["ok"], alpha=0.25, linewidth=0)
    ax.step(times, exp_b, where="post", color=COLORS["ok"], label="exporter scraped (up)")
    if total.any():
        ax.step(times, tgt_b, where="post", color=COLORS["period"], label="targets probed / read")
    for gap in ev.exporter[0].gaps if ev.exporter else ():
        ax.axvspan(_date(gap.start), _date(gap.end), color=COLORS["gap"], alpha=0.2, linewidth=0)
    ax.set_ylim(-0.05, 1.1)
    ax.set_xlim(_date(g.start), _date(g.end))
    ax.set_ylabel("fraction covered")
    ax.set_title("Monitoring coverage (red: gaps of the exporter job)")
    ax.legend(loc="lower left", fontsize="small")
    ax.grid(alpha=0.3)
    _time_axis(ax)
    fig.tight_layout()
    return _png(fig)


def findings_chart(ev: Evidence) -> bytes:
    """Active policy findings per control and firing alerts over time."""
    g = ev.params.grid
    edges, _ = _bins(ev)
    times = _bin_times(ev, edges)
    fig = Figure(figsize=(10, 3.6))
    ax = fig.add_subplot()
    for i, (control, counts) in enumerate(sorted(ev.timeline.findings.items())):
        values = _closed(_binned(np.asarray(counts, dtype=float), edges, "max"))
        ax.step(
            times,
            values,
            where="post",
            color=CONTROL_COLORS[i % len(CONTROL_COLORS)],
            label=f"findings {control}",
        )
    alerts = _closed(_binned(np.asarray(ev.timeline.alerts, dtype=float), edges, "max"))
    ax.step(
        times, alerts, where="post", color=COLORS["grey"], linestyle="--", label="alerts firing"
    )
    for gap in ev.exporter[0].gaps if ev.exporter else ():
        ax.axvspan(_date(gap.start), _date(gap.end), color=COLORS["gap"], alpha=0.15, linewidth=0)
    top = max(
        [1.0, float(alerts.max(initial=0))]
        + [float(max(c, default=0)) for c in ev.timeline.findings.values()]
    )
    ax.set_ylim(0, top * 1.15)
    ax.set_xlim(_date(g.start), _date(g.end))
    ax.set_ylabel("count (max per bin)")
    ax.set_title("Policy findings and certscope alerts over the period")
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    _time_axis(ax)
    fig.tight_layout()
    return _png(fig)


def expiry_chart(ev: Evidence) -> bytes:
    """Validity of each certificate (leaf slots first), the period, and renewals."""
    g = ev.params.grid
    slots: dict[tuple[str, ...], list[tuple[float, float, bool]]] = {}
    for c in ev.certificates:
        if c.not_after is None:
            continue
        start = c.not_before if c.not_before is not None else c.not_after
        slots.setdefault(c.slot, []).append((start, c.not_after, c.present_at_end))
    ordered = sorted(
        slots.items(), key=lambda item: (item[0][3] != "0", max(e for _, e, _ in item[1]))
    )
    shown = ordered[:MAX_ROWS]
    height = 1.4 + 0.32 * max(1, len(shown))
    fig = Figure(figsize=(10, height))
    ax = fig.add_subplot()
    period = max(g.end - g.start, 30 * 86400.0)
    lo, hi = g.start - 2 * period, g.end + 4 * period
    for row, (_, certs) in enumerate(shown):
        for start, end, current in certs:
            a, b = max(start, lo), min(end, hi)
            if b <= a:
                continue
            color = COLORS["gap"] if end <= g.end else COLORS["ok"] if current else COLORS["grey"]
            # A certificate replaced during the period: a thin bar above its successor.
            height, offset = (0.6, 0.0) if current else (0.2, -0.42)
            ax.barh(
                row + offset,
                _date(b) - _date(a),
                left=_date(a),
                height=height,
                color=color,
                alpha=0.8,
            )
    for r in ev.renewals:
        rows = [i for i, (slot, _) in enumerate(shown) if slot == r.new.slot]
        if rows:
            ax.plot([_date(r.at)], [rows[0]], marker="v", color="black", markersize=7)
    ax.axvspan(_date(g.start), _date(g.end), color=COLORS["period"], alpha=0.12, linewidth=0)
    ax.axvline(_date(g.end), color=COLORS["period"], linewidth=1)
    labels = [f"{slot[4] or '(no CN)'} @ {_short(slot[2])} #{slot[3]}" for slot, _ in shown] or [
        "no certificate in the period"
    ]
    ax.set_yticks(range(len(labels)), labels, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(_date(lo), _date(hi))
    more = len(ordered) - len(shown)
    title = "Certificate validity (green: in use, thin: replaced, red: expired, ▼: renewal)"
    if more > 0:
        title += f"; {more} more slot(s) in inventory.csv"
    ax.set_title(title, fontsize="medium")
    ax.grid(axis="x", alpha=0.3)
    _time_axis(ax)
    fig.tight_layout()
    return _png(fig)


def _short(text: str, size: int = 40) -> str:
    return text if len(text) <= size else "…" + text[-(size - 1) :]


def render(ev: Evidence) -> dict[str, bytes]:
    """File name → PNG bytes."""
    return {
        "expiry-timeline.png": expiry_chart(ev),
        "coverage.png": coverage_chart(ev),
        "findings.png": findings_chart(ev),
    }
