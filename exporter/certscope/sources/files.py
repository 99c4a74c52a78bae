"""Certificates in files: paths and globs (``**`` included), in every format that
:mod:`certscope.sources.formats` knows (PEM, DER, PKCS#7, PKCS#12, JKS/JCEKS, kubeconfig),
told apart by content.

Files are re-read only when their size or modification time changes, and re-parsed only when
their content hash changes, so a refresh of an unchanged tree costs one ``stat`` per file (two
for a PEM or DER certificate file: its sibling ``.key`` is watched too). PKCS#12 files and
keystores are also re-parsed when the configured password changes: their cache entry carries a
keyed hash of the passwords, never the passwords. Blocking file I/O runs in a worker thread; the
event loop keeps serving scrapes.

Reading is defensive: a file is opened non-blocking and checked on the open descriptor (a FIFO
or device is ``unreadable``, never a hang), at most ``MAX_FILE_BYTES + 1`` bytes are read (a file
that grew past the cap after ``stat`` is still ``too_large``), and one bad file is one
:class:`~certscope.results.ItemError` while the others keep working.

Private keys (a PRIVATE KEY block in the certificate's PEM file, or a sibling ``<stem>.key``)
are read only to set :attr:`~certscope.results.StoredCert.key_matches`; their bytes are dropped
as soon as the public key hash is known and never appear in results, logs or messages.
"""

from __future__ import annotations

import asyncio
import fnmatch
import glob
import hashlib
import os
import secrets
import stat
import time
from dataclasses import dataclass, replace

from ..config import FilesSource
from ..results import ItemError, SourceResult, StoredCert
from . import formats
from .base import failed, succeeded
from .formats import Password, apply_key_match, key_spki_hashes

#: Files larger than this are reported, not read (a 50 MB "certificate" is a mistake).
MAX_FILE_BYTES = 8 * 1024 * 1024
#: A glob that matches more files than this is cut short with an error, not an OOM.
MAX_FILES = 200_000
#: A sibling ``.key`` larger than this is not a private key; it is ignored.
MAX_KEY_BYTES = 1024 * 1024
#: A password file larger than this is a mistake.
MAX_PASSWORD_BYTES = 64 * 1024
#: Cache key of entries that must be retried on the next refresh (the file could not be read).
_RETRY = (-1, -1)

DepStat = tuple[int, int, int, int] | None


@dataclass(frozen=True)
class _Parsed:
    stat_key: tuple[int, int]
    sha256: str
    certs: tuple[StoredCert, ...]
    errors: tuple[ItemError, ...]
    #: Keyed hash of the passwords the file was parsed with; None: it needs no password.
    password_tag: str | None = None
    #: Other files the result depends on (the sibling ``.key``), with their stat when parsed.
    deps: tuple[tuple[str, DepStat], ...] = ()


class _NotRegular(Exception):
    pass


