"""The SOC 2 evidence report (``certscope evidence``): what Prometheus recorded over a period.

Data flow, one direction only::

    query.plan ─► query.fetch (Prometheus HTTP API, chunked) ─► {name: Matrix}
        ─► analyse.analyse (pure) ─► Evidence ─► charts.render + report.render ─► files

- :mod:`.model`   the evaluation grid and run-length series (12 months stay small)
- :mod:`.query`   the PromQL of the report and the HTTP client (retries, chunks, progress)
- :mod:`.analyse` gaps, inventory, renewals, alert episodes, findings, per-control results
- :mod:`.charts`  PNG charts (matplotlib, Agg backend)
- :mod:`.report`  report.html, CSV files, summary.json, manifest.json
- :mod:`.cli`     the ``evidence`` subcommand
"""
