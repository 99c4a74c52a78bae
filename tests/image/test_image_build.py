"""The container image, built for real and run: Buildah from a debootstrap-made Debian base.

``scripts/build-image.sh`` builds the Dockerfile with Buildah (vfs storage, chroot isolation)
on a Debian bookworm base made by debootstrap (cached; the Dockerfile's ``PYTHON_IMAGE``
argument selects it). The image then runs under ``buildah run`` with its own user, and is
scraped on loopback. ``test_dockerfile.py`` keeps the replayed build for the Dockerfile's rules.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "scripts" / "build-image.sh"
TAG = "localhost/certscope:test"
BUILDAH = ["buildah", "--storage-driver", "vfs"]
UID = 65532


def buildah(*args: str) -> str:
    return subprocess.run([*BUILDAH, *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def image() -> str:
    done = subprocess.run([BUILD, TAG], capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-4000:]
    return TAG


@pytest.fixture
def container(image: str) -> Iterator[str]:
    name = buildah("from", "--pull-never", image).strip()
    try:
        yield name
    finally:
        buildah("rm", name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(1800)
def test_image_config(image: str) -> None:
    config = json.loads(buildah("inspect", "--type", "image", image))
    run = config["Docker"]["config"]
    assert run["User"] == f"{UID}:{UID}"
    assert run["Entrypoint"] == ["certscope"] and run["Cmd"] == ["serve"]
    assert "9793/tcp" in run["ExposedPorts"]
    assert "/-/healthy" in " ".join(run["Healthcheck"]["Test"])
    labels = run["Labels"]
    assert labels["org.opencontainers.image.title"] == "certscope"


@pytest.mark.timeout(1800)
def test_image_serves_metrics_as_its_user(container: str, tmp_path: Path) -> None:
    port = free_port()
    output = (tmp_path / "output").open("wb")
    config = json.loads(buildah("inspect", "--type", "image", TAG))["Docker"]["config"]
    proc = subprocess.Popen(
        [
            *BUILDAH,
            "run",
            "--isolation",
            "chroot",
            "--user",
            config["User"],
            container,
            "--",
            *config["Entrypoint"],
            *config["Cmd"],
            "--web.listen-address",
            f"127.0.0.1:{port}",
        ],
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=2):
                    break
            except OSError:
                assert proc.poll() is None, (tmp_path / "output").read_text()
                assert time.monotonic() < deadline, "the image's exporter never became healthy"
                time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        assert 'certscope_build_info{python_version="3.11.' in metrics
        # The exporter runs as the image's user, not as root.
        pids = subprocess.run(
            ["pgrep", "-s", str(proc.pid), "-f", "certscope serve"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        uids = {
            Path(f"/proc/{pid}/status").read_text().split("\nUid:\t")[1].split("\t")[0]
            for pid in pids
            if pid != str(proc.pid)
        }
        assert uids == {str(UID)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # buildah run and what it started: our session
        proc.wait(20)
        output.close()
