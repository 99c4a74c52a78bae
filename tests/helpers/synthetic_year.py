"""A year of certscope data as TSDB blocks, for a real Prometheus to serve.

``promtool tsdb create-blocks-from openmetrics`` turns the OpenMetrics text written here into
blocks; a Prometheus started on a copy of them answers the evidence queries exactly as it
would in production. Everything the tests assert is a constant of this module.

The exporter job ``certscope`` (one instance) is scraped every 15 s through 2025, with:

- exporter outages (Prometheus runs, ``up`` is 0) of 2 minutes, 20 minutes and 2 hours;
- Prometheus outages (no sample of anything) of 1 hour and 10 minutes;
- one TLS endpoint whose certificate is renewed twice: on 15 March with the same key
  (``public_key_sha256`` unchanged) and on 15 September with a new key;
- a ``protocol_deprecated`` finding (CC6.7) for two days in May;
- ``CertscopeCertificateExpiring`` firing twice, the second time across the 1-hour
  Prometheus outage (one episode, not two);
- the endpoint (``exposure="external"``) accepts TLS 1.0 with an insecure suite (grade C,
  score 60) until 15 February, then TLS 1.2 and 1.3 only (grade A, score 95).

``up`` is written every 15 s; the exporter's own series and ``ALERTS`` every 60 s (the rule
evaluation interval), which keeps the text near 250 MB instead of a gigabyte. Blocks are built
once and cached under the system temporary directory, keyed by this file's content.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


START = ts("2025-01-01T00:00:00")
END = ts("2026-01-01T00:00:00")
SCRAPE = 15.0
EVAL = 60.0
OFFSET = 7.0  # scrapes at :07, :22, :37, :52
FIRST = START - 60 + OFFSET  # a minute of data before the period
JOB = 'job="certscope",instance="c1:9899"'

#: (from, to): up == 0 for every scrape in [from, to)
EXPORTER_DOWN = [
    (ts("2025-02-01T10:00:00"), ts("2025-02-01T10:02:00")),
    (ts("2025-04-01T10:00:00"), ts("2025-04-01T10:20:00")),
    (ts("2025-06-01T10:00:00"), ts("2025-06-01T12:00:00")),
]
#: (from, to): no sample of anything in [from, to)
PROMETHEUS_DOWN = [
    (ts("2025-08-01T10:00:00"), ts("2025-08-01T11:00:00")),
    (ts("2025-10-01T03:00:00"), ts("2025-10-01T03:10:00")),
]
RENEWED_SAME_KEY = ts("2025-03-15T12:00:00")
RENEWED_NEW_KEY = ts("2025-09-15T12:00:00")
FINDING = (ts("2025-05-01T00:00:00"), ts("2025-05-03T00:00:00"))
TLS10_DISABLED = ts("2025-02-15T00:00:00")
ENDPOINT_LABELS = 'exposure="external",environment="prod",owner="team-web"'
EXPIRING = [
    (ts("2025-03-01T00:00:00"), RENEWED_SAME_KEY),
    (ts("2025-07-20T00:00:00"), RENEWED_NEW_KEY),
]

SLOT = 'source_kind="tls",source="web",location="web.example:443",chain_position="0"'
CERTS = [  # serial, public key, notAfter, from, to
    ("01", "aa" * 32, ts("2025-04-01T00:00:00"), FIRST, RENEWED_SAME_KEY),
    ("02", "aa" * 32, ts("2025-10-01T00:00:00"), RENEWED_SAME_KEY, RENEWED_NEW_KEY),
    ("03", "bb" * 32, ts("2026-04-01T00:00:00"), RENEWED_NEW_KEY, END + 3600),
]


def scrape_times(every: float, offset: float) -> Iterator[float]:
    t = FIRST - OFFSET + offset
    while t <= END + 60:
        if not any(a <= t < b for a, b in PROMETHEUS_DOWN):
            yield t
        t += every


def exporter_up(t: float) -> bool:
    return not any(a <= t < b for a, b in EXPORTER_DOWN)


def successes() -> list[float]:
    """Every successful scrape of ``up`` (what the expected gaps are computed from)."""
    return [t for t in scrape_times(SCRAPE, OFFSET) if exporter_up(t)]


def expected_gaps() -> list[tuple[str, float, float]]:
    """(kind, start, end) of each gap as docs/evidence.md defines it: from when the first
    missed scrape was due to the next successful scrape."""
    ok = successes()
    out = []
    for kind, spans in (("exporter_down", EXPORTER_DOWN), ("no_data", PROMETHEUS_DOWN)):
        for a, b in spans:
            last = max(t for t in ok if t < a)
            nxt = min(t for t in ok if t >= b)
            out.append((kind, last + SCRAPE, nxt))
    return sorted(out, key=lambda g: g[1])


def _lines() -> Iterator[str]:
    yield "# TYPE up gauge"
    for t in scrape_times(SCRAPE, OFFSET):
        yield f"up{{{JOB}}} {1 if exporter_up(t) else 0} {t:.0f}"
    slow = [t for t in scrape_times(EVAL, OFFSET) if exporter_up(t)]

    def gauge(
        name: str, labels: str, value: str, lo: float = FIRST, hi: float = END + 3600
    ) -> Iterator[str]:
        for t in slow:
            if lo <= t < hi:
                yield f"{name}{{{JOB},{labels}}} {value} {t:.0f}"

    yield "# TYPE certscope_cert_info gauge"
    for serial, spki, _, lo, hi in CERTS:
        labels = (
            f'{SLOT},subject_cn="web.example",issuer_cn="Example CA",serial="{serial}",'
            f'fingerprint_sha256="{serial * 32}",public_key_sha256="{spki}",'
            'key_algorithm="EC",key_bits="256",key_curve="P-256"'
        )
        yield from gauge("certscope_cert_info", labels, "1", lo, hi)
    yield "# TYPE certscope_cert_not_after_timestamp_seconds gauge"
    for t in slow:
        after = next(c[2] for c in CERTS if c[3] <= t < c[4])
        yield (
            f"certscope_cert_not_after_timestamp_seconds{{{JOB},{SLOT},"
            f'subject_cn="web.example",issuer_cn="Example CA"}} {after:.0f} {t:.0f}'
        )
    endpoint = 'source_kind="tls",source="web",location="web.example:443"'
    labelled = f"{endpoint},{ENDPOINT_LABELS}"
    for name, extra in (
        ("certscope_probe_success", ""),
        ("certscope_cert_verified", ""),
    ):
        yield f"# TYPE {name} gauge"
        yield from gauge(name, labelled + extra, "1")
    yield "# TYPE certscope_tls_protocol_supported gauge"
    for protocol in ("TLSv1.2", "TLSv1.3"):
        yield from gauge(
            "certscope_tls_protocol_supported", f'{labelled},protocol="{protocol}"', "1"
        )
    old = f'{labelled},protocol="TLSv1.0"'
    yield from gauge("certscope_tls_protocol_supported", old, "1", hi=TLS10_DISABLED)
    yield from gauge("certscope_tls_protocol_supported", old, "0", lo=TLS10_DISABLED)
    yield "# TYPE certscope_tls_cipher_suite_supported gauge"
    suite = "certscope_tls_cipher_suite_supported"
    good = 'protocol="TLSv1.2",cipher="TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",class="recommended"'
    bad = 'protocol="TLSv1.0",cipher="TLS_RSA_WITH_3DES_EDE_CBC_SHA",class="insecure"'
    yield from gauge(suite, f"{labelled},{good}", "1")
    yield from gauge(suite, f"{labelled},{bad}", "1", hi=TLS10_DISABLED)
    yield "# TYPE certscope_tls_grade_info gauge"
    yield from gauge("certscope_tls_grade_info", f'{labelled},grade="C"', "1", hi=TLS10_DISABLED)
    yield from gauge("certscope_tls_grade_info", f'{labelled},grade="A"', "1", lo=TLS10_DISABLED)
    yield "# TYPE certscope_tls_grade_score gauge"
    yield from gauge("certscope_tls_grade_score", labelled, "60", hi=TLS10_DISABLED)
    yield from gauge("certscope_tls_grade_score", labelled, "95", lo=TLS10_DISABLED)
    yield "# TYPE certscope_probe_timestamp_seconds gauge"
    for t in slow:
        yield f"certscope_probe_timestamp_seconds{{{JOB},{labelled}}} {t - 3:.0f} {t:.0f}"
    yield "# TYPE certscope_tls_scan_last_success_timestamp_seconds gauge"
    for t in slow:
        scan = t // 3600 * 3600
        yield f"certscope_tls_scan_last_success_timestamp_seconds{{{JOB},{labelled}}} {scan:.0f} {t:.0f}"
    yield "# TYPE certscope_policy_violation gauge"
    finding = f'{endpoint},rule="protocol_deprecated",severity="warning",control="CC6.7"'
    yield from gauge("certscope_policy_violation", finding, "1", *FINDING)
    yield "# TYPE ALERTS gauge"
    alert = (
        'alertname="CertscopeCertificateExpiring",alertstate="firing",severity="warning",'
        f'soc2_control="CC6.1",window="30d",{endpoint},subject_cn="web.example"'
    )
    for a, b in EXPIRING:
        for t in scrape_times(EVAL, OFFSET):  # rules run while the exporter is down too
            if a <= t < b:
                yield f"ALERTS{{{JOB},{alert}}} 1 {t:.0f}"
    yield "# EOF"


def build(cache_root: Path | None = None) -> Path:
    """The directory of blocks (built once per content of this file)."""
    key = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    root = cache_root or Path(tempfile.gettempdir())
    blocks = root / f"certscope-evidence-year-{key}"
    if (blocks / "done").exists():
        return blocks
    promtool = shutil.which("promtool")
    if promtool is None:
        raise RuntimeError("promtool not found: install the Debian package 'prometheus'")
    work = Path(tempfile.mkdtemp(prefix="certscope-year-", dir=root))
    try:
        text = work / "year.om"
        with text.open("w") as f:
            for line in _lines():
                f.write(line + "\n")
        out = work / "blocks"
        subprocess.run(
            [
                promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "--max-block-duration=4380h",
                str(text),
                str(out),
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        text.unlink()
        (out / "done").write_text(key)
        shutil.rmtree(blocks, ignore_errors=True)
        out.rename(blocks)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return blocks
