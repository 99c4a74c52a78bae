"""The probe benchmark's summary: medians over rounds, certscope / blackbox_exporter ratios and
the targets they are checked against, the printed table, and the cProfile hotspots."""

from __future__ import annotations

import pstats
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from probe_render import CHURN, pct

#: CPU per probe, certscope / blackbox_exporter (``insecure_skip_verify``): at most this, that
#: is, no more CPU per probe than blackbox_exporter.
RATIO_TARGET = 1.0
#: Rendering /metrics for ``--render-targets`` results: at most this, cold or warm.
RENDER_TARGET_S = 0.250

_OTHERS = ("blackbox", "blackbox_verify")


# --- summary ------------------------------------------------------------------------------------


def session_median(sessions: Sequence[dict[str, Any]], part: str, key: str) -> float | None:
    """The median of ``session[part][key]`` over the sessions that have it."""
    values = [s[part][key] for s in sessions if s.get(part) and s[part].get(key) is not None]
    return statistics.median(values) if values else None


def sweep_summary(by: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Warm CPU ms per probe by client concurrency (later passes at the main concurrency)."""
    out: dict[str, Any] = {}
    for key, sessions in by.items():
        table: dict[str, list[float]] = {}
        for s in sessions:
            if s.get("later_passes"):
                table.setdefault(str(s["concurrency"]), []).append(
                    s["later_passes"]["cpu_ms_per_probe"]
                )
            for c, st in s.get("sweep", {}).items():
                table.setdefault(c, []).append(st["cpu_ms_per_probe"])
        out[key] = {
            c: round(statistics.median(v), 4)
            for c, v in sorted(table.items(), key=lambda kv: int(kv[0]))
        }
    cs = out.get("certscope", {})
    for other in _OTHERS:
        bb = out.get(other, {})
        ratios = {c: round(cs[c] / bb[c], 3) for c in cs if bb.get(c)}
        if ratios:
            out[f"ratio_certscope_over_{other}"] = ratios
    return out


def _probe_row(sessions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cpu_ms_per_probe": session_median(sessions, "total", "cpu_ms_per_probe"),
        # Noise on a shared machine only ever adds CPU: the least disturbed round.
        "cpu_ms_per_probe_min": min(s["total"]["cpu_ms_per_probe"] for s in sessions),
        "cpu_ms_per_probe_first_pass": session_median(sessions, "first_pass", "cpu_ms_per_probe"),
        "cpu_ms_per_probe_later_passes": session_median(
            sessions, "later_passes", "cpu_ms_per_probe"
        ),
        "probes_per_second": session_median(sessions, "total", "probes_per_second"),
        "latency_ms_p50": session_median(sessions, "total", "latency_ms_p50"),
        "ok": sum(s["total"]["ok"] for s in sessions),
        "probes": sum(s["total"]["probes"] for s in sessions),
        "rounds": len(sessions),
    }


def _ratios(summary: dict[str, Any], by: dict[str, list[dict[str, Any]]]) -> None:
    """certscope over each blackbox module: of the medians, of the minima, and round by round."""
    cs = summary["probe"].get("certscope", {}).get("cpu_ms_per_probe")
    for other in _OTHERS:
        bb = summary["probe"].get(other, {}).get("cpu_ms_per_probe")
        if cs and bb:
            summary[f"ratio_certscope_over_{other}"] = round(cs / bb, 3)
            cs_min = summary["probe"]["certscope"]["cpu_ms_per_probe_min"]
            bb_min = summary["probe"][other]["cpu_ms_per_probe_min"]
            summary[f"ratio_certscope_over_{other}_of_minima"] = round(cs_min / bb_min, 3)
    ratios = [
        s_cs["total"]["cpu_ms_per_probe"] / s_bb["total"]["cpu_ms_per_probe"]
        for s_cs, s_bb in zip(by.get("certscope", []), by.get("blackbox", []), strict=False)
        if s_bb["total"]["cpu_ms_per_probe"]
    ]
    if ratios:
        summary["ratio_per_round"] = [round(r, 3) for r in ratios]


def _checks(summary: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    r = summary.get("ratio_certscope_over_blackbox")
    if r is not None:
        checks["cpu_ratio_vs_blackbox"] = {"value": r, "target": RATIO_TARGET}
    render = report.get("render_inprocess")
    http = report.get("render_http")
    target_ms = RENDER_TARGET_S * 1000
    if render:
        checks["render_warm_1pct_churn_ms"] = {
            "value": render["warm_after_1pct_churn_ms"]["median"],
            "target": target_ms,
        }
        checks["render_warm_50pct_churn_ms"] = {
            "value": render["warm_after_50pct_churn_ms"]["median"],
            "target": target_ms,
        }
        checks["render_cold_ms"] = {"value": render["cold_ms"]["median"], "target": target_ms}
    if http:
        checks["http_get_metrics_warm_1pct_churn_ms"] = {
            "value": http["warm_after_1pct_churn_get_ms"]["median"],
            "target": target_ms,
        }
        checks["http_get_metrics_cold_ms"] = {"value": http["cold_get_ms"], "target": target_ms}
    for c in checks.values():
        c["met"] = c["value"] <= c["target"]
    return checks


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    by: dict[str, list[dict[str, Any]]] = {}
    for s in report["probe_sessions"]:
        by.setdefault(s["exporter"], []).append(s)
    summary: dict[str, Any] = {"probe": {key: _probe_row(ss) for key, ss in by.items()}}
    summary["steady_state_by_concurrency"] = sweep_summary(by)
    _ratios(summary, by)
    summary["checks"] = _checks(summary, report)
    return summary


# --- printing -----------------------------------------------------------------------------------


def _f(v: Any, fmt: str = "{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def _print_sweep(sweep: dict[str, Any]) -> None:
    cols = sorted({c for k, v in sweep.items() if not k.startswith("ratio") for c in v}, key=int)
    if len(cols) <= 1:
        return
    print()
    print("== steady state (certificates already seen): CPU ms/probe by client concurrency")
    print(f"{'exporter':<24}" + "".join(f"{'c=' + c:>9}" for c in cols))
    for key, row in sweep.items():
        if key.startswith("ratio"):
            continue
        print(f"{key:<24}" + "".join(f"{_f(row.get(c)):>9}" for c in cols))
    for other in _OTHERS:
        row = sweep.get(f"ratio_certscope_over_{other}")
        if row:
            name = f"ratio vs {other}"
            print(f"{name:<24}" + "".join(f"{_f(row.get(c), '{:.2f}'):>9}" for c in cols))


def print_probe(s: dict[str, Any], a: dict[str, Any]) -> None:
    print()
    print(
        f"== /probe: {a['probes']} probes over {a['endpoints']} endpoints, client concurrency "
        f"{a['concurrency']}, median of {a['repeat']} round(s)"
    )
    print(
        f"{'exporter':<18}{'CPU ms/probe':>13}{'best':>7}{'1st pass':>10}{'later':>10}"
        f"{'probes/s':>10}{'p50 ms':>9}{'ok':>12}"
    )
    for key, row in s["probe"].items():
        print(
            f"{key:<18}{_f(row['cpu_ms_per_probe']):>13}{_f(row['cpu_ms_per_probe_min']):>7}"
            f"{_f(row['cpu_ms_per_probe_first_pass']):>10}"
            f"{_f(row['cpu_ms_per_probe_later_passes']):>10}"
            f"{_f(row['probes_per_second'], '{:.0f}'):>10}{_f(row['latency_ms_p50'], '{:.1f}'):>9}"
            f"{row['ok']:>7}/{row['probes']:<5}"
        )
    for other in _OTHERS:
        r = s.get(f"ratio_certscope_over_{other}")
        if r is not None:
            note = f" (target <= {RATIO_TARGET})" if other == "blackbox" else ""
            r_min = s.get(f"ratio_certscope_over_{other}_of_minima")
            print(
                f"CPU per probe, certscope / {other}: {r:.2f} median, "
                f"{_f(r_min, '{:.2f}')} best rounds{note}"
            )
    if s.get("ratio_per_round"):
        print(f"  per round: {', '.join(f'{r:.2f}' for r in s['ratio_per_round'])}")
    _print_sweep(s.get("steady_state_by_concurrency", {}))


def _print_scheduler(sched: dict[str, Any]) -> None:
    print()
    print(
        f"== scheduler: {sched['targets']} targets every {sched['interval_seconds']:g}s, "
        f"concurrency {sched['concurrency']}, window {sched['window_seconds']:.0f}s"
    )
    print(
        f"probes {sched['probes']:.0f} (expected ~{sched['expected_probes']}, failures "
        f"{sched['failures']:.0f}), {sched['probes_per_second']} probes/s, "
        f"CPU {_f(sched['cpu_ms_per_probe'])} ms/probe, "
        f"{100 * sched['cpu_share_of_one_core']:.1f}% of one core; "
        f"GET /metrics ({sched['metrics_bytes'] // 1024} KiB) {sched['metrics_get_ms_median']} ms"
    )


def _print_render(render: dict[str, Any]) -> None:
    print()
    print(
        f"== /metrics for {render['targets']} synthetic targets: {render['series']} series, "
        f"{render['bytes'] / 1e6:.1f} MB"
    )
    churns = "   ".join(
        f"{f * 100:g}% new {render[f'warm_after_{pct(f)}_churn_ms']['median']:.0f}" for f in CHURN
    )
    print(
        f"Exposition.render ms: cold {render['cold_ms']['median']:.0f}   {churns}   "
        f"unchanged {render['warm_unchanged_ms']['median']:.0f}   "
        f"(+ utf-8 encode {render['utf8_encode_ms']['median']:.0f})"
    )


def _print_http(http: dict[str, Any]) -> None:
    print(
        f"HTTP GET /metrics ms: cold {http['cold_get_ms']:.0f}   "
        f"1% new {http['warm_after_1pct_churn_get_ms']['median']:.0f}   "
        f"50% new {http['after_50pct_churn_get_ms']['median']:.0f}   "
        f"unchanged {http['warm_unchanged_get_ms']['median']:.0f}   "
        f"(server CPU: cold {http['cold_server_cpu_ms']:.0f}, "
        f"1% new {http['warm_after_1pct_churn_server_cpu_ms_median']:.0f}, "
        f"50% new {http['after_50pct_churn_server_cpu_ms_median']:.0f})"
    )
    print(
        f"rendering when results are stored, CPU ms: all {http['store_all_cpu_ms']:.0f}   "
        f"1% {http['store_1pct_cpu_ms_median']:.0f}   "
        f"50% {http['store_50pct_cpu_ms_median']:.0f}"
    )


def _print_scale(scale: list[dict[str, Any]]) -> None:
    print(
        "cold Exposition.render by size: "
        + "   ".join(
            f"{row['targets']} targets {row['cold_ms']:.0f} ms "
            f"({row['us_per_series']:.2f} us/series)"
            for row in scale
        )
    )


def _print_checks(checks: dict[str, Any]) -> None:
    print()
    print("== targets")
    for name, c in checks.items():
        print(
            f"{name:<40}{c['value']:>10.2f}  <= {c['target']:<8g}{'met' if c['met'] else 'MISSED'}"
        )


def _print_profile(p: dict[str, Any]) -> None:
    print()
    print(f"== cProfile, CPU time ({p['workload']}), top by own time; full text: {p['text']}")
    for row in p["self"][:12]:
        print(f"{100 * (row['tottime_share'] or 0):5.1f}%  {row['calls']:>8}  {row['function']}")


def print_summary(report: dict[str, Any]) -> None:
    s = report["summary"]
    if s["probe"]:
        print_probe(s, report["args"])
    for sched in report.get("scheduler_runs", []):
        _print_scheduler(sched)
    if report.get("render_inprocess"):
        _print_render(report["render_inprocess"])
    if report.get("render_http"):
        _print_http(report["render_http"])
    if report.get("render_scale"):
        _print_scale(report["render_scale"])
    for err in report.get("errors", []):
        print()
        print(f"!! {err['phase']} failed: {err['error'].splitlines()[0] if err['error'] else ''}")
    if s.get("checks"):
        _print_checks(s["checks"])
    for p in report.get("profiles", []):
        _print_profile(p)


# --- profiling ----------------------------------------------------------------------------------


def profile_report(path: Path, out: Path, limit: int = 30) -> dict[str, list[dict[str, Any]]]:
    """Write the pstats text to ``out``; return the top rows by own and by cumulative time."""
    with open(out, "w") as fh:
        stats = pstats.Stats(str(path), stream=fh)
        stats.strip_dirs()
        for key in ("tottime", "cumulative"):
            stats.sort_stats(key).print_stats(limit)
    stats = pstats.Stats(str(path))
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = stats.total_tt  # type: ignore[attr-defined]

    def rows(index: int) -> list[dict[str, Any]]:
        out_rows = []
        ranked = sorted(raw.items(), key=lambda kv: kv[1][index], reverse=True)[:limit]
        for (file, line, func), (_cc, nc, tt, ct, _callers) in ranked:
            where = f"{Path(file).parent.name}/{Path(file).name}:{line}" if line else file
            out_rows.append(
                {
                    "function": f"{where}({func})",
                    "calls": nc,
                    "tottime_s": round(tt, 4),
                    "cumtime_s": round(ct, 4),
                    "tottime_share": round(tt / total, 4) if total else None,
                    "cumtime_share": round(ct / total, 4) if total else None,
                }
            )
        return out_rows

    return {"self": rows(2), "cumulative": rows(3)}
