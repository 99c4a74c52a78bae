"""``certscope evidence`` against a Prometheus that wants TLS and basic auth (its own
``--web.config.file``), configured with ``--prometheus.config`` in Prometheus's http_config
shape. A real Prometheus (Debian ``prometheus``) on loopback; secrets never reach the package.
"""

from __future__ import annotations

import base64
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import yaml

from certscope.errors import UsageError
from certscope.evidence import http
from helpers.pki import TestPKI
from helpers.promserver import binary, free_port, running

PASSWORD = "s3cret-for-the-auditor"


@pytest.fixture(scope="module")
def secure_prometheus(pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("secure-prom")
    leaf = pki.leaf("prom.test")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp / "web.yml").write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {"cert_file": str(leaf.chain), "key_file": str(leaf.key)},
                "basic_auth_users": {"auditor": hashed},
            }
        )
    )
    (tmp / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    ctx.check_hostname = False
    auth = base64.b64encode(f"auditor:{PASSWORD}".encode()).decode()
    args = [
        binary("prometheus", "prometheus"),
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.config.file={tmp / 'web.yml'}",
    ]
    ready = f"{url}/-/ready"
    with running(
        args, tmp / "prometheus.log", ready, context=ctx, headers={"Authorization": f"Basic {auth}"}
    ):
        yield url


def run(url: str, tmp: Path, config: dict[str, object]) -> subprocess.CompletedProcess[str]:
    (tmp / "http.yml").write_text(yaml.safe_dump(config))
    return subprocess.run(
        [
            *(sys.executable, "-m", "certscope.evidence.cli", "--prometheus.url", url),
            *("--prometheus.config", str(tmp / "http.yml"), "--from", "2025-01-01"),
            *("--to", "2025-01-02", "--out", str(tmp / "out"), "--no-pdf", "--allow-partial"),
            *("--query.timeout", "20s"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_basic_auth_and_tls(secure_prometheus: str, pki: TestPKI, tmp_path: Path) -> None:
    (tmp_path / "password").write_text(PASSWORD + "\n")
    proc = run(
        secure_prometheus,
        tmp_path,
        {
            "basic_auth": {"username": "auditor", "password_file": str(tmp_path / "password")},
            "tls_config": {"ca_file": str(pki.ca_file), "server_name": "prom.test"},
        },
    )
    assert proc.returncode == 0, proc.stderr
    package = b"".join(p.read_bytes() for p in (tmp_path / "out").iterdir())
    assert PASSWORD.encode() not in package
    assert b"basic_auth: username auditor, password <redacted>" in package  # manifest


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"basic_auth": {"username": "auditor", "password": "wrong"}}, "HTTP 401"),
        (
            {"basic_auth": {"username": "auditor", "password": PASSWORD}},
            "CERTIFICATE_VERIFY_FAILED",
        ),
    ],
)
def test_refused_without_the_right_credentials_or_ca(
    secure_prometheus: str, pki: TestPKI, tmp_path: Path, config: dict[str, object], message: str
) -> None:
    if message == "HTTP 401":
        config = {**config, "tls_config": {"ca_file": str(pki.ca_file), "server_name": "prom.test"}}
    proc = run(secure_prometheus, tmp_path, config)
    assert proc.returncode == 1
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert PASSWORD not in proc.stderr


def test_http_config_lists_every_problem(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        http.parse(
            {
                "basic_auth": {"password": "pw-SECRET-1", "pasword_file": "y"},
                "bearer_token": "t",
                "tls_config": {"ca_file": str(tmp_path / "missing.pem"), "cert_file": "c"},
                "proxy_url": "http://p",
            }
        )
    text = str(err.value)
    for problem in (
        "proxy_url: unknown key",
        "basic_auth.pasword_file: unknown key",
        "basic_auth.username: required",
        "authorization: cannot be combined with basic_auth",
        "tls_config.ca_file:",
        "tls_config: cert_file and key_file go together",
    ):
        assert problem in text, problem
    assert "pw-SECRET-1" not in text
    cfg = http.parse({"authorization": {"credentials": "tok"}})
    assert cfg.headers == {"Authorization": "Bearer tok"}
    assert "tok" not in repr(cfg) and cfg.description == ("authorization: Bearer <redacted>",)
