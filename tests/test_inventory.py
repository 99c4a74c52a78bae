"""The certificate inventory: /inventory as JSON and CSV, and `certscope inventory`."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

from helpers.app import StartApp
from helpers.pki import TestPKI
from helpers.servers import tls_server


def _config(tmp_path: Path, pki: TestPKI, address: str) -> Path:
    store = tmp_path / "store"
    store.mkdir()
    stored = pki.leaf("db.test", days_left=25)
    shutil.copy(stored.fullchain, store / "db.pem")
    (store / "db.key").write_bytes(Path(stored.key).read_bytes())  # must never show up
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        f"""
defaults: {{enumerate: false, labels: {{environment: prod}}}}
sources:
  - {{name: disk, kind: files, paths: ["{store}/*.pem"], labels: {{owner: dba, renewal: manual}}}}
targets:
  - {{address: {address}, name: web, sni: web.test, ca_file: {pki.ca_file}, labels: {{owner: web-team, renewal: acme}}}}
"""
    )
    return cfg


def _check_rows(rows: list[dict[str, object]], tmp_path: Path) -> None:
    by_source = {(r["source"], r["chain_position"]): r for r in rows}
    web = by_source[("web", 0)]
    assert web["source_kind"] == "tls" and web["kind"] == "certificate"
    assert web["subject_cn"] == "web.test"
    assert web["owner"] == "web-team" and web["renewal"] == "acme" and web["environment"] == "prod"
    assert web["verified"] in (True, "true")
    assert 44 < float(web["days_left"]) <= 45  # type: ignore[arg-type]
    assert str(web["not_after"]).endswith("Z")
    assert ("web", 1) in by_source  # the intermediate the server presents
    db = by_source[("disk", 0)]
    assert db["source_kind"] == "files"
    assert db["location"] == str(tmp_path / "store" / "db.pem")
    assert db["owner"] == "dba" and db["renewal"] == "manual"
    assert 24 < float(db["days_left"]) <= 25  # type: ignore[arg-type]
    assert db["last_seen"]


async def test_inventory_endpoint(pki: TestPKI, tmp_path: Path, app_client: StartApp) -> None:
    leaf = pki.leaf("web.test", days_left=45)
    with tls_server(leaf.chain, leaf.key) as srv:
        client = await app_client(_config(tmp_path, pki, srv.address))
        as_json = await (await client.get("/inventory")).json()
        resp = await client.get("/inventory", params={"format": "csv"})
        assert resp.headers["Content-Type"].startswith("text/csv")
        as_csv = await resp.text()
        assert (await client.get("/inventory", params={"format": "xml"})).status == 400
    _check_rows(as_json, tmp_path)
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    for r in rows:  # key and error rows have no chain position
        r["chain_position"] = int(r["chain_position"]) if r["chain_position"] else None
    _check_rows(rows, tmp_path)
    assert "PRIVATE KEY" not in as_csv and "PRIVATE KEY" not in json.dumps(as_json)


def test_inventory_command(pki: TestPKI, tmp_path: Path) -> None:
    leaf = pki.leaf("web.test", days_left=45)
    with tls_server(leaf.chain, leaf.key) as srv:
        cfg = _config(tmp_path, pki, srv.address)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "certscope.cli",
                "inventory",
                "--config.file",
                str(cfg),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        csv_out = subprocess.run(
            [sys.executable, "-m", "certscope.cli", "inventory", "--config.file", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 0, out.stderr
    _check_rows(json.loads(out.stdout), tmp_path)
    assert csv_out.returncode == 0
    assert csv_out.stdout.splitlines()[0].startswith(
        "kind,source_kind,source,location,chain_position,subject"
    )


def test_key_rows_share_the_inventory_columns() -> None:
    """Key-like credentials are rows of their own kind; certificate-only columns stay empty and
    nothing but public facts and the attributes given reach a row."""
    from datetime import UTC, datetime

    from certscope import inventory
    from certscope.results import SourceResult, StoredKey

    now = datetime(2026, 6, 1, tzinfo=UTC)
    key = StoredKey(
        kind="private_key",
        location="/srv/tls/web.key",
        algorithm="RSA",
        bits=2048,
        public_key_sha256="ab" * 32,
        attributes=(("encrypted", "false"),),
        labels=(("owner", "web-team"),),
        not_after=now.timestamp() + 10 * 86400,
    )
    src = SourceResult(
        name="disk",
        kind="files",
        labels=(("environment", "prod"),),
        timestamp=now.timestamp(),
        duration=0.1,
        up=True,
        certs=(),
        errors=(),
        last_success=now.timestamp(),
        keys=(key,),
    )
    (row,) = inventory.rows([], [src], now)
    assert set(row) == set(inventory.COLUMNS)
    assert row["kind"] == "private_key" and row["source_kind"] == "files"
    assert row["location"] == "/srv/tls/web.key"
    assert row["key_algorithm"] == "RSA" and row["key_bits"] == 2048
    assert row["owner"] == "web-team" and row["environment"] == "prod"
    assert row["days_left"] == 10.0 and row["subject"] is None
    assert row["attributes"] == {"encrypted": "false"}
    (parsed,) = csv.DictReader(io.StringIO(inventory.to_csv([row])))
    assert parsed["kind"] == "private_key" and parsed["attributes"] == "encrypted=false"
    assert parsed["subject"] == "" and parsed["public_key_sha256"] == "ab" * 32
