"""``--web.config.file`` (exporter-toolkit format) against a real Prometheus and real clients.

Prometheus (the Debian binary) scrapes certscope over TLS with basic authentication, exactly
as it scrapes node_exporter with the same file; a second job with a wrong password gets
``up == 0``. Client certificates, allowed SANs, headers and validation are checked with
Python's own TLS client.
"""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import trustme
import yaml

from certscope.errors import ConfigError
from certscope.web.webconfig import Guard, load_web_config
from helpers.exporter import Exporter
from helpers.promserver import Prometheus

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(tmp_path: Path, ca: trustme.CA) -> dict[str, str]:
    server = ca.issue_cert("certscope.test", "127.0.0.1")
    client = ca.issue_cert("prometheus.test")
    files = {
        "ca": tmp_path / "ca.pem",
        "cert": tmp_path / "server.pem",
        "key": tmp_path / "server.key",
        "client_cert": tmp_path / "client.pem",
        "client_key": tmp_path / "client.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    client.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    return {k: str(v) for k, v in files.items()}


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _write(tmp_path: Path, web: dict[str, Any]) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(web))
    return path


def _serve(tmp_path: Path, web: Path, ctx: ssl.SSLContext, headers: dict[str, str]) -> Exporter:
    cfg = tmp_path / "c.yml"
    cfg.write_text("targets: []\n")
    return Exporter(
        cfg,
        tmp_path / "exporter.log",
        ["--web.config.file", str(web)],
        context=ctx,
        headers=headers,
    )


