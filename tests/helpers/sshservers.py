"""Real SSH servers on loopback for tests and benchmarks: OpenSSH's sshd and Dropbear.

    keys = HostKeys.generate(tmp_path, ("ed25519", "rsa"), ca=True)
    with OpenSSHServer(tmp_path, keys, STRONG) as srv:
        scan(srv.host, srv.port)

Host keys are made with ``ssh-keygen`` (host certificates signed by a test CA with
``ssh-keygen -s``); servers are started as ``sshd -D -e -f <config> -p <port>`` and
``dropbear -F -E -p 127.0.0.1:<port>`` and stopped by PID. A missing binary is a failure with
the Debian package to install, never a skip.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from .promserver import binary, free_port
from .servers import _Process, stop_process

#: A configuration close to the current OpenSSH defaults, restricted to modern algorithms.
STRONG: Mapping[str, str] = {
    "KexAlgorithms": "sntrup761x25519-sha512@openssh.com,curve25519-sha256,"
    "curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512",
    "Ciphers": "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,"
    "aes256-ctr,aes128-ctr",
    "MACs": "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com",
}
#: Legacy algorithms OpenSSH 9.2 still compiles in and enables on request.
WEAK: Mapping[str, str] = {
    "KexAlgorithms": "diffie-hellman-group1-sha1,diffie-hellman-group14-sha1,"
    "diffie-hellman-group-exchange-sha1,ecdh-sha2-nistp256",
    "Ciphers": "aes128-cbc,3des-cbc,aes256-ctr",
    "MACs": "hmac-sha1,hmac-md5,hmac-sha1-96,hmac-sha2-256",
    "HostKeyAlgorithms": "+ssh-dss,ssh-rsa",
}


def daemon(name: str, package: str) -> str:
    """A server binary: Debian puts them in /usr/sbin, which a non-login PATH may lack."""
    path = f"/usr/sbin/{name}"
    return path if os.access(path, os.X_OK) else binary(name, package)


def keygen(*args: str) -> None:
    subprocess.run(
        [binary("ssh-keygen", "openssh-client"), "-q", *args], check=True, stdin=subprocess.DEVNULL
    )


def keygen_fingerprint(key_type: str, b64: str) -> str:
    """The SHA256 fingerprint ``ssh-keygen -l`` prints for a public key."""
    out = subprocess.run(
        [binary("ssh-keygen", "openssh-client"), "-l", "-f", "-"],
        input=f"{key_type} {b64}\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()[1]


@dataclass
class HostKeys:
    """Host key files (and their certificates) in one directory."""

    directory: Path
    keys: dict[str, Path] = field(default_factory=dict)  # name -> private key path
    certs: dict[str, Path] = field(default_factory=dict)  # name -> certificate path
    ca: Path | None = None

    @classmethod
    def generate(
        cls,
        directory: Path,
        kinds: Sequence[str],
        certify: Sequence[str] = (),
        validity: str = "-1d:+30d",
    ) -> HostKeys:
        """``kinds``: ed25519, ecdsa, ecdsa384, rsa (3072), rsa1024, rsa2048, dsa."""
        directory.mkdir(parents=True, exist_ok=True)
        out = cls(directory)
        spec = {
            "ed25519": ("ed25519", None),
            "ecdsa": ("ecdsa", "256"),
            "ecdsa384": ("ecdsa", "384"),
            "rsa": ("rsa", "3072"),
            "rsa2048": ("rsa", "2048"),
            "rsa1024": ("rsa", "1024"),
            "dsa": ("dsa", None),
        }
        for kind in kinds:
            t, bits = spec[kind]
            path = directory / f"host_{kind}"
            keygen("-t", t, *(("-b", bits) if bits else ()), "-N", "", "-f", str(path))
            out.keys[kind] = path
        if certify:
            out.ca = directory / "host_ca"
            keygen("-t", "ed25519", "-N", "", "-C", "test-host-ca", "-f", str(out.ca))
            for kind in certify:
                keygen(
                    "-s",
                    str(out.ca),
                    "-I",
                    f"host-{kind}",
                    "-h",
                    "-n",
                    "localhost,127.0.0.1",
                    "-V",
                    validity,
                    "-z",
                    "42",
                    str(out.keys[kind]) + ".pub",
                )
                out.certs[kind] = Path(str(out.keys[kind]) + "-cert.pub")
        return out


class _Daemon(_Process):
    """An SSH server process: started on a free port, ready once it sends its banner."""

    name = "server"

    def command(self) -> list[str]:
        raise NotImplementedError

    def _launch(self) -> bool:
        self.port = free_port()
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    s.settimeout(2)
                    if s.recv(4).startswith(b"SSH-"):
                        return True
            except OSError:
                time.sleep(0.02)
        self._terminate()
        raise RuntimeError(f"{self.name} did not answer within 10 s:\n{self.output()}")

    def reload(self) -> None:
        """SIGHUP: sshd re-executes itself and reads its configuration and host keys again."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    s.settimeout(2)
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not come back after SIGHUP:\n{self.output()}")

    def _terminate(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def __enter__(self) -> Self:
        for _ in range(3):  # the free port may be taken between probing and binding
            if self._launch():
                return self
        raise RuntimeError(f"{self.name} exited: {self.command()}\n{self.output()}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._terminate()
        self._log.close()


class OpenSSHServer(_Daemon):
    """``sshd -D -e`` with its own config; no PAM, no logins needed."""

    name = "sshd"

    def __init__(
        self,
        workdir: Path,
        keys: HostKeys,
        options: Mapping[str, str] = STRONG,
        order: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.sshd = daemon("sshd", "openssh-server")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
        self.config = workdir / "sshd_config"
        lines = [
            "ListenAddress 127.0.0.1",
            "UsePAM no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PidFile none",
            "LogLevel ERROR",
            "MaxStartups 50",
        ]
        for kind in order or list(keys.keys):
            lines.append(f"HostKey {keys.keys[kind]}")
            if kind in keys.certs:
                lines.append(f"HostCertificate {keys.certs[kind]}")
        lines += [f"{k} {v}" for k, v in options.items()]
        self.config.write_text("\n".join(lines) + "\n")
        self.config.chmod(0o600)

    def command(self) -> list[str]:
        return [self.sshd, "-D", "-e", "-f", str(self.config), "-p", str(self.port)]


class DropbearServer(_Daemon):
    """``dropbear -F -E -s`` with generated host keys (the second implementation)."""

    name = "dropbear"

    def __init__(self, workdir: Path, kinds: Sequence[str] = ("ed25519", "ecdsa", "rsa")) -> None:
        super().__init__()
        self.dropbear = daemon("dropbear", "dropbear-bin")
        keygen_bin = binary("dropbearkey", "dropbear-bin")
        self.pidfile = workdir / "dropbear.pid"
        self.keys: list[Path] = []
        for kind in kinds:
            path = workdir / f"dropbear_{kind}"
            args = ["-t", kind, "-f", str(path)]
            if kind == "rsa":
                args += ["-s", "3072"]
            subprocess.run([keygen_bin, *args], check=True, capture_output=True)
            self.keys.append(path)

    def command(self) -> list[str]:
        keys = [a for k in self.keys for a in ("-r", str(k))]
        return [
            self.dropbear,
            "-F",
            "-E",
            "-s",
            "-P",
            str(self.pidfile),
            *keys,
            "-p",
            f"{self.host}:{self.port}",
        ]
