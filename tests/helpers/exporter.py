"""``certscope serve`` as a real subprocess on loopback, for end-to-end tests.

    with Exporter(config_path, tmp_path / "exporter.log") as exporter:
        urllib.request.urlopen(f"{exporter.url}/metrics")

``start`` returns once ``/-/ready`` answers 200; ``stop`` ends the process by its PID. The log
is shown when the exporter never becomes ready.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from .promserver import free_port


def wait_ready(
    port: int,
    log: Path,
    timeout: float = 30,
    context: ssl.SSLContext | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    scheme = "https" if context else "http"
    request = urllib.request.Request(f"{scheme}://127.0.0.1:{port}/-/ready", headers=headers or {})
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(request, timeout=1, context=context) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)


class Exporter:
    def __init__(
        self,
        config: Path,
        log: Path,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        context: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """``context`` and ``headers``: how to reach an exporter serving TLS or asking for
        authentication (``--web.config.file``) when waiting for it to be ready."""
        self.port = port or free_port()
        self.context = context
        self.headers = headers
        self.url = f"{'https' if context else 'http'}://127.0.0.1:{self.port}"
        self.args = [
            sys.executable,
            "-m",
            "certscope.cli",
            "serve",
            "--config.file",
            str(config),
            "--web.listen-address",
            f"127.0.0.1:{self.port}",
            *extra_args,
        ]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start without waiting for readiness."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)

    def start(self) -> None:
        self.launch()
        wait_ready(self.port, self.log, context=self.context, headers=self.headers)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
