"""AWS source benchmark: 1,000 KMS keys, 2,000 S3 buckets and 500 ACM certificates.

    .venv/bin/python bench/aws_bench.py [--keys N] [--buckets N] [--certs N] [--concurrency C]

What it does, all on loopback:

1. starts ``moto_server`` (the AWS API emulator of the tests, a separate process) and seeds it
   through boto3: N KMS keys (every other one with rotation on), N buckets (a third with SSE-S3,
   a third with SSE-KMS on one of the keys, a third without default encryption) and N imported
   ACM certificates (leaf + intermediate, EC P-256);
2. starts a *separate* reader process (so neither the emulator's nor the seeding client's
   memory is counted) that runs one ``AwsReader.refresh`` with production settings (adaptive
   retries, ``concurrency`` calls per region) over ``services: [kms, acm, s3]`` in one region,
   and measures:

   - time to the first complete read (every key, bucket and certificate in the result);
   - the largest stall of the reader's event loop during the read (a 10 ms ticker): botocore
     runs in a thread pool, so ``/metrics`` would still be served while AWS is read;
   - peak RSS (``VmHWM``) and RSS after imports;
   - the time to render ``/metrics`` for the result.

Prints a table and the JSON of the measurements. The emulator answers from memory on the same
machine, so these figures are certscope's own cost plus loopback HTTP; against AWS, network
latency (tens of milliseconds per call) dominates and ``concurrency`` is what hides it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _harness import proc_status, tests_on_path

tests_on_path()


# --- the reader process ---------------------------------------------------------------------


async def _read(url: str, concurrency: int) -> dict[str, Any]:
    from certscope.collector import render_once
    from certscope.config import parse_config
    from certscope.sources.aws import AwsReader

    after_imports = proc_status()["VmRSS"]
    text = (
        "sources:\n  - {name: bench, kind: aws, regions: [us-east-1],"
        f" services: [kms, acm, s3], concurrency: {concurrency}, endpoint_url: '{url}'}}\n"
    )
    source = parse_config(text, "bench").sources[0]
    reader = AwsReader(source)  # type: ignore[arg-type]
    worst = 0.0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            worst = max(worst, time.perf_counter() - t - 0.01)

    if os.environ.get("AWS_BENCH_DEBUG"):  # log every callback that holds the loop > 50 ms
        import logging

        logging.basicConfig(level=logging.WARNING)
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = 0.05
    tick = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    result = await reader.refresh(None)
    first = time.perf_counter() - t0
    done.set()
    await tick
    t1 = time.perf_counter()
    body = render_once([result])
    render = time.perf_counter() - t1
    status = proc_status()
    return {
        "up": result.up,
        "error": result.error,
        "item_errors": len(result.errors),
        "kms_keys": sum(1 for k in result.keys if k.kind == "kms_key"),
        "buckets": len(result.storage),
        "acm_certificates": len({c.location for c in result.certs}),
        "first_read_s": round(first, 2),
        "max_event_loop_stall_ms": round(worst * 1000, 1),
        "render_metrics_ms": round(render * 1000, 1),
        "metrics_bytes": len(body),
        "rss_after_imports_mib": round(after_imports, 1),
        "peak_rss_mib": round(status["VmHWM"], 1),
    }


def child(url: str, concurrency: int) -> None:
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    from helpers.motoserver import aws_env

    os.environ.update({k: v for k, v in aws_env().items() if k.startswith("AWS_")})
    print(json.dumps(asyncio.run(_read(url, concurrency))))


# --- seeding ----------------------------------------------------------------------------------


def _certificates(n: int) -> tuple[bytes, bytes, list[bytes]]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaves = []
    for i in range(n):
        name = f"svc{i}.bench.example"
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(leaf_key.public_key())
            .serial_number(1000 + i)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30 + i % 300))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        leaves.append(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ca.public_bytes(serialization.Encoding.PEM), key_pem, leaves


def seed(moto: Any, keys: int, buckets: int, certs: int) -> float:
    t0 = time.perf_counter()
    kms, s3, acm = moto.client("kms"), moto.client("s3"), moto.client("acm")

    def key(i: int) -> str:
        key_id: str = kms.create_key()["KeyMetadata"]["KeyId"]
        if i % 2 == 0:
            kms.enable_key_rotation(KeyId=key_id)
        return key_id

    def bucket(i: int, key_id: str) -> None:
        name = f"bench-{i:05d}"
        s3.create_bucket(Bucket=name)
        if i % 3 == 0:
            return
        default: dict[str, str] = {"SSEAlgorithm": "AES256"}
        if i % 3 == 2:
            default = {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_id}
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": default}]
            },
        )

    ca, key_pem, leaves = _certificates(certs)
    with ThreadPoolExecutor(8) as pool:
        key_ids = list(pool.map(key, range(keys)))
        list(pool.map(lambda i: bucket(i, key_ids[i % len(key_ids)]), range(buckets)))
        list(
            pool.map(
                lambda pem: acm.import_certificate(
                    Certificate=pem, PrivateKey=key_pem, CertificateChain=ca
                ),
                leaves,
            )
        )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--buckets", type=int, default=2000)
    parser.add_argument("--certs", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.concurrency)
        return
    from helpers.motoserver import MotoServer

    with tempfile.TemporaryDirectory(prefix="aws-bench-") as tmp:
        moto = MotoServer.start(Path(tmp))
        try:
            seeded = seed(moto, args.keys, args.buckets, args.certs)
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    moto.url,
                    "--concurrency",
                    str(args.concurrency),
                ],
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
        finally:
            moto.stop()
    got = json.loads(out.stdout.strip().splitlines()[-1])
    got["seed_s"] = round(seeded, 1)
    got["asked"] = {"keys": args.keys, "buckets": args.buckets, "certs": args.certs}
    assert got["up"], got
    assert got["kms_keys"] == args.keys, got
    assert got["buckets"] == args.buckets, got
    assert got["acm_certificates"] == args.certs, got
    width = max(len(k) for k in got)
    for k, v in got.items():
        print(f"{k:<{width}}  {v}")
    print(json.dumps(got))


if __name__ == "__main__":
    main()
