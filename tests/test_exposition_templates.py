"""Rendered results are held as identity-free templates that targets share."""

from __future__ import annotations

import dataclasses
from typing import cast

import pytest

from certscope.certs import CertFacts
from certscope.collector import FAMILIES, Exposition, render_direct
from certscope.collector.exposition import Entry, Layout
from certscope.policy import Assessment
from certscope.results import AssessedLocation, ProbeResult
from certscope.tls.handshake import Outcome
from helpers.results import expected_exposition, probe_result


def _entry(result: ProbeResult | AssessedLocation) -> Entry:
    """The rendering a result holds (its identity, the shared layout, its own values)."""
    return result.rendered_identity, cast(Layout, result.rendered), result.rendered_values


def _fleet(n: int, facts: tuple[CertFacts, ...]) -> list[ProbeResult]:
    """``n`` targets behind the same certificates, each with its own name, labels and times."""
    return [
        dataclasses.replace(
            probe_result(f"svc-{i}", labels=(("team", f't"{i % 3}'),), facts=facts),
            timestamp=1_000.0 + i,
            duration=0.01 * (i + 1),
        )
        for i in range(n)
    ]


def test_targets_behind_the_same_certificates_share_their_templates() -> None:
    facts = tuple(
        CertFacts(
            der_sha256=f"{i:064x}",
            subject=f"CN=shared-{i}",
            serial=str(i),
            sans=tuple(f"host-{j}.example.com" for j in range(20)),
        )
        for i in range(2)
    )
    results = _fleet(200, facts)
    exposition = Exposition()
    exposition.prepare(results, ())
    assert exposition.render_bytes(results).decode() == expected_exposition(results)
    entries = [_entry(r) for r in results]
    # One layout (certificate and probe templates, the format of the times) for all 200,
    # each its own times.
    assert all(e[1] is entries[0][1] for e in entries)
    assert len({id(e[2]) for e in entries}) == len(results)
    assert exposition.memory_bytes(results) * 4 < exposition.held_bytes(results)


def test_a_result_holds_only_the_values_of_its_own_families() -> None:
    """Times and durations are a result's own: it holds their values, formatted once, one
    space between; the lines around them are a format that targets share."""
    result = dataclasses.replace(
        probe_result("svc", facts=(CertFacts(der_sha256="d" * 64, subject="CN=x", serial="1"),)),
        timestamp=1_700_000_000.25,
        duration=0.125,
        last_success=1_699_999_999.5,
        outcome=Outcome(chain=(b"x",), phases=(("resolve", 1e-05), ("connect", 0.5))),
    )
    exposition = Exposition()
    assert exposition.render(results := [result]) == expected_exposition(results)
    identity, layout, own = _entry(result)
    assert own == b"0.125 1700000000.25 1e-05 0.5 1699999999.5"
    assert identity == b'source_kind="tls",source="svc",location="svc:443"'
    assert identity not in layout[3] and b"1700000000.25" not in layout[3]


@pytest.mark.parametrize(
    "phase", ["100%", "%s", "%%d", "a\x01b", "a\x00b", "x y", 'q"\\n'], ids=repr
)
@pytest.mark.parametrize("team", ["plain", "50%", "%s", "a\x01b", "a\x00b", "} 1\n"], ids=repr)
def test_own_values_give_back_the_text_whatever_the_labels_hold(phase: str, team: str) -> None:
    """Formats and markers must not change a byte: a label holding ``%``, a marker byte, a
    space or what looks like a value still renders as its lines say (a family whose text
    holds a marker outside the identity is kept as a template instead)."""
    results = [
        dataclasses.replace(
            probe_result(f"svc-{i}", labels=(("team", team),)),
            timestamp=1_000.5 + i,
            outcome=Outcome(phases=((phase, 0.25 + i), ("connect", 1e-07))),
        )
        for i in range(3)
    ]
    exposition = Exposition()
    exposition.prepare(results, ())
    assert exposition.render(results) == expected_exposition(results)
    assert exposition.held_bytes(results) == len(expected_exposition(results).encode()) - sum(
        len(f"# HELP {f.name} {f.help}\n# TYPE {f.name} {f.type}\n".encode())
        for f in FAMILIES
        if f"\n{f.name}{{" in "\n" + expected_exposition(results)
    )


def test_a_target_s_probe_and_its_assessment_hold_one_identity() -> None:
    result = probe_result("svc", labels=(("team", "a"),))
    assessed = AssessedLocation(
        "tls", "svc", "svc:443", (("team", "a"),), Assessment(findings=()), scan_interval=60.0
    )
    exposition = Exposition()
    exposition.prepare([result, assessed], ())
    assert _entry(result)[0] is _entry(assessed)[0]


def test_a_certificate_of_its_own_is_not_shared() -> None:
    shared = CertFacts(der_sha256="a" * 64, subject="CN=shared", serial="1")
    own = CertFacts(der_sha256="b" * 64, subject="CN=own", serial="2")
    results = [*_fleet(3, (shared,)), *_fleet(1, (own,))]
    results[-1] = dataclasses.replace(results[-1], name="svc-own", address="svc-own:443")
    exposition = Exposition()
    assert exposition.render(results) == expected_exposition(results)
    entries = [_entry(r) for r in results]
    assert entries[0][1] is entries[1][1] is entries[2][1]
    assert entries[3][1][1] is not entries[0][1][1] and entries[3][1][1] != entries[0][1][1]


def test_a_direct_render_is_the_same_text_and_shares_nothing() -> None:
    """``/probe`` renders straight from the lines: the same bytes as the held exposition, and
    nothing enters the table that targets share."""
    from certscope.certs import shared

    own = CertFacts(der_sha256="c" * 64, subject="CN=direct", serial="3", sans=("a.example",))
    results = _fleet(5, (own,))
    held = len(shared.table)
    direct = render_direct(results)
    assert len(shared.table) == held
    assert direct == Exposition().render_bytes(results)
    assert direct.decode() == expected_exposition(results)
    assert render_direct(results[:1]).decode() == expected_exposition(results[:1])


def test_targets_with_certificates_of_their_own_do_not_evict_shared_der(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Templates have a table of their own: a fleet where every target has its own certificate
    must not clear the table that shares DER (an intermediate behind every target) and
    verdicts, or each result would hold its own copy of them."""
    from certscope import certs

    monkeypatch.setattr(certs.shared, "table", {})
    monkeypatch.setattr(certs.shared, "limit", 16)
    intermediate = certs.shared_der(b"intermediate DER " * 64)
    results = [
        dataclasses.replace(
            _fleet(1, (CertFacts(der_sha256=f"{i:064x}", subject=f"CN=own-{i}", serial=str(i)),))[
                0
            ],
            name=f"own-{i}",
        )
        for i in range(40)
    ]
    exposition = Exposition()
    exposition.prepare(results, ())
    assert exposition.render(results) == expected_exposition(results)
    assert certs.shared_der(bytes(bytearray(intermediate))) is intermediate  # an equal copy