def _get(url: str, ctx: ssl.SSLContext, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture
def tls_auth_exporter(tmp_path: Path, tls_files: dict[str, str]) -> Iterator[Exporter]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    web = _write(
        tmp_path,
        {
            "tls_server_config": {"cert_file": tls_files["cert"], "key_file": tls_files["key"]},
            "basic_auth_users": {"prometheus": hashed},
            "http_server_config": {
                "headers": {
                    "Strict-Transport-Security": "max-age=31536000",
                    "X-Content-Type-Options": "nosniff",
                }
            },
        },
    )
    ctx = ssl.create_default_context(cafile=tls_files["ca"])
    with _serve(tmp_path, web, ctx, _basic("prometheus", PASSWORD)) as exporter:
        yield exporter


def test_prometheus_scrapes_over_tls_with_basic_auth(
    tmp_path: Path, tls_auth_exporter: Exporter, tls_files: dict[str, str]
) -> None:
    target = f"127.0.0.1:{tls_auth_exporter.port}"
    tls = {"ca_file": tls_files["ca"], "server_name": "certscope.test"}
    wrong = {
        "job_name": "wrong-password",
        "scheme": "https",
        "tls_config": tls,
        "basic_auth": {"username": "prometheus", "password": "wrong"},
        "static_configs": [{"targets": [target]}],
    }
    settings = {
        "scheme": "https",
        "tls_config": tls,
        "basic_auth": {"username": "prometheus", "password": PASSWORD},
    }
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    with Prometheus(
        prom_dir, [target], scrape_settings=settings, extra_scrape_configs=[wrong]
    ) as prom:
        prom.wait_for('up{job="certscope"} == 1', lambda r: len(r) == 1)
        prom.wait_for('certscope_build_info{job="certscope"}', lambda r: len(r) == 1)
        prom.wait_for('up{job="wrong-password"} == 0', lambda r: len(r) == 1)
        assert prom.query('certscope_build_info{job="wrong-password"}') == []


def test_basic_auth_and_headers(tls_auth_exporter: Exporter, tls_files: dict[str, str]) -> None:
    ctx = ssl.create_default_context(cafile=tls_files["ca"])
    url = tls_auth_exporter.url + "/metrics"
    assert _get(url, ctx) == 401
    assert _get(url, ctx, _basic("prometheus", "wrong")) == 401
    assert _get(url, ctx, _basic("nobody", PASSWORD)) == 401
    assert _get(url, ctx, {"Authorization": "Basic !!!"}) == 401
    assert _get(tls_auth_exporter.url + "/-/healthy", ctx) == 401  # every path, as the toolkit
    req = urllib.request.Request(url, headers=_basic("prometheus", PASSWORD))
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        assert r.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    # plain HTTP on the TLS port gets nowhere
    with pytest.raises(OSError):  # noqa: PT011 - a reset or a bad status line
        urllib.request.urlopen(url.replace("https", "http"), timeout=5).read()
    assert PASSWORD not in tls_auth_exporter.log.read_text()


def test_client_certificates(tmp_path: Path, tls_files: dict[str, str]) -> None:
    web = _write(
        tmp_path,
        {
            "tls_server_config": {
                "cert_file": tls_files["cert"],
                "key_file": tls_files["key"],
                "client_ca_file": tls_files["ca"],  # no client_auth_type: require and verify
                "client_allowed_sans": ["prometheus.test"],
            }
        },
    )
    with_cert = ssl.create_default_context(cafile=tls_files["ca"])
    with_cert.load_cert_chain(tls_files["client_cert"], tls_files["client_key"])
    with _serve(tmp_path, web, with_cert, {}) as exporter:
        assert _get(exporter.url + "/metrics", with_cert) == 200
        without = ssl.create_default_context(cafile=tls_files["ca"])
        with pytest.raises(OSError):  # noqa: PT011 - the handshake or the first read fails
            _get(exporter.url + "/metrics", without)


def test_client_allowed_sans_refuses_other_clients(
    tmp_path: Path, ca: trustme.CA, tls_files: dict[str, str]
) -> None:
    web = _write(
        tmp_path,
        {
            "tls_server_config": {
                "cert_file": tls_files["cert"],
                "key_file": tls_files["key"],
                "client_ca_file": tls_files["ca"],
                "client_allowed_sans": ["someone-else.test"],
            }
        },
    )
    ctx = ssl.create_default_context(cafile=tls_files["ca"])
    ctx.load_cert_chain(tls_files["client_cert"], tls_files["client_key"])
    cfg = tmp_path / "c.yml"
    cfg.write_text("targets: []\n")
    exporter = Exporter(cfg, tmp_path / "exporter.log", ["--web.config.file", str(web)])
    exporter.launch()
    try:
        url = f"https://127.0.0.1:{exporter.port}/-/healthy"

        deadline = time.monotonic() + 20
        while True:
            try:
                status = _get(url, ctx)
                break
            except OSError:
                assert time.monotonic() < deadline, exporter.log.read_text()
                time.sleep(0.1)
        assert status == 403
    finally:
        exporter.stop()


@pytest.mark.parametrize(
    ("web", "problems"),
    [
        (
            {"tls_server_config": {"cert_file": "/nonexistent.pem"}},
            ["tls_server_config.key_file: is required"],
        ),
        (
            {"basic_auth_users": {"prometheus": "plain-text-password"}},
            ["basic_auth_users.prometheus: must be a bcrypt hash ($2y$…, 60 characters)"],
        ),
        (
            {
                "tls_server_config": {
                    "cert_file": "a",
                    "key_file": "b",
                    "client_auth_type": "RequestClientCert",
                    "cipher_suites": ["TLS_AES_128_GCM_SHA256"],
                }
            },
            [
                "tls_server_config.cipher_suites: is not supported: certscope uses OpenSSL's suites",
                "tls_server_config.client_auth_type: is not supported: use "
                "VerifyClientCertIfGiven or RequireAndVerifyClientCert",
                "tls_server_config.client_ca_file: is required with RequestClientCert",
            ],
        ),
        (
            {"http_server_config": {"headers": {"X-Frame-Options": "allow", "Server": "x"}}},
            [
                "http_server_config.headers.Server: unknown key",
                "http_server_config.headers.X-Frame-Options: must be one of deny, sameorigin",
            ],
        ),
        ({"tls_config": {}}, ["tls_config: unknown key"]),
    ],
)
def test_web_config_problems_are_located(
    tmp_path: Path, web: dict[str, Any], problems: list[str]
) -> None:
    path = _write(tmp_path, web)
    with pytest.raises(ConfigError) as info:
        load_web_config(str(path))
    assert sorted(str(p) for p in info.value.problems) == sorted(problems)
    assert "plain-text-password" not in str(info.value)


def test_serve_refuses_a_bad_web_config_without_a_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, {"basic_auth_users": {"u": "secret-in-plain-text"}})
    result = subprocess.run(
        [sys.executable, "-m", "certscope.cli", "serve", "--web.config.file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "basic_auth_users.u: must be a bcrypt hash" in result.stderr
    assert "Traceback" not in result.stderr and "secret-in-plain-text" not in result.stderr


def _served_certificate(port: int, ctx: ssl.SSLContext) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="certscope.test") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def test_a_renewed_certificate_is_served_without_a_restart(
    tmp_path: Path, ca: trustme.CA, tls_files: dict[str, str]
) -> None:
    web = _write(
        tmp_path,
        {"tls_server_config": {"cert_file": tls_files["cert"], "key_file": tls_files["key"]}},
    )
    ctx = ssl.create_default_context(cafile=tls_files["ca"])
    with _serve(tmp_path, web, ctx, {}) as exporter:
        first = _served_certificate(exporter.port, ctx)
        renewed = ca.issue_cert("certscope.test", "127.0.0.1")
        # as cert-manager does: new files moved into place
        Path(tls_files["key"] + ".new").write_bytes(renewed.private_key_pem.bytes())
        Path(tls_files["cert"] + ".new").write_bytes(renewed.cert_chain_pems[0].bytes())
        Path(tls_files["key"] + ".new").replace(tls_files["key"])
        Path(tls_files["cert"] + ".new").replace(tls_files["cert"])
        deadline = time.monotonic() + 10
        while _served_certificate(exporter.port, ctx) == first:
            assert time.monotonic() < deadline, exporter.log.read_text()
            time.sleep(0.3)
        assert _served_certificate(exporter.port, ctx) == ssl.PEM_cert_to_DER_cert(
            renewed.cert_chain_pems[0].bytes().decode()
        )
        # a broken file keeps the renewed certificate and says why
        Path(tls_files["cert"]).write_text("not a certificate\n")
        time.sleep(1.5)
        assert _served_certificate(exporter.port, ctx) == ssl.PEM_cert_to_DER_cert(
            renewed.cert_chain_pems[0].bytes().decode()
        )
        assert "keeping the previous certificate" in exporter.log.read_text()


async def test_verified_credentials_are_cached_and_http2_is_accepted(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=12)).decode()
    path = _write(
        tmp_path, {"basic_auth_users": {"u": hashed}, "http_server_config": {"http2": True}}
    )
    guard = Guard(load_web_config(str(path)))
    header = _basic("u", PASSWORD)["Authorization"]
    started = time.perf_counter()
    assert await guard._authorised(header)
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(10):
        assert await guard._authorised(header)
    again = (time.perf_counter() - started) / 10
    assert again < first / 10  # a digest lookup, not a bcrypt run
    assert not await guard._authorised(_basic("u", "wrong")["Authorization"])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("basic_auth_users: {}\nbasic_auth_users: {}\n", "duplicate key 'basic_auth_users'"),
        ("tls_server_config: " + "[" * 100 + "]" * 100 + "\n", "nested deeper than 64"),
        (
            "tls_server_config: {cert_file: /a, key_file: /b, min_version: [TLS12]}\n",
            "tls_server_config.min_version: must be one of",
        ),
        ("tls_server_config: {cert_file: /a\n", "malformed YAML"),
    ],
)
def test_hostile_web_config_files_are_located_problems(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_web_config(str(path))
    assert problem in str(info.value)
