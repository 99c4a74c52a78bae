"""Internationalised names: compared as A-labels (RFC 6125 6.4.2, IDNA 2008) in matching, and
accepted in Unicode or punycode in ``sni``, the config, ``certscope scan`` and ``/probe``.
Real servers: nginx serving a punycode SAN, Python ``ssl`` recording the SNI it received.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from certscope.app import make_app
from certscope.certs import a_label, hostname_matches
from certscope.config import Target, TLSOptions, load_config, parse_config
from certscope.errors import ConfigError
from certscope.probe import probe
from certscope.tls import hello as h
from helpers import tls_encoders as enc
from helpers.app import find
from helpers.pki import Leaf, TestPKI
from helpers.servers import NginxServer, tls_server

UNICODE = "ѕрооғ.example"  # Cyrillic look-alikes of "proof"
PUNY = "xn--n1aae7f7o.example"
CERTSCOPE = Path(sys.executable).with_name("certscope")


@pytest.fixture(scope="module")
def idn_leaf(pki: TestPKI) -> Leaf:
    return pki.leaf(PUNY, "xn--bcher-kva.example")


def test_a_label() -> None:
    assert a_label(UNICODE) == PUNY
    assert a_label("BÜCHER.example.") == "xn--bcher-kva.example"  # UTS 46 case mapping
    assert a_label(PUNY.upper()) == PUNY
    with pytest.raises(ValueError, match="internationalised"):
        a_label("a\u200db.example")  # ZWJ outside a joining context: IDNA 2008 rejects it


def test_matching_uses_a_labels() -> None:
    assert hostname_matches(UNICODE, [PUNY])
    assert hostname_matches("bücher.example", ["xn--bcher-kva.example"])
    assert hostname_matches("www.bücher.example", ["*.xn--bcher-kva.example"])
    assert not hostname_matches("bucher.example", ["xn--bcher-kva.example"])
    assert not hostname_matches("a\u200db.example", ["xn--ab-m1t.example"])  # invalid: no match


def test_sni_extension_carries_the_a_label() -> None:
    ch = h.build_client_hello("TLSv1.2", [0x002F], server_name=UNICODE)
    decoded = enc.decode_client_hello(ch.data)
    sni = decoded.extension(h.ExtensionType.SERVER_NAME)
    assert sni is not None and sni.endswith(PUNY.encode())


def test_config_accepts_unicode_and_punycode() -> None:
    cfg = parse_config(
        f"targets:\n - address: {UNICODE}:443\n - address: 127.0.0.1:443\n   sni: {UNICODE}\n"
        f" - address: {PUNY}:443\n",
        "t.yaml",
    )
    assert [t.verify_name for t in cfg.targets] == [UNICODE, UNICODE, PUNY]
    with pytest.raises(ConfigError) as err:
        parse_config('targets:\n - address: 127.0.0.1:443\n   sni: "a\u200db.example"\n', "t")
    assert [p.location for p in err.value.problems] == ["targets[0].sni"]


async def test_probe_unicode_sni_against_nginx(
    pki: TestPKI, idn_leaf: Leaf, tmp_path: Path
) -> None:
    with NginxServer(tmp_path, idn_leaf.chain, idn_leaf.key) as srv:
        for name in (UNICODE, PUNY):
            opts = TLSOptions(sni=name, ca_file=str(pki.ca_file), timeout=10)
            r = await probe(Target("idn", "127.0.0.1", srv.port, opts))
            assert r.verdict is not None
            assert r.verdict.hostname_match, name
            assert r.verdict.verified, r.verdict.errors
        other = TLSOptions(sni="proof.example", ca_file=str(pki.ca_file), timeout=10)
        miss = await probe(Target("idn", "127.0.0.1", srv.port, other))
    assert miss.verdict is not None and not miss.verdict.hostname_match


async def test_server_receives_the_a_label(idn_leaf: Leaf) -> None:
    with tls_server(idn_leaf.chain, idn_leaf.key) as srv:
        await probe(Target("idn", "127.0.0.1", srv.port, TLSOptions(sni=UNICODE, timeout=10)))
        (conn,) = srv.settled()
    assert conn.server_name == PUNY


def test_scan_cli_with_unicode_sni(pki: TestPKI, idn_leaf: Leaf) -> None:
    with tls_server(idn_leaf.chain, idn_leaf.key) as srv:
        out = subprocess.run(
            [
                *(str(CERTSCOPE), "scan", srv.address, "--sni", UNICODE),
                *("--ca-file", str(pki.ca_file), "--format", "json"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 0, out.stderr
    (result,) = json.loads(out.stdout)
    assert result["verification"]["hostname_match"] is True


async def test_probe_endpoint_with_unicode_sni(
    pki: TestPKI, idn_leaf: Leaf, tmp_path: Path
) -> None:
    with tls_server(idn_leaf.chain, idn_leaf.key) as srv:
        cfg = tmp_path / "c.yml"
        cfg.write_text(
            f'targets: []\nprobe:\n  allowed_targets: ["127.0.0.1:{srv.port}"]\n'
            f"  modules:\n    idn: {{ca_file: {pki.ca_file}}}\n"
        )
        app = make_app(load_config(str(cfg)), lambda: load_config(str(cfg)))
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        try:
            params = {"target": srv.address, "sni": UNICODE, "module": "idn"}
            resp = await client.get("/probe", params=params)
            text = await resp.text()
        finally:
            await client.close()
    assert resp.status == 200
    assert find(text, "certscope_cert_hostname_match", source_kind="tls") == [1.0]
