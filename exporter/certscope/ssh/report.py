"""``certscope scan ssh://host:port``: probe SSH servers once, print JSON or a table."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..config import Policy, Target, TLSOptions
from ..errors import UsageError
from ..policy import Assessment, findings_json
from ..results import SSHProbeResult
from .algorithms import classify
from .keys import CertificateFacts
from .policy import assess_server
from .probe import probe_target

__all__ = ["is_ssh_target", "parse_ssh_target", "scan_ssh", "ssh_json", "ssh_table"]


def is_ssh_target(text: str) -> bool:
    return text.strip().lower().startswith("ssh://")


def parse_ssh_target(text: str) -> tuple[str, int]:
    try:
        parts = urlsplit(text.strip())
        port = parts.port or 22
    except ValueError as exc:
        raise UsageError(f"bad target {text!r}: {exc}") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.username:
        raise UsageError(f"bad target {text!r}: expected ssh://host[:port]")
    return parts.hostname, port


def scan_ssh(
    raw_targets: Sequence[str], timeout: float, policy: Policy
) -> list[tuple[SSHProbeResult, Assessment]]:
    targets = []
    for raw in raw_targets:
        host, port = parse_ssh_target(raw)
        targets.append(
            Target(
                name=raw,
                host=host,
                port=port,
                tls=TLSOptions(timeout=timeout),
                interval=timeout * 2,
                enumerate=False,
                protocol="ssh",
            )
        )

    async def run() -> list[SSHProbeResult]:
        sem = asyncio.Semaphore(16)

        async def one(t: Target) -> SSHProbeResult:
            async with sem:
                return await probe_target(t)

        return list(await asyncio.gather(*(one(t) for t in targets)))

    results = asyncio.run(run())
    now = datetime.now(UTC)
    return [
        (r, assess_server((t.name, t.address), r.scan, policy, now))
        for t, r in zip(targets, results, strict=True)
    ]


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _certificate(c: CertificateFacts) -> dict[str, Any]:
    return {
        "type": c.type,
        "key_id": c.key_id,
        "serial": c.serial,
        "principals": list(c.principals),
        "valid_after": _iso(c.valid_after),
        "valid_before": _iso(c.valid_before),
        "critical_options": dict(c.critical_options),
        "extensions": list(c.extensions),
        "ca_algorithm": c.ca_algorithm,
        "ca_bits": c.ca_bits,
        "ca_fingerprint_sha256": c.ca_fingerprint_sha256,
        "signature_valid": c.signature_valid,
    }


def ssh_json(r: SSHProbeResult, a: Assessment) -> dict[str, Any]:
    s = r.scan
    info = s.info
    ssh: dict[str, Any] | None = None
    if info is not None:
        ssh = {
            "banner": info.banner,
            "software": info.software,
            "kex": list(info.kex),
            "host_key_algorithms": list(info.host_key_algorithms),
            "ciphers": list(info.ciphers),
            "macs": list(info.macs),
            "compression": list(info.compression),
            "algorithm_classes": {
                kind: {
                    name: str(classify(kind, name).cls)
                    for k, name in info.algorithms()
                    if k == kind
                }
                for kind in ("kex", "host_key", "cipher", "mac", "compression")
            },
            "host_keys": [
                {
                    "algorithm": k.algorithm,
                    "key_type": k.facts.algorithm if k.facts else None,
                    "bits": k.facts.bits if k.facts else None,
                    "fingerprint_sha256": k.facts.fingerprint_sha256 if k.facts else None,
                    "kex": k.kex or None,
                    "signature_algorithm": k.signature_algorithm or None,
                    "error": k.error or None,
                    "certificate": _certificate(k.facts.certificate)
                    if k.facts and k.facts.certificate
                    else None,
                }
                for k in s.host_keys
            ],
            "notes": list(s.notes),
        }
    return {
        "target": r.name,
        "address": r.address,
        "protocol": "ssh",
        "peer_address": s.peer_address or None,
        "ok": r.success,
        "error": {"reason": str(s.error.reason), "message": s.error.message} if s.error else None,
        "ssh": ssh,
        **findings_json(a),
        "connections": s.connections,
        "duration_seconds": round(r.duration, 4),
    }


def ssh_table(results: Sequence[tuple[SSHProbeResult, Assessment]]) -> str:
    out: list[str] = []
    for r, a in results:
        s = r.scan
        status = "OK" if r.success else f"FAILED {s.error.reason if s.error else '?'}"
        out.append(f"{r.name}  [{status}]  {s.peer_address}")
        if s.error:
            out.append(f"  error:    {s.error.message}")
        if s.info is not None:
            out.append(f"  banner:   {s.info.banner}")
            for kind, name in s.info.algorithms():
                out.append(f"  {kind:<12} {name:<45} {classify(kind, name).cls}")
        for k in s.host_keys:
            if k.facts is None:
                out.append(f"  host key {k.algorithm}: {k.error}")
                continue
            out.append(
                f"  host key {k.algorithm}: {k.facts.bits} bits {k.facts.fingerprint_sha256}"
            )
            c = k.facts.certificate
            if c is not None:
                out.append(
                    f"      certificate {c.key_id!r} serial {c.serial} principals "
                    f"{','.join(c.principals)} valid {_iso(c.valid_after)} .. "
                    f"{_iso(c.valid_before) or 'forever'} CA {c.ca_fingerprint_sha256}"
                )
        for f in a.active:
            out.append(f"  finding:  {f.rule} [{f.severity}, {f.control}] {f.detail}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
