"""Snapshot → Prometheus text exposition. All metric names live here, documented in docs/metrics.md.

Each result's sample lines are rendered once, when the result is first seen, and held as
templates shared between targets for as long as that result is current (see
:mod:`.exposition`); a scrape only joins those under each family's HELP/TYPE header. That
keeps ``/metrics`` for 10,000 targets well under the scrape budget, and a scrape never does
I/O or waits for probes.

- :mod:`.families`: every family, its type and help text;
- :mod:`.lines`: escaping, value formatting and the certificate lines all results share;
- :mod:`.targets` and :mod:`.sources`: the lines of each kind of result;
- :mod:`.exposition`: templates, the shared tables and the scrape.
"""

from .exposition import Exposition, Result, render_direct, render_once
from .families import CLOUD_FAMILIES, FAMILIES, FAMILY_NAMES, Family
from .lines import Fragments, _cert_text, escape
from .sources import MAX_ITEM_ERROR_SERIES, cloud_fragments, source_fragments
from .targets import assessment_fragments, policy_fragments, probe_fragments, ssh_fragments

__all__ = [
    "CLOUD_FAMILIES",
    "FAMILIES",
    "FAMILY_NAMES",
    "MAX_ITEM_ERROR_SERIES",
    "Exposition",
    "Family",
    "Fragments",
    "Result",
    "_cert_text",
    "assessment_fragments",
    "cloud_fragments",
    "escape",
    "policy_fragments",
    "probe_fragments",
    "render_direct",
    "render_once",
    "source_fragments",
    "ssh_fragments",
]
