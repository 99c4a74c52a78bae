"""Certificates in files: paths and globs (``**`` included), PEM bundles and DER.

Files are re-read only when their size or modification time changes, and re-parsed only when
their content hash changes, so a refresh of an unchanged tree costs one ``stat`` per file.
Blocking file I/O runs in a worker thread; the event loop keeps serving scrapes.
"""

from __future__ import annotations

import asyncio
import fnmatch
import glob
import hashlib
import os
import time
from dataclasses import dataclass

from ..certs import facts_from_der, iter_pem_blocks
from ..config import FilesSource
from ..results import ItemError, SourceResult, StoredCert

#: Files larger than this are reported, not read (a 50 MB "certificate" is a mistake).
MAX_FILE_BYTES = 8 * 1024 * 1024
#: A glob that matches more files than this is cut short with an error, not an OOM.
MAX_FILES = 200_000


@dataclass(frozen=True)
class _Parsed:
    stat_key: tuple[int, int]
    sha256: str
    certs: tuple[StoredCert, ...]
    errors: tuple[ItemError, ...]


def parse_file_bytes(
    path: str, data: bytes
) -> tuple[tuple[StoredCert, ...], tuple[ItemError, ...]]:
    """Every certificate in one file's bytes, position kept; bad entries become errors."""
    certs: list[StoredCert] = []
    errors: list[ItemError] = []
    if b"-----BEGIN" in data:
        for pos, der, problem in iter_pem_blocks(data):
            if der is None:
                errors.append(ItemError(f"{path}#{pos}", "corrupt_pem", problem))
                continue
            facts = facts_from_der(der)
            if facts.parse_errors and not facts.subject and not facts.not_after:
                errors.append(ItemError(f"{path}#{pos}", "unparseable", facts.parse_errors[0]))
                continue
            certs.append(StoredCert(path, pos, facts))
        if not certs and not errors and b"-----BEGIN CERTIFICATE-----" not in data:
            errors.append(ItemError(path, "no_certificate", "no PEM certificate in file"))
        return tuple(certs), tuple(errors)
    if data[:1] == b"\x30":
        facts = facts_from_der(data)
        if facts.subject or facts.not_after:
            return (StoredCert(path, 0, facts),), ()
        return (), (ItemError(path, "unparseable", (facts.parse_errors or ("not DER",))[0]),)
    return (), (ItemError(path, "unknown_format", "not a PEM or DER certificate"),)


class FilesReader:
    kind = "files"

    def __init__(self, source: FilesSource) -> None:
        self.source = source
        self.name = source.name
        self._cache: dict[str, _Parsed] = {}

    def _expand(self) -> tuple[list[str], list[ItemError]]:
        found: dict[str, None] = {}
        errors: list[ItemError] = []
        for pattern in self.source.paths:
            if not glob.has_magic(pattern) and not os.path.lexists(pattern):
                errors.append(ItemError(pattern, "not_found", "no such file"))
                continue
            matches = glob.glob(pattern, recursive=True) if glob.has_magic(pattern) else [pattern]
            for m in sorted(matches):
                if len(found) >= MAX_FILES:
                    errors.append(
                        ItemError(pattern, "too_many_files", f"more than {MAX_FILES} files")
                    )
                    break
                if any(fnmatch.fnmatch(m, ex) for ex in self.source.exclude):
                    continue
                if os.path.isdir(m):
                    continue
                found[m] = None
        return list(found), errors

    def _read_all(self) -> tuple[tuple[StoredCert, ...], tuple[ItemError, ...]]:
        paths, errors = self._expand()
        certs: list[StoredCert] = []
        fresh: dict[str, _Parsed] = {}
        for path in paths:
            parsed = self._read_one(path)
            fresh[path] = parsed
            certs.extend(parsed.certs)
            errors.extend(parsed.errors)
        # Files that vanished drop out of the cache, so their series go too.
        self._cache = fresh
        return tuple(certs), tuple(errors)

    def _read_one(self, path: str) -> _Parsed:
        try:
            st = os.stat(path)
        except OSError as exc:
            return _Parsed(
                (0, 0), "", (), (ItemError(path, "unreadable", exc.strerror or str(exc)),)
            )
        key = (st.st_size, st.st_mtime_ns)
        old = self._cache.get(path)
        if old is not None and old.stat_key == key:
            return old
        if st.st_size > MAX_FILE_BYTES:
            msg = f"file is {st.st_size} bytes, larger than {MAX_FILE_BYTES}"
            return _Parsed(key, "", (), (ItemError(path, "too_large", msg),))
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            return _Parsed(key, "", (), (ItemError(path, "unreadable", exc.strerror or str(exc)),))
        digest = hashlib.sha256(data).hexdigest()
        if old is not None and old.sha256 == digest:
            return _Parsed(key, digest, old.certs, old.errors)
        certs, errors = parse_file_bytes(path, data)
        return _Parsed(key, digest, certs, errors)

    async def refresh(self, previous: SourceResult | None) -> SourceResult:
        started = time.perf_counter()
        try:
            certs, errors = await asyncio.to_thread(self._read_all)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failing source keeps its last good data
            now = time.time()
            return SourceResult(
                name=self.name,
                kind=self.kind,
                labels=self.source.labels,
                timestamp=now,
                duration=time.perf_counter() - started,
                up=False,
                certs=previous.certs if previous else (),
                errors=(),
                last_success=previous.last_success if previous else None,
                error=f"{type(exc).__name__}: {str(exc)[:200]}",
                error_reason="internal_error",
            )
        now = time.time()
        return SourceResult(
            name=self.name,
            kind=self.kind,
            labels=self.source.labels,
            timestamp=now,
            duration=time.perf_counter() - started,
            up=True,
            certs=certs,
            errors=errors,
            last_success=now,
        )
