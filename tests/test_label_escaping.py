"""Label values in the exposition: any text a certificate or a config can carry parses back.

A subject, SAN or user label with a quote, backslash or newline must not end the label value
early (which would let a certificate's text forge other labels or series).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from certscope.certs import CertFacts
from certscope.collector import escape, render_once
from certscope.evidence.facts import INFO_LABELS
from helpers.results import probe_result

# Surrogates cannot be encoded as UTF-8, so no certificate or YAML file can carry them.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)


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
    text = render_once([probe_result("web", labels=(("owner", hostile),))])
    samples = parsed_labels(text)
    assert samples and all(s.get("owner") == hostile for s in samples)
    assert all(s.get("source") == "web" and "job" not in s for s in samples)
    assert not any(
        line.startswith('certscope_probe_success{source="forged') for line in text.splitlines()
    )


# Label values prometheus_client writes unchanged (certscope cuts values over 1024 characters).
SHORT = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)
# The order certscope writes them in (the reference sorts them; the comparison is by pair).
_CERT_INFO_LABELS = ("chain_position", "subject_cn", "issuer_cn", *INFO_LABELS)


_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|\} )')


def label_pairs(text: str, family: str) -> list[list[str]]:
    """Per sample line of ``family``, its ``name="value"`` pairs exactly as written (escaped),
    sorted by name as prometheus_client writes them; a badly escaped value breaks the scan."""
    lines = []
    for line in text.split("\n"):  # not splitlines(): values may hold U+0085, U+2028, ...
        if not line.startswith(family + "{"):
            continue
        pos, pairs, end = len(family) + 1, [], ","
        while end == ",":
            m = _PAIR.match(line, pos)
            assert m is not None, line
            pairs.append(m.group(1) + '="' + m.group(2) + '"')
            pos, end = m.end(), m.group(3)
        lines.append(sorted(pairs))
    return lines


class _Reference:
    """The same series written by prometheus_client, the reference for escaping."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self.families


@settings(deadline=None, max_examples=150)
@given(SHORT, SHORT, SHORT, SHORT, st.lists(SHORT, max_size=3))
def test_rendered_lines_match_prometheus_client(
    name: str, owner: str, subject: str, serial: str, sans: list[str]
) -> None:
    """The cached, prefix-sharing renderer writes exactly the label text prometheus_client
    writes for the same hostile values, byte for byte."""
    leaf = CertFacts(
        der_sha256="ab" * 32,
        subject=subject,
        subject_cn=subject[:20],
        issuer=owner,
        issuer_cn=name,
        serial=serial,
        sans=tuple(sans),
        key_algorithm="EC",
        key_bits=256,
    )
    text = render_once([probe_result(name, labels=(("owner", owner),), facts=(leaf,))])
    identity = ["tls", name, f"{name}:443", owner]
    identity_names = ["source_kind", "source", "location", "owner"]
    success = GaugeMetricFamily("certscope_probe_success", "h", labels=identity_names)
    success.add_metric(identity, 0)
    info = GaugeMetricFamily(
        "certscope_cert_info", "h", labels=[*identity_names, *_CERT_INFO_LABELS]
    )
    cert = [
        "0",
        leaf.subject_cn,
        leaf.issuer_cn,
        serial,
        leaf.der_sha256,
        subject,
        owner,
        ",".join(sans),
        "EC",
        "256",
        "",
        "",
        "",
        "",
        "false",
        "false",
    ]
    info.add_metric([*identity, *cert], 1)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Reference([success, info]))
    reference = generate_latest(registry).decode()
    for family in ("certscope_probe_success", "certscope_cert_info"):
        assert label_pairs(text, family) == label_pairs(reference, family)
    assert parsed_labels(text)  # and the whole exposition parses
