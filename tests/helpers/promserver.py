"""A real Prometheus server (the Debian binary) on loopback for end-to-end tests.

    with Prometheus(tmp_path, scrape_targets=["127.0.0.1:9793"], rule_files=[...]) as prom:
        prom.wait_for('ALERTS{alertstate="firing"}', lambda r: len(r) >= 3)

It scrapes and evaluates every second, keeps its data in ``tmp_path``, and is stopped by PID.
A missing binary is a failure with the package to install, never a skip.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"{name} not found: install the Debian package {package!r} (make system-deps)"
        )
    return found


class Prometheus:
    def __init__(
        self,
        workdir: Path,
        scrape_targets: Sequence[str],
        rule_files: Sequence[Path] = (),
        job: str = "certscope",
        interval: str = "1s",
        extra_args: Sequence[str] = (),
        scrape_settings: Mapping[str, Any] | None = None,
        extra_scrape_configs: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """``scrape_settings`` adds keys to the job (``scheme``, ``tls_config``, ``basic_auth``);
        ``extra_scrape_configs`` are further jobs, as written in prometheus.yml."""
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [
                {
                    "job_name": job,
                    "static_configs": [{"targets": list(scrape_targets)}],
                    **(scrape_settings or {}),
                },
                *extra_scrape_configs,
            ],
        }
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.args = [
            binary("prometheus", "prometheus"),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            *extra_args,
        ]
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "prometheus.log"

    def __enter__(self) -> Self:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("prometheus exited:\n" + self.log_path.read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("prometheus did not become ready:\n" + self.log_path.read_text()[-3000:])

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        return list(data["result"])

    def wait_for(
        self, expr: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 60
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(0.5)
        raise AssertionError(f"{expr}: condition not met within {timeout}s; last result {result}")


@contextlib.contextmanager
def running(
    args: Sequence[str],
    log_path: Path,
    ready_url: str,
    *,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server (Alertmanager, a Prometheus with a web config …), wait until
    ``ready_url`` answers, stop it by PID at the end. Its output goes to ``log_path``."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            request = urllib.request.Request(ready_url, headers=headers or {})
            try:
                with urllib.request.urlopen(request, timeout=1, context=context):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(log_path.read_text()[-3000:]) from None
                time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
