"""The files source: bundles, DER, globs, excludes, change detection and bad files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certscope.collector import source_fragments
from certscope.config import FilesSource
from certscope.sources.files import MAX_FILE_BYTES, FilesReader


@pytest.fixture(scope="module")
def pems() -> list[bytes]:
    ca = trustme.CA()
    return [ca.cert_pem.bytes()] + [
        ca.issue_cert(f"host{i}.test").cert_chain_pems[0].bytes() for i in range(3)
    ]


def _source(tmp_path: Path, *paths: str, exclude: tuple[str, ...] = ()) -> FilesReader:
    return FilesReader(
        FilesSource(name="disk", paths=tuple(str(tmp_path / p) for p in paths), exclude=exclude)
    )


async def test_bundle_positions_der_and_corrupt_block(tmp_path: Path, pems: list[bytes]) -> None:
    corrupt = b"-----BEGIN CERTIFICATE-----\nnot base64 !!!\n-----END CERTIFICATE-----\n"
    (tmp_path / "bundle.pem").write_bytes(pems[0] + pems[1] + corrupt + pems[2])
    der = x509.load_pem_x509_certificate(pems[3]).public_bytes(Encoding.DER)
    (tmp_path / "leaf.der").write_bytes(der)
    (tmp_path / "junk.crt").write_bytes(os.urandom(300).replace(b"\x30", b"\x31"))
    reader = _source(tmp_path, "*")
    result = await reader.refresh(None)
    assert result.up
    got = {(Path(c.location).name, c.position): c.facts.sans for c in result.certs}
    assert got == {
        ("bundle.pem", 0): (),  # the CA
        ("bundle.pem", 1): ("host0.test",),
        ("bundle.pem", 3): ("host1.test",),  # position kept past the corrupt block
        ("leaf.der", 0): ("host2.test",),
    }
    errors = {(Path(e.location).name, e.reason) for e in result.errors}
    assert errors == {("bundle.pem#2", "corrupt_pem"), ("junk.crt", "unknown_format")}
    text = "".join(line for lines in source_fragments(result).values() for line in lines)
    assert (
        'certscope_source_item_errors{source_kind="files",source="disk",reason="corrupt_pem"} 1'
        in text
    )
    assert f'location="{tmp_path / "bundle.pem"}",chain_position="3"' in text


async def test_globs_excludes_and_recursion(tmp_path: Path, pems: list[bytes]) -> None:
    for rel in ("a/x.crt", "a/b/c/y.crt", "a/old/z.crt", "a/ignored.txt"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(pems[1])
    reader = _source(tmp_path, "a/**/*.crt", exclude=("*/old/*",))
    result = await reader.refresh(None)
    found = sorted(os.path.relpath(c.location, tmp_path) for c in result.certs)
    assert found == ["a/b/c/y.crt", "a/x.crt"]


async def test_unchanged_files_are_not_reparsed_and_deleted_files_vanish(
    tmp_path: Path, pems: list[bytes]
) -> None:
    (tmp_path / "one.pem").write_bytes(pems[1])
    (tmp_path / "two.pem").write_bytes(pems[2])
    reader = _source(tmp_path, "*.pem")
    first = await reader.refresh(None)
    assert len(first.certs) == 2
    cached = dict(reader._cache)
    second = await reader.refresh(first)
    assert reader._cache[str(tmp_path / "one.pem")] is cached[str(tmp_path / "one.pem")]
    assert second.certs == first.certs

    # same size, new content: picked up without a restart
    (tmp_path / "one.pem").write_bytes(pems[3])
    os.utime(tmp_path / "one.pem", ns=(1, 1))
    third = await reader.refresh(second)
    subjects = {c.facts.sans for c in third.certs}
    assert ("host2.test",) in subjects  # from pems[3]

    (tmp_path / "two.pem").unlink()
    fourth = await reader.refresh(third)
    assert [Path(c.location).name for c in fourth.certs] == ["one.pem"]


async def test_bad_files_are_reported_not_fatal(tmp_path: Path, pems: list[bytes]) -> None:
    big = tmp_path / "big.pem"
    with big.open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)
    (tmp_path / "good.pem").write_bytes(pems[1])
    loop_dir = tmp_path / "loop"
    loop_dir.mkdir()
    (loop_dir / "self").symlink_to(loop_dir)  # a symlink loop under a ** glob
    (tmp_path / "dangling.pem").symlink_to(tmp_path / "nowhere.pem")
    reader = FilesReader(
        FilesSource(
            name="disk",
            paths=(
                str(tmp_path / "*.pem"),
                str(tmp_path / "loop/**/*.pem"),
                str(tmp_path / "missing.pem"),
            ),
        )
    )
    result = await reader.refresh(None)
    assert result.up
    assert [Path(c.location).name for c in result.certs] == ["good.pem"]
    reasons = {(Path(e.location).name, e.reason) for e in result.errors}
    assert ("big.pem", "too_large") in reasons
    assert ("dangling.pem", "not_found") in reasons  # a dangling symlink
    assert ("missing.pem", "not_found") in reasons


async def test_system_trust_store_inventory() -> None:
    from certscope.config import default_config

    (src,) = default_config({}).sources
    assert isinstance(src, FilesSource)
    result = await FilesReader(src).refresh(None)
    assert result.up
    assert len(result.certs) > 50  # Debian ships well over a hundred roots
    assert all(c.facts.is_ca and c.facts.not_after is not None for c in result.certs)
