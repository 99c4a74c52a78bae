"""A fleet of loopback TLS endpoints for the benchmarks: one process, one asyncio loop, N ports.

Run as a separate process (``python bench/fleet.py --endpoints 500 --dir DIR``) so that its
CPU is not charged to the exporter being measured. It writes a private CA, one intermediate
and one leaf certificate per endpoint (distinct serial, CN and SANs, so an exporter cannot
serve every endpoint from one cached parse), listens on 127.0.0.1 with one port per
endpoint, and prints one JSON line ``{"ports": [...], "ca_file": ..., "pid": ...}`` once
every port is accepting. It stops on SIGTERM or SIGINT.

Each endpoint completes the handshake (TLS 1.3 with Python's default server settings,
presenting leaf + intermediate), then waits for the client to hang up. Session tickets are
off (``num_tickets = 0``): neither exporter resumes sessions, and tickets written to a client
that has already closed only cost the fleet CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import json
import os
import signal
import ssl
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _key(kind: str) -> KeyType:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certscope bench"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca_cert(
    subject: str, key: KeyType, issuer: x509.Name | None, issuer_key: KeyType, path_len: int
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = _name(subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _leaf(
    index: int, key: KeyType, ca: x509.Certificate, ca_key: KeyType, days: int
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    host = f"ep{index}.bench.test"
    return (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(host),
                    x509.DNSName(f"www.{host}"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.oid.AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier("http://ocsp.bench.test"),
                    ),
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_pki(directory: Path, endpoints: int, key_type: str) -> tuple[Path, list[Path], Path]:
    """CA, intermediate and ``endpoints`` leaf chains (leaf + intermediate) under ``directory``.

    Every leaf shares one key (key generation is the slow part and does not change what a
    client does), but each certificate is distinct.
    """
    directory.mkdir(parents=True, exist_ok=True)
    root_key, inter_key, leaf_key = _key(key_type), _key(key_type), _key(key_type)
    root = _ca_cert("certscope bench root", root_key, None, root_key, 1)
    inter = _ca_cert("certscope bench intermediate", inter_key, root.subject, root_key, 0)
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(_pem(root))
    key_file = directory / "leaf.key"
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_file, 0o600)
    inter_pem = _pem(inter)
    chains = []
    for i in range(endpoints):
        path = directory / f"chain-{i}.pem"
        path.write_bytes(_pem(_leaf(i, leaf_key, inter, inter_key, 90 + i % 300)) + inter_pem)
        chains.append(path)
    return ca_file, chains, key_file


class _Quiet(asyncio.Protocol):
    """Accepts the (already TLS-wrapped) connection and lets the client decide when to go."""

    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False  # close our side too


def _server_context(chain: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key)
    ctx.num_tickets = 0
    return ctx


async def serve(chains: list[Path], key: Path, ca_file: Path, host: str) -> None:
    loop = asyncio.get_running_loop()
    # Clients hang up right after the handshake; the resulting resets are expected, not news.
    loop.set_exception_handler(lambda _loop, _ctx: None)
    servers = []
    ports = []
    for chain in chains:
        server = await loop.create_server(
            _Quiet,
            host,
            0,
            ssl=_server_context(chain, key),
            backlog=1024,
            ssl_handshake_timeout=10,
        )
        servers.append(server)
        ports.append(server.sockets[0].getsockname()[1])
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(
        json.dumps({"ports": ports, "ca_file": str(ca_file), "pid": os.getpid()}),
        flush=True,
    )
    await stop.wait()
    for server in servers:
        server.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--endpoints", type=int, default=500)
    p.add_argument("--dir", required=True, help="where to write the CA, chains and key")
    p.add_argument("--key-type", choices=["rsa", "ecdsa"], default="rsa")
    p.add_argument("--host", default="127.0.0.1")
    args = p.parse_args(argv)
    ca_file, chains, key = write_pki(Path(args.dir), args.endpoints, args.key_type)
    asyncio.run(serve(chains, key, ca_file, args.host))
    return 0


if __name__ == "__main__":
    sys.exit(main())
