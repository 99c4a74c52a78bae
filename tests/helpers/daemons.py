"""Real STARTTLS servers from Debian's packages, on loopback, for the probe tests.

Import as ``from helpers.daemons import postfix, dovecot, ...`` (pytest puts ``tests/`` on
``sys.path``). Each factory writes a configuration into a fresh temporary directory, starts the
daemon in the foreground on free high ports of 127.0.0.1 with the given certificate chain and
key, and returns a :class:`Daemon`: a context manager that waits until every port accepts
connections and, on exit, stops the daemon by its PID and removes the directory::

    with postfix(leaf.chain, leaf.key) as smtp:
        smtp.ports["smtp"], smtp.ports["submission"]
        smtp.log()                              # what the daemon logged so far

Factories (protocol -> port names):

- :func:`postfix` — Postfix ``master`` with two ``smtpd`` services: ``smtp`` (STARTTLS
  offered, ``smtpd_tls_security_level = may``, as on port 25) and ``submission``
  (``encrypt``, as on port 587).
- :func:`dovecot` — Dovecot ``imap`` and ``pop3`` (STARTTLS / STLS).
- :func:`vsftpd` — vsftpd with explicit FTPS (``AUTH TLS``): ``ftp``.
- :func:`slapd` — OpenLDAP ``slapd`` with StartTLS: ``ldap``.
- :func:`postgres` — PostgreSQL with ``ssl = on``: ``postgres``.
- :func:`mariadb` — MariaDB with TLS configured: ``mysql``.

A missing daemon is a clear error naming the Debian package (``make system-deps`` installs
them), never a skip. The daemons run as root where they allow it and otherwise as the system
user their package creates (PostgreSQL refuses root; MariaDB is told ``--user=mysql``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["Daemon", "dovecot", "mariadb", "postfix", "postgres", "slapd", "vsftpd"]

PathLike = str | os.PathLike[str]
START_TIMEOUT = 90.0


def need(path: str, package: str) -> str:
    """The absolute path of a daemon's binary, or a clear error naming its package."""
    found = path if os.access(path, os.X_OK) else shutil.which(os.path.basename(path))
    if found is None:
        raise RuntimeError(
            f"{path} not found: install the Debian package {package!r} (make system-deps)"
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """One daemon process on loopback; see the module docstring."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        ports: Mapping[str, int],
        workdir: Path,
        *,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        logfile: Path | None = None,
        env: Mapping[str, str] | None = None,
        pidfile: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.ports = dict(ports)
        self.host = "127.0.0.1"
        self.workdir = workdir
        self.user = user
        self.stop_signal = stop_signal
        self.output = workdir / "output.log"
        self.logfile = logfile  # where the daemon logs, when not to its output
        self.env = {**os.environ, **(env or {})}
        self.pidfile = pidfile  # a daemon that leaves its session says where its PID is
        self.proc: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        parts = [p for p in (self.output, self.logfile) if p is not None and p.exists()]
        return "\n".join(p.read_text("utf-8", "replace") for p in parts)

    def _ready(self) -> bool:
        for port in self.ports.values():
            try:
                with socket.create_connection((self.host, port), timeout=0.5):
                    pass
            except OSError:
                return False
        return True

    def __enter__(self) -> Self:
        user = pwd.getpwnam(self.user) if self.user else None
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
                start_new_session=True,  # a terminal's ^C goes to pytest, not to the daemon
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                what = "exited" if self.proc.poll() is not None else "did not listen in time"
                log = self.log()
                self.__exit__(None, None, None)
                raise RuntimeError(f"{self.name} {what}: {self.argv}\n{log[-4000:]}")
            time.sleep(0.05)
        return self

    def _stop(self) -> None:
        """Signal the daemon's process group (its own session: the daemon and its workers)."""
        if self.proc is None:
            return
        if self.pidfile is not None and self.pidfile.exists():
            with contextlib.suppress(ValueError, ProcessLookupError):
                pid = int(self.pidfile.read_text().split()[0])
                os.kill(pid, self.stop_signal)
                deadline = time.monotonic() + 20
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
        group = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, self.stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(20)
        # Workers that outlive their master (or a master that ignored the signal) go too.
        deadline = time.monotonic() + 10
        while _alive(group, group=True) and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.proc.wait(5)
        self.proc = None

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _alive(pid: int, *, group: bool = False) -> bool:
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _workdir(name: str) -> Path:
    # Not under pytest's tmp_path: that is private to root, and some daemons drop privileges.
    path = Path(tempfile.mkdtemp(prefix=f"certscope-{name}-"))
    path.chmod(0o755)
    return path


def _install(
    workdir: Path, chain: PathLike, key: PathLike, owner: str | None = None
) -> tuple[Path, Path]:
    """Copies of the chain and key in the workdir (the key 0600, owned by ``owner``)."""
    cert_path, key_path = workdir / "chain.pem", workdir / "key.pem"
    shutil.copyfile(chain, cert_path)
    shutil.copyfile(key, key_path)
    cert_path.chmod(0o644)
    key_path.chmod(0o600)
    if owner is not None:
        user = pwd.getpwnam(owner)
        os.chown(key_path, user.pw_uid, user.pw_gid)
    return cert_path, key_path


# --- Postfix ---------------------------------------------------------------------------------

_POSTFIX_MASTER = """\
127.0.0.1:{smtp} inet n - n - - smtpd
127.0.0.1:{submission} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level={submission_level}
  -o smtpd_sasl_auth_enable=no
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
proxymap unix - - n - - proxymap
"""


def postfix(chain: PathLike, key: PathLike, *, tls: bool = True) -> Daemon:
    """Postfix ``master -d`` with its own config and queue directories (no chroot)."""
    command = need("/usr/sbin/postfix", "postfix")
    workdir = _workdir("postfix")
    cert, keyfile = _install(workdir, chain, key)
    ports = {"smtp": free_port(), "submission": free_port()}
    conf, queue, data = workdir / "etc", workdir / "queue", workdir / "data"
    for d in (conf, queue, data):
        d.mkdir()
    level = "encrypt" if tls else "none"
    (conf / "master.cf").write_text(_POSTFIX_MASTER.format(**ports, submission_level=level))
    (conf / "main.cf").write_text(
        "\n".join(
            [
                "compatibility_level = 3.6",
                f"queue_directory = {queue}",
                f"data_directory = {data}",
                "mail_owner = postfix",
                "myhostname = mail.test",
                "inet_interfaces = loopback-only",
                "inet_protocols = ipv4",
                "mydestination =",
                f"smtpd_tls_security_level = {'may' if tls else 'none'}",
                f"smtpd_tls_chain_files = {keyfile}, {cert}",
                "smtpd_tls_loglevel = 1",
                "maillog_file = /dev/stdout",  # with start-fg: the log is the daemon's output
                "local_recipient_maps =",
                "smtpd_relay_restrictions = reject",
                "smtpd_peername_lookup = no",  # no DNS here: do not wait on it
                "disable_dns_lookups = yes",
                "",
            ]
        )
    )
    owner = pwd.getpwnam("postfix")
    os.chown(data, owner.pw_uid, owner.pw_gid)
    (queue / "pid").mkdir()  # root's; the rest belongs to the mail_owner
    for sub in (
        "private",
        "public",
        "incoming",
        "active",
        "deferred",
        "defer",
        "bounce",
        "corrupt",
        "flush",
        "hold",
        "maildrop",
        "saved",
        "trace",
    ):
        (queue / sub).mkdir(mode=0o700)
        os.chown(queue / sub, owner.pw_uid, owner.pw_gid)
    return Daemon(
        "postfix",
        [command, "-c", str(conf), "start-fg"],
        ports,
        workdir,
        env={"MAIL_CONFIG": str(conf)},
        pidfile=queue / "pid" / "master.pid",
    )


# --- Dovecot ---------------------------------------------------------------------------------


def dovecot(chain: PathLike, key: PathLike, *, tls: bool = True) -> Daemon:
    """Dovecot in the foreground (``-F``) with IMAP and POP3; no mailboxes are needed."""
    binary = need("/usr/sbin/dovecot", "dovecot-imapd")
    need("/usr/lib/dovecot/pop3-login", "dovecot-pop3d")
    workdir = _workdir("dovecot")
    cert, keyfile = _install(workdir, chain, key)
    ports = {"imap": free_port(), "pop3": free_port()}
    run = workdir / "run"
    run.mkdir()
    conf = workdir / "dovecot.conf"
    conf.write_text(
        f"""\
base_dir = {run}
state_dir = {workdir / "state"}
instance_name = certscope-{workdir.name}
log_path = /dev/stderr
protocols = imap pop3
listen = 127.0.0.1
ssl = {"required" if tls else "no"}
ssl_cert = <{cert}
ssl_key = <{keyfile}
auth_verbose = yes
login_trusted_networks =
mail_location = maildir:{workdir / "mail"}
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={workdir / "home"}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {ports["imap"]}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {ports["pop3"]}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""
    )
    return Daemon("dovecot", [binary, "-F", "-c", str(conf)], ports, workdir)


# --- vsftpd ----------------------------------------------------------------------------------


def vsftpd(chain: PathLike, key: PathLike, *, tls: bool = True) -> Daemon:
    """vsftpd in the foreground, explicit FTPS (``AUTH TLS`` on the control connection)."""
    binary = need("/usr/sbin/vsftpd", "vsftpd")
    workdir = _workdir("vsftpd")
    cert, keyfile = _install(workdir, chain, key)
    ports = {"ftp": free_port()}
    empty = workdir / "empty"
    empty.mkdir(mode=0o555)
    conf = workdir / "vsftpd.conf"
    conf.write_text(
        "\n".join(
            [
                "listen=YES",
                "listen_ipv6=NO",
                "listen_address=127.0.0.1",
                f"listen_port={ports['ftp']}",
                "background=NO",
                "anonymous_enable=NO",
                "local_enable=YES",  # refused unless some login is possible; none is tried
                f"ssl_enable={'YES' if tls else 'NO'}",
                f"rsa_cert_file={cert}",
                f"rsa_private_key_file={keyfile}",
                f"secure_chroot_dir={empty}",
                "seccomp_sandbox=NO",  # its syscall filter predates this kernel's and libc's
                "isolate=NO",  # no new namespaces inside a container
                "isolate_network=NO",
                f"vsftpd_log_file={workdir / 'vsftpd.log'}",
                "xferlog_enable=YES",
                "debug_ssl=YES",
                "",
            ]
        )
    )
    conf.chmod(0o600)
    return Daemon("vsftpd", [binary, str(conf)], ports, workdir, logfile=workdir / "vsftpd.log")


# --- OpenLDAP slapd --------------------------------------------------------------------------


def slapd(chain: PathLike, key: PathLike, *, tls: bool = True) -> Daemon:
    """slapd in the foreground (``-d``) with a slapd.conf, StartTLS on ``ldap://``."""
    binary = need("/usr/sbin/slapd", "slapd")
    workdir = _workdir("slapd")
    cert, keyfile = _install(workdir, chain, key)
    ports = {"ldap": free_port()}
    db = workdir / "db"
    db.mkdir()
    conf = workdir / "slapd.conf"
    conf.write_text(
        f"""\
include /etc/ldap/schema/core.schema
pidfile {workdir / "slapd.pid"}
modulepath /usr/lib/ldap
moduleload back_mdb
{f"TLSCertificateFile {cert}" if tls else ""}
{f"TLSCertificateKeyFile {keyfile}" if tls else ""}
database mdb
suffix "dc=certscope,dc=test"
directory {db}
maxsize 10485760
"""
    )
    url = f"ldap://127.0.0.1:{ports['ldap']}/"
    # -d stats: stay in the foreground and log connections and operations (StartTLS included).
    return Daemon("slapd", [binary, "-d", "stats", "-h", url, "-f", str(conf)], ports, workdir)


# --- PostgreSQL ------------------------------------------------------------------------------


def _postgres_bin(name: str) -> str:
    versions = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3])
    )
    if not versions:
        raise RuntimeError(
            f"/usr/lib/postgresql/*/bin/{name} not found: install the Debian package "
            "'postgresql' (make system-deps)"
        )
    return str(versions[-1])