def _read_capped(path: str, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of a regular file (more than ``limit``: too large).

    Opened non-blocking and checked with ``fstat`` on the descriptor, so a FIFO or device that
    a glob matched (or that replaced the file since ``stat``) cannot block the worker thread.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotRegular
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def expand_paths(
    patterns: tuple[str, ...], exclude: tuple[str, ...]
) -> tuple[list[str], list[ItemError]]:
    """Files matching paths and globs (``**`` included), minus ``exclude``, at most
    ``MAX_FILES``; a plain path that does not exist is a ``not_found`` error."""
    found: dict[str, None] = {}
    errors: list[ItemError] = []
    for pattern in patterns:
        if not glob.has_magic(pattern) and not os.path.lexists(pattern):
            errors.append(ItemError(pattern, "not_found", "no such file"))
            continue
        matches = glob.glob(pattern, recursive=True) if glob.has_magic(pattern) else [pattern]
        for m in sorted(matches):
            if len(found) >= MAX_FILES:
                errors.append(ItemError(pattern, "too_many_files", f"more than {MAX_FILES} files"))
                break
            if any(fnmatch.fnmatch(m, ex) for ex in exclude):
                continue
            if os.path.isdir(m):
                continue
            found[m] = None
    return list(found), errors


def _dep_stat(path: str) -> DepStat:
    try:
        st = os.stat(path)
    except OSError:
        return None
    # ctime too: a chmod that makes a 0600 key readable changes nothing else.
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def parse_file_bytes(
    path: str, data: bytes, passwords: tuple[Password, ...] = ()
) -> tuple[tuple[StoredCert, ...], tuple[ItemError, ...]]:
    """Every certificate in one file's bytes, position kept; bad entries become errors."""
    parsed = formats.parse(path, data, passwords)
    return parsed.certs, parsed.errors


def _sibling_key(
    path: str, certs: tuple[StoredCert, ...]
) -> tuple[tuple[StoredCert, ...], tuple[ItemError, ...], tuple[tuple[str, DepStat], ...]]:
    """``key_matches`` from ``<stem>.key`` beside a certificate file, if there is one to read.

    A missing or unreadable key file (``0600 root`` is the norm) notes nothing; it is still
    watched, so a key that appears or changes re-parses the certificate file.
    """
    stem, ext = os.path.splitext(path)
    if ext.lower() == ".key":
        return certs, (), ()
    key_path = stem + ".key"
    dep = _dep_stat(key_path)
    deps = ((key_path, dep),)
    if dep is None or dep[0] > MAX_KEY_BYTES:
        return certs, (), deps
    try:
        data = _read_capped(key_path, MAX_KEY_BYTES)
    except (OSError, _NotRegular):
        return certs, (), deps
    if len(data) > MAX_KEY_BYTES:  # it grew after the stat
        return certs, (), deps
    key_hashes, corrupt = key_spki_hashes(data)
    del data
    errors: tuple[ItemError, ...] = ()
    if corrupt:
        message = "the key file beside the certificate is not a readable private key"
        errors = (ItemError(key_path, "corrupt_key", message),)
    return apply_key_match(certs, key_hashes), errors, deps


def _read_password_file(path: str) -> tuple[str | None, str]:
    """The password in ``path`` without its trailing newline, or None and why not."""
    try:
        raw = _read_capped(path, MAX_PASSWORD_BYTES)
    except OSError as exc:
        return None, exc.strerror or type(exc).__name__
    except _NotRegular:
        return None, "not a regular file"
    if len(raw) > MAX_PASSWORD_BYTES:
        return None, f"password file is larger than {MAX_PASSWORD_BYTES} bytes"
    try:
        return raw.decode("utf-8").rstrip("\r\n"), ""
    except UnicodeDecodeError:  # its message would quote a byte of the password
        return None, "password file is not UTF-8 text"


class FilesReader:
    kind = "files"

    def __init__(self, source: FilesSource) -> None:
        self.source = source
        self.name = source.name
        self._cache: dict[str, _Parsed] = {}
        # Keys the password hash in cache entries: equal passwords are recognised without a
        # plain hash of a low-entropy secret lying around in memory.
        self._tag_key = secrets.token_bytes(32)

    def _expand(self) -> tuple[list[str], list[ItemError]]:
        return expand_paths(self.source.paths, self.source.exclude)

    def _passwords(self) -> tuple[tuple[Password, ...], str, list[ItemError]]:
        """The configured passwords, read now (they may have been rotated), and their tag."""
        found: list[Password] = []
        errors: list[ItemError] = []
        env, path = self.source.password_env, self.source.password_file
        if env:
            value = os.environ.get(env)
            if value is None:
                message = f"environment variable {env} is not set"
                errors.append(ItemError(f"env:{env}", "password_unavailable", message))
            else:
                found.append(Password(f"password_env {env}", value))
        if path:
            value, problem = _read_password_file(path)
            if value is None:
                errors.append(ItemError(path, "password_unavailable", problem))
            else:
                found.append(Password(f"password_file {path}", value))
            del value
        tag = hashlib.blake2b(key=self._tag_key, digest_size=16)
        for p in found:
            encoded = p.value.encode("utf-8", "surrogatepass")
            tag.update(len(encoded).to_bytes(4, "big") + encoded)
        return tuple(found), tag.hexdigest(), errors

    def _read_all(self) -> tuple[tuple[StoredCert, ...], tuple[ItemError, ...]]:
        paths, errors = self._expand()
        passwords, tag, password_errors = self._passwords()
        errors.extend(password_errors)
        certs: list[StoredCert] = []
        fresh: dict[str, _Parsed] = {}
        for path in paths:
            parsed = self._read_one(path, passwords, tag)
            fresh[path] = parsed
            certs.extend(parsed.certs)
            errors.extend(parsed.errors)
        del passwords
        # Files that vanished drop out of the cache, so their series go too.
        self._cache = fresh
        return tuple(certs), tuple(errors)

    @staticmethod
    def _still_valid(old: _Parsed, tag: str) -> bool:
        if old.password_tag is not None and old.password_tag != tag:
            return False
        return all(_dep_stat(path) == st for path, st in old.deps)

    def _read_one(self, path: str, passwords: tuple[Password, ...], tag: str) -> _Parsed:
        try:
            st = os.stat(path)
        except OSError as exc:
            return _Parsed(
                _RETRY, "", (), (ItemError(path, "unreadable", exc.strerror or str(exc)),)
            )
        key = (st.st_size, st.st_mtime_ns)
        old = self._cache.get(path)
        if old is not None and old.stat_key == key and self._still_valid(old, tag):
            return old
        if not stat.S_ISREG(st.st_mode):
            return _Parsed(_RETRY, "", (), (ItemError(path, "unreadable", "not a regular file"),))
        if st.st_size > MAX_FILE_BYTES:
            msg = f"file is {st.st_size} bytes, larger than {MAX_FILE_BYTES}"
            return _Parsed(key, "", (), (ItemError(path, "too_large", msg),))
        try:
            data = _read_capped(path, MAX_FILE_BYTES)
        except OSError as exc:
            return _Parsed(
                _RETRY, "", (), (ItemError(path, "unreadable", exc.strerror or str(exc)),)
            )
        except _NotRegular:
            return _Parsed(_RETRY, "", (), (ItemError(path, "unreadable", "not a regular file"),))
        if len(data) > MAX_FILE_BYTES:  # it grew after the stat
            msg = f"file is larger than {MAX_FILE_BYTES} bytes"
            return _Parsed(_RETRY, "", (), (ItemError(path, "too_large", msg),))
        digest = hashlib.sha256(data).hexdigest()
        if old is not None and old.sha256 == digest and self._still_valid(old, tag):
            return replace(old, stat_key=key)
        try:
            parsed = formats.parse(path, data, passwords)
        except Exception as exc:  # a parser bug must not take the other files down
            message = f"parser error: {type(exc).__name__}"
            parsed = formats.Parsed("unknown", errors=(ItemError(path, "unparseable", message),))
        del data
        certs, errors = parsed.certs, parsed.errors
        deps: tuple[tuple[str, DepStat], ...] = ()
        if parsed.format in ("pem", "der") and certs and not parsed.has_key:
            certs, key_errors, deps = _sibling_key(path, certs)
            errors += key_errors
        password_tag = tag if parsed.used_password else None
        return _Parsed(key, digest, certs, errors, password_tag, deps)

    async def refresh(self, previous: SourceResult | None) -> SourceResult:
        started = time.perf_counter()
        try:
            certs, errors = await asyncio.to_thread(self._read_all)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failing source keeps its last good data
            message = f"{type(exc).__name__}: {str(exc)[:200]}"
            return failed(self, self.source.labels, started, previous, "internal_error", message)
        return succeeded(self, self.source.labels, started, certs, errors)
