"""Rendered results are held as identity-free templates that targets share."""

from __future__ import annotations

import dataclasses

import pytest

from certscope.certs import CertFacts
from certscope.collector import Exposition, render_direct
from certscope.results import ProbeResult
from helpers.results import expected_exposition, probe_result


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
    entries = [exposition._cache[id(r)] for r in results]
    # One tuple of certificate and probe templates for all 200, each its own times.
    assert all(e[3] is entries[0][3] and e[2] is entries[0][2] for e in entries)
    assert all(e[4] is entries[0][4] for e in entries)
    assert len({id(e[5]) for e in entries}) == len(results)
    assert exposition.memory_bytes() * 4 < exposition.held_bytes()


def test_a_certificate_of_its_own_is_not_shared() -> None:
    shared = CertFacts(der_sha256="a" * 64, subject="CN=shared", serial="1")
    own = CertFacts(der_sha256="b" * 64, subject="CN=own", serial="2")
    results = [*_fleet(3, (shared,)), *_fleet(1, (own,))]
    results[-1] = dataclasses.replace(results[-1], name="svc-own", address="svc-own:443")
    exposition = Exposition()
    assert exposition.render(results) == expected_exposition(results)
    entries = [exposition._cache[id(r)] for r in results]
    assert entries[0][3] is entries[1][3] is entries[2][3]
    assert entries[3][3] is not entries[0][3] and entries[3][3] != entries[0][3]


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
