"""A real AWS API emulator for tests: ``moto_server`` on a free loopback port, stopped by PID.

Import it from a test module as ``from helpers.motoserver import MotoServer``::

    moto = MotoServer.start(tmp_path)            # every API open (no IAM checks)
    moto.client("kms", "us-east-1").create_key() # a boto3 client for seeding
    moto.enforce_iam()                           # from now on, requests are authorised by IAM
    moto.url, moto.stop()

``moto_server`` comes from the ``moto[server]`` package in the test extras; it is looked up next
to the running interpreter first (the venv's ``bin/``), then on ``$PATH``. The process gets
fake static credentials in its environment and nothing from the developer's AWS settings.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from .binaries import beside_interpreter
from .promserver import free_port

__all__ = ["FAKE_CREDENTIALS", "MotoServer", "aws_env"]

START_TIMEOUT = 30.0
#: What the emulator accepts when IAM is not enforced (and what tests put in the environment).
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # the emulator accepts any static key pair
}


def aws_env(**extra: str) -> dict[str, str]:
    """The environment for a process that talks to the emulator: no AWS settings from the
    developer's shell or home directory, fake static credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(FAKE_CREDENTIALS)
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(extra)
    return env


def moto_binary() -> str:
    return beside_interpreter(
        "moto_server",
        "the AWS emulator `moto_server` was not found next to the interpreter or on PATH; "
        "install the test extras (pip install -e '.[test]', which brings moto[server])",
    )


@dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @classmethod
    def start(cls, workdir: Path) -> MotoServer:
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log_path = workdir / "moto.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [moto_binary(), "-H", "127.0.0.1", "-p", str(port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # no built-in AMIs: their snapshots would drown the test's own
                env=aws_env(
                    HOME=str(workdir),
                    MOTO_EC2_LOAD_DEFAULT_AMIS="false",
                    MOTO_ACM_VALIDATION_WAIT="0",  # requested certificates issue at once
                ),
            )
        server = cls(process, f"http://127.0.0.1:{port}", log_path)
        try:
            server._wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"moto_server exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"moto_server not ready:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def client(self, service: str, region: str = "us-east-1", **credentials: str) -> Any:
        """A boto3 client for seeding (static fake credentials unless given)."""
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=credentials.get("key", FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]),
            aws_secret_access_key=credentials.get(
                "secret", FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
            ),
        )

    def enforce_iam(self) -> None:
        """Authorise every later request with IAM (moto's ``reset-auth``: no request is let
        through unchecked any more)."""
        req = urllib.request.Request(
            f"{self.url}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            # not a form: Flask would swallow the body that moto reads as the count
            headers={"Content-Type": "application/octet-stream"},
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200

    def reset(self) -> None:
        """Forget every resource (moto's ``reset``)."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
