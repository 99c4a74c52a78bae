"""The reason vocabulary: the enums in certscope.errors are the documented label values.

docs/metrics.md lists every vocabulary in its "Reason values" table; the values are a public
contract, so the table, the detailed sections and the code must not drift apart.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

import pytest

from certscope import errors
from certscope.tls import enumerate as tls_enumerate
from certscope.tls import hello as tls_hello

METRICS_MD = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"

VOCABULARIES: dict[str, type[StrEnum]] = {
    "ProbeFailure": errors.ProbeFailure,
    "VerifyFailure": errors.VerifyFailure,
    "ScanFailure": errors.ScanFailure,
    "HelloFailure": errors.HelloFailure,
    "SourceFailure": errors.SourceFailure,
    "ItemFailure": errors.ItemFailure,
}

#: Vocabularies whose label values each have a meaning written out above the table.
EXPLAINED = ("ProbeFailure", "VerifyFailure", "SourceFailure", "ItemFailure")


def _reason_table(text: str) -> dict[str, list[str]]:
    section = text.split("\n## Reason values\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = re.findall(r"`([a-z0-9_]+)`", cells[2])
    return rows


def test_the_reason_table_lists_every_vocabulary() -> None:
    assert set(_reason_table(METRICS_MD.read_text())) == set(VOCABULARIES)


@pytest.mark.parametrize("name", sorted(VOCABULARIES))
def test_documented_values_equal_the_enum(name: str) -> None:
    documented = _reason_table(METRICS_MD.read_text())[name]
    assert len(documented) == len(set(documented)), f"{name}: a value is listed twice"
    assert documented == [m.value for m in VOCABULARIES[name]]


@pytest.mark.parametrize("name", EXPLAINED)
def test_every_value_is_explained_outside_the_table(name: str) -> None:
    text = METRICS_MD.read_text()
    prose = text.split("\n## Reason values\n", 1)[0]
    missing = [m.value for m in VOCABULARIES[name] if f"`{m.value}`" not in prose]
    assert not missing, f"{name} values with no meaning in docs/metrics.md: {missing}"


def test_values_are_label_safe_and_unique_per_vocabulary() -> None:
    for name, enum in VOCABULARIES.items():
        values = [m.value for m in enum]
        assert len(values) == len(set(values)), name
        for value in values:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", value), (name, value)


@pytest.mark.parametrize(
    ("local", "shared"),
    [
        (tls_enumerate.ScanFailure, errors.ScanFailure),
        (tls_hello.ErrorReason, errors.HelloFailure),
    ],
)
def test_tls_reasons_are_the_shared_vocabulary(local: type[StrEnum], shared: type[StrEnum]) -> None:
    # The TLS modules name their reasons locally until they import them from certscope.errors;
    # until then the two must be value for value the same.
    assert {m.name: m.value for m in local} == {m.name: m.value for m in shared}
