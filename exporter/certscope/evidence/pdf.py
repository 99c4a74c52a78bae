"""report.pdf: the HTML report printed by WeasyPrint, for auditors who file PDFs.

The HTML is self-contained (inline CSS, charts as ``data:`` URIs), so the PDF needs nothing
from elsewhere; the URL fetcher allows ``data:`` URLs only, so nothing in a label value could make
the renderer reach out. WeasyPrint needs Pango (Debian ``libpango-1.0-0``,
``libpangoft2-1.0-0``), installed by scripts/install-system-deps.sh.
"""

from __future__ import annotations

#: Print layout: landscape A4 fits the wide tables; tables repeat their header on each page.
PRINT_CSS = """
@page { size: A4 landscape; margin: 12mm;
        @bottom-right { content: "page " counter(page) " of " counter(pages); font-size: 8pt; } }
body { margin: 0; max-width: none; font-size: 9pt; }
table { font-size: 7pt; } thead { display: table-header-group; }
th, td, td.t { white-space: normal; overflow-wrap: anywhere; }
tr, img { page-break-inside: avoid; } h2 { page-break-after: avoid; }
"""


def render(report_html: bytes) -> bytes:
    """The PDF of ``report.html``."""
    from weasyprint import CSS, HTML  # loaded only when a PDF is written
    from weasyprint.urls import URLFetcher

    fetcher = URLFetcher(allowed_protocols=["data"])
    document = HTML(string=report_html.decode(), url_fetcher=fetcher)
    pdf: bytes = document.write_pdf(stylesheets=[CSS(string=PRINT_CSS)])
    return pdf
