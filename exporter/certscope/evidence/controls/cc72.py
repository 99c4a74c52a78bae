"""CC7.2: monitoring of system components (certscope itself and what it probes)."""

from __future__ import annotations

from ..facts import NOT_MONITORED, Check
from ..verdict import FAIL, INSUFFICIENT, PASS, PASS_WITH_GAPS
from .base import Context, Control


def checks(ctx: Context) -> list[Check]:
    job, p = ctx.job, ctx.p
    gaps = job.gaps
    if not job.observed:
        result = INSUFFICIENT
        detail = f"no successful scrape of a job matching {p.job_regex!r} in the period"
    elif gaps:
        # gaps lower the observed share; they are not by themselves a failure
        result = PASS_WITH_GAPS if job.ratio >= p.insufficient_below else INSUFFICIENT
        detail = (
            f"{len(gaps)} monitoring gap(s), {sum(g.seconds for g in gaps):.0f} s in total; "
            f"the exporter was monitored during {job.ratio:.2%} of the period"
        )
    else:
        result = PASS
        detail = "the exporter was scraped throughout the period"
    out = [
        Check(
            "exporter_scraped",
            "Prometheus scraped the certscope exporter throughout the period (up)",
            result,
            detail,
            {
                "instances": len(ctx.exporter) - 1,
                "gaps": len(gaps),
                "gap_seconds": round(sum(g.seconds for g in gaps), 3),
                "coverage_ratio": round(job.ratio, 6),
            },
        )
    ]
    target_gaps = [g for t in ctx.targets for g in t.gaps]
    if not ctx.targets:
        result = INSUFFICIENT
        detail = "no probe or store refresh was reported in the period"
    elif target_gaps:
        kinds = sorted({k for g in target_gaps for k in g.kind.split("+")})
        # a probe or store that ran and failed is a failure; time not monitored is a gap
        result = FAIL if set(kinds) - {NOT_MONITORED} else PASS_WITH_GAPS
        subjects = len({tuple(g.subject.items()) for g in target_gaps})
        detail = f"{len(target_gaps)} gap(s) across {subjects} target(s): " + ", ".join(kinds)
    else:
        result = PASS
        detail = f"all {len(ctx.targets)} target(s) and store(s) probed and read without a gap"
    out.append(
        Check(
            "targets_probed",
            "Every TLS target was probed and every store read, successfully and on time",
            result,
            detail,
            {
                "targets": len(ctx.targets),
                "gaps": len(target_gaps),
                "monitoring_alerts": len([a for a in ctx.alerts if a.control == "CC7.2"]),
            },
        )
    )
    return out


CONTROL = Control("CC7.2", "Monitoring of system components", checks)