def postgres(chain: PathLike, key: PathLike, *, tls: bool = True) -> Daemon:
    """A fresh cluster (``initdb``) run by ``postgres`` as the postgres user, ``ssl = on``."""
    initdb, server = _postgres_bin("initdb"), _postgres_bin("postgres")
    workdir = _workdir("postgres")
    cert, keyfile = _install(workdir, chain, key, owner="postgres")
    ports = {"postgres": free_port()}
    data = workdir / "data"
    owner = pwd.getpwnam("postgres")
    os.chown(workdir, owner.pw_uid, owner.pw_gid)
    subprocess.run(
        [initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
        user=owner.pw_uid,
        group=owner.pw_gid,
        extra_groups=[],
        cwd=workdir,
    )
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(ports["postgres"]),
        "unix_socket_directories": str(workdir),
        "ssl": "on" if tls else "off",
        "ssl_cert_file": str(cert),
        "ssl_key_file": str(keyfile),
        "fsync": "off",
        "log_connections": "on",
    }
    args = [server, "-D", str(data)]
    for name, value in settings.items():
        args += ["-c", f"{name}={value}"]
    # SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for clients to leave).
    return Daemon("postgres", args, ports, workdir, user="postgres", stop_signal=signal.SIGINT)


# --- MariaDB ---------------------------------------------------------------------------------


def mariadb(chain: PathLike, key: PathLike, *, tls: bool = True) -> Daemon:
    """``mariadbd`` on an empty data directory (no grant tables needed for a TLS handshake)."""
    binary = need("/usr/sbin/mariadbd", "mariadb-server")
    workdir = _workdir("mariadb")
    cert, keyfile = _install(workdir, chain, key, owner="mysql")
    ports = {"mysql": free_port()}
    data = workdir / "data"
    data.mkdir()
    owner = pwd.getpwnam("mysql")
    for path in (workdir, data):  # it writes its socket and PID file next to the data
        os.chown(path, owner.pw_uid, owner.pw_gid)
    args = [
        binary,
        "--no-defaults",
        f"--datadir={data}",
        f"--socket={workdir / 'mysqld.sock'}",
        f"--pid-file={workdir / 'mysqld.pid'}",
        "--bind-address=127.0.0.1",
        f"--port={ports['mysql']}",
        "--user=mysql",
        "--skip-grant-tables",
        "--skip-name-resolve",
        "--innodb-buffer-pool-size=8M",
    ]
    if tls:
        args += [f"--ssl-cert={cert}", f"--ssl-key={keyfile}"]
    return Daemon("mariadb", args, ports, workdir)
