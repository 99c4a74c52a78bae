"""Served versus stored: a renewal written to disk but never loaded by the server is caught."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

from helpers.app import AppClient, StartApp, find
from helpers.pki import TestPKI
from helpers.servers import tls_server


async def _metrics_until(
    client: AppClient, predicate: Callable[[str], bool], tries: int = 100
) -> str:
    text = ""
    for _ in range(tries):
        text = await (await client.get("/metrics")).text()
        if predicate(text):
            return text
        await asyncio.sleep(0.1)
    return text


async def test_renewed_but_not_deployed(pki: TestPKI, tmp_path: Path, app_client: StartApp) -> None:
    old = pki.leaf("shop.test", days_left=10)
    new = pki.leaf("shop.test", days_left=90)
    other = pki.leaf("other.test", days_left=50)
    store = tmp_path / "tls"
    store.mkdir()
    shutil.copy(new.cert, store / "shop.pem")  # the renewal landed on disk...
    shutil.copy(other.cert, store / "other.pem")
    with tls_server(old.chain, old.key) as stale, tls_server(new.chain, new.key) as fresh:
        cfg = tmp_path / "c.yml"
        cfg.write_text(
            f"""
defaults: {{enumerate: false, ca_file: {pki.ca_file}}}
sources:
  - {{name: disk, kind: files, paths: ["{store}/*.pem"]}}
targets:
  - {{address: {stale.address}, name: stale, sni: shop.test}}
  - {{address: {fresh.address}, name: fresh, sni: shop.test}}
  - {{address: {stale.address}, name: pinned, sni: shop.test, expects: {{source: disk, location: "*/other.pem"}}}}
  - {{address: {fresh.address}, name: unrelated, sni: nothing.test}}
"""
        )
        client = await app_client(cfg)
        text = await _metrics_until(
            client, lambda t: len(find(t, "certscope_cert_served_matches_stored")) >= 3
        )
    expected = f"disk:{store}/shop.pem"
    # ...but the server still serves the old one
    assert find(
        text, "certscope_cert_served_matches_stored", source="stale", expected_location=expected
    ) == [0]
    assert find(
        text,
        "certscope_policy_violation",
        source="stale",
        rule="served_not_stored",
        control="CC7.1",
    ) == [1]
    assert find(
        text, "certscope_cert_served_matches_stored", source="fresh", expected_location=expected
    ) == [1]
    assert find(text, "certscope_policy_violation", source="fresh", rule="served_not_stored") == []
    # explicit expectation: any difference counts
    pinned = find(
        text,
        "certscope_cert_served_matches_stored",
        source="pinned",
        expected_location=f"disk:{store}/other.pem",
    )
    assert pinned == [0]
    # a name no stored certificate covers: nothing to compare, no series
    assert find(text, "certscope_cert_served_matches_stored", source="unrelated") == []


def test_expects_must_name_a_source(tmp_path: Path) -> None:
    import pytest

    from certscope.config import parse_config
    from certscope.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_config("targets:\n  - {address: a.test:443, expects: {source: nope}}\n", "t")
    assert [str(p) for p in info.value.problems] == [
        "targets[0].expects.source: no source named 'nope'"
    ]
