"""Probe results built directly, for tests of what is done with a result (exposition, state)."""

from __future__ import annotations

from collections.abc import Sequence

from certscope.certs import CertFacts
from certscope.collector import FAMILIES, probe_fragments
from certscope.results import Labels, ProbeResult
from certscope.tls.handshake import Outcome


def probe_result(
    name: str = "web", labels: Labels = (), facts: tuple[CertFacts, ...] = ()
) -> ProbeResult:
    """A result for ``name`` (``<name>:443``), with ``facts`` as its presented chain if any."""
    return ProbeResult(
        name=name,
        address=f"{name}:443",
        server_name=None,
        labels=labels,
        timestamp=1.0,
        duration=0.1,
        outcome=Outcome(chain=tuple(b"x" for _ in facts)),
        facts=facts,
        verdict=None,
        last_success=None,
    )


def expected_exposition(results: Sequence[ProbeResult]) -> str:
    """The exposition of ``results`` built the plain way, family by family from their lines:
    what every rendering path must produce."""
    out = []
    for family in FAMILIES:
        lines = [line for r in results for line in probe_fragments(r).get(family.name, [])]
        if lines:
            out += [f"# HELP {family.name} {family.help}\n# TYPE {family.name} {family.type}\n"]
            out += lines
    return "".join(out)
