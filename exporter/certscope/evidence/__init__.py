"""The SOC 2 evidence report (``certscope evidence``): what Prometheus recorded over a period.

Data flow, one direction only::

    query.plan / gaps.count_queries ─► refine.fetch (chunked; coarse first on request)
        ─► gaps (drill-down to raw scrapes) ─► analyse.analyse (pure) ─► Evidence
        ─► endpoints / configuration ─► charts.render + report.render (+ pdf) ─► files

- :mod:`.model`         the evaluation grid and run-length series (12 months stay small)
- :mod:`.http`          authentication and TLS to Prometheus (its ``http_config`` shape)
- :mod:`.query`         the PromQL of the report and the hardened asyncio HTTP client
- :mod:`.refine`        range queries of a long period: bucket aggregates first, then drill down
- :mod:`.gaps`          monitoring gaps at the scrape interval, whatever the step
- :mod:`.verdict`       the control verdicts, shared with the rules pack and the dashboard
- :mod:`.analyse`       coverage, inventory, renewals, alert episodes, findings, controls
- :mod:`.endpoints`     per-endpoint evidence at the end of the period and at its worst
- :mod:`.configuration` loaded rules, Alertmanager and certscope configuration, not covered
- :mod:`.charts`        PNG charts (matplotlib, Agg backend)
- :mod:`.report`        report.html, CSV files, summary.json, manifest.json; :mod:`.pdf`
- :mod:`.cli`           the ``evidence`` subcommand
"""
