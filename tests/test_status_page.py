"""The status page at / as a person sees it: rendered by headless Chromium."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers.app import start_client as _client
from helpers.app import wait_ready as _wait_ready
from helpers.browser import distinct_colours, dump_dom, screenshot
from helpers.pki import TestPKI
from helpers.servers import tls_server


async def test_status_page_renders_targets_and_failures(pki: TestPKI, tmp_path: Path) -> None:
    leaf = pki.leaf("shop.test", days_left=12)
    expired = pki.leaf("old.test", days_left=-2)
    with tls_server(leaf.chain, leaf.key) as ok, tls_server(expired.chain, expired.key) as bad:
        cfg = tmp_path / "c.yml"
        cfg.write_text(
            f"""
defaults: {{enumerate: false, ca_file: {pki.ca_file}}}
targets:
  - {{address: {ok.address}, name: shop, sni: shop.test}}
  - {{address: {bad.address}, name: legacy, sni: old.test}}
  - {{address: 127.0.0.1:1, name: gone}}
"""
        )
        client = await _client(cfg)
        try:
            await _wait_ready(client)
            url = str(client.make_url("/"))
            dom = await asyncio.to_thread(dump_dom, url)
            png = await asyncio.to_thread(screenshot, url, tmp_path / "status.png")
        finally:
            await client.close()
    assert "<h2>TLS targets</h2>" in dom
    for text in ("shop.test", "old.test", "connect_refused", "expired", "Stored certificates"):
        assert text in dom, text
    assert 'class="expired"' in dom and 'class="d30"' in dom  # days left coloured by window
    assert distinct_colours(png) > 3  # not a blank page


async def test_status_page_escapes_hostile_names(tmp_path: Path) -> None:
    """A target name is data: markup in it is shown as text, never run (autoescaping)."""
    hostile = 'x<script>alert(1)</script>"onload=alert(2) y'
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "defaults: {enumerate: false}\n"
        f"targets:\n  - {{address: '127.0.0.1:1', name: '{hostile}'}}\n"
    )
    client = await _client(cfg)
    try:
        await _wait_ready(client)
        resp = await client.get("/")
        page = await resp.text()
    finally:
        await client.close()
    assert resp.status == 200
    assert "<script>" not in page and '"onload' not in page
    assert "x&lt;script&gt;alert(1)&lt;/script&gt;&#34;onload=alert(2) y" in page
