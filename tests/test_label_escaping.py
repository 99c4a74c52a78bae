"""Label values in the exposition: any text a certificate or a config can carry parses back.

A subject, SAN or user label with a quote, backslash or newline must not end the label value
early (which would let a certificate's text forge other labels or series).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from certscope.collector import escape, render_once
from certscope.results import ProbeResult
from certscope.tls.handshake import Outcome

# Surrogates cannot be encoded as UTF-8, so no certificate or YAML file can carry them.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=300)


def parsed_labels(text: str) -> list[dict[str, str]]:
    return [s.labels for fam in text_string_to_metric_families(text) for s in fam.samples]


@settings(deadline=50, max_examples=500)
@given(TEXT)
def test_any_value_round_trips(value: str) -> None:
    (labels,) = parsed_labels(f'm{{l="{escape(value)}",after="x"}} 1\n')
    assert labels == {"l": value, "after": "x"}


def test_quote_backslash_and_newline_are_escaped() -> None:
    assert escape('a"b') == 'a\\"b'
    assert escape("a\\b") == "a\\\\b"
    assert escape("a\nb") == "a\\nb"
    assert escape('\\"') == '\\\\\\"'


def test_long_values_are_cut_with_an_ellipsis() -> None:
    cut = escape("x" * 5000)
    assert len(cut) == 1024 and cut.endswith("…")


def test_a_hostile_label_cannot_forge_series() -> None:
    hostile = 'x",job="forged"} 1\ncertscope_probe_success{source="forged'
    result = ProbeResult(
        name="web",
        address="web.test:443",
        server_name="web.test",
        labels=(("owner", hostile),),
        timestamp=1.0,
        duration=0.1,
        outcome=Outcome(),
        facts=(),
        verdict=None,
        last_success=None,
    )
    text = render_once([result])
    samples = parsed_labels(text)
    assert samples and all(s.get("owner") == hostile for s in samples)
    assert all(s.get("source") == "web" and "job" not in s for s in samples)
    assert not any(
        line.startswith('certscope_probe_success{source="forged') for line in text.splitlines()
    )
